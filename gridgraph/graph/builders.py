"""Graph builders, one per edge rule.

Units are explicit: ``array_row``/``array_col`` are integer array indices of a spot array, ``pos``
is in image pixels as ``(x, y)`` = (column, row).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from scipy.spatial import cKDTree

from .hex_layout import hex_grid_neighbour_offsets, visium_to_hex_grid
from .spot_graph import SpotGraph

_CARTESIAN_OFFSETS = {
    4: [(-1, 0), (1, 0), (0, -1), (0, 1)],
    8: [(-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1)],
}


def undirected_edges(src: np.ndarray, dst: np.ndarray, num_nodes: int) -> torch.Tensor:
    """``(2, E)`` edge index holding both directions of every pair, without duplicates or loops."""
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    keep = src != dst
    a = np.concatenate([src[keep], dst[keep]])
    b = np.concatenate([dst[keep], src[keep]])
    key = np.sort(a * num_nodes + b)
    if key.size:
        key = key[np.concatenate([[True], key[1:] != key[:-1]])]
    return torch.from_numpy(np.stack([key // num_nodes, key % num_nodes]))


def _default_pos(pos, grid_index: np.ndarray) -> np.ndarray:
    if pos is not None:
        pos = np.asarray(pos, dtype=np.float64)
        if pos.shape != (len(grid_index), 2):
            raise ValueError(f"pos must have shape ({len(grid_index)}, 2), got {pos.shape}")
        return pos
    return grid_index[:, ::-1].astype(np.float64)


def _grid_edges(grid_index: np.ndarray, grid_shape: tuple[int, int], offsets_for) -> torch.Tensor:
    """Connect each cell to the occupied cells at the offsets ``offsets_for(parity)`` away."""
    n = len(grid_index)
    h, w = grid_shape
    lookup = np.full((h, w), -1, dtype=np.int64)
    rows, cols = grid_index[:, 0], grid_index[:, 1]
    lookup[rows, cols] = np.arange(n)
    if np.count_nonzero(lookup >= 0) != n:
        flat = rows * w + cols
        _, first, counts = np.unique(flat, return_index=True, return_counts=True)
        dup = int(first[np.argmax(counts > 1)])
        raise ValueError(f"two spots share the grid cell (row={rows[dup]}, col={cols[dup]})")
    width = max(len(offsets_for(0)), len(offsets_for(1)))
    neighbours = np.full((n, width), -1, dtype=np.int64)
    for parity in (0, 1):
        sel = np.flatnonzero(cols % 2 == parity)
        for k, (dr, dc) in enumerate(offsets_for(parity)):
            r, c = rows[sel] + dr, cols[sel] + dc
            inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
            found = np.full(len(sel), -1, dtype=np.int64)
            found[inside] = lookup[r[inside], c[inside]]
            neighbours[sel, k] = found
    neighbours.sort(axis=1)
    valid = neighbours >= 0
    src, dst = np.repeat(np.arange(n), valid.sum(axis=1)), neighbours[valid]
    # Rows in node order, each sorted: already the sorted (src, dst) list. It is the undirected
    # edge list when every edge was also found from its other end (symmetric offsets).
    if np.array_equal(src * n + dst, np.sort(dst * n + src)):
        return torch.from_numpy(np.stack([src, dst]))
    return undirected_edges(src, dst, n)


# Most cells a dense grid may have. The builders allocate an int64 lookup of the grid (512 MiB at
# this size) and dense correctors a float map per channel; real arrays are far smaller (a whole
# Visium slide is 64 x 78 = 4,992 cells), so a bigger grid means corrupted array coordinates.
MAX_GRID_CELLS = 2**26


def _check_grid_shape(grid_index: np.ndarray, grid_shape) -> tuple[int, int]:
    need = tuple(int(v) + 1 for v in grid_index.max(axis=0)) if len(grid_index) else (0, 0)
    if grid_shape is not None:
        grid_shape = (int(grid_shape[0]), int(grid_shape[1]))
        if grid_shape[0] < need[0] or grid_shape[1] < need[1]:
            raise ValueError(f"grid_shape {grid_shape} is too small for the spots, which need {need}")
    shape = need if grid_shape is None else grid_shape
    if shape[0] * shape[1] > MAX_GRID_CELLS:
        raise ValueError(
            f"grid_shape {shape} has {shape[0] * shape[1]} cells; a dense grid may have at most "
            f"2**26 = {MAX_GRID_CELLS} (are the array coordinates corrupted?)"
        )
    return shape


def _array_coords(array_row, array_col) -> tuple[np.ndarray, np.ndarray]:
    row = np.asarray(array_row)
    col = np.asarray(array_col)
    for name, v in (("array_row", row), ("array_col", col)):
        if v.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional, got shape {v.shape}")
        if not np.issubdtype(v.dtype, np.integer):
            if not np.all(np.isfinite(v)) or not np.all(v == np.round(v)):
                raise ValueError(f"{name} must hold integer array indices")
        if (v < 0).any():
            raise ValueError(f"{name} must be non-negative array indices")
    if row.shape != col.shape:
        raise ValueError(f"array_row and array_col differ in length: {len(row)} vs {len(col)}")
    return row.astype(np.int64), col.astype(np.int64)


def cartesian_graph(
    array_row,
    array_col,
    connectivity: int = 4,
    pos=None,
    grid_shape: Optional[tuple[int, int]] = None,
) -> SpotGraph:
    """Graph of a Cartesian spot array (classic ST).

    Args:
        array_row, array_col: ``(N,)`` integer array indices of each spot.
        connectivity: 4 (edge neighbours) or 8 (also diagonal neighbours).
        pos: ``(N, 2)`` pixel ``(x, y)``; defaults to ``(array_col, array_row)``.
        grid_shape: ``(H, W)`` of the dense array; defaults to the smallest that holds every spot.

    ``grid_index`` is ``(array_row, array_col)``.
    """
    if connectivity not in _CARTESIAN_OFFSETS:
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    row, col = _array_coords(array_row, array_col)
    offsets = _CARTESIAN_OFFSETS[connectivity]
    return _grid_graph(np.stack([row, col], axis=1), grid_shape, lambda parity: offsets, pos, "cartesian")


def hex_graph(
    array_row, array_col, pos=None, grid_shape: Optional[tuple[int, int]] = None
) -> SpotGraph:
    """Graph of a Visium pseudo-hex array: each spot joined to its (up to) six true neighbours.

    Args:
        array_row, array_col: ``(N,)`` Visium array indices (``array_col`` has ``array_row``'s parity).
        pos: ``(N, 2)`` pixel ``(x, y)``; defaults to ``(array_col, array_row * sqrt(3))``, which is
            proportional to the physical layout.
        grid_shape: ``(H, W)`` of the HexagDLy array; defaults to the smallest that holds every spot
            (pass :data:`~gridgraph.graph.hex_layout.VISIUM_GRID_SHAPE` for a whole slide).

    ``grid_index`` follows :mod:`gridgraph.graph.hex_layout`: ``(array_col // 2, array_row)``.
    """
    row, col = _array_coords(array_row, array_col)
    if pos is None:
        pos = np.stack([col, row * np.sqrt(3.0)], axis=1)
    return _grid_graph(visium_to_hex_grid(row, col), grid_shape, hex_grid_neighbour_offsets, pos, "hex")


def _grid_graph(grid_index: np.ndarray, grid_shape, offsets_for, pos, layout: str) -> SpotGraph:
    """The SpotGraph of nodes at ``grid_index`` joined by the grid offsets of their parity."""
    shape = _check_grid_shape(grid_index, grid_shape)
    return SpotGraph(
        pos=torch.from_numpy(_default_pos(pos, grid_index)),
        edge_index=_grid_edges(grid_index, shape, offsets_for),
        layout=layout,
        grid_index=torch.from_numpy(grid_index),
        grid_shape=shape,
    )


def _points(pos) -> np.ndarray:
    pts = np.asarray(pos, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"pos must have shape (N, 2), got {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise ValueError("pos holds NaN or infinite coordinates")
    return pts


def knn_graph(pos, k: int = 6, workers: int = -1) -> SpotGraph:
    """Symmetric k-nearest-neighbour graph of points (e.g. nuclei centroids).

    Each point is joined to its ``k`` nearest other points and the result is symmetrised, so
    every node has degree ``>= k`` (when ``N > k``). ``pos`` is ``(N, 2)`` pixel ``(x, y)``.
    Uses a KD-tree on all cores: about a second for 10^6 points.
    """
    pts = _points(pos)
    n = len(pts)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    kk = min(k, n - 1)
    if kk < 1:
        return SpotGraph(pos=torch.from_numpy(pts), edge_index=torch.zeros((2, 0)), layout="irregular")
    tree = cKDTree(pts, leafsize=32, balanced_tree=False)
    # Querying in the tree's leaf order keeps neighbouring queries in cache: about 2x faster.
    order = tree.indices
    extra = 1
    while True:
        _, nb = tree.query(pts[order], k=kk + extra, workers=workers)
        edge_index = undirected_edges(np.repeat(order, kk + extra), nb.reshape(-1), n)
        # Coincident points can push a point out of its own result, leaving it k - 1 others.
        if extra > 1 or (torch.bincount(edge_index[0], minlength=n) >= kk).all():
            break
        extra = 2
    return SpotGraph(pos=torch.from_numpy(pts), edge_index=edge_index, layout="irregular")


def radius_graph(pos, r: float, max_num_neighbors: Optional[int] = None) -> SpotGraph:
    """Graph joining every pair of points closer than ``r`` pixels (``(N, 2)`` pixel ``pos``).

    ``max_num_neighbors`` optionally keeps only each point's nearest neighbours within ``r``
    (before symmetrisation).
    """
    pts = _points(pos)
    n = len(pts)
    if not r > 0:
        raise ValueError(f"r must be positive, got {r}")
    tree = cKDTree(pts)
    if max_num_neighbors is None:
        pairs = tree.query_pairs(r, output_type="ndarray")
        edge_index = undirected_edges(pairs[:, 0], pairs[:, 1], n)
    else:
        dist, nb = tree.query(pts, k=max_num_neighbors + 1, distance_upper_bound=r)
        src = np.repeat(np.arange(n), max_num_neighbors + 1)
        ok = np.isfinite(dist.reshape(-1))
        edge_index = undirected_edges(src[ok], nb.reshape(-1)[ok], n)
    return SpotGraph(pos=torch.from_numpy(pts), edge_index=edge_index, layout="irregular")
