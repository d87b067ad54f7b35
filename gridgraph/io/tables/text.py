"""Delimited text tables (CSV / TSV, optionally gzipped) read with clear errors.

Every problem with a file's content is a ``ValueError`` whose message names the file, the column
(or field) and what was expected; a missing file is a ``FileNotFoundError`` naming the path.
Tables are parsed by pyarrow's CSV reader (plain or gzipped) and converted with numpy, column
by column. A file that is not UTF-8 text (or holds NUL bytes) is refused as "not a text file";
a last line without its newline that lacks fields or holds a field that does not parse is
called truncated, and one that parses gets a warning (:meth:`Table.warn_if_cut`), since a copy cut mid-number cannot be told apart.
"""
from __future__ import annotations

import csv
import gzip
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from .checks import PathLike, check_unique, require_file


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass
class Table:
    """A delimited text table held as strings, column by column.

    Attributes:
        path: the file it came from (named in every error).
        columns: column names, from the header or as given to :func:`read_table`.
        values: one list of stripped strings per column, each ``len(table)`` long.
        lines: 1-based line number of each data row in the file.
        has_header: whether the file's first row was a header.
        cut: line number of the file's last data row when the file ends without a newline after
            it (the row may be cut short: a field of it that does not parse is called truncated;
            kept by :meth:`take` even when that row is left out, since rows may be missing).
    """

    path: Path
    columns: list
    values: list
    lines: list
    has_header: bool
    cut: Optional[int] = None

    def __len__(self) -> int:
        return len(self.lines)

    def row(self, k: int) -> list:
        """The fields of data row ``k``."""
        return [col[k] for col in self.values]

    def index(self, name: Union[str, int]) -> int:
        """Position of column ``name`` (case-insensitive), or of the ``int`` position itself."""
        if isinstance(name, int):
            if not -len(self.columns) <= name < len(self.columns):
                raise ValueError(f"{self.path}: no column {name}; the table has {len(self.columns)}")
            return name % len(self.columns)
        lowered = [c.lower() for c in self.columns]
        if name.lower() not in lowered:
            raise ValueError(
                f"{self.path}: expected a column named {name!r}; the header has none of that name"
            )
        return lowered.index(name.lower())

    def has(self, name: str) -> bool:
        return name.lower() in (c.lower() for c in self.columns)

    def label(self, name: Union[str, int]) -> str:
        """Printable name of a column, for messages."""
        i = self.index(name)
        return self.columns[i] or f"#{i + 1}"

    def text(self, name: Union[str, int]) -> list:
        """Values of a column as stripped strings."""
        return list(self.values[self.index(name)])

    def numeric(self, name: Union[str, int], integer: bool = False, allow_nan: bool = False) -> np.ndarray:
        """Values of a column as ``float64`` (``int64`` if ``integer``).

        Raises ``ValueError`` naming the file, the column, the line and the offending value for a
        non-numeric value, or for NaN/empty/infinite values unless ``allow_nan`` (then NaN); with
        ``integer``, also for a value beyond the 64-bit range. A bad value on a last line without
        newline is called truncated.
        """
        col = self.label(name)
        raw = self.values[self.index(name)]
        want = "an integer" if integer else "a number"
        text = np.asarray(raw, dtype=object)
        try:
            values = np.where(text == "", "nan", text).astype(np.float64)
        except ValueError:
            bad = next(k for k, v in enumerate(raw) if v and not _is_number(v))
            raise ValueError(
                f"{self.path}: column {col!r}, line {self.lines[bad]}: expected {want}, "
                f"got text that is not one{self._note(bad)}"
            ) from None
        finite = np.isfinite(values)
        if not allow_nan and not finite.all():
            bad = int(np.flatnonzero(~finite)[0])
            raise ValueError(
                f"{self.path}: column {col!r}, line {self.lines[bad]}: expected {want}, got "
                f"{'a NaN or infinite value' if raw[bad] else 'an empty value'} (NaN, empty and "
                f"infinite values are not allowed){self._note(bad)}"
            )
        if integer:
            huge = finite & (np.abs(values) >= 2.0**63)
            frac = finite & (values != np.round(values))
            if huge.any() or frac.any():
                bad = int(np.flatnonzero(huge | frac)[0])
                why = " within the 64-bit range" if huge[bad] else ", got a fraction"
                raise ValueError(
                    f"{self.path}: column {col!r}, line {self.lines[bad]}: expected an integer"
                    f"{why}{self._note(bad)}"
                )
            return values.astype(np.int64)
        return values

    def warn_if_cut(self) -> None:
        """Warn that the last row may be cut short when the file ends without a newline.

        Readers call it once the table's values parsed: a cut that leaves a field unparsable is
        already an error (see :meth:`numeric`), one that leaves a shorter number is not
        detectable and gets this warning.
        """
        if self.cut is not None:
            warnings.warn(
                f"{self.path}: the file does not end with a newline; its last line ({self.cut}) "
                f"may have been cut short (a truncated copy?)",
                stacklevel=3,
            )

    def _note(self, k: int) -> str:
        return truncated_note(self.lines[k]) if self.lines[k] == self.cut else ""

    def unique_text(self, name: Union[str, int]) -> list:
        """Values of a column as strings, checked to be non-empty and distinct (e.g. barcodes)."""
        values = self.text(name)
        col = self.label(name)
        for k, v in enumerate(values):
            if not v:
                raise ValueError(
                    f"{self.path}: column {col!r}, line {self.lines[k]}: expected an id, got an empty value"
                )
        check_unique(values, f"{self.path}: column {col!r}", self.lines)
        return values

    def take(self, keep: np.ndarray) -> "Table":
        """The rows where the boolean ``keep`` is true."""
        idx = np.flatnonzero(keep)
        return Table(
            self.path, self.columns, [[col[i] for i in idx] for col in self.values],
            [self.lines[i] for i in idx], self.has_header, self.cut,
        )


