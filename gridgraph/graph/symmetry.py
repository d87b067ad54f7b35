"""Rotations and mirrors of a whole section that map its spot lattice onto itself.

A lattice symmetry moves every spot to another lattice site and keeps neighbours neighbours, so
``edge_index`` and node order stay as they are; only ``grid_index``, ``grid_shape`` and ``pos``
change. That makes it a cheap whole-section augmentation for convolutional correctors, which see
the section through its dense grid:

- ``"hex"`` (Visium, :mod:`~gridgraph.graph.hex_layout`): the 12 symmetries of the hexagonal
  lattice, rotations by multiples of 60 degrees, each with or without a mirror;
- ``"cartesian"``: the 8 symmetries of the square lattice (90 degree rotations, mirrors);
- ``"irregular"``: the same 8 applied to ``pos`` (there is no grid).

The whole dense grid moves with the section: the new ``grid_shape`` is the bounding box of the
transformed ``(H, W)`` array, so the margin around the tissue is kept.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

import numpy as np
import torch

from ..names import Layout
from .hex_layout import hex_grid_to_visium, visium_to_hex_grid
from .spot_graph import SpotGraph

__all__ = ["num_symmetries", "lattice_symmetry", "RandomLatticeSymmetry"]

_ORDER = {Layout.HEX.value: 6, Layout.CARTESIAN.value: 4, Layout.IRREGULAR.value: 4}


def num_symmetries(layout: str) -> int:
    """Number of distinct lattice symmetries (rotations x mirror) of a layout: 12 or 8."""
    if layout not in _ORDER:
        raise ValueError(f"unknown layout {layout!r}; expected one of {sorted(_ORDER)}")
    return 2 * _ORDER[layout]


def _hex_map(rc: np.ndarray, k: int, flip: bool) -> np.ndarray:
    """Visium ``(array_row, array_col)`` rows -> transformed ones, through cube coordinates."""
    row, col = rc[:, 0], rc[:, 1]
    q, r = (col - row) // 2, row
    s = -q - r
    for _ in range(k):
        q, r, s = -r, -s, -q
    if flip:
        r, s = s, r
    return np.stack([r, 2 * q + r], axis=1)


def _square_map(rc: np.ndarray, k: int, flip: bool) -> np.ndarray:
    r, c = rc[:, 0], rc[:, 1]
    for _ in range(k):
        r, c = -c, r
    if flip:
        c = -c
    return np.stack([r, c], axis=1)


def _full_grid(shape) -> np.ndarray:
    rows, cols = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    return np.stack([rows.ravel(), cols.ravel()], axis=1)


def _transform_grid(grid_index: np.ndarray, shape, layout: str, k: int, flip: bool):
    """New ``(grid_index, grid_shape, lattice coordinates before, after)``.

    Hex grids move in Visium array coordinates, where the hexagonal symmetries act.
    """
    if layout == Layout.HEX:
        to_lattice = lambda g: np.stack(hex_grid_to_visium(g), axis=1)  # noqa: E731
        to_grid = lambda a: visium_to_hex_grid(a[:, 0], a[:, 1])  # noqa: E731
        move = _hex_map
    else:
        to_lattice = to_grid = lambda g: g  # noqa: E731
        move = _square_map
    before = to_lattice(grid_index)
    after, cells = move(before, k, flip), move(to_lattice(_full_grid(shape)), k, flip)
    shift = -cells.min(axis=0)
    if layout == Layout.HEX and (shift[1] - shift[0]) % 2:  # keep array_col's parity equal to array_row's
        shift[1] += 1
    after, cells = after + shift, cells + shift
    new_shape = tuple(int(v) + 1 for v in to_grid(cells).max(axis=0))
    return to_grid(after), new_shape, before, after


def _transform_pos(pos: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Map ``pos`` through the affine fit ``lattice -> pixels``, applied to the new lattice sites."""
    design = np.c_[before.astype(np.float64), np.ones(len(before))]
    coef, _, rank, _ = np.linalg.lstsq(design, pos, rcond=None)
    if rank < 3:  # fewer than three non-collinear sites: no unique affine map, pos stays
        return pos
    return np.c_[after.astype(np.float64), np.ones(len(after))] @ coef


def _rotate_points(pos: np.ndarray, k: int, flip: bool) -> np.ndarray:
    centre = pos.mean(axis=0) if len(pos) else np.zeros(2)
    p = pos - centre
    for _ in range(k):
        p = np.stack([-p[:, 1], p[:, 0]], axis=1)
    if flip:
        p = p * np.array([-1.0, 1.0])
    return p + centre


def lattice_symmetry(graph: SpotGraph, k: int, flip: bool = False) -> SpotGraph:
    """Rotate a section by ``k`` lattice steps (60 degrees on hex, 90 otherwise), then mirror.

    Args:
        graph: a single (not batched) SpotGraph.
        k: rotation steps, ``0 <= k < 6`` on ``"hex"`` graphs and ``0 <= k < 4`` otherwise.
        flip: mirror after rotating.

    Returns a new SpotGraph with the same nodes and ``edge_index``; ``k=0, flip=False`` returns
    ``graph`` itself. ``pos`` (pixels) follows the lattice through the affine map that places the
    sites in the image (a rotation about the centroid for irregular graphs).
    """
    if graph.batch is not None:
        raise ValueError("lattice_symmetry() works on a single graph, not a batch")
    order = _ORDER[graph.layout]
    if not 0 <= int(k) < order:
        raise ValueError(f"k must be in [0, {order}) for a {graph.layout!r} graph, got {k}")
    if k == 0 and not flip:
        return graph
    pos = graph.pos.detach().cpu().double().numpy()
    if graph.grid_index is None:
        new_pos = _rotate_points(pos, int(k), bool(flip))
        return replace(graph, pos=torch.from_numpy(new_pos).float().to(graph.pos.device),
                       meta=dict(graph.meta))
    index, shape, before, after = _transform_grid(
        graph.grid_index.cpu().numpy(), graph.grid_shape, graph.layout, int(k), bool(flip)
    )
    new_pos = _transform_pos(pos, before, after) if graph.num_nodes else pos
    device = graph.grid_index.device
    return replace(
        graph,
        pos=torch.from_numpy(new_pos).float().to(graph.pos.device),
        grid_index=torch.from_numpy(index).long().to(device),
        grid_shape=shape,
        meta=dict(graph.meta),
    )


class RandomLatticeSymmetry:
    """Apply one of the layout's lattice symmetries (:func:`lattice_symmetry`) uniformly at random.

    Input and output: a single :class:`SpotGraph`; nodes, edges and their order are unchanged.
    Draws from ``generator`` (default: torch's global one), so a seeded generator gives the
    same sequence of symmetries.
    """

    def __init__(self, generator: Optional[torch.Generator] = None):
        self.generator = generator

    def __call__(self, graph: SpotGraph) -> SpotGraph:
        n = num_symmetries(graph.layout)
        pick = int(torch.randint(n, (1,), generator=self.generator))
        return lattice_symmetry(graph, pick // 2, flip=bool(pick % 2))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
