"""Node patches cut from a whole-slide image, block by block, never holding the slide.

Windows are grouped by the ``block``-pixel square their corner falls in (reading order); each
group is one region read (only the tiles it touches are decoded), cut and resized, in parallel
threads. :func:`iter_slide_patches` yields chunks as they are ready, so f can consume them while
the next are read; :func:`extract_slide_patches` fills the whole ``(N, 3, P, P)`` tensor.
At level 0 the patches are bit-identical to :func:`~gridgraph.patches.extract_patches` on the
decoded slide.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Optional

import numpy as np
import torch

from ..io.images.slide import SlideImage
from ..io.images.slide_store import usable_cores
from .cut import resize_windows, window_corners

__all__ = ["plan_level", "iter_slide_patches", "extract_slide_patches"]


def plan_level(slide: SlideImage, window_px: float, patch_size: Optional[int]) -> tuple[int, float]:
    """``(level, downsample)``: the coarsest pyramid level that still has at least ``patch_size``
    pixels across a ``window_px`` (level-0 pixels) window."""
    if patch_size is None:
        return 0, 1.0
    level = slide.level_for(max(float(window_px) / int(patch_size), 1.0))
    return level, slide.downsamples[level]


def default_threads() -> int:
    """Regions read at once by default: the CPU cores this process may use, 1 to 8. Resizing
    one region at a time leaves torch's own threads idle much of the time, so one thread per core
    is about twice as fast as one in all on 2 cores."""
    return usable_cores(8)


def _groups(corners: np.ndarray, block: int) -> list:
    """Node indices grouped by the block their window's corner falls in, in reading order."""
    key = np.floor_divide(corners[:, 1], block) * (1 << 32) + np.floor_divide(corners[:, 0], block)
    order = np.argsort(key, kind="stable")
    cuts = np.flatnonzero(np.diff(key[order])) + 1
    return np.split(order, cuts)


def _cut_group(slide, level, idx, corners, w, p, out=None, table=None) -> tuple[np.ndarray, torch.Tensor]:
    lo, hi = corners[idx].min(0), corners[idx].max(0) + w
    width, height = slide.level_sizes[level]
    inside = (corners[idx, 0] + w > 0) & (corners[idx, 1] + w > 0) & (corners[idx, 0] < width) & (corners[idx, 1] < height)
    crops = np.empty((len(idx), w, w, 3), dtype=np.uint8)
    if inside.any():
        region = slide.read_region(int(lo[0]), int(lo[1]), int(hi[0] - lo[0]), int(hi[1] - lo[1]), level)
        for k in np.flatnonzero(inside):
            x, y = corners[idx[k]] - lo
            crops[k] = region[y: y + w, x: x + w]
    for k in np.flatnonzero(~inside):  # entirely outside: its own nearest-border read
        crops[k] = slide.read_region(int(corners[idx[k], 0]), int(corners[idx[k], 1]), w, w, level)
    rows = None if out is None else torch.from_numpy(idx)
    return idx, resize_windows(crops, p, out=out, rows=rows, table=table)


def _group_results(slide, pixel_pos, window_px, patch_size, level, block, threads, out=None, table=None):
    """``(node indices, patches)`` per block group, in reading order, ``threads`` groups ahead;
    with ``out`` ``(N, 3, P, P)`` the patches are written into it instead."""
    pos = np.asarray(pixel_pos, dtype=np.float64).reshape(-1, 2)
    if not np.all(np.isfinite(pos)):
        raise ValueError("pixel_pos holds NaN or infinite coordinates")
    if level is None:
        level, down = plan_level(slide, window_px, patch_size)
    else:
        down = slide.downsamples[level]
    w = max(int(round(float(window_px) / down)), 1)
    p = w if patch_size is None else int(patch_size)
    corners = window_corners(pos / down, w)
    threads = default_threads() if threads is None else max(int(threads), 1)
    pending = deque()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for idx in _groups(corners, block):
            pending.append(pool.submit(_cut_group, slide, level, idx, corners, w, p, out, table))
            if len(pending) > threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def iter_slide_patches(slide: SlideImage, pixel_pos, window_px: float, patch_size: Optional[int] = None,
                       level: Optional[int] = None, block: int = 2048, chunk: int = 512,
                       threads: Optional[int] = None, table: Optional[torch.Tensor] = None
                       ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(node indices (n,), patches (n, 3, P, P) uint8)`` until every node is covered.

    Args:
        slide: the open slide.
        pixel_pos: ``(N, 2)`` level-0 pixel ``(x, y)`` of the node centres.
        window_px: side of the window around each centre, in level-0 pixels.
        patch_size: side ``P`` of the patches (default: the window at the level read).
        level: pyramid level to read (default :func:`plan_level`'s choice).
        block: side of the reading blocks, in pixels of that level.
        chunk: about this many patches per yielded chunk.
        threads: regions read and resized at once (imagecodecs and torch work without the GIL);
            default :func:`default_threads`.
        table: optional ``(3, 256)`` colour table applied to the patches
            (:func:`~gridgraph.patches.plan.section_stain_table`).

    Memory: ``threads + 1`` regions of about ``(block + window)^2`` pixels, plus one chunk.
    """
    ready, count = [], 0
    for part in _group_results(slide, pixel_pos, window_px, patch_size, level, block, threads, table=table):
        ready.append(part)
        count += len(part[0])
        if count >= chunk:
            yield _join(ready)
            ready, count = [], 0
    if ready:
        yield _join(ready)


def _join(parts: list) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.from_numpy(np.concatenate([i for i, _ in parts])),
            torch.cat([t for _, t in parts]))


def extract_slide_patches(slide: SlideImage, pixel_pos, window_px: float, patch_size: Optional[int] = None,
                          level: Optional[int] = None, block: int = 2048, threads: Optional[int] = None
                          ) -> torch.Tensor:
    """``(N, 3, P, P)`` uint8 patches in node order (see :func:`iter_slide_patches`), written
    straight into the result."""
    n = len(np.asarray(pixel_pos).reshape(-1, 2))
    if n == 0:
        raise ValueError("extract_slide_patches() got no nodes")
    if level is None:
        level, down = plan_level(slide, window_px, patch_size)
    else:
        down = slide.downsamples[level]
    p = int(patch_size) if patch_size is not None else max(int(round(float(window_px) / down)), 1)
    out = torch.empty((n, 3, p, p), dtype=torch.uint8)
    for _ in _group_results(slide, pixel_pos, window_px, p, level, block, threads, out=out):
        pass
    return out
