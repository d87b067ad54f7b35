"""Large tables (CSV, TSV, ``.gz``, parquet) read with pandas / pyarrow, with gridgraph's errors.

For the 10^5-10^6-row tables of Visium HD and Xenium: only the wanted columns are read, and
every check and conversion works on whole columns (no Python loop per row). Errors are
``ValueError`` naming the file, the column, the place (``line N`` of a text table, counting its
header as line 1; ``row N`` of a parquet file) and what was expected. They never quote the
file's content: only the column names gridgraph asked for.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .text import PathLike, require_file

__all__ = ["read_frame", "numeric_column", "text_column", "unique_column", "where",
           "RowNames"]

_TAB_SUFFIXES = (".tsv", ".tsv.gz", ".txt", ".txt.gz", ".tab", ".tab.gz")


def separator(path: PathLike) -> str:
    """The field separator a text table's name implies: a tab for ``.tsv``/``.txt``/``.tab``
    (gzipped or not), else a comma."""
    return "\t" if Path(path).name.lower().endswith(_TAB_SUFFIXES) else ","


def is_parquet(path: PathLike) -> bool:
    """Whether ``path`` is named as a parquet file (``.parquet``, ``.pq``)."""
    return str(path).lower().endswith((".parquet", ".pq"))


def read_frame(path: PathLike, columns: Sequence[str], what: str = "table", text: Sequence[str] = ()):
    """A pandas DataFrame holding only ``columns`` of a parquet, CSV or TSV file.

    Parquet files are read column by column (only ``columns``); text tables are parsed whole so
    that every line's field count is checked.

    Args:
        path: ``.parquet``, or a delimited text file (tab for ``.tsv``/``.txt``, else comma),
            optionally gzipped (``.gz``).
        columns: the columns to read, all required.
        what: what the file is, for messages ("Visium HD positions table").
        text: columns of a text file kept as strings (ids such as ``"007"`` stay as written).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a parquet / text table, a column missing, a malformed line.
    """
    import pandas as pd

    path = require_file(path, what)
    columns = list(columns)
    if is_parquet(path):
        return _read_parquet(path, columns, what)
    sep = separator(path)
    try:
        header = pd.read_csv(path, sep=sep, nrows=0).columns.tolist()
        _require_columns(path, header, columns, what)
        # all columns, then the wanted ones: with usecols pandas would let a line with extra
        # fields (a shifted row) pass unnoticed
        return pd.read_csv(path, sep=sep, dtype={c: str for c in text})[columns]
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: empty; expected a {what} with columns {columns}") from None
    except pd.errors.ParserError as err:
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(err))
        detail = (f"line {found[2]}: expected {found[1]} fields, found {found[3]}" if found
                  else "malformed text table")
        raise ValueError(f"{path}: {detail} ({what})") from None
    except (UnicodeDecodeError, EOFError, OSError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise ValueError(f"{path}: cannot read as a {what} ({type(err).__name__}); "
                         "expected CSV or TSV text, optionally gzipped") from None


def _read_parquet(path: Path, columns: list, what: str):
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        raise ImportError(f"{path}: reading parquet needs pyarrow (pip install pyarrow)") from None
    try:
        present = pq.read_schema(path).names
    except (pa.ArrowException, OSError):
        raise ValueError(f"{path}: not a parquet file; expected a {what} in parquet format") from None
    _require_columns(path, present, columns, what)
    try:
        return pq.read_table(path, columns=columns).to_pandas()
    except (pa.ArrowException, OSError):
        raise ValueError(f"{path}: corrupted parquet file ({what}); columns {columns} unreadable") from None


def _require_columns(path: Path, present: Sequence[str], columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in present]
    if missing:
        raise ValueError(f"{path}: the {what} lacks columns {missing}; expected columns {list(columns)}")


def where(path: PathLike, row: int) -> str:
    """``"line 3"`` of a text table (its header is line 1) or ``"row 2"`` of a parquet file,
    for the 0-based data row ``row``."""
    return f"row {row + 1}" if is_parquet(path) else f"line {row + 2}"


class RowNames:
    """Names of selected rows of a table (``RowNames(path, rows)[i] == where(path, rows[i])``),
    for messages that point at a node without quoting its id."""

    def __init__(self, path: PathLike, rows: np.ndarray):
        self.path, self.rows = path, np.asarray(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> str:
        return f"the node at {where(self.path, int(self.rows[i]))}"


def numeric_column(frame, column: str, path: PathLike) -> np.ndarray:
    """``(N,)`` float64 values of ``column``; a value that is not a finite number is an error
    naming the file, the column and its line (or parquet row)."""
    import pandas as pd

    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        at = where(path, int(np.flatnonzero(bad)[0]))
        raise ValueError(f"{path}: column {column!r}, {at}: expected a finite number")
    return values


def text_column(frame, column: str, path: Optional[PathLike] = None) -> np.ndarray:
    """``(N,)`` object array of the ``column``'s values as ``str`` (``bytes`` decoded, as older
    parquet files store ids; numbers written as text). With ``path``, a missing or empty value
    is an error naming the file, the column and its line."""
    import pandas as pd

    values = frame[column]
    missing = values.isna().to_numpy()
    if missing.any():
        values = values.where(~missing, "")
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind == "bytes":
        try:
            values = values.str.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{path or 'table'}: column {column!r}: expected UTF-8 text ids") from None
    elif kind != "string":
        values = values.astype(str)
    if path is not None:
        empty = missing | (values == "").to_numpy()
        if empty.any():
            at = where(path, int(np.flatnonzero(empty)[0]))
            raise ValueError(f"{path}: column {column!r}, {at}: expected a non-empty id")
    return values.to_numpy(dtype=object)


def unique_column(values: np.ndarray, column: str, path: PathLike, rows: Optional[np.ndarray] = None) -> None:
    """Refuse a repeated value of ``column``, naming the lines (or rows) of its first repeat.

    ``rows`` maps positions in ``values`` to rows of the file (after a selection)."""
    import pandas as pd

    series = pd.Series(values, dtype=object)
    repeated = series.duplicated().to_numpy()
    if repeated.any():
        second = int(np.flatnonzero(repeated)[0])
        first = int(np.flatnonzero((series == series.iloc[second]).to_numpy())[0])
        rows = np.arange(len(series)) if rows is None else np.asarray(rows)
        raise ValueError(f"{path}: column {column!r}, {where(path, int(rows[second]))} repeats the id of "
                         f"{where(path, int(rows[first]))}; expected unique ids")
