"""Whole-slide images: TIFF / BigTIFF / OME-TIFF / SVS pyramids read window by window.

:class:`SlideImage` opens a (tiled or striped, pyramidal or not) TIFF through tifffile and reads
regions through its zarr store, so only the tiles a window touches are decoded (JPEG, JPEG 2000,
LZW, deflate, ... through imagecodecs), keeping recently decoded tiles in a bounded
:class:`~gridgraph.io.images.slide_store.TileCache`. Sizes, pyramid levels and the pixel size come from
the header. Pixels become RGB uint8 through :class:`~gridgraph.io.images.intensity.Intensity` (dtype
range, a bit depth or percentiles) and an explicit channel choice for images that are not RGB.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from .intensity import PERCENTILE_SAMPLE_SIDE, Intensity, check_fill, finite_pixels, pick_channels
from .slide_store import PlaneReader, TileCache, cached_store, plane_axes, usable_cores

__all__ = ["SlideImage", "Intensity", "TIFF_SUFFIXES", "is_tiff", "open_image_file"]

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".svs", ".ndpi", ".scn", ".qptiff")


#: The first four bytes of little- and big-endian TIFF and BigTIFF files.
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def is_tiff(path: Union[str, os.PathLike], sniff: bool = False) -> bool:
    """Whether ``path`` names a TIFF by its suffix (:data:`TIFF_SUFFIXES`), or with ``sniff`` also
    by its first bytes (a TIFF saved under another name)."""
    if str(path).lower().endswith(TIFF_SUFFIXES):
        return True
    if not sniff:
        return False
    try:
        with open(path, "rb") as fh:
            return fh.read(4) in TIFF_MAGIC
    except OSError:
        return False


def open_image_file(path: Union[str, os.PathLike], intensity=None, channels: Optional[Sequence[int]] = None,
                    microns_per_pixel: Optional[float] = None, nonfinite_fill: Optional[float] = None,
                    **slide_options):
    """An image file opened for reading, whatever its format: a TIFF (by suffix or content) as a
    :class:`SlideImage` (``slide_options``: ``cache_mib``, ``decode_threads``), anything Pillow
    reads as a :class:`~gridgraph.io.images.image.LazyImage`. ``intensity``, ``channels``,
    ``microns_per_pixel`` and ``nonfinite_fill`` (what NaN and infinite pixels of a float image
    become; default: they are an error naming the file) mean the same for both; slide options
    given for a non-TIFF raise ``ValueError`` naming the file."""
    from .image import LazyImage

    if is_tiff(path, sniff=True):
        return SlideImage(path, "dtype" if intensity is None else intensity, channels, microns_per_pixel,
                          nonfinite_fill=nonfinite_fill, **slide_options)
    if slide_options:
        raise ValueError(f"{path}: {sorted(slide_options)} apply to TIFF slides only; this file is read by "
                         "Pillow (give intensity, channels or microns_per_pixel)")
    return LazyImage(path, intensity, channels, microns_per_pixel, nonfinite_fill=nonfinite_fill)


#: Resolution tags coarser than this (µm per pixel) are print or screen defaults (72, 96, 300,
#: 1200 dpi: 21 to 353 µm/px), not a microscope's pixel size, and are ignored.
MAX_TAG_MICRONS_PER_PIXEL = 20.0
#: µm per unit of the OME ``PhysicalSizeXUnit`` values a slide may use (others: pixel size unknown).
OME_LENGTH_UNITS = {"µm": 1.0, "um": 1.0, "nm": 1e-3, "Å": 1e-4, "mm": 1e3, "cm": 1e4, "m": 1e6}


def _microns_per_pixel(tf) -> Optional[float]:
    """µm per pixel from OME metadata (PhysicalSizeX), Aperio's ``MPP`` or the resolution tags (cm or
    inch, up to :data:`MAX_TAG_MICRONS_PER_PIXEL`); ``None`` when the file does not say."""
    if tf.ome_metadata:
        found = re.search(r'PhysicalSizeX="([0-9.eE+-]+)"', tf.ome_metadata)
        unit = re.search(r'PhysicalSizeXUnit="([^"]+)"', tf.ome_metadata)
        factor = OME_LENGTH_UNITS.get(unit.group(1) if unit else "µm")
        if found and factor and float(found.group(1)) > 0:
            return float(found.group(1)) * factor
    page = tf.pages[0]
    aperio = re.search(r"\|\s*MPP\s*=\s*([0-9.eE+-]+)", page.description or "") if tf.is_svs else None
    if aperio and float(aperio.group(1)) > 0:
        return float(aperio.group(1))
    res, unit = page.tags.get("XResolution"), page.tags.get("ResolutionUnit")
    if res is None or unit is None or int(unit.value) not in (2, 3):
        return None
    num, den = res.value
    if not num or not den:
        return None
    mpp = (25400.0 if int(unit.value) == 2 else 10000.0) * den / num
    return mpp if mpp <= MAX_TAG_MICRONS_PER_PIXEL else None


class SlideImage:
    """A TIFF slide opened for windowed reading.

    Args:
        path: TIFF / BigTIFF / OME-TIFF / SVS file (tiled or striped; pyramid levels are used when
            present). Axes ``YX``, ``YXS`` (RGB), ``SYX`` (planar) and ``CYX`` (channels) are read.
        intensity: an :class:`Intensity` or its ``mode`` (default ``"dtype"``).
        channels: the 1 or 3 channels shown as RGB; required for multi-channel images that are
            not RGB.
        microns_per_pixel: the level-0 pixel size when the file does not say (or to override it).
        cache_mib: decoded tiles kept for reuse, in MiB (default 64; 0 disables the cache).
        decode_threads: tiles of one read decoded at once (default: the usable cores, at most 8;
            1 decodes them one after another in zarr's event-loop thread).
        nonfinite_fill: float slides only: the value (in the file's own units, before ``intensity``)
            that NaN and infinite pixels become; default ``None``: a window holding one raises
            ``ValueError`` naming the file, the window, the level and the first such pixel. Each
            window is checked as it is read (no whole-slide scan).

    A tile that cannot be decoded (corrupt or truncated data) raises ``ValueError``:
    ``"<file>: tile at (x, y) of level L cannot be decoded (<reason>)"``, ``(x, y)`` the tile's
    top-left pixel in that level.

    Attributes:
        size: ``(width, height)`` of level 0, in pixels.
        level_sizes: ``[(width, height), ...]`` per pyramid level, level 0 first.
        downsamples: level-0 pixels per level pixel, per level.
        microns_per_pixel: µm per level-0 pixel, or ``None`` when unknown.
        channels: indices of the channels shown as R, G, B (one index: grey).
        cache: the :class:`~gridgraph.io.images.slide_store.TileCache`.
    """

    def __init__(self, path: Union[str, os.PathLike], intensity: Union[Intensity, str, int] = "dtype",
                 channels: Optional[Sequence[int]] = None, microns_per_pixel: Optional[float] = None,
                 cache_mib: float = 64, decode_threads: Optional[int] = None,
                 nonfinite_fill: Optional[float] = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"image file not found: {self.path}")
        self.nonfinite_fill = check_fill(nonfinite_fill, self.path)
        self._open()
        try:  # the file is closed again when the slide cannot be used
            self._setup(intensity, channels, microns_per_pixel, cache_mib, decode_threads)
        except BaseException:
            self._tif.close()
            raise

    def _setup(self, intensity, channels, microns_per_pixel, cache_mib, decode_threads) -> None:
        import threading

        series = self._series
        self._axes = series.axes
        y, x, c = plane_axes(series.axes, series.levels[0].shape, self.path)
        self.level_sizes = [(int(lv.shape[x]), int(lv.shape[y])) for lv in series.levels]
        self.size = self.level_sizes[0]
        self.downsamples = [self.size[0] / w for w, _ in self.level_sizes]
        count = 1 if c is None else int(series.levels[0].shape[c])
        self.channels = pick_channels(count, int(self._tif.pages[0].photometric), channels, self.path)
        self.dtype = np.dtype(series.dtype)
        if microns_per_pixel is not None and not float(microns_per_pixel) > 0:
            raise ValueError(f"{self.path}: microns_per_pixel must be positive, got {microns_per_pixel}")
        self.microns_per_pixel = float(microns_per_pixel) if microns_per_pixel else _microns_per_pixel(self._tif)
        self.cache = TileCache(int(float(cache_mib) * (1 << 20)))
        self.decode_threads = usable_cores() if decode_threads is None else max(int(decode_threads), 1)
        self._readers: dict = {}
        self._lock = threading.Lock()
        self.intensity = intensity if isinstance(intensity, Intensity) else Intensity(intensity)
        sample = None
        if self.intensity.mode == "percentile":
            sample = self._decimated(len(self.level_sizes) - 1, PERCENTILE_SAMPLE_SIDE, rgb=False)[0]
        self.intensity.fit(self.dtype, sample)

    def _open(self) -> None:
        import tifffile

        try:
            self._tif = tifffile.TiffFile(self.path)
            self._series = self._tif.series[0]
        except Exception as err:  # tifffile raises several types for files that are not TIFF
            raise ValueError(f"{self.path}: cannot read as a TIFF image ({err})") from None

    def _reader(self, level: int) -> PlaneReader:
        """The windows of one level (opened once; reads decode only the touched tiles)."""
        with self._lock:
            if level not in self._readers:
                import zarr

                raw = self._series.aszarr(level=level, maxworkers=self.decode_threads)
                failures: dict = {}  # tiles that failed to decode: recorded by the store, raised by the reader
                node = zarr.open(cached_store(raw, self.cache, level, failures), mode="r")
                node = node if hasattr(node, "shape") else node[str(level)]
                self._readers[level] = PlaneReader(node, self._axes, self.channels, self.path, level, failures)
            return self._readers[level]

    def read_raw(self, ys: slice, xs: slice, level: int = 0) -> np.ndarray:
        """Raw pixels ``(h, w, k)`` of the chosen channels in rows ``ys`` and columns ``xs`` of
        ``level`` (steps allowed), NaN and infinite values refused or filled (``nonfinite_fill``)
        as this window is read."""
        raw = self._reader(level).read(ys, xs)
        if raw.dtype.kind != "f":
            return raw
        w, h = self.level_sizes[level]
        (x0, x1, dx), (y0, y1, dy) = xs.indices(w), ys.indices(h)
        where = f"the window x {x0}..{x1}, y {y0}..{y1} of level {level}"
        where += f" (sampled every {dx} columns and {dy} rows)" if dx > 1 or dy > 1 else ""
        return finite_pixels(raw, self.nonfinite_fill, self.path, where, (x0, y0), (dx, dy))

    def to_rgb(self, raw: np.ndarray) -> np.ndarray:
        """Raw pixels ``(h, w, k)`` of the chosen channels -> ``(h, w, 3)`` uint8."""
        a = self.intensity(raw)
        return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else np.ascontiguousarray(a)

    def level_for(self, downsample: float) -> int:
        """The coarsest level whose resolution is still at least ``1 / downsample`` of level 0."""
        ok = [i for i, d in enumerate(self.downsamples) if d <= downsample * (1 + 1e-6)]
        return max(ok, key=lambda i: self.downsamples[i]) if ok else 0

    def level_for_microns(self, microns_per_pixel: float) -> int:
        """The coarsest level whose pixels are at most ``microns_per_pixel`` µm (level 0 when even
        it is coarser); ``ValueError`` naming the file when its pixel size is unknown."""
        if self.microns_per_pixel is None:
            raise ValueError(f"{self.path}: its pixel size is unknown (no OME, Aperio MPP or resolution "
                             "tags); give SlideImage(..., microns_per_pixel=...)")
        return self.level_for(float(microns_per_pixel) / self.microns_per_pixel)

    def level_microns_per_pixel(self, level: int) -> Optional[float]:
        """µm per pixel of ``level`` (``None`` when the slide's pixel size is unknown)."""
        mpp = self.microns_per_pixel
        return None if mpp is None else mpp * self.downsamples[level]

    def read_region(self, x0: int, y0: int, width: int, height: int, level: int = 0) -> np.ndarray:
        """``(height, width, 3)`` uint8 pixels of ``level`` with top-left ``(x0, y0)`` in that
        level's pixels; past the border the edge pixels are repeated."""
        w_img, h_img = self.level_sizes[level]
        xa, ya = max(x0, 0), max(y0, 0)
        xb, yb = min(x0 + width, w_img), min(y0 + height, h_img)
        if xa >= xb or ya >= yb:  # entirely outside: the nearest border pixel
            cx, cy = min(max(x0, 0), w_img - 1), min(max(y0, 0), h_img - 1)
            pixel = self.to_rgb(self.read_raw(slice(cy, cy + 1), slice(cx, cx + 1), level))
            return np.broadcast_to(pixel, (height, width, 3)).copy()
        crop = self.to_rgb(self.read_raw(slice(ya, yb), slice(xa, xb), level))
        pad = ((ya - y0, y0 + height - yb), (xa - x0, x0 + width - xb), (0, 0))
        return np.pad(crop, pad, mode="edge") if any(p for pair in pad for p in pair) else crop

    def _decimated(self, level: int, max_side: int, rgb: bool = True, block: int = 4096) -> tuple:
        """Every ``step``-th pixel of ``level`` (at most ``max_side`` a side), read in bands of
        ``block`` rows: ``(pixels, step)``, pixels ``(h, w, 3)`` uint8 with ``rgb``, else raw ``(h, w, k)``."""
        w, h = self.level_sizes[level]
        step = max(int(np.ceil(max(w, h) / max_side)), 1)
        band = max(block - block % step, step)
        parts = [self.read_raw(slice(y, min(y + band, h), step), slice(0, w, step), level) for y in range(0, h, band)]
        return np.concatenate([self.to_rgb(p) for p in parts] if rgb else parts), step

    def thumbnail(self, max_side: int = 2048) -> tuple[np.ndarray, float]:
        """``(image, factor)``: the slide at most ``max_side`` pixels a side as ``(h, w, 3)``
        uint8, and level-0 pixels per thumbnail pixel. Read from the smallest level that is
        large enough and decimated band by band: memory is the thumbnail, not the level."""
        level = self.level_for(max(max(self.size) / max_side, 1.0))
        thumb, step = self._decimated(level, max_side)
        return thumb, self.downsamples[level] * step

    def load(self) -> np.ndarray:
        """Level 0 as ``(H, W, 3)`` uint8 (the whole slide: for small images only)."""
        w, h = self.size
        return self.to_rgb(self.read_raw(slice(0, h), slice(0, w), 0))

    def release(self) -> None:
        """Drop the open level arrays and the cached tiles."""
        self._readers = {}
        self.cache.clear()

    def close(self) -> None:
        self.release()
        self._tif.close()

    def __enter__(self) -> "SlideImage":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"SlideImage({str(self.path)!r}, size={self.size}, levels={len(self.level_sizes)}, "
                f"microns_per_pixel={self.microns_per_pixel})")
