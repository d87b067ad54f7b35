"""Loading slide images as RGB uint8, lazily where possible."""
from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
from PIL import Image

from .intensity import PERCENTILE_SAMPLE_SIDE, Intensity, check_fill, finite_pixels, pick_channels


ImageLike = Union[str, os.PathLike, np.ndarray, "LazyImage"]
IntensityLike = Union[Intensity, str, int, None]


_LIMIT_LOCK = threading.Lock()
_LIMIT_STATE = {"readers": 0, "saved": None}


@contextlib.contextmanager
def _no_pixel_limit():
    """Lift Pillow's decompression-bomb guard (89 Mpx) for gridgraph's own reads only: slide
    images are far above it. The process-wide setting is restored when the last of gridgraph's
    reads in progress (in any thread: see :func:`prefetching`) ends."""
    with _LIMIT_LOCK:
        if _LIMIT_STATE["readers"] == 0:
            _LIMIT_STATE["saved"] = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
        _LIMIT_STATE["readers"] += 1
    try:
        yield
    finally:
        with _LIMIT_LOCK:
            _LIMIT_STATE["readers"] -= 1
            if _LIMIT_STATE["readers"] == 0:
                Image.MAX_IMAGE_PIXELS = _LIMIT_STATE["saved"]


def to_rgb_uint8(array: np.ndarray, source: str = "image") -> np.ndarray:
    """Convert greyscale, RGBA, 16-bit or float arrays to ``(H, W, 3)`` uint8."""
    a = np.asarray(array)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"{source}: expected an image of shape (H, W[, 1|2|3|4]), got {a.shape}")
    if a.shape[2] in (2, 4):  # drop alpha
        a = a[:, :, :-1]
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if np.issubdtype(a.dtype, np.integer):  # the dtype's range: a dark 16-bit image stays dark
        top = float(np.iinfo(a.dtype).max)
        return (a.astype(np.float64) * (255.0 / top)).round().clip(0, 255).astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{source}: image holds NaN or infinite values")
        scale = 255.0 if a.max(initial=0) <= 1.0 else 1.0
        return (a * scale).round().clip(0, 255).astype(np.uint8)
    raise ValueError(f"{source}: unsupported image dtype {a.dtype}")


