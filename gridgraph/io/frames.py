"""Large tables (CSV, TSV, ``.gz``, parquet) read with pandas / pyarrow, with gridgraph's errors.

For the 10^5-10^6-row tables of Visium HD and Xenium: columns are read whole (no Python loop per
row); errors name the file, the column, the line where it applies and what was expected, and
never quote the file's content.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .tables import PathLike, require_file

__all__ = ["read_frame", "numeric_column", "text_column", "where"]


def read_frame(path: PathLike, columns: Sequence[str], what: str = "table"):
    """A pandas DataFrame of ``columns`` from a parquet, CSV or TSV file (optionally ``.gz``)."""
    import pandas as pd

    path = require_file(path, what)
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            import pyarrow.parquet as pq

            present = pq.read_schema(path).names
            _require_columns(path, present, columns)
            return pq.read_table(path, columns=list(columns)).to_pandas()
        sep = "\t" if name.endswith((".tsv", ".tsv.gz", ".txt", ".txt.gz")) else ","
        header = pd.read_csv(path, sep=sep, nrows=0).columns.tolist()
        _require_columns(path, header, columns)
        return pd.read_csv(path, sep=sep, usecols=list(columns), dtype={c: str for c in columns[:1]})
    except (UnicodeDecodeError, pd.errors.ParserError, EOFError, OSError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise ValueError(f"{path}: cannot read as a {what} ({type(err).__name__})") from None
    except Exception as err:  # pyarrow raises ArrowInvalid for files that are not parquet
        if type(err).__name__.startswith("Arrow"):
            raise ValueError(f"{path}: not a parquet file ({what})") from None
        raise


def _require_columns(path: Path, present: Sequence[str], columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in present]
    if missing:
        raise ValueError(f"{path}: the header lacks columns {missing}; expected {list(columns)}")


def where(path: PathLike, row: int) -> str:
    """``"line 3"`` of a text table (after its header) or ``"row 2"`` of a parquet file."""
    return f"row {row + 1}" if str(path).lower().endswith(".parquet") else f"line {row + 2}"


def numeric_column(frame, column: str, path: PathLike) -> np.ndarray:
    """``(N,)`` float64 values of ``column``; a value that is not a finite number is an error
    naming the file, the column and its line (or parquet row)."""
    import pandas as pd

    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        at = where(path, int(np.flatnonzero(bad)[0]))
        raise ValueError(f"{path}: column {column!r}, {at}: expected a finite number")
    return values


def text_column(frame, column: str) -> list:
    """Values of ``column`` as strings (``bytes`` decoded, as parquet may store ids)."""
    return [v.decode() if isinstance(v, bytes) else str(v) for v in frame[column].tolist()]
