"""Atomic file writes: write to a temporary file beside the target, then rename over it.

The temporary file is hidden and named ``.<target name>.<8 random characters>.tmp``; it gets the
mode a plain ``open()`` would give (``0o666`` less the umask, e.g. ``0o644`` under umask 022),
not ``mkstemp``'s ``0o600``. A write that fails because the disk is full raises
``OSError(ENOSPC, "no space left writing <target>")`` and leaves no temporary file.
:func:`remove_stale_temp_files` clears temporary files left by a process that was killed.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import IO, Iterator, Optional, Union

TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp$")
_TORCH_WRITE_FAILED = ("file write failed", "unexpected pos", "inline_container")
_FULL_BELOW_BYTES = 1 << 20  # free space under which a bare write failure is a full disk


def _umask() -> int:
    """The process's umask, read without changing it where Linux allows."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _out_of_space(err: BaseException, path: Path, tmp: str) -> Optional[OSError]:
    """An ``OSError`` saying the disk is full when ``err`` (or what it chains) says so."""
    seen = err
    for _ in range(16):  # the error and what it chains (close() fails after torch.save did)
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            why = " (disk quota exceeded)" if seen.errno == errno.EDQUOT else ""
            return OSError(errno.ENOSPC, f"no space left writing {path}{why}")
        seen = seen.__cause__ or seen.__context__
    # torch.save reports a failed write as a RuntimeError without an errno; blame the disk only
    # when it is in fact (nearly) full, measured before the temporary file is removed.
    if isinstance(err, RuntimeError) and any(s in str(err) for s in _TORCH_WRITE_FAILED):
        with contextlib.suppress(OSError):
            if shutil.disk_usage(Path(tmp).parent).free < _FULL_BELOW_BYTES:
                return OSError(errno.ENOSPC, f"no space left writing {path}")
        return OSError(errno.EIO, f"writing {path} failed (torch.save could not write the file)")
    return None


@contextlib.contextmanager
def atomic_path(path: Union[str, os.PathLike]) -> Iterator[Path]:
    """A temporary path beside ``path`` to write by any means; on success it replaces ``path``
    in one rename, with the mode the umask implies (``0o644`` under umask 022).

    On an exception the temporary file is removed and ``path`` is left as it was. A full disk
    raises ``OSError`` (``ENOSPC``) whose message is ``"no space left writing <path>"``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with contextlib.suppress(OSError):  # file systems without modes keep their own
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as err:
        full = _out_of_space(err, path, tmp) if isinstance(err, Exception) else None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if full is not None:
            raise full from err
        raise


@contextlib.contextmanager
def atomic_write(path: Union[str, os.PathLike], mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary file for writing; on success it replaces ``path`` in one rename.

    ``mode`` is ``"w"`` (text, ``newline=""`` unless given) or ``"wb"``; modes, failures and a
    full disk as in :func:`atomic_path`.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    if mode == "w":
        kwargs.setdefault("newline", "")
        kwargs.setdefault("encoding", "utf-8")
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


def atomic_save(obj, path: Union[str, os.PathLike]) -> None:
    """``torch.save`` to ``path`` atomically (see :func:`atomic_write` for modes and errors)."""
    import torch

    with atomic_write(path, "wb") as fh:
        torch.save(obj, fh)


def remove_stale_temp_files(
    folder: Union[str, os.PathLike], target: Optional[str] = None, older_than: float = 0.0
) -> list:
    """Remove the hidden temporary files that :func:`atomic_write` left in ``folder``.

    A process killed in the middle of a write leaves ``.<name>.<8 characters>.tmp`` beside the
    target (e.g. ``.last.pt.k3j9x0qa.tmp``). Call this when nothing else writes into ``folder``
    (e.g. when a run starts), or pass ``older_than`` seconds to spare files written recently.
    Only files whose name has that exact shape are removed, and only for ``target`` when given;
    the folder is not searched recursively. Returns the removed paths (``[]`` for a folder
    that does not exist).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    now = time.time()
    for entry in folder.iterdir():
        match = TEMP_NAME.match(entry.name)
        if not match or (target is not None and match["target"] != target):
            continue
        with contextlib.suppress(FileNotFoundError):
            if not entry.is_file() or entry.is_symlink():
                continue
            if older_than > 0 and now - entry.stat().st_mtime < older_than:
                continue
            entry.unlink()
            removed.append(entry)
    return removed