#: Pillow modes whose samples are wider than 8 bits; read as they are when scaled explicitly.
HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def read_image(path: Union[str, os.PathLike], intensity: IntensityLike = None,
               channels: Optional[Sequence[int]] = None, nonfinite_fill: Optional[float] = None) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8.

    By default greyscale, RGBA, palette and 16-bit images are converted as
    :func:`to_rgb_uint8` does (16-bit by the dtype's range). ``intensity`` (an
    :class:`~gridgraph.io.images.intensity.Intensity`, ``"dtype"``, ``"percentile"`` or a bit depth such
    as ``12``) and ``channels`` (1 or 3 indices of the R, G, B or grey channels) scale and select
    the raw samples the way :class:`~gridgraph.io.images.slide.SlideImage` does; ``"percentile"`` is
    fitted on the image decimated to about 1024 px a side. NaN and infinite values of a float
    image raise ``ValueError`` naming the file and the first such pixel, unless ``nonfinite_fill``
    gives the value (in the file's units, before scaling) that they become.
    """
    path = Path(path)
    fill = check_fill(nonfinite_fill, path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with _no_pixel_limit(), Image.open(path) as im:
            if intensity is not None or channels is not None:
                return _scaled(im, path, intensity, channels, fill)
            if im.mode in HIGH_BIT_MODES:
                return to_rgb_uint8(finite_pixels(np.asarray(im), fill, path), str(path))
            if im.mode != "RGB":
                im = im.convert("RGBA" if "A" in im.getbands() or im.mode == "P" else "RGB")
            return to_rgb_uint8(np.asarray(im), str(path))
    except (OSError, Image.DecompressionBombError) as err:
        raise ValueError(f"{path}: cannot read as an image ({err})") from err


def _scaled(im, path: Path, intensity: IntensityLike, channels: Optional[Sequence[int]],
            fill: Optional[float] = None) -> np.ndarray:
    """An open Pillow image -> ``(H, W, 3)`` uint8 through :class:`Intensity` and a channel
    choice: high-bit modes keep their samples, other modes become 8-bit ``L`` or ``RGB``."""
    if im.mode not in HIGH_BIT_MODES and im.mode not in ("L", "RGB"):
        grey = set(im.getbands()) <= {"L", "A", "a", "1"}
        im = im.convert("L" if grey else "RGB")
    raw = finite_pixels(np.asarray(im), fill, path)
    raw = raw[:, :, None] if raw.ndim == 2 else raw
    chosen = pick_channels(raw.shape[2], 2 if im.mode == "RGB" else 1, channels, path)
    raw = raw[:, :, chosen]
    scale = as_intensity(intensity)
    step = max(int(np.ceil(max(raw.shape[:2]) / PERCENTILE_SAMPLE_SIDE)), 1)
    scale.fit(raw.dtype, raw[::step, ::step] if scale.mode == "percentile" else None)
    out = scale(raw)
    return np.repeat(out, 3, axis=2) if out.shape[2] == 1 else np.ascontiguousarray(out)


def as_intensity(intensity: IntensityLike) -> Intensity:
    """An :class:`~gridgraph.io.images.intensity.Intensity` from itself, its mode or ``None`` (``"dtype"``)."""
    if isinstance(intensity, Intensity):
        return intensity
    return Intensity("dtype" if intensity is None else intensity)


_PREFETCH = [0]


@contextlib.contextmanager
def prefetching():
    """While active, every :class:`LazyImage` created starts decoding in a background thread at
    once (:meth:`LazyImage.prefetch`), so a reader's table parsing and graph building overlap the
    decode (prediction reads one section and cuts its patches right after)."""
    _PREFETCH[0] += 1
    try:
        yield
    finally:
        _PREFETCH[0] -= 1


class LazyImage:
    """An image file that is decoded on first use; its size comes from the header alone.

    Args:
        path: a PNG, JPEG, ... file Pillow reads (whole-slide TIFFs: :class:`~gridgraph.io.images.slide.SlideImage`).
        intensity, channels: raw sample scaling and channel choice (see :func:`read_image`);
            default ``None``: Pillow's conversion, 16-bit by the dtype's range.
        microns_per_pixel: the pixel size in µm, when known (never guessed from DPI tags:
            PNG and JPEG files carry screen defaults such as 72 dpi).
        nonfinite_fill: what NaN and infinite pixels of a float image become (see :func:`read_image`).

    ``size`` is ``(width, height)`` in pixels; :meth:`load` returns ``(H, W, 3)`` uint8 and caches it.
    """

    def __init__(self, path: Union[str, os.PathLike], intensity: IntensityLike = None,
                 channels: Optional[Sequence[int]] = None, microns_per_pixel: Optional[float] = None,
                 nonfinite_fill: Optional[float] = None):
        self.path = Path(path)
        self.nonfinite_fill = check_fill(nonfinite_fill, self.path)
        if not self.path.is_file():
            raise FileNotFoundError(f"image file not found: {self.path}")
        if microns_per_pixel is not None and not float(microns_per_pixel) > 0:
            raise ValueError(f"{self.path}: microns_per_pixel must be positive, got {microns_per_pixel}")
        self.microns_per_pixel = None if microns_per_pixel is None else float(microns_per_pixel)
        self.intensity = None if intensity is None else as_intensity(intensity)
        self.channels = None if channels is None else [int(c) for c in channels]
        try:
            with _no_pixel_limit(), Image.open(self.path) as im:
                self.size = (int(im.width), int(im.height))
        except OSError as err:
            raise ValueError(f"{self.path}: cannot read as an image ({err})") from err
        self._array = None
        self._decoding = None
        if _PREFETCH[0]:
            self.prefetch()

    def prefetch(self) -> "LazyImage":
        """Start decoding in a background thread and return at once; :meth:`load` waits for it
        (and raises what the decode raised)."""
        if self._array is None and self._decoding is None:
            result = {}

            def decode():
                try:
                    result["array"] = read_image(self.path, self.intensity, self.channels, self.nonfinite_fill)
                except BaseException as err:  # handed to load()
                    result["error"] = err

            thread = threading.Thread(target=decode, name=f"decode {self.path.name}", daemon=True)
            thread.start()
            self._decoding = (thread, result)
        return self

    def load(self) -> np.ndarray:
        if self._array is None and self._decoding is not None:
            thread, result = self._decoding
            thread.join()
            self._decoding = None
            if "error" in result:
                raise result["error"]
            self._array = result["array"]
        if self._array is None:
            self._array = read_image(self.path, self.intensity, self.channels, self.nonfinite_fill)
        return self._array

    def thumbnail(self, max_side: int = 2048) -> tuple[np.ndarray, float]:
        """``(image, factor)``: ``(h, w, 3)`` uint8 at most ``max_side`` a side, and image pixels
        per thumbnail pixel. A JPEG is decoded at a reduced scale (Pillow's draft mode); other
        formats are decoded once and reduced, without keeping the full image."""
        plain = self.intensity is None and self.channels is None
        if self._array is not None or self._decoding is not None or max(self.size) <= max_side or not plain:
            return thumbnail(self.load() if self._array is None else self._array, max_side)
        with _no_pixel_limit(), Image.open(self.path) as im:
            if im.mode not in ("RGB", "RGBA", "L", "LA", "P"):
                return thumbnail(read_image(self.path, nonfinite_fill=self.nonfinite_fill), max_side)
            im = im.convert("RGBA") if im.mode == "P" else im
            im.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
            small = to_rgb_uint8(np.asarray(im), str(self.path))
        return small, self.size[0] / small.shape[1]

    def release(self) -> None:
        """Drop the decoded pixels (they are read again on the next :meth:`load`)."""
        if self._decoding is not None:
            self._decoding[0].join()
            self._decoding = None
        self._array = None

    def __repr__(self) -> str:
        return f"LazyImage({str(self.path)!r}, size={self.size})"


def image_size(image: ImageLike) -> tuple[int, int]:
    """``(width, height)`` of an array, a :class:`LazyImage` or an image file (header only)."""
    if hasattr(image, "size") and not isinstance(image, np.ndarray):  # LazyImage, SlideImage
        return tuple(image.size)
    if isinstance(image, np.ndarray):
        return int(image.shape[1]), int(image.shape[0])
    return LazyImage(image).size


def thumbnail(image: ImageLike, max_side: int = 2048) -> tuple[np.ndarray, float]:
    """``(pixels, factor)``: an image at most ``max_side`` pixels a side as ``(h, w, 3)`` uint8,
    and full-resolution pixels per thumbnail pixel. Slides read a pyramid level
    (:meth:`~gridgraph.io.images.slide.SlideImage.thumbnail`), image files a reduced decode
    (:meth:`LazyImage.thumbnail`), arrays every ``factor``-th pixel (no copy when small)."""
    if hasattr(image, "thumbnail"):  # LazyImage, SlideImage
        return image.thumbnail(max_side)
    if not isinstance(image, np.ndarray):
        return LazyImage(image).thumbnail(max_side)
    step = max(int(np.ceil(max(image.shape[:2]) / max_side)), 1)
    return to_rgb_uint8(image[::step, ::step]), float(step)


def as_array(image: ImageLike) -> np.ndarray:
    """``(H, W, 3)`` uint8 pixels of an array, a :class:`LazyImage` or an image file."""
    if hasattr(image, "load"):  # LazyImage, SlideImage
        return image.load()
    if isinstance(image, np.ndarray):
        return to_rgb_uint8(image)
    return read_image(image)