def read_table(
    path: PathLike,
    names: Optional[Sequence[str]] = None,
    header: Union[bool, str] = "auto",
    delimiter: Optional[str] = None,
    what: str = "table",
    row_names: bool = False,
) -> Table:
    """Read a CSV/TSV file (optionally gzipped) into a :class:`Table` of strings, with pyarrow's
    CSV parser (a million rows in about a second).

    Args:
        path: the file; ``FileNotFoundError`` names ``what`` and the path when absent.
        names: expected column names. Without a header they name the columns and every row must
            have exactly ``len(names)`` fields; with a header each name must appear in it.
        header: ``True``, ``False`` or ``"auto"``: the first row is a header when it holds one of
            ``names`` (case-insensitive), or, without ``names``, when none of its fields is a
            number while some field of the second row is.
        delimiter: field separator; by default a tab when the first line holds one, else a comma.
        row_names: the first column holds row names, so a header one field short of the rows
            (R's ``write.table`` convention) gets an empty first name.

    Line numbers in messages count every line of the file (a quoted field spanning several
    lines is not supported).
    """
    path = require_file(path, what)
    parsed = _parse_columns(path, delimiter, what)
    expected = f"columns {list(names)}" if names else "a header and data rows"
    if parsed.head_line is None:
        raise ValueError(f"{path}: the {what} is empty; expected {expected}")
    head = parsed.head
    if header == "auto":
        if names:
            header = bool({f.lower() for f in head} & {n.lower() for n in names})
        else:
            second = parsed.row(1 - parsed.head_odd) if len(parsed.lines) > 1 - parsed.head_odd else []
            header = not any(_is_number(f) for f in head) and any(_is_number(f) for f in second)
    odd = list(parsed.odd)
    if header:
        columns = head
        if row_names and len(columns) == parsed.width - 1:
            columns = [""] + columns
        if names:
            lowered = [c.lower() for c in columns]
            absent = [n for n in names if n.lower() not in lowered]
            if absent:
                raise ValueError(f"{path}: the header lacks columns {absent}; expected {list(names)}")
        body = slice(0 if parsed.head_odd else 1, None)
    else:
        columns = [f"#{i + 1}" for i in range(len(head))] if names is None else list(names)
        body = slice(None)
        if parsed.head_odd:
            odd.append((parsed.head_line, len(head)))
    lines = parsed.lines[body]
    if lines and parsed.width != len(columns):
        odd.append((lines[0], parsed.width))
    if odd:
        line, n = min(odd)
        raise ValueError(
            f"{path}: line {line} has {n} fields; expected {len(columns)} "
            f"({', '.join(c or repr(c) for c in columns)})"
            + (truncated_note(line) if line == parsed.cut and n < len(columns) else "")
        )
    return Table(path, columns, [col[body] for col in parsed.values], lines, bool(header),
                 parsed.cut if lines and lines[-1] == parsed.cut else None)


@dataclass
class _Parsed:
    """A text table's non-blank rows of ``width`` fields, column by column, with their line
    numbers; ``head`` is the first non-blank line's fields (``head_odd``: it has another number
    of fields, so it is not among the rows), ``odd`` the ``(line, fields)`` of the other rows
    whose number of fields is not ``width``, ``cut`` the last line's number when the file does
    not end with a newline."""

    values: list
    lines: list
    width: int
    head: list
    head_line: Optional[int]
    head_odd: bool
    odd: list
    cut: Optional[int]

    def row(self, k: int) -> list:
        return [col[k] for col in self.values]


