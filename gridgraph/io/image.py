"""Loading slide images as RGB uint8, lazily where possible."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image


ImageLike = Union[str, os.PathLike, np.ndarray, "LazyImage"]


@contextlib.contextmanager
def _no_pixel_limit():
    """Lift Pillow's decompression-bomb guard (89 Mpx) for gridgraph's own reads only: slide
    images are far above it. The process-wide setting is restored on exit."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


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


def read_image(path: Union[str, os.PathLike]) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 (greyscale, RGBA, palette and 16-bit converted)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with _no_pixel_limit(), Image.open(path) as im:
            if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                return to_rgb_uint8(np.asarray(im), str(path))
            if im.mode != "RGB":
                im = im.convert("RGBA" if "A" in im.getbands() or im.mode == "P" else "RGB")
            return to_rgb_uint8(np.asarray(im), str(path))
    except (OSError, Image.DecompressionBombError) as err:
        raise ValueError(f"{path}: cannot read as an image ({err})") from err


class LazyImage:
    """An image file that is decoded on first use; its size comes from the header alone.

    ``size`` is ``(width, height)`` in pixels; :meth:`load` returns ``(H, W, 3)`` uint8 and caches it.
    """

    def __init__(self, path: Union[str, os.PathLike]):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"image file not found: {self.path}")
        try:
            with _no_pixel_limit(), Image.open(self.path) as im:
                self.size = (int(im.width), int(im.height))
        except OSError as err:
            raise ValueError(f"{self.path}: cannot read as an image ({err})") from err
        self._array = None

    def load(self) -> np.ndarray:
        if self._array is None:
            self._array = read_image(self.path)
        return self._array

    def thumbnail(self, max_side: int = 2048) -> tuple[np.ndarray, float]:
        """``(image, factor)``: ``(h, w, 3)`` uint8 at most ``max_side`` a side, and image pixels
        per thumbnail pixel. A JPEG is decoded at a reduced scale (Pillow's draft mode); other
        formats are decoded once and reduced, without keeping the full image."""
        if self._array is not None or max(self.size) <= max_side:
            return thumbnail(self.load() if self._array is None else self._array, max_side)
        with _no_pixel_limit(), Image.open(self.path) as im:
            if im.mode not in ("RGB", "RGBA", "L", "LA", "P"):
                return thumbnail(read_image(self.path), max_side)
            im = im.convert("RGBA") if im.mode == "P" else im
            im.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
            small = to_rgb_uint8(np.asarray(im), str(self.path))
        return small, self.size[0] / small.shape[1]

    def release(self) -> None:
        """Drop the decoded pixels (they are read again on the next :meth:`load`)."""
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
    (:meth:`~gridgraph.io.slide.SlideImage.thumbnail`), image files a reduced decode
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
