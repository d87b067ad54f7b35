"""Synthetic tissue: the embedded default dataset, generated on the fly and deterministic per seed.

Classes are curved bands across an elliptical piece of tissue, ordered like cortical layers.
Each class has its own stain colour and nucleus density, but neighbouring classes differ little
and a smooth staining field plus pixel noise blur them further, so one patch alone is often
ambiguous while the band order around it is not: exactly the case a spatial corrector fixes.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch.nn.functional as F
import torch

from ...graph import cartesian_graph, hex_graph, knn_graph
from ..section import Section
from ...names import Layout

LAYOUT_DEFAULTS = {
    # layout: (array rows, array columns, pixels between neighbouring spots)
    Layout.HEX.value: (32, 64, 16.0),
    Layout.CARTESIAN.value: (24, 26, 16.0),
    Layout.IRREGULAR.value: (None, None, 10.0),
}
_PINK = np.array([236.0, 178.0, 206.0])
_PURPLE = np.array([112.0, 64.0, 150.0])


class _Tissue:
    """Band and tissue geometry on normalised coordinates ``u, v`` in ``[0, 1]``."""

    def __init__(self, rng: np.random.Generator, n_classes: int):
        self.freq = rng.uniform(0.6, 1.2)
        self.phase = rng.uniform(0, 2 * np.pi)
        self.amp = rng.uniform(0.06, 0.12)
        self.tilt = rng.uniform(-0.15, 0.15)
        widths = rng.dirichlet(np.full(n_classes, 6.0))
        self.centre = rng.uniform(0.45, 0.55, size=2)
        self.radii = rng.uniform(0.46, 0.52, size=2)
        # Band edges are quantiles of depth over the tissue, so each class gets its share of area.
        gv, gu = np.mgrid[0:1:200j, 0:1:200j]
        depth = self.depth(gu, gv)[self.inside(gu, gv)]
        self.edges = np.quantile(depth, np.cumsum(widths)[:-1])

    def depth(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return v + self.amp * np.sin(2 * np.pi * self.freq * u + self.phase) + self.tilt * (u - 0.5)

    def label(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.edges, self.depth(u, v)).astype(np.int64)

    def inside(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        du = (u - self.centre[0]) / self.radii[0]
        dv = (v - self.centre[1]) / self.radii[1]
        return du**2 + dv**2 <= 1.0


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float, channels: int) -> np.ndarray:
    """``(h, w, channels)`` smooth noise of unit-ish amplitude, correlated over ``cell`` pixels."""
    gh, gw = max(int(h / cell) + 2, 2), max(int(w / cell) + 2, 2)
    coarse = torch.from_numpy(rng.standard_normal((1, channels, gh, gw)).astype(np.float32))
    fine = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)
    return fine[0].permute(1, 2, 0).numpy()


def _render(
    tissue: _Tissue,
    rng: np.random.Generator,
    width: int,
    height: int,
    n_classes: int,
    spacing: float,
    ambiguity: float,
) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = xs / (width - 1), ys / (height - 1)
    cls = tissue.label(u, v)
    level = cls / max(n_classes - 1, 1)
    base = _PINK + level[..., None] * (_PURPLE - _PINK)
    axis = (_PURPLE - _PINK) / max(n_classes - 1, 1)
    stain = _smooth_noise(rng, height, width, cell=1.5 * spacing, channels=4)
    # Staining varies mostly along the pink-purple axis (the axis that separates classes).
    img = base + ambiguity * 0.6 * stain[..., :1] * axis + 8.0 * ambiguity * stain[..., 1:]
    # Nuclei: dark dots whose density grows with depth, from a smooth random field.
    density = 0.004 + 0.02 * level + 0.01 * ambiguity * _smooth_noise(rng, height, width, spacing, 1)[..., 0]
    seeds = rng.random((height, width)) < np.clip(density, 0, 1) / 6.0
    blob = F.max_pool2d(torch.from_numpy(seeds[None, None].astype(np.float32)), 3, 1, 1)[0, 0].numpy()
    img = img * (1 - 0.45 * blob[..., None]) + 0.45 * blob[..., None] * np.array([60.0, 30.0, 90.0])
    img += rng.normal(0, 6.0, size=img.shape)
    background = ~tissue.inside(u, v)
    img[background] = np.array([242.0, 240.0, 244.0]) + rng.normal(0, 2.0, size=(background.sum(), 3))
    return img.round().clip(0, 255).astype(np.uint8)


def make_section(
    layout: str = Layout.HEX.value,
    n_classes: int = 5,
    seed: int = 0,
    shape: Optional[tuple[int, int]] = None,
    spacing_px: Optional[float] = None,
    ambiguity: float = 1.0,
    unlabeled_fraction: float = 0.02,
    n_points: int = 1500,
    k: int = 6,
    name: Optional[str] = None,
    expression_genes: int = 0,
) -> Section:
    """A synthetic tissue section with an RGB image and banded class labels.

    Args:
        layout: ``"hex"`` (Visium-like pseudo-hex array), ``"cartesian"`` (classic ST grid) or
            ``"irregular"`` (nuclei-like points with a kNN graph).
        n_classes: number of bands (classes ``"band0"``, ``"band1"``, ...).
        seed: everything is a deterministic function of the seed.
        shape: ``(array rows, array columns)`` for grid layouts (hex: 32 x 64; cartesian: 24 x 26).
        spacing_px: pixels between neighbouring spots or typical nucleus spacing (16 / 16 / 10).
        ambiguity: how much neighbouring classes overlap in appearance (0 = clean colours).
        unlabeled_fraction: share of nodes left unlabeled (label -1).
        n_points: number of candidate points for the irregular layout (those in tissue are kept).
        k: neighbours for the irregular layout's kNN graph.
        expression_genes: > 0 adds gene counts (``meta["counts"]``: ``{"genes", "matrix"}``, the
            ``(N, genes + 1)`` counts in node order) that are a known function of the image and of
            the neighbours (see :func:`synthetic_expression`); 0 (default) changes nothing.

    Only spots inside the elliptical tissue become nodes. ``spot_diameter_px`` is ``spacing_px``
    (the patch window of one spot pitch) and ``spot_diameter_um`` is 100.
    """
    if layout not in LAYOUT_DEFAULTS:
        raise ValueError(f"layout must be one of {sorted(LAYOUT_DEFAULTS)}, got {layout!r}")
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}")
    rng = np.random.default_rng(seed)
    rows, cols, default_spacing = LAYOUT_DEFAULTS[layout]
    if shape is not None:
        rows, cols = int(shape[0]), int(shape[1])
    s = float(spacing_px or default_spacing)
    tissue = _Tissue(rng, n_classes)

    if layout == Layout.HEX:
        r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        keep = (r % 2) == (c % 2)
        array_row, array_col = r[keep], c[keep]
        x = s + array_col * s / 2
        y = s + array_row * s * np.sqrt(3) / 2
        width, height = int(np.ceil(x.max() + s)), int(np.ceil(y.max() + s))
    elif layout == Layout.CARTESIAN:
        r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        array_row, array_col = r.ravel(), c.ravel()
        x, y = s + array_col * s, s + array_row * s
        width, height = int(np.ceil(x.max() + s)), int(np.ceil(y.max() + s))
    else:
        side = int(np.ceil(np.sqrt(n_points)))
        width = height = int(np.ceil((side + 1) * s))
        gy, gx = np.mgrid[0:side, 0:side].reshape(2, -1) + 0.5
        jitter = rng.uniform(-0.35, 0.35, size=(2, gx.size))
        x, y = (gx + jitter[0]) * s, (gy + jitter[1]) * s
        x, y = x[:n_points], y[:n_points]
        array_row = array_col = None

    u, v = x / (width - 1), y / (height - 1)
    inside = tissue.inside(u, v)
    labels = tissue.label(u, v)[inside]
    pos = np.stack([x, y], axis=1)[inside]
    drop = rng.random(len(labels)) < unlabeled_fraction
    labels = np.where(drop, -1, labels)
    image = _render(tissue, rng, width, height, n_classes, s, ambiguity)
    meta = {"seed": seed, "ambiguity": ambiguity}

    if layout == Layout.HEX:
        array_row, array_col = array_row[inside], array_col[inside]
        graph = hex_graph(array_row, array_col, pos=pos)
    elif layout == Layout.CARTESIAN:
        array_row, array_col = array_row[inside], array_col[inside]
        graph = cartesian_graph(array_row, array_col, pos=pos)
    else:
        graph = knn_graph(pos, k=k)
    if expression_genes:
        image, meta["counts"], meta["texture"] = synthetic_expression(image, pos, graph, s, expression_genes, seed)
    name = name or f"synthetic-{layout}-{seed}"
    return Section(
        graph=graph,
        labels=labels,
        classes=[f"band{i}" for i in range(n_classes)],
        barcodes=[f"{name}-{i}" for i in range(len(labels))],
        image=image,
        spot_diameter_px=s,
        spot_diameter_um=100.0,
        array_row=array_row,
        array_col=array_col,
        name=name,
        meta=meta,
    )


def synthetic_expression(image: np.ndarray, pos: np.ndarray, graph, spacing: float, genes: int,
                         seed: int) -> tuple:
    """Gene counts that the image explains in part and the neighbourhood in part.

    Every node gets a texture ``t`` ~ U(0, 1), drawn into the image as a dark disc of radius
    0.3 spot pitches at the node (inside its own one-pitch window, outside its neighbours');
    ``m`` is the mean ``t`` of its graph neighbours. Gene ``j``'s rate is
    ``50 * exp(a_j * (t - 1/2) + b_j * (m - 1/2))``: gene 0 follows the node's own image
    (``a = 2, b = 0``: f can learn it), gene 1 its neighbours' alone (``a = 0, b = 2``: only g,
    seeing f's values of the neighbours, can), further genes mix both at random. A last gene,
    ``filler``, holds ~5000 counts per node so that the per-node totals hardly vary. Counts are
    Poisson. Returns ``(image with the discs, {"genes", "matrix"}, t)``; the node layout and
    labels are untouched and the draws come from their own generator (``seed``).
    """
    from scipy import sparse

    rng = np.random.default_rng([int(seed), 27])
    n = len(pos)
    t = rng.random(n)
    src, dst = graph.edge_index.numpy()
    degree = np.bincount(src, minlength=n)
    m = np.where(degree > 0, np.bincount(src, weights=t[dst], minlength=n) / np.maximum(degree, 1), 0.5)
    a = np.concatenate([[2.0, 0.0], rng.uniform(0.5, 2.0, max(genes - 2, 0))])[:genes]
    b = np.concatenate([[0.0, 2.0], rng.uniform(0.5, 2.0, max(genes - 2, 0))])[:genes]
    rate = 50.0 * np.exp(np.outer(t - 0.5, a) + np.outer(m - 0.5, b))
    counts = rng.poisson(np.concatenate([rate, np.full((n, 1), 5000.0)], axis=1)).astype(np.float32)
    out = image.astype(np.float32)
    radius = 0.3 * spacing
    ys, xs = np.mgrid[0:image.shape[0], 0:image.shape[1]]
    for (x, y), ti in zip(pos, t):
        x0, x1 = int(max(x - radius - 1, 0)), int(min(x + radius + 2, image.shape[1]))
        y0, y1 = int(max(y - radius - 1, 0)), int(min(y + radius + 2, image.shape[0]))
        disc = (xs[y0:y1, x0:x1] - x) ** 2 + (ys[y0:y1, x0:x1] - y) ** 2 <= radius**2
        block = out[y0:y1, x0:x1]
        block[disc] = (1 - 0.8 * ti) * block[disc] + 0.8 * ti * np.array([40.0, 20.0, 60.0])
    names = [f"gene{j}" for j in range(genes)] + ["filler"]
    return out.round().clip(0, 255).astype(np.uint8), {"genes": names, "matrix": sparse.csr_matrix(counts)}, t


def make_dataset(n_sections: int = 4, layout: str = Layout.HEX.value, seed: int = 0, **kwargs) -> list:
    """``n_sections`` synthetic sections with seeds ``seed, seed + 1, ...`` (same classes)."""
    return [make_section(layout, seed=seed + i, **kwargs) for i in range(n_sections)]
