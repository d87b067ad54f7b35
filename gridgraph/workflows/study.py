"""The files of a hyperparameter study: its storage, the lock workers share, its table of trials
and the ensemble of its best trials.

A study's folder (the config's ``output``) holds ``study.db`` (the default storage: an SQLite
file), ``study.lock``, one run folder per trial under ``trials/``, ``trials.csv`` and
``ensemble.pt``.
"""
from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import math
import re
from pathlib import Path
from typing import Iterator, Optional, Sequence

from ..checkpoint import save_ensemble
from ..files.atomic import atomic_write

__all__ = ["quiet_optuna", "open_storage", "shown_storage", "study_lock", "trial_folder", "trial_rows", "write_trials_csv",
           "format_trials", "write_study_ensemble", "DEFAULT_STORAGE"]

DEFAULT_STORAGE = "study.db"
_RDB = ("sqlite", "postgresql", "postgres", "mysql", "oracle", "mssql")


def trial_folder(out: Path, folder_number: int) -> Path:
    return Path(out) / "trials" / f"trial_{folder_number:04d}"


def shown_storage(url: str) -> str:
    """``url`` without a password, for logs and files."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def open_storage(url: Optional[str], out: Path, heartbeat: tuple = (20, 60)):
    """An Optuna storage: ``None`` the SQLite file ``<out>/study.db``; ``sqlite:///``,
    ``postgresql://``, ``mysql://`` ... URLs a relational database (with heartbeats of
    ``heartbeat = (interval, grace)`` seconds, so that a trial whose process died is taken up
    again); ``journal:PATH`` Optuna's journal file (one file on a shared disk, no database server;
    a dead process's trial is noticed only when it is interrupted, not killed)."""
    import optuna
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend
    from sqlalchemy.exc import SQLAlchemyError  # optuna's RDBStorage needs SQLAlchemy

    url = url or f"sqlite:///{(Path(out) / DEFAULT_STORAGE).resolve()}"
    if url.startswith("journal:"):
        path = Path(url[len("journal:"):])
        if not path.parent.is_dir():
            raise ValueError(f"--storage {url}: folder {path.parent} does not exist")
        try:
            return JournalStorage(JournalFileBackend(str(path))), url
        except (OSError, ValueError) as err:  # a folder, or a file that is not Optuna's journal
            raise ValueError(f"--storage {url}: not an Optuna journal file ({type(err).__name__}: "
                             f"{str(err).splitlines()[0][:200]})") from None
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if scheme not in _RDB:
        raise ValueError(f"--storage {shown_storage(url)}: expected a database URL (sqlite:///FILE, "
                         "postgresql://USER@HOST/DB, mysql://...) or journal:FILE")
    if scheme == "sqlite" and url.split("?")[0] in ("sqlite://", "sqlite:///", "sqlite:///:memory:"):
        raise ValueError(f"--storage {url}: an in-memory database is gone when the process ends and is not "
                         "shared by workers; name a file: sqlite:///FILE")
    engine = {"connect_args": {"timeout": 120}} if scheme == "sqlite" else {}
    interval, grace = heartbeat
    try:
        with quiet_optuna():
            return RDBStorage(url, engine_kwargs=engine, heartbeat_interval=interval, grace_period=grace), url
    except (optuna.exceptions.StorageInternalError, ImportError, ValueError, SQLAlchemyError) as err:
        raise ValueError(f"--storage {shown_storage(url)}: cannot open it ({type(err).__name__}: "
                         f"{str(err).splitlines()[0][:200]})") from None


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's experimental-feature warnings off (heartbeats, stale-trial checks)."""
    import warnings

    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        yield


class study_lock:
    """An exclusive POSIX lock on ``<out>/study.lock``, held while a worker decides whether to
    start a trial and creates it, so that workers sharing a study never start more than the trials
    asked for (the output folder, which the trials write to, is shared by every worker)."""

    def __init__(self, out: Path):
        self.path = Path(out) / "study.lock"
        self._fh = None

    def acquire(self) -> None:
        if self._fh is None:
            self._fh = open(self.path, "a")
            fcntl.lockf(self._fh, fcntl.LOCK_EX)

    def release(self) -> None:
        if self._fh is not None:
            fcntl.lockf(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __enter__(self) -> "study_lock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def trial_rows(trials: Sequence, keys: Sequence[str], members: Sequence[int] = ()) -> list:
    """One dict per trial: number, state, validation score, each searched key, seconds, folder,
    whether it is in the ensemble."""
    rows = []
    for t in trials:
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() \
            if t.datetime_complete is not None and t.datetime_start is not None else None
        rows.append({"trial": t.number, "state": t.state.name.lower(),
                     "value": t.value if t.value is not None else (
                         max(t.intermediate_values.values()) if t.intermediate_values else None),
                     **{k: t.params.get(k) for k in keys}, "seconds": seconds,
                     "folder": str(trial_folder(Path(), t.user_attrs.get("folder", t.number))),
                     "ensemble": t.number in set(members)})
    return rows


def write_trials_csv(path: Path, rows: list) -> None:
    if not rows:
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_write(path) as fh:
        fh.write(buf.getvalue())


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, float):
        return "-" if not math.isfinite(value) else f"{value:.4g}"
    return str(value)


def format_trials(rows: list, metric: str) -> str:
    """The trials as a text table (value: the validation ``metric``; pruned trials show their
    best epoch's)."""
    if not rows:
        return "(no trials)"
    header = [f"val {metric}" if k == "value" else k for k in rows[0]]
    cells = [[_cell(v) for v in r.values()] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def write_study_ensemble(out: Path, trials: Sequence, k: int, method: str, info: dict) -> tuple[Path, list]:
    """``<out>/ensemble.pt`` from the ``k`` complete trials of highest validation score (ties:
    the earlier trial); returns ``(path, their numbers)``."""
    done = sorted((t for t in trials if t.state.name == "COMPLETE" and t.value is not None
                   and math.isfinite(t.value)), key=lambda t: (-t.value, t.number))[:k]
    if not done:
        raise ValueError("no trial of the study completed: nothing to ensemble")
    paths = [trial_folder(out, t.user_attrs.get("folder", t.number)) / "best.pt" for t in done]
    members = [{"trial": t.number, "value": t.value, "params": dict(t.params)} for t in done]
    path = save_ensemble(Path(out) / "ensemble.pt", paths, method=method, info={**info, "members": members},
                         sources=[str(p.relative_to(out)) for p in paths])
    return path, [t.number for t in done]