def truncated_note(line: int) -> str:
    """Message tail for a problem on a last line that lacks its newline."""
    return f"; the file ends in the middle of line {line} (no final newline): it looks truncated"


def open_maybe_gzip(path: PathLike, mode: str = "rb"):
    """``path`` opened for reading, through gzip when its name ends in ``.gz``."""
    return gzip.open(path, mode) if str(path).lower().endswith(".gz") else open(path, mode)


def _scan(path: Path, not_text: str) -> tuple[bytes, bool]:
    """``(first block, ends without newline)``, streaming the file once in 1 MiB blocks;
    ``ValueError`` for NUL bytes or a file that cannot be read as bytes."""
    first, line, last = None, 1, b"\n"
    try:
        with open_maybe_gzip(path) as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                first = block if first is None else first
                nul = block.find(b"\x00")
                if nul >= 0:
                    at = line + block.count(b"\n", 0, nul)
                    raise ValueError(f"{not_text} (line {at} holds NUL bytes)")
                line += block.count(b"\n")
                last = block[-1:]
    except (OSError, EOFError) as err:  # e.g. a .gz that is not gzip
        raise ValueError(f"{not_text} ({type(err).__name__})") from None
    return first or b"", last not in (b"\n", b"\r")


def _leading_rows(block: bytes, delimiter: Optional[str], not_text: str) -> tuple[str, list]:
    """The delimiter and the ``(line, fields)`` of the first two non-blank lines."""
    lines = block.split(b"\n")[:-1] if b"\n" in block else [block]
    try:
        text = [ln.decode("utf-8-sig" if k == 0 else "utf-8") for k, ln in enumerate(lines[:1000])]
    except UnicodeDecodeError:
        raise ValueError(f"{not_text} (it holds bytes that are not UTF-8)") from None
    if delimiter is None:
        delimiter = "\t" if text and "\t" in text[0] else ","
    rows = [(k + 1, [f.strip() for f in _fields(t, delimiter)]) for k, t in enumerate(text)]
    return delimiter, [(k, fields) for k, fields in rows if any(fields)][:2]  # as the parsed rows keep


def _fields(text: str, delimiter: str) -> list:
    return next(csv.reader([text.rstrip("\r")], delimiter=delimiter), [])


def _parse_columns(path: Path, delimiter: Optional[str], what: str) -> _Parsed:
    import pyarrow as pa
    import pyarrow.compute  # noqa: F401  (pa.compute)
    import pyarrow.csv as pa_csv

    not_text = f"{path}: not a text file; expected the {what} as UTF-8 text"
    block, unterminated = _scan(path, not_text)
    delimiter, leading = _leading_rows(block, delimiter, not_text)
    if not leading:
        return _Parsed([], [], 0, [], None, False, [], None)
    (head_line, head), width = leading[0], max(len(f) for _, f in leading)
    blank, odd = [], []

    def on_odd_row(row):  # a row whose number of fields is not ``width``
        fields = _fields(row.text, delimiter)
        if any(f.strip() for f in fields):
            odd.append((row.number, len(fields)))
        else:  # blank, or empty fields only
            blank.append(row.number)
        return "skip"

    names = [f"c{i}" for i in range(width)]
    try:
        table = pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(column_names=names, use_threads=False, block_size=1 << 22),
            parse_options=pa_csv.ParseOptions(delimiter=delimiter, ignore_empty_lines=False,
                                              invalid_row_handler=on_odd_row),
            convert_options=pa_csv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                  strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except pa.ArrowInvalid as err:
        if "utf8" in str(err).lower():
            raise ValueError(f"{not_text} (it holds bytes that are not UTF-8)") from None
        raise ValueError(f"{path}: malformed {what} (it does not parse as delimited text)") from None
    skipped = np.zeros(table.num_rows + len(blank) + len(odd) + 1, dtype=bool)
    skipped[blank + [n for n, _ in odd]] = True
    lines = np.flatnonzero(~skipped[1:]) + 1
    values = [pa.compute.utf8_trim_whitespace(col).to_numpy(zero_copy_only=False) for col in table.columns]
    keep = np.zeros(len(lines), dtype=bool)
    for col in values:
        keep |= col != ""
    head_odd = len(head) != width
    odd = [(n, k) for n, k in odd if n != head_line]
    return _Parsed([col[keep].tolist() for col in values], lines[keep].tolist(), width, head, head_line,
                   head_odd, odd, len(skipped) - 1 if unterminated else None)
