"""Whole-slide images: TIFF / BigTIFF / OME-TIFF pyramids read window by window.

:class:`SlideImage` opens a (tiled or striped, pyramidal or not) TIFF through tifffile and reads
regions through its zarr store, so only the tiles a window touches are decoded (JPEG, JPEG 2000,
LZW, deflate, ... through imagecodecs). Sizes, pyramid levels and the pixel size come from the
header. Pixels are converted to RGB uint8 by :class:`Intensity` (dtype range, a bit depth or
percentiles) and an explicit channel choice for images that are not RGB.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

__all__ = ["SlideImage", "Intensity", "TIFF_SUFFIXES", "is_tiff"]

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".svs", ".ndpi", ".scn", ".qptiff")
_RGB = (2, 6)  # TIFF photometric RGB, and YCbCr (JPEG tiles, decoded to RGB)


def is_tiff(path: Union[str, os.PathLike]) -> bool:
    return str(path).lower().endswith(TIFF_SUFFIXES)


class Intensity:
    """How pixel values become 0..255.

    Args:
        mode: ``"dtype"`` (default: the dtype's range, 0..65535 for uint16), an integer bit depth
            (``12``: 0..4095), or ``"percentile"`` (per channel, ``low``..``high`` percentiles of
            the slide's smallest pyramid level).
        low, high: percentiles for ``"percentile"`` (default 1 and 99.5).
    """

    def __init__(self, mode: Union[str, int] = "dtype", low: float = 1.0, high: float = 99.5):
        if not (mode in ("dtype", "percentile") or (isinstance(mode, int) and 1 <= mode <= 32)):
            raise ValueError(f"intensity must be 'dtype', 'percentile' or a bit depth 1..32, got {mode!r}")
        self.mode, self.low, self.high = mode, float(low), float(high)
        self.range: Optional[tuple] = None

    def fit(self, dtype: np.dtype, sample: Optional[np.ndarray] = None) -> "Intensity":
        """Fix the value range: from the dtype, the bit depth, or ``(h, w, C)`` ``sample``."""
        if self.mode == "percentile":
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
        if a.dtype == np.uint8 and self.mode == "dtype":
            return a
        low, high = self.range
        scale = 255.0 / np.maximum(np.asarray(high, dtype=np.float64) - low, 1e-12)
        return ((a.astype(np.float32) - low) * scale).round().clip(0, 255).astype(np.uint8)

    def __repr__(self) -> str:
        return f"Intensity({self.mode!r})"


def _pick_channels(shape: tuple, photometric: int, channels: Optional[Sequence[int]], path: Path) -> list:
    """Indices of the 1 or 3 channels shown as RGB."""
    count = shape[2] if len(shape) == 3 else 1
    if channels is not None:
        chosen = [int(c) for c in channels]
        if len(chosen) not in (1, 3) or any(not 0 <= c < count for c in chosen):
            raise ValueError(f"{path}: channels must be 1 or 3 indices in 0..{count - 1}, got {list(channels)}")
        return chosen
    if count == 1:
        return [0]
    if photometric in _RGB and count in (3, 4):
        return [0, 1, 2]  # RGB, alpha dropped
    raise ValueError(f"{path}: the image has {count} channels that are not RGB (e.g. fluorescence); "
                     "choose which to show with channels=[i] or channels=[r, g, b]")


def _microns_per_pixel(tf) -> Optional[float]:
    """µm per pixel from OME metadata (PhysicalSizeX) or the resolution tags (cm or inch)."""
    if tf.ome_metadata:
        found = re.search(r'PhysicalSizeX="([0-9.eE+-]+)"', tf.ome_metadata)
        unit = re.search(r'PhysicalSizeXUnit="([^"]+)"', tf.ome_metadata)
        if found:
            factor = {"nm": 1e-3, "mm": 1e3, "cm": 1e4}.get(unit.group(1) if unit else "µm", 1.0)
            return float(found.group(1)) * factor
    page = tf.pages[0]
    res, unit = page.tags.get("XResolution"), page.tags.get("ResolutionUnit")
    if res is None or unit is None or int(unit.value) not in (2, 3):
        return None
    num, den = res.value
    if not num or not den:
        return None
    per_unit = num / den
    return (25400.0 if int(unit.value) == 2 else 10000.0) / per_unit


class SlideImage:
    """A TIFF slide opened for windowed reading.

    Args:
        path: TIFF / BigTIFF / OME-TIFF file (tiled or striped; pyramid levels are used when
            present).
        intensity: an :class:`Intensity` or its ``mode`` (default ``"dtype"``).
        channels: the 1 or 3 channels shown as RGB; required for multi-channel images that are
            not RGB.
        microns_per_pixel: the level-0 pixel size when the file does not say (or to override it).

    Attributes:
        size: ``(width, height)`` of level 0, in pixels.
        level_sizes: ``[(width, height), ...]`` per pyramid level, level 0 first.
        downsamples: level-0 pixels per level pixel, per level.
        microns_per_pixel: µm per level-0 pixel, or ``None`` when unknown.
    """

    def __init__(self, path: Union[str, os.PathLike], intensity: Union[Intensity, str, int] = "dtype",
                 channels: Optional[Sequence[int]] = None, microns_per_pixel: Optional[float] = None):
        import tifffile

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"image file not found: {self.path}")
        try:
            self._tif = tifffile.TiffFile(self.path)
            series = self._tif.series[0]
        except Exception as err:  # tifffile raises several types for files that are not TIFF
            raise ValueError(f"{self.path}: cannot read as a TIFF image ({err})") from None
        self._levels = list(series.levels)
        shape0 = self._levels[0].shape
        if len(shape0) not in (2, 3) or (len(shape0) == 3 and shape0[2] > 64):
            raise ValueError(f"{self.path}: expected a 2-D image (Y, X[, channels]), got axes {series.axes} "
                             f"of shape {shape0}")
        self.size = (int(shape0[1]), int(shape0[0]))
        self.level_sizes = [(int(s.shape[1]), int(s.shape[0])) for s in self._levels]
        self.downsamples = [self.size[0] / w for w, _ in self.level_sizes]
        self._channels = _pick_channels(shape0, int(self._tif.pages[0].photometric), channels, self.path)
        self.dtype = np.dtype(series.dtype)
        self.microns_per_pixel = microns_per_pixel or _microns_per_pixel(self._tif)
        self._arrays: dict = {}
        self.intensity = intensity if isinstance(intensity, Intensity) else Intensity(intensity)
        sample = self._raw(len(self._levels) - 1) if self.intensity.mode == "percentile" else None
        self.intensity.fit(self.dtype, None if sample is None else self._select(sample[:]))

    def _raw(self, level: int):
        """The zarr array of one level (opened once; reads decode only the touched tiles)."""
        if level not in self._arrays:
            import zarr

            node = zarr.open(self._tif.series[0].aszarr(level=level), mode="r")
            self._arrays[level] = node if hasattr(node, "shape") else node[str(level)]
        return self._arrays[level]

    def _select(self, a: np.ndarray) -> np.ndarray:
        a = a[:, :, None] if a.ndim == 2 else a
        if self._channels == list(range(a.shape[2])):
            return a  # RGB as stored: no copy
        return a[:, :, self._channels]

    def to_rgb(self, raw: np.ndarray) -> np.ndarray:
        """Raw pixels ``(h, w[, C])`` of this slide -> ``(h, w, 3)`` uint8."""
        a = self.intensity(self._select(raw))
        return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else np.ascontiguousarray(a)

    def level_for(self, downsample: float) -> int:
        """The coarsest level whose resolution is still at least ``1 / downsample`` of level 0."""
        ok = [i for i, d in enumerate(self.downsamples) if d <= downsample * (1 + 1e-6)]
        return max(ok, key=lambda i: self.downsamples[i]) if ok else 0

    def read_region(self, x0: int, y0: int, width: int, height: int, level: int = 0) -> np.ndarray:
        """``(height, width, 3)`` uint8 pixels of ``level`` with top-left ``(x0, y0)`` in that
        level's pixels; past the border the edge pixels are repeated."""
        w_img, h_img = self.level_sizes[level]
        raw = self._raw(level)
        xa, ya = max(x0, 0), max(y0, 0)
        xb, yb = min(x0 + width, w_img), min(y0 + height, h_img)
        if xa >= xb or ya >= yb:  # entirely outside: the nearest border pixel
            cx, cy = min(max(x0, 0), w_img - 1), min(max(y0, 0), h_img - 1)
            pixel = self.to_rgb(np.asarray(raw[cy: cy + 1, cx: cx + 1]))
            return np.broadcast_to(pixel, (height, width, 3)).copy()
        crop = self.to_rgb(np.asarray(raw[ya:yb, xa:xb]))
        pad = ((ya - y0, y0 + height - yb), (xa - x0, x0 + width - xb), (0, 0))
        return np.pad(crop, pad, mode="edge") if any(p for pair in pad for p in pair) else crop

    def thumbnail(self, max_side: int = 2048, block: int = 4096) -> tuple[np.ndarray, float]:
        """The slide at most ``max_side`` pixels a side and its level-0 pixels per pixel: from the
        smallest level that is large enough, decimated block by block (bounded memory)."""
        want = max(self.size) / max_side
        level = self.level_for(max(want, 1.0))
        w, h = self.level_sizes[level]
        step = max(int(np.ceil(max(w, h) / max_side)), 1)
        rows = []
        for y in range(0, h, block - block % step):
            band = self.to_rgb(np.asarray(self._raw(level)[y: y + block - block % step: step, ::step]))
            rows.append(band)
        return np.concatenate(rows), self.downsamples[level] * step

    def load(self) -> np.ndarray:
        """Level 0 as ``(H, W, 3)`` uint8 (the whole slide: for small images only)."""
        return self.to_rgb(np.asarray(self._raw(0)[:]))

    def release(self) -> None:
        self._arrays = {}

    def close(self) -> None:
        self._arrays = {}
        self._tif.close()

    def __repr__(self) -> str:
        return (f"SlideImage({str(self.path)!r}, size={self.size}, levels={len(self.level_sizes)}, "
                f"microns_per_pixel={self.microns_per_pixel})")
