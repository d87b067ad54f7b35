"""Cut a fixed window around every node of a section into a uint8 patch stack.

The window's size is a :class:`~gridgraph.patches.window.Window` (or one of its three unit fields);
the cutting itself is :mod:`~gridgraph.patches.cut` (image arrays) and
:mod:`~gridgraph.patches.slide` (whole-slide images).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ..io.images.image import ImageLike, as_array
from ..io.images.slide import SlideImage
from .cut import cut_windows, reading_order, resize_windows, window_corners
from .slide import extract_slide_patches, iter_slide_patches
from .window import Window

__all__ = ["extract_patches", "section_patches", "iter_section_patches", "section_window_px"]


def extract_patches(
    image: ImageLike,
    pixel_pos,
    window_px: float,
    patch_size: Optional[int] = None,
    chunk_size: Optional[int] = None,
    table: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Patches centred on each node.

    Args:
        image: ``(H, W, 3)`` uint8 array, :class:`~gridgraph.io.images.image.LazyImage` or image path.
        pixel_pos: ``(N, 2)`` pixel ``(x, y)`` of the node centres.
        window_px: side of the square window cut around each centre, in image pixels (rounded,
            at least 1). Past the image border the edge pixels are repeated.
        patch_size: side ``P`` of the returned patches; windows are resized to it (bilinear,
            antialiased). Defaults to the window size.
        chunk_size: windows cut and resized at a time (bounds the working memory; default
            16 MiB of windows).
        table: optional ``(3, 256)`` colour table applied to the patches
            (:func:`~gridgraph.patches.plan.section_stain_table`).

    Returns:
        ``(N, 3, P, P)`` uint8 tensor. Only node windows are cut: no dense grid of background.
    """
    img = as_array(image)
    pos = np.asarray(pixel_pos, dtype=np.float64).reshape(-1, 2)
    if not np.all(np.isfinite(pos)):
        raise ValueError("pixel_pos holds NaN or infinite coordinates")
    w = max(int(round(float(window_px))), 1)
    p = w if patch_size is None else int(patch_size)
    if p < 1:
        raise ValueError(f"patch_size must be positive, got {patch_size}")
    out = torch.empty((len(pos), 3, p, p), dtype=torch.uint8)
    corners = window_corners(pos, w)
    order = reading_order(corners, w)
    chunk_size = chunk_size or max(8, (16 << 20) // (w * w * 3))
    for start in range(0, len(pos), chunk_size):
        rows = order[start: start + chunk_size]
        resize_windows(cut_windows(img, corners[rows], w), p, out=out, rows=torch.from_numpy(rows), table=table)
    return out


def section_window_px(section, window_px: Optional[float] = None, window_um: Optional[float] = None,
                      window_spots: Optional[float] = None) -> float:
    """The window side in the section's image pixels; give exactly one of the three units
    (:meth:`Window.pixels <gridgraph.patches.window.Window.pixels>` of
    :meth:`Window.from_fields <gridgraph.patches.window.Window.from_fields>`)."""
    return Window.from_fields(window_px, window_um, window_spots).pixels(section)


def section_patches(
    section,
    patch_size: int,
    window_px: Optional[float] = None,
    window_um: Optional[float] = None,
    window_spots: Optional[float] = None,
    nodes: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Patches of every node of a :class:`~gridgraph.io.Section` (or of the node indices
    ``nodes``, in that order); give exactly one window size (see
    :meth:`~gridgraph.patches.window.Window.pixels`). A whole-slide image
    (:class:`~gridgraph.io.images.slide.SlideImage`) is read window by window from the pyramid
    level the patch size needs (:mod:`gridgraph.patches.slide`), never as a whole.
    """
    window_px = section_window_px(section, window_px, window_um, window_spots)
    pos = section.pixel_pos.numpy() if nodes is None else section.pixel_pos[nodes].numpy()
    if isinstance(section.image, SlideImage):
        return extract_slide_patches(section.image, pos, window_px, patch_size)
    return extract_patches(section.load_image(), pos, window_px, patch_size)


def iter_section_patches(section, patch_size: int, window_px: Optional[float] = None,
                         window_um: Optional[float] = None, window_spots: Optional[float] = None,
                         chunk: int = 4096, table: Optional[torch.Tensor] = None):
    """Yield ``(node indices, patches)`` chunks covering every node of ``section``: a whole-slide
    image block by block (:func:`~gridgraph.patches.slide.iter_slide_patches`), an image array
    ``chunk`` nodes at a time in :func:`~gridgraph.patches.cut.reading_order`. Patches equal
    :func:`section_patches`'s (looked up in the colour ``table`` when given); memory is one chunk."""
    window = section_window_px(section, window_px, window_um, window_spots)
    pos = section.pixel_pos.numpy()
    if isinstance(section.image, SlideImage):
        yield from iter_slide_patches(section.image, pos, window, patch_size, chunk=chunk, table=table)
        return
    image = section.load_image()
    w = max(int(round(window)), 1)
    order = reading_order(window_corners(pos, w), w)
    for start in range(0, len(pos), chunk):
        idx = order[start: start + chunk]
        yield torch.from_numpy(idx), extract_patches(image, pos[idx], window, patch_size, table=table)
