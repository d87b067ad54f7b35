"""Write several output files as one set: all new files, or the old set untouched."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Sequence, Union

__all__ = ["OutputSet"]


class OutputSet:
    """Context manager: write the files ``names`` into a temporary folder beside ``out_dir``;
    on success the old files of that set are removed and the new ones moved in; on any error the
    temporary folder is removed and ``out_dir`` is left as it was.

    ``with OutputSet(out, ["a.csv", "b.png"]) as tmp: write(tmp / "a.csv"); ...``
    """

    def __init__(self, out_dir: Union[str, os.PathLike], names: Sequence[str]):
        self.out_dir = Path(out_dir)
        self.names = list(names)
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=".gridgraph-out-", dir=self.out_dir))
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                missing = [n for n in self.names if not (self.tmp / n).is_file()]
                if missing:
                    raise RuntimeError(f"output set in {self.out_dir} lacks {missing}")
                for name in self.names:
                    (self.out_dir / name).unlink(missing_ok=True)
                for name in self.names:
                    os.replace(self.tmp / name, self.out_dir / name)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
