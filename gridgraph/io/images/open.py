"""A reader's image argument made usable: paths, arrays, PIL images and slide options."""
from __future__ import annotations

from typing import Mapping, Optional

import numpy as np

from ..tables.checks import require_file
from .image import ImageLike, LazyImage, to_rgb_uint8
from .slide import SlideImage, open_image_file

__all__ = ["open_image", "image_source"]


def open_image(image: Optional[ImageLike], what: str = "image") -> Optional[ImageLike]:
    """A reader's image argument made usable: a TIFF path becomes a :class:`SlideImage` (read
    window by window), another path a :class:`LazyImage` (decoded on first use), a mapping
    ``{"path": ..., "intensity": ..., "channels": ..., "microns_per_pixel": ..., "nonfinite_fill": ...}`` a
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
