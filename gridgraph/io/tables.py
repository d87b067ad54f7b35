"""Shared helpers of the readers: delimited tables, value checks and images, with clear errors.

Every problem with a file's content is a ``ValueError`` whose message names the file, the column
(or field) and what was expected; a missing file is a ``FileNotFoundError`` naming the path.
Tables are read with the standard :mod:`csv` module and converted with numpy. A file that is not
UTF-8 text (or holds NUL bytes) is refused as "not a text file"; a last line without its newline
that lacks fields or holds a field that does not parse is called truncated, and one that parses
gets a warning (:meth:`Table.warn_if_cut`), since a copy cut mid-number cannot be told apart.
"""
from __future__ import annotations

import csv
import math
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from .image import ImageLike, LazyImage, to_rgb_uint8
from .slide import SlideImage, open_image_file
from .section import encode_labels

PathLike = Union[str, os.PathLike]


def require_file(path: PathLike, what: str = "file") -> Path:
    """``Path(path)``, or ``FileNotFoundError`` naming ``what`` and the path when it is absent."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def natural_key(name: str) -> list:
    """Sort key that orders digit runs by value: ``L2 < L10``, ``L6 < WM``."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", str(name)) if t]


def natural_sorted(names) -> list:
    """Distinct names in natural order (see :func:`natural_key`)."""
    return sorted({str(n) for n in names}, key=natural_key)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def is_positive_number(value) -> bool:
    """Whether ``value`` is a real number (not a bool or string), finite and > 0."""
    if hasattr(value, "dtype") and getattr(value, "size", 0) == 1:  # numpy scalar or 1-element array
        value = value.item() if value.dtype.kind in "iuf" else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value) and value > 0


@dataclass
class Table:
    """A delimited text table held as strings.

    Attributes:
        path: the file it came from (named in every error).
        columns: column names, from the header or as given to :func:`read_table`.
        rows: data rows, each a list of ``len(columns)`` stripped strings.
        lines: 1-based line number of each data row in the file.
        has_header: whether the file's first row was a header.
        cut: line number of the file's last data row when the file ends without a newline after
            it (the row may be cut short: a field of it that does not parse is called truncated;
            kept by :meth:`take` even when that row is left out, since rows may be missing).
    """

    path: Path
    columns: list
    rows: list
    lines: list
    has_header: bool
    cut: Optional[int] = None

    def __len__(self) -> int:
        return len(self.rows)

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
        i = self.index(name)
        return [row[i] for row in self.rows]

    def numeric(self, name: Union[str, int], integer: bool = False, allow_nan: bool = False) -> np.ndarray:
        """Values of a column as ``float64`` (``int64`` if ``integer``).

        Raises ``ValueError`` naming the file, the column, the line and the offending value for a
        non-numeric value, or for NaN/empty/infinite values unless ``allow_nan`` (then NaN); with
        ``integer``, also for a value beyond the 64-bit range. A bad value on a last line without
        newline is called truncated.
        """
        i = self.index(name)
        col = self.label(name)
        raw = [row[i] for row in self.rows]
        want = "an integer" if integer else "a number"
        try:
            values = np.array([v if v else "nan" for v in raw], dtype=np.float64)
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
            self.path, self.columns, [self.rows[i] for i in idx], [self.lines[i] for i in idx],
            self.has_header, self.cut,
        )


def read_table(
    path: PathLike,
    names: Optional[Sequence[str]] = None,
    header: Union[bool, str] = "auto",
    delimiter: Optional[str] = None,
    what: str = "table",
    row_names: bool = False,
) -> Table:
    """Read a CSV/TSV file into a :class:`Table` of strings.

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
    """
    path = require_file(path, what)
    parsed, delimiter, cut = _parse_rows(path, delimiter, what)
    expected = f"columns {list(names)}" if names else "a header and data rows"
    if not parsed:
        raise ValueError(f"{path}: the {what} is empty; expected {expected}")
    if header == "auto":
        head = parsed[0][1]
        if names:
            header = bool({f.lower() for f in head} & {n.lower() for n in names})
        else:
            second = parsed[1][1] if len(parsed) > 1 else []
            header = not any(_is_number(f) for f in head) and any(_is_number(f) for f in second)
    if header:
        columns = parsed[0][1]
        body = parsed[1:]
        if row_names and body and len(columns) == len(body[0][1]) - 1:
            columns = [""] + columns
        if names:
            lowered = [c.lower() for c in columns]
            absent = [n for n in names if n.lower() not in lowered]
            if absent:
                raise ValueError(
                    f"{path}: the header lacks columns {absent}; expected {list(names)}"
                )
    else:
        if names is None:
            columns = [f"#{i + 1}" for i in range(len(parsed[0][1]))]
        else:
            columns = list(names)
        body = parsed
    width = len(columns)
    for line, row in body:
        if len(row) != width:
            raise ValueError(
                f"{path}: line {line} has {len(row)} fields; expected {width} "
                f"({', '.join(c or repr(c) for c in columns)})"
                + (truncated_note(line) if line == cut and len(row) < width else "")
            )
    return Table(
        path, columns, [r for _, r in body], [ln for ln, _ in body], bool(header),
        cut if body and body[-1][0] == cut else None,
    )


def truncated_note(line: int) -> str:
    """Message tail for a problem on a last line that lacks its newline."""
    return f"; the file ends in the middle of line {line} (no final newline): it looks truncated"


