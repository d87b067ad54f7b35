"""Writers (Loupe Browser CSV, prediction tables) and the matching readers.

Every write is atomic: the file appears complete or not at all (temporary file + rename).

Every text cell (and header) is written through :func:`formula_safe`: one that a spreadsheet
would run as a formula (it begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return,
and is not a plain number such as ``-0.5``) gets a leading ``'``; numeric columns are written as
numbers. The readers here undo it (:func:`formula_unsafe`), so ids and names read back exactly.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from ...files.atomic import atomic_write
from ..tables import PathLike, read_table


def _delimiter(path: PathLike) -> str:
    return "\t" if Path(path).suffix.lower() in (".tsv", ".tab", ".txt") else ","


def round_significant(values: np.ndarray, digits: int) -> np.ndarray:
    """``values`` rounded to ``digits`` significant digits (float64), so their shortest decimal
    form is at most ``digits`` digits long, as ``format(v, ".{digits}g")`` writes them."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        exponent = np.floor(np.log10(np.abs(values)))
    exponent = np.where(np.isfinite(exponent), exponent, 0)
    with np.errstate(over="ignore", invalid="ignore"):
        scale = 10.0 ** (digits - 1 - exponent)
        rounded = np.round(values * scale) / scale
    return np.where(np.isfinite(values) & np.isfinite(scale) & np.isfinite(rounded), rounded, values)


#: Cells a spreadsheet runs as a formula: they begin with one of ``= + - @``, a tab or a CR ...
FORMULA_START = r"^[=+\-@\t\r]"
#: ... unless they are a plain decimal number (``-1``, ``+0.5``, ``-2e-3``), read as that number.
PLAIN_NUMBER = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
#: Text that already begins with ``'`` and a character :func:`formula_unsafe` would strip it before.
QUOTED_START = r"^'[=+\-@\t\r']"


def formula_safe(values) -> pa.Array:
    """Text cells made safe to open in a spreadsheet (CSV injection): a cell that would run as a
    formula (see :data:`FORMULA_START`, :data:`PLAIN_NUMBER`) gets a leading ``'``, and so does a
    cell that already begins with ``'`` and one of those characters or another ``'``, so that
    :func:`formula_unsafe` restores every cell exactly. Numbers and non-text arrays pass as they
    are; missing values stay missing. Returns a pyarrow array (vectorised: a million ids in
    well under a second)."""
    array = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values)
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return array
    if not pc.any(pc.match_substring_regex(array, r"^[=+\-@\t\r']")).as_py():  # the usual case: one pass
        return array
    risky = pc.and_(pc.match_substring_regex(array, FORMULA_START),
                    pc.invert(pc.match_substring_regex(array, PLAIN_NUMBER)))
    risky = pc.or_(risky, pc.match_substring_regex(array, QUOTED_START))
    return pc.if_else(risky, pc.binary_join_element_wise("'", array, ""), array)


def formula_unsafe(texts: Sequence[str]) -> list:
    """The cells :func:`formula_safe` wrote, as they were (one leading ``'`` removed where it put
    one); other text is returned unchanged."""
    starts = set("=+-@\t\r'")
    return [t[1:] if isinstance(t, str) and len(t) > 1 and t[0] == "'" and t[1] in starts else t
            for t in texts]


def write_columns(path: PathLike, columns: dict, delimiter: str = ",") -> Path:
    """Write ``columns`` (header -> N strings or numbers) as one CSV/TSV table, atomically, with
    pyarrow's writer (a million rows in about a second). Values are quoted only where they hold
    the delimiter, a quote or a line break. Text cells and headers go through
    :func:`formula_safe`; numeric columns stay numbers."""
    headers = formula_safe([str(k) for k in columns]).to_pylist()
    table = pa.table({h: formula_safe(v) for h, v in zip(headers, columns.values())})
    with atomic_write(path, "wb") as fh:
        try:
            pa_csv.write_csv(table, fh, pa_csv.WriteOptions(delimiter=delimiter, quoting_style="none",
                                                            quoting_header="none"))
        except pa.ArrowInvalid:  # some value needs quotes
            fh.seek(0)
            fh.truncate()
            pa_csv.write_csv(table, fh, pa_csv.WriteOptions(delimiter=delimiter, quoting_style="needed"))
    return Path(path)


def _name(v) -> Optional[str]:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    s = str(v).strip()
    return s or None


def _names(values: Sequence) -> list:
    """:func:`_name` of each value, computed once per distinct value (a few class names for many
    spots); values of different types never share a name (``1`` and ``True``)."""
    try:
        named = {(type(v), v): _name(v) for v in values}
    except TypeError:  # unhashable values
        return [_name(v) for v in values]
    return [named[type(v), v] for v in values]


