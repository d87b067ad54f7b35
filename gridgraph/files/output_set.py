"""Write several output files as one set: all new files, or the old set untouched.

The files are written into a hidden folder beside them (``.gridgraph-out-<pid>@<host>.<random>``);
once all are there a ``COMMITTED`` marker is written into it and each file is moved over its old
copy (``os.replace``: every file is always whole, old or new). A process killed before the marker
leaves the old set as it was and the hidden folder, which the next :class:`OutputSet` into that
folder removes; one killed while moving leaves the marker, and the next one finishes the move, so
the folder never keeps a mix of two sets once gridgraph writes there again. Only folders of dead
processes of this host are touched.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Sequence, Union

__all__ = ["OutputSet", "recover_output_sets"]

PREFIX = ".gridgraph-out-"
COMMITTED = "COMMITTED"
_OWNED = re.compile(r"^\.gridgraph-out-(\d+)@(.+)\.[^.]+$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname() or "host")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def _move_in(tmp: Path, out_dir: Path, names: Sequence[str]) -> None:
    for name in names:
        if (tmp / name).is_file():
            os.replace(tmp / name, out_dir / name)


def recover_output_sets(out_dir: Union[str, os.PathLike]) -> list:
    """Finish or remove the output sets of dead processes of this host in ``out_dir``: one with
    its ``COMMITTED`` marker is moved in (its last files), one without is removed. Returns the
    hidden folders handled."""
    out_dir, host, done = Path(out_dir), _host(), []
    for tmp in sorted(out_dir.glob(PREFIX + "*")):
        owner = _OWNED.match(tmp.name)
        if not tmp.is_dir() or owner is None or owner[2] != host or _alive(int(owner[1])):
            continue
        marker = tmp / COMMITTED
        if marker.is_file():
            _move_in(tmp, out_dir, marker.read_text(encoding="utf-8").splitlines())
        shutil.rmtree(tmp, ignore_errors=True)
        done.append(tmp)
    return done


class OutputSet:
    """Context manager: write the files ``names`` into a temporary folder beside ``out_dir``;
    on success they replace the old files of that set; on any error the temporary folder is
    removed and ``out_dir`` is left as it was (see the module's note for a killed process).

    ``with OutputSet(out, ["a.csv", "b.png"]) as tmp: write(tmp / "a.csv"); ...``
    """

    def __init__(self, out_dir: Union[str, os.PathLike], names: Sequence[str]):
        self.out_dir = Path(out_dir)
        self.names = list(names)
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        recover_output_sets(self.out_dir)
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}@{_host()}.", dir=self.out_dir))
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                missing = [n for n in self.names if not (self.tmp / n).is_file()]
                if missing:
                    raise RuntimeError(f"output set in {self.out_dir} lacks {missing}")
                marker = self.tmp / COMMITTED
                with open(marker.with_suffix(".part"), "w", encoding="utf-8") as fh:
                    fh.write("\n".join(self.names) + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(marker.with_suffix(".part"), marker)
                _move_in(self.tmp, self.out_dir, self.names)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