def _ends_without_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        if fh.seek(0, os.SEEK_END) == 0:
            return False
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) not in (b"\n", b"\r")


def _parse_rows(path: Path, delimiter: Optional[str], what: str):
    """``(rows, delimiter, cut)``: non-blank rows as ``(line, fields)``; ``cut`` is the number of
    the file's last line when it lacks a newline. Binary content raises ``ValueError``."""
    not_text = f"{path}: not a text file; expected the {what} as UTF-8 text"
    parsed = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            first = fh.readline()
            if delimiter is None:
                delimiter = "\t" if "\t" in first else ","
            fh.seek(0)
            reader = csv.reader(fh, delimiter=delimiter)
            for row in reader:
                if any("\x00" in f for f in row):
                    raise ValueError(f"{not_text} (line {reader.line_num} holds NUL bytes)")
                if row and any(f.strip() for f in row):
                    parsed.append((reader.line_num, [f.strip() for f in row]))
            last = reader.line_num
    except UnicodeDecodeError:
        raise ValueError(f"{not_text} (it holds bytes that are not UTF-8)") from None
    except csv.Error as err:
        raise ValueError(f"{path}: line {reader.line_num}: malformed {what} ({err})") from None
    return parsed, delimiter, (last if _ends_without_newline(path) else None)


def check_unique(values: Sequence, source: str, lines: Optional[Sequence[int]] = None) -> None:
    """Raise ``ValueError`` naming ``source`` and the first value that occurs twice."""
    seen: dict = {}
    for k, v in enumerate(values):
        if v in seen:
            where = f" (lines {lines[seen[v]]} and {lines[k]})" if lines is not None else ""
            raise ValueError(f"{source}: duplicated value {v!r}{where}; expected unique values")
        seen[v] = k


def check_array_index(values: np.ndarray, high: int, where: str, at: Sequence[str], why: str) -> None:
    """Raise ``ValueError`` unless every array index lies in ``0..high``.

    ``where`` names the file and column, ``at[i]`` the place of value ``i`` (``"line 7"``) and
    ``why`` the platform whose array gives the bound. Checked before any dense grid is built, so
    a corrupted coordinate cannot ask for terabytes.
    """
    values = np.asarray(values)
    bad = (values < 0) | (values > high)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{where}, {at[i]}: expected a non-negative array index no greater than {high} ({why})"
        )


def check_inside(pos: np.ndarray, size: tuple, source: str, ids: Sequence, kind: str = "spots") -> None:
    """Raise ``ValueError`` if any ``(x, y)`` in ``pos`` lies outside the image's extent.

    ``size`` is the image's ``(W, H)``; the extent is ``0 <= x <= W, 0 <= y <= H`` (a point on the
    far border, as centroids rounded to the edge are, still counts as inside). ``ids`` name the
    nodes in the message.
    """
    w, h = size
    pos = np.asarray(pos, dtype=np.float64)
    out = (pos[:, 0] < 0) | (pos[:, 0] > w) | (pos[:, 1] < 0) | (pos[:, 1] > h)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise ValueError(
            f"{source}: {int(out.sum())} {kind} lie outside the image ({w}x{h} px), e.g. "
            f"{ids[i]} at pixel (x={pos[i, 0]:.1f}, y={pos[i, 1]:.1f}); expected 0 <= x <= {w} "
            f"and 0 <= y <= {h}"
        )


def open_image(image: Optional[ImageLike], what: str = "image") -> Optional[ImageLike]:
    """A reader's image argument made usable: a TIFF path becomes a :class:`SlideImage` (read
    window by window), another path a :class:`LazyImage` (decoded on first use), a mapping
    ``{"path": ..., "intensity": ..., "channels": ..., "microns_per_pixel": ...}`` a
    :class:`SlideImage` with those options (as a config names them); an array is converted to
    ``(H, W, 3)`` uint8; ``None`` and open images pass."""
    if image is None or isinstance(image, (LazyImage, SlideImage)):
        return image
    if isinstance(image, np.ndarray):
        return to_rgb_uint8(image, what)
    if hasattr(image, "mode") and hasattr(image, "size"):  # a PIL image
        return to_rgb_uint8(np.asarray(image.convert("RGBA") if image.mode == "P" else image), what)
    if isinstance(image, Mapping):  # {"path": SLIDE.tif, "intensity": 12, "channels": [0, 1, 2], ...}
        options = dict(image)
        return open_image_file(require_file(options.pop("path", None) or "", what), **options)
    return open_image_file(require_file(image, what))


def image_source(image: ImageLike) -> str:
    """A name for an image in messages."""
    return str(image.path) if isinstance(image, (LazyImage, SlideImage)) else "image array"


def encode_names(names: Sequence, classes: Optional[Sequence[str]], source: str):
    """``(labels, classes)``: names to int64 codes, ``-1`` for missing names.

    ``classes`` fixes the order; by default the distinct names in natural order (``L1..L6, WM``).
    Unknown names raise ``ValueError`` naming ``source`` and the expected classes.
    """
    if classes is None:
        present = [n for n in names if n is not None and not (isinstance(n, float) and np.isnan(n))]
        classes = natural_sorted(s for s in (str(n).strip() for n in present) if s)
    return encode_labels(names, classes, source=source)
