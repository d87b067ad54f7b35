"""Drawing nodes on a map: squares, hexagons or dots, rasterised for large sections."""
from __future__ import annotations

from typing import Optional

import numpy as np
from matplotlib.collections import PolyCollection

from ..names import Layout

#: Sections with more nodes are drawn as one raster image instead of one shape per node.
RASTER_MIN_NODES = 20_000


def _spacing(pos: np.ndarray) -> float:
    """Median nearest-neighbour distance (1.0 for fewer than two distinct points)."""
    if len(pos) < 2:
        return 1.0
    from scipy.spatial import cKDTree

    d, _ = cKDTree(pos).query(pos, k=2)
    d = d[:, 1]
    d = d[d > 0]
    return float(np.median(d)) if d.size else 1.0


def _polygons(pos: np.ndarray, layout: str, spacing: float) -> np.ndarray:
    """``(N, V, 2)`` vertices of a square (cartesian) or pointy-top hexagon (hex) per node."""
    if layout == Layout.CARTESIAN:
        h = spacing / 2.0
        offsets = np.array([[-h, -h], [h, -h], [h, h], [-h, h]])
    else:  # hexagons that tile a lattice with neighbour distance ``spacing``
        r = spacing / np.sqrt(3.0)
        ang = np.pi / 2 + np.arange(6) * np.pi / 3
        offsets = np.stack([r * np.cos(ang), r * np.sin(ang)], axis=1)
    return pos[:, None, :] + offsets[None, :, :]


def _axes_pixels(ax) -> tuple[int, int]:
    fig, bbox = ax.figure, ax.get_position()
    return (max(int(bbox.width * fig.get_figwidth() * fig.dpi), 1),
            max(int(bbox.height * fig.get_figheight() * fig.dpi), 1))


def node_raster(pos: np.ndarray, colors: np.ndarray, spacing: float, shape: tuple[int, int]) -> tuple:
    """Nodes painted into one RGBA image: ``(H, W, 4)`` float array and its data ``extent``.

    ``pos`` ``(N, 2)`` data ``(x, y)``; ``colors`` ``(N, 4)`` RGBA; each node fills a square of its
    ``spacing`` (at least one pixel) on a grid of at most ``shape = (W, H)`` pixels over the
    nodes' bounding box, so memory is that of the image, not of N shapes. Later nodes win.
    """
    lo, hi = pos.min(axis=0) - spacing, pos.max(axis=0) + spacing
    cell = float(max((hi[0] - lo[0]) / shape[0], (hi[1] - lo[1]) / shape[1]))
    w, h = (int(np.ceil((hi - lo)[i] / cell)) + 1 for i in (0, 1))
    img = np.zeros((h, w, 4))
    side = max(int(round(spacing / cell)), 1)
    ix = ((pos[:, 0] - lo[0]) / cell - side / 2).astype(np.int64)
    iy = ((pos[:, 1] - lo[1]) / cell - side / 2).astype(np.int64)
    for dy in range(side):
        for dx in range(side):
            img[np.clip(iy + dy, 0, h - 1), np.clip(ix + dx, 0, w - 1)] = colors
    return img, (lo[0], lo[0] + w * cell, lo[1] + h * cell, lo[1])


def _draw_nodes(ax, pos, layout, colors, spacing, marker_size) -> None:
    """Draw one marker per node: squares, hexagons (data units) or dots (``marker_size`` pt²);
    past :data:`RASTER_MIN_NODES` nodes, one raster image (:func:`node_raster`)."""
    if len(pos) == 0:
        return
    if len(pos) >= RASTER_MIN_NODES:
        img, extent = node_raster(pos, np.asarray(colors, dtype=float), spacing, _axes_pixels(ax))
        ax.imshow(img, extent=extent, origin="upper", interpolation="nearest")
        return
    if layout == Layout.IRREGULAR:
        if marker_size is None:
            fig = ax.figure
            bbox = ax.get_position()
            width_pt = bbox.width * fig.get_figwidth() * 72.0
            height_pt = bbox.height * fig.get_figheight() * 72.0
            span = np.ptp(pos, axis=0) + spacing
            scale = min(width_pt / span[0], height_pt / span[1])
            marker_size = float(np.clip((0.8 * spacing * scale) ** 2, 0.25, 100.0))
        ax.scatter(pos[:, 0], pos[:, 1], c=colors, s=marker_size, linewidths=0, marker="o")
    else:
        coll = PolyCollection(_polygons(pos, layout, spacing), facecolors=colors, edgecolors="none")
        ax.add_collection(coll)


#: Longest side, in pixels, of a background read for a figure (4096: 48 MiB of RGB at most).
BACKGROUND_MAX_SIDE = 4096
#: Shortest side it is read at, so small figures of small images stay sharp.
BACKGROUND_MIN_SIDE = 256


def background_side(ax, image_side: float, view_side: float) -> int:
    """Pixels a side of a background that gives about one image pixel per figure pixel over the
    view: the figure's longest side in pixels times ``image_side / view_side`` (the view is the
    part of the image the axes show), within ``BACKGROUND_MIN_SIDE..BACKGROUND_MAX_SIDE``."""
    fig_px = float(max(ax.figure.get_size_inches())) * float(ax.figure.dpi)
    need = int(np.ceil(fig_px * image_side / max(view_side, 1.0)))
    return min(max(need, BACKGROUND_MIN_SIDE), BACKGROUND_MAX_SIDE)


def _draw_background(ax, image, view_side: Optional[float] = None) -> None:
    """An image under the nodes, read at the figure's pixel size (:func:`background_side`;
    :func:`~gridgraph.io.images.image.thumbnail`: whole-slide images from the matching pyramid level,
    image files decoded reduced, arrays decimated), drawn in full-resolution pixel coordinates:
    a figure of a gigapixel slide needs tens of MiB, not the slide."""
    from ..io.images.image import image_size, thumbnail

    side = max(image_size(image))
    thumb, f = thumbnail(image, background_side(ax, side, side if view_side is None else view_side))
    h, w = thumb.shape[:2]
    ax.imshow(thumb, extent=(-0.5 * f, (w - 0.5) * f, (h - 0.5) * f, -0.5 * f), origin="upper",
              interpolation="nearest")


def _setup_map_axes(ax, pos, spacing, image, title) -> None:
    if len(pos):
        lo = pos.min(axis=0) - spacing
        hi = pos.max(axis=0) + spacing
    else:
        lo, hi = np.zeros(2), np.ones(2)
    if image is not None:
        _draw_background(ax, image, float(max(hi - lo)))
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(hi[1], lo[1])  # y downwards, as in the image
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
