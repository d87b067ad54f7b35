"""Pixel values of any dtype to 0..255, and which channels of an image are shown as RGB.

:class:`Intensity` maps raw values linearly: by the dtype's range (default; 0..65535 for uint16),
by a bit depth (``12``: 0..4095, for 12-bit cameras that store uint16) or by per-channel
percentiles of a sample of the slide. :func:`pick_channels` chooses the 1 or 3 channels shown,
refusing to guess for multi-channel (fluorescence) images. :func:`finite_pixels` refuses NaN and
infinite values of float images, or replaces them by a fill value the caller states, one window at
a time as windows are read.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

__all__ = ["Intensity", "pick_channels", "PERCENTILE_SAMPLE_SIDE", "finite_pixels", "check_fill"]

#: Pixels a side of the decimated sample that ``Intensity("percentile")`` is fitted on.
PERCENTILE_SAMPLE_SIDE = 1024

RGB_PHOTOMETRIC = (2, 6)  # TIFF photometric RGB, and YCbCr (JPEG tiles, decoded to RGB)


class Intensity:
    """How pixel values become 0..255.

    Args:
        mode: ``"dtype"`` (default: the dtype's range, 0..65535 for uint16, 0..1 for floats), an
            integer bit depth (``12``: 0..4095), or ``"percentile"`` (per channel, ``low``..``high``
            percentiles of a sample: a slide's smallest pyramid level, decimated to at most
            about 1 Mpx).
        low, high: percentiles for ``"percentile"`` (default 1 and 99.5).

    ``range`` is ``(low, high)`` once :meth:`fit`; values map to ``(v - low) * 255 / (high - low)``,
    rounded half to even and clipped to 0..255.
    """

    def __init__(self, mode: Union[str, int] = "dtype", low: float = 1.0, high: float = 99.5):
        if not (mode in ("dtype", "percentile") or (isinstance(mode, int) and 1 <= mode <= 32)):
            raise ValueError(f"intensity must be 'dtype', 'percentile' or a bit depth 1..32, got {mode!r}")
        if mode == "percentile" and not 0 <= low < high <= 100:
            raise ValueError(f"intensity percentiles must satisfy 0 <= low < high <= 100, got {low}, {high}")
        self.mode, self.low, self.high = mode, float(low), float(high)
        self.range: Optional[tuple] = None

    def fit(self, dtype: np.dtype, sample: Optional[np.ndarray] = None) -> "Intensity":
        """Fix the value range: from the dtype, the bit depth, or an ``(h, w, C)`` ``sample``
        (needed for ``"percentile"``)."""
        if self.mode == "percentile":
            if sample is None:
                raise ValueError("Intensity('percentile').fit() needs a sample of the image")
            flat = sample.reshape(-1, sample.shape[-1]).astype(np.float64)
            self.range = (np.percentile(flat, self.low, axis=0), np.percentile(flat, self.high, axis=0))
        elif isinstance(self.mode, int):
            self.range = (0.0, float(2 ** self.mode - 1))
        elif np.issubdtype(dtype, np.integer):
            self.range = (0.0, float(np.iinfo(dtype).max))
        else:
            self.range = (0.0, 1.0)
        return self

    def __call__(self, a: np.ndarray) -> np.ndarray:
        """``(h, w, C)`` raw values -> ``(h, w, C)`` uint8 (uint8 under ``"dtype"`` passes as is)."""
        if a.dtype == np.uint8 and self.mode == "dtype":
            return a
        if self.range is None:
            raise ValueError(f"{self!r} is used before fit()")
        low, high = self.range
        scale = 255.0 / np.maximum(np.asarray(high, dtype=np.float64) - low, 1e-12)
        return ((a.astype(np.float32) - low) * scale).round().clip(0, 255).astype(np.uint8)

    def __repr__(self) -> str:
        return f"Intensity({self.mode!r})"


def pick_channels(count: int, photometric: Optional[int], channels: Optional[Sequence[int]],
                  path: Union[str, Path]) -> list:
    """Indices of the 1 or 3 of ``count`` channels shown as RGB.

    ``channels`` given: checked and returned. Otherwise one channel is grey, RGB(A) photometric
    images show R, G, B (alpha dropped), and anything else raises ``ValueError`` naming ``path``.
    """
    if channels is not None:
        chosen = [int(c) for c in channels]
        if len(chosen) not in (1, 3) or any(not 0 <= c < count for c in chosen):
            raise ValueError(f"{path}: channels must be 1 or 3 indices in 0..{count - 1}, got {list(channels)}")
        return chosen
    if count == 1:
        return [0]
    if photometric in RGB_PHOTOMETRIC and count in (3, 4):
        return [0, 1, 2]
    raise ValueError(f"{path}: the image has {count} channels that are not RGB (e.g. fluorescence); "
                     "choose which to show with channels=[i] or channels=[r, g, b]")


def check_fill(fill, source: Union[str, Path]) -> Optional[float]:
    """``nonfinite_fill`` checked: ``None`` (NaN and infinite pixels are an error) or a finite
    real number, returned as float; anything else raises ``ValueError`` naming ``source``."""
    if fill is None:
        return None
    if isinstance(fill, bool) or not isinstance(fill, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(fill)):
        raise ValueError(f"{source}: nonfinite_fill must be a finite number (the value, in the image's "
                         f"own units, that NaN and infinite pixels become), got {fill!r}")
    return float(fill)


def finite_pixels(raw: np.ndarray, fill: Optional[float], source: Union[str, Path], where: str = "the image",
                  origin: tuple = (0, 0), step: tuple = (1, 1)) -> np.ndarray:
    """``raw`` (``(h, w[, k])`` pixels of one window) when it holds no NaN or infinite value
    (integer images never do, and pass unchecked); otherwise those values replaced by ``fill``,
    or with ``fill`` ``None`` a ``ValueError`` naming ``source``, ``where`` (e.g. ``"the window
    x 0..512, y 0..512 of level 1"``),
    how many values and the first one's pixel ``(x, y)``: the window's column and row
    ``origin`` plus its index times ``step``."""
    if raw.dtype.kind not in "fc":
        return raw
    finite = np.isfinite(raw)
    if finite.all():
        return raw
    if fill is None:
        row, col = (int(v) for v in np.argwhere(~finite)[0][:2])
        x, y = origin[0] + col * step[0], origin[1] + row * step[1]
        count = int((~finite).sum())
        raise ValueError(f"{source}: {count} NaN or infinite pixel value{'s' if count > 1 else ''} in {where}, "
                         f"the first at pixel ({x}, {y}); give nonfinite_fill=<value> to replace them")
    return np.where(finite, raw, np.asarray(fill, dtype=raw.dtype))
