"""Value checks shared by every reader, with errors that name the file, the field and what was expected."""
from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

PathLike = Union[str, os.PathLike]

__all__ = ["PathLike", "require_file", "natural_key", "natural_sorted", "is_positive_number", "check_unique",
           "check_array_index", "check_inside"]


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


def is_positive_number(value) -> bool:
    """Whether ``value`` is a real number (not a bool or string), finite and > 0."""
    if hasattr(value, "dtype") and getattr(value, "size", 0) == 1:  # numpy scalar or 1-element array
        value = value.item() if value.dtype.kind in "iuf" else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value) and value > 0


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


def _px(value: float) -> str:
    """A pixel coordinate for a message: one decimal, or 6 significant digits when huge."""
    return f"{value:.1f}" if abs(value) < 1e7 else f"{value:.6g}"


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
            f"{ids[i]} at pixel (x={_px(pos[i, 0])}, y={_px(pos[i, 1])}); expected 0 <= x <= {w} "
            f"and 0 <= y <= {h}"
        )