def _codes(labels) -> Optional[np.ndarray]:
    """``labels`` as an ``(N,)`` int64 array when they are all integers (an integer array or
    tensor, or a list of ints), else None."""
    if hasattr(labels, "detach"):
        labels = labels.detach().cpu().numpy()
    if isinstance(labels, (list, tuple)) and labels and all(type(v) is int for v in labels):
        labels = np.asarray(labels)
    if not isinstance(labels, np.ndarray) or labels.dtype.kind not in "iu":
        return None
    if labels.dtype.kind == "u":  # beyond int64: still out of range, never wrapped to -1
        labels = np.minimum(labels, np.iinfo(np.int64).max)
    return labels.reshape(-1).astype(np.int64, copy=False)


def _class_names(path: PathLike, codes: np.ndarray, classes: Optional[Sequence[str]]) -> np.ndarray:
    """``(N,)`` object array: ``classes[code]``, ``None`` for ``-1``; out-of-range codes refused."""
    if classes is None:
        raise ValueError(f"{path}: integer labels need classes=")
    bad = (codes < -1) | (codes >= len(classes))
    if bad.any():
        raise ValueError(f"{path}: label {int(codes[bad][0])} outside -1..{len(classes) - 1}")
    lookup = np.empty(len(classes) + 1, dtype=object)
    lookup[:-1] = [_name(c) for c in classes]
    return lookup[codes]  # -1 picks the trailing None


#: How Space Ranger's barcodes end: the GEM well, ``-1``.
SPACERANGER_END = re.compile(r"\S-[0-9]+$")


def strip_library_suffix(path: PathLike, barcodes: np.ndarray, library_ids) -> np.ndarray:
    """``barcodes`` without the ``-<library id>`` that ``anndata.concat(..., index_unique="-")``
    appends (``AAACAAGTATCTCCCA-1-151674`` -> ``AAACAAGTATCTCCCA-1``, as Space Ranger and Loupe
    name it). ``library_ids``: one id for every barcode, or one per barcode (e.g. the
    ``obs`` column that ``concat(..., label=...)`` wrote). The suffix is removed only where what
    remains still ends as Space Ranger's barcodes do, in ``-<digits>`` (so library ``1`` leaves a
    plain ``AAAC...-1`` alone); other barcodes are kept as they are. Barcodes that become equal
    (one barcode in two libraries) raise ``ValueError``."""
    if isinstance(library_ids, (str, int, np.integer)):
        ids = [str(library_ids)] * len(barcodes)
    else:
        ids = [str(i) for i in library_ids]
        if len(ids) != len(barcodes):
            raise ValueError(f"{path}: {len(barcodes)} barcodes but {len(ids)} library ids; give one "
                             "library id, or one per barcode")
    def strip(barcode: str, library: str) -> str:
        rest = barcode[: -len(library) - 1]
        ok = library and barcode.endswith("-" + library) and SPACERANGER_END.search(rest)
        return rest if ok else barcode

    out = np.asarray([strip(b, i) for b, i in zip(barcodes, ids)], dtype=object)
    first: dict = {}
    for k, b in enumerate(out):
        if b in first:
            raise ValueError(f"{path}: barcodes {barcodes[first[b]]!r} and {barcodes[k]!r} are both {b!r} once "
                             "the library suffix is removed; Loupe shows one library: write one Loupe CSV "
                             "per library")
        first[b] = k
    return out


def write_loupe_csv(
    path: PathLike, barcodes: Sequence[str], names: Sequence, category: str = "Annotation",
    classes: Optional[Sequence[str]] = None, library_ids=None,
) -> Path:
    """Write spot annotations as a Loupe Browser CSV: header ``Barcode,<category>``.

    Args:
        path: output file (parent folders are created).
        barcodes: ``N`` spot barcodes.
        names: ``N`` class names; ``None``/empty entries (unlabeled spots) are left out, which Loupe
            reads as unassigned. With ``classes``, an integer array or tensor of class indices
            instead (``-1``: unlabeled).
        category: the annotation's name in Loupe (the second column's header).
        classes: ``K`` class names that integer ``names`` index.
        library_ids: the library id (or one per barcode) whose ``-<id>`` suffix ``anndata.concat``
            appended to the barcodes, removed where present (see :func:`strip_library_suffix`):
            Loupe matches only the barcodes Space Ranger wrote (``AAAC...-1``).

    Returns the path. Round trip: ``read_spaceranger(..., labels=path)`` gives the same labels.
    """
    barcodes = np.asarray([str(b) for b in barcodes], dtype=object)
    if library_ids is not None:
        barcodes = strip_library_suffix(path, barcodes, library_ids)
    codes = _codes(names) if classes is not None else None
    texts = _class_names(path, codes, classes) if codes is not None else np.asarray(_names(list(names)), dtype=object)
    if len(barcodes) != len(texts):
        raise ValueError(f"{path}: {len(barcodes)} barcodes but {len(texts)} names")
    if not str(category).strip() or str(category).strip().lower() == "barcode":
        raise ValueError(f"{path}: category must be a non-empty name other than 'Barcode'")
    keep = texts != None  # noqa: E711 (elementwise over an object array)
    return write_columns(path, {"Barcode": barcodes[keep], str(category): texts[keep]})


