"""Cut a fixed window around every node of a section into a uint8 patch stack."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..io.images.image import ImageLike, as_array
from ..io.images.slide import SlideImage
from .stain import apply_stain_table_rgb


def _window(img: np.ndarray, x0: int, y0: int, w: int) -> np.ndarray:
    """``(w, w, 3)`` crop with top-left ``(x0, y0)``, edge-padded where it leaves the image."""
    h_img, w_img = img.shape[:2]
    xa, ya = max(x0, 0), max(y0, 0)
    xb, yb = min(x0 + w, w_img), min(y0 + w, h_img)
    if xa >= xb or ya >= yb:  # entirely outside: replicate the nearest border pixel
        cx, cy = min(max(x0, 0), w_img - 1), min(max(y0, 0), h_img - 1)
        return np.broadcast_to(img[cy, cx], (w, w, 3))
    crop = img[ya:yb, xa:xb]
    pad = ((ya - y0, y0 + w - yb), (xa - x0, x0 + w - xb), (0, 0))
    if any(p for pair in pad for p in pair):
        crop = np.pad(crop, pad, mode="edge")
    return crop


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
            (:func:`~gridgraph.patches.stain.section_stain_table`).

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


def reading_order(corners: np.ndarray, band: int) -> np.ndarray:
    """``(N,)`` node indices sorted by horizontal bands of ``band`` pixels, then by ``x``: windows
    cut in this order share image rows in the CPU cache (about 2x faster than scattered order)."""
    corners = np.asarray(corners).reshape(-1, 2)
    return np.lexsort((corners[:, 0], np.floor_divide(corners[:, 1], max(int(band), 1))))


def cut_windows(img: np.ndarray, corners: np.ndarray, w: int) -> np.ndarray:
    """``(n, w, w, 3)`` uint8 windows (channels last, as in the image) of ``img`` ``(H, W, 3)``
    with top-left ``corners`` ``(n, 2)`` ``(x, y)``. Windows inside the image are gathered in one
    vectorised copy of whole window rows; the few that cross the border are edge-padded one by
    one."""
    h_img, w_img = img.shape[:2]
    x0, y0 = corners[:, 0], corners[:, 1]
    inside = (x0 >= 0) & (y0 >= 0) & (x0 + w <= w_img) & (y0 + w <= h_img)
    crops = np.empty((len(corners), w, w, 3), dtype=np.uint8)
    if inside.any():
        s_row, s_col, s_ch = img.strides
        view = np.lib.stride_tricks.as_strided(  # (H', W', w, w, 3): every window, no copy
            img, shape=(h_img - w + 1, w_img - w + 1, w, w, 3), strides=(s_row, s_col, s_row, s_col, s_ch),
            writeable=False)
        crops[inside] = view[y0[inside], x0[inside]]
    for k in np.flatnonzero(~inside):
        crops[k] = _window(img, int(x0[k]), int(y0[k]), w)
    return crops


def window_corners(pos: np.ndarray, window: int) -> np.ndarray:
    """``(N, 2)`` integer top-left ``(x, y)`` of ``window``-pixel squares centred on ``pos``."""
    return np.floor(pos - window / 2.0 + 0.5).astype(np.int64)


def resize_windows(crops: np.ndarray, patch_size: int, batch: Optional[int] = None,
                   out: Optional[torch.Tensor] = None, rows: Optional[torch.Tensor] = None,
                   table: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``(n, h, w, 3)`` uint8 windows (channels last, as cut from an image) -> ``(n, 3, P, P)``
    uint8: bilinear, antialiased (:func:`torch.nn.functional.interpolate`'s kernel on uint8, in
    integer arithmetic: within 1 of rounding the float resize), ``batch`` windows at a time
    (default: about 4 MiB of windows; the result does not depend on it). With ``out`` (and
    ``rows``, one row of ``out`` per window) the patches are written there instead. With a colour
    ``table`` ``(3, 256)`` (:mod:`gridgraph.patches.stain`) the resized patches are looked up in it,
    equal to :func:`~gridgraph.patches.stain.apply_stain_table` on the result."""
    chunk = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2)  # channels-last view
    if chunk.dtype != torch.uint8:
        raise TypeError(f"windows must be uint8, got {chunk.dtype}")
    if out is None:
        out, rows = torch.empty((len(chunk), 3, patch_size, patch_size), dtype=torch.uint8), None
    h, w = chunk.shape[-2:]
    batch = batch or max(1, (4 << 20) // max(h * w * 3, 1))
    for start in range(0, len(chunk), batch):
        part = chunk[start: start + batch]
        if (h, w) != (patch_size, patch_size):
            part = F.interpolate(part, size=(patch_size, patch_size), mode="bilinear", antialias=True,
                                 align_corners=False)
        if table is not None:  # while the patches are channels last and in cache
            part = torch.from_numpy(apply_stain_table_rgb(part.permute(0, 2, 3, 1).numpy(), table)).permute(0, 3, 1, 2)
        out[slice(start, start + batch) if rows is None else rows[start: start + batch]] = part
    return out


def section_window_px(section, window_px: Optional[float] = None, window_um: Optional[float] = None,
                      window_spots: Optional[float] = None) -> float:
    """The window side in the section's image pixels; give exactly one of the three units.

    ``window_um`` converts micrometres with the section's known spot diameter (Visium: 55 um),
    ``window_spots`` is a multiple of the spot diameter in pixels.
    """
    given = [v is not None for v in (window_px, window_um, window_spots)]
    if sum(given) != 1:
        raise ValueError("give exactly one of window_px, window_um, window_spots")
    if window_um is not None:
        if section.microns_per_px is None:
            raise ValueError(
                f"section {section.name}: window_um needs its µm per pixel (spot_diameter_px and "
                "spot_diameter_um, the slide's metadata or microns_per_pixel)"
            )
        return window_um / section.microns_per_px
    if window_spots is not None:
        if not section.spot_diameter_px:
            raise ValueError(f"section {section.name}: window_spots needs spot_diameter_px")
        return window_spots * section.spot_diameter_px
    return float(window_px)


def window_for_resolution(section, patch_size: int, microns_per_pixel: float) -> float:
    """The window side, in the section's image pixels, whose ``patch_size``-pixel patches have
    ``microns_per_pixel`` µm per pixel (e.g. the resolution a model was trained at):
    ``patch_size * microns_per_pixel / section.microns_per_px``. Pass it as ``window_px`` to
    :func:`section_patches`; a whole slide then reads the pyramid level closest above that
    resolution. ``ValueError`` when the section's pixel size is unknown."""
    if not (float(microns_per_pixel) > 0 and int(patch_size) >= 1):
        raise ValueError(f"microns_per_pixel must be > 0 and patch_size >= 1, got {microns_per_pixel}, {patch_size}")
    if section.microns_per_px is None:
        raise ValueError(f"section {section.name}: its µm per pixel is unknown (no spot diameter, "
                         "slide metadata or microns_per_pixel given)")
    return int(patch_size) * float(microns_per_pixel) / section.microns_per_px


def section_patches(
    section,
    patch_size: int,
    window_px: Optional[float] = None,
    window_um: Optional[float] = None,
    window_spots: Optional[float] = None,
    nodes: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Patches of every node of a :class:`~gridgraph.io.Section` (or of the node indices
    ``nodes``, in that order); give exactly one window size (see :func:`section_window_px`). A
    whole-slide image (:class:`~gridgraph.io.images.slide.SlideImage`) is read window by window from
    the pyramid level the patch size needs (:mod:`gridgraph.patches.slide`), never as a whole.
    """
    window_px = section_window_px(section, window_px, window_um, window_spots)
    pos = section.pixel_pos.numpy() if nodes is None else section.pixel_pos[nodes].numpy()
    if isinstance(section.image, SlideImage):
        from .slide import extract_slide_patches

        return extract_slide_patches(section.image, pos, window_px, patch_size)
    return extract_patches(section.load_image(), pos, window_px, patch_size)


def iter_section_patches(section, patch_size: int, window_px: Optional[float] = None,
                         window_um: Optional[float] = None, window_spots: Optional[float] = None,
                         chunk: int = 4096, table: Optional[torch.Tensor] = None):
    """Yield ``(node indices, patches)`` chunks covering every node of ``section``: a whole-slide
    image block by block (:func:`~gridgraph.patches.slide.iter_slide_patches`), an image array
    ``chunk`` nodes at a time in :func:`reading_order`. Patches equal :func:`section_patches`'s
    (looked up in the colour ``table`` when given); memory is one chunk."""
    window = section_window_px(section, window_px, window_um, window_spots)
    pos = section.pixel_pos.numpy()
    if isinstance(section.image, SlideImage):
        from .slide import iter_slide_patches

        yield from iter_slide_patches(section.image, pos, window, patch_size, chunk=chunk, table=table)
        return
    image = section.load_image()
    w = max(int(round(window)), 1)
    order = reading_order(window_corners(pos, w), w)
    for start in range(0, len(pos), chunk):
        idx = order[start: start + chunk]
        yield torch.from_numpy(idx), extract_patches(image, pos[idx], window, patch_size, table=table)