def read_loupe_csv(path: PathLike) -> dict:
    """Read a Loupe Browser CSV (header ``Barcode,<Category>``) as ``{barcode: name}``.

    Rows with an empty name are left out (unlabeled). Duplicated barcodes raise ``ValueError``.
    The leading ``'`` that :func:`formula_safe` put before formula-like cells is removed.
    """
    table = read_table(path, header=True, delimiter=",", what="Loupe CSV")
    if len(table.columns) != 2 or table.columns[0].lower() != "barcode":
        raise ValueError(
            f"{table.path}: expected a Loupe CSV with header 'Barcode,<Category>', got {len(table.columns)} columns"
        )
    barcodes = formula_unsafe(table.unique_text(0))
    table.warn_if_cut()
    return {b: n for b, n in zip(barcodes, formula_unsafe(table.text(1))) if n}


def write_predictions(
    path: PathLike,
    ids: Sequence[str],
    labels: Sequence,
    probabilities=None,
    classes: Optional[Sequence[str]] = None,
    precision: int = 6,
) -> Path:
    """Write per-node predictions: columns ``id``, ``label`` and one probability column per class.

    Args:
        path: output file; tab-separated for ``.tsv``/``.txt``, comma-separated otherwise.
        ids: ``N`` node ids (barcodes).
        labels: ``N`` predicted labels, either int class indices (``-1`` = none, written empty)
            or class names.
        probabilities: optional ``(N, K)`` array/tensor; column ``k`` is headed ``classes[k]``.
        classes: ``K`` class names (required for int labels or probabilities).
        precision: significant digits of the probabilities.

    Returns the path.
    """
    ids = [str(i) for i in ids]
    classes = None if classes is None else [str(c) for c in classes]
    codes = _codes(labels)
    if codes is not None:  # class indices: one lookup, no per-row Python
        names = _class_names(path, codes, classes)
        names[names == None] = ""  # noqa: E711
    else:
        names = _mixed_names(path, labels.tolist() if hasattr(labels, "tolist") else list(labels), classes)
    if len(names) != len(ids):
        raise ValueError(f"{path}: {len(ids)} ids but {len(names)} labels")
    probs = None
    if probabilities is not None:
        if classes is None:
            raise ValueError(f"{path}: probabilities need classes=")
        if hasattr(probabilities, "detach"):
            probabilities = probabilities.detach().cpu().numpy()
        probs = np.asarray(probabilities, dtype=np.float64)
        if probs.shape != (len(ids), len(classes)):
            raise ValueError(
                f"{path}: probabilities have shape {probs.shape}; expected ({len(ids)}, {len(classes)})"
            )
        clash = {"id", "label"} & {c.lower() for c in classes}
        if clash:
            raise ValueError(f"{path}: class names {sorted(clash)} clash with the id/label columns")
    columns = {"id": ids, "label": names}
    if probs is not None:
        probs = round_significant(probs, precision)
        columns.update((c, probs[:, k]) for k, c in enumerate(classes))
    return write_columns(path, columns, _delimiter(path))


def _mixed_names(path: PathLike, labels: list, classes: Optional[list]) -> list:
    """Texts of a list of labels that may mix class indices and names."""
    names = []
    for v, text in zip(labels, _names(labels)):
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            names.append(_class_names(path, np.array([v], dtype=np.int64), classes)[0] or "")
        else:
            names.append(text or "")
    return names


def read_predictions(path: PathLike):
    """Read a table written by :func:`write_predictions`.

    Returns ``(ids, names, probabilities, classes)``: ``names`` holds ``None`` where no label was
    written; ``probabilities`` is ``(N, K)`` float64 (``None`` and ``classes == []`` when the
    table has no probability columns). Ids, labels and class names come back as they were given
    (the ``'`` that :func:`formula_safe` wrote before formula-like text is removed).
    """
    table = read_table(path, header=True, delimiter=_delimiter(path), what="predictions table")
    if [c.lower() for c in table.columns[:2]] != ["id", "label"]:
        raise ValueError(
            f"{table.path}: expected columns 'id', 'label', then one per class"
        )
    ids = formula_unsafe(table.unique_text(0))
    names = [n or None for n in formula_unsafe(table.text(1))]
    classes = formula_unsafe(table.columns[2:])
    probs = None
    if classes:
        probs = np.stack([table.numeric(k) for k in range(2, len(table.columns))], axis=1)
    table.warn_if_cut()
    return ids, names, probs, classes
