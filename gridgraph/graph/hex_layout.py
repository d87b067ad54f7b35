"""Mapping between Visium pseudo-hex array coordinates and HexagDLy's dense layout.

Visium numbers spots by ``array_row`` (0..77) and ``array_col`` (0..127) where ``array_col`` has the
parity of ``array_row``; a spot's six neighbours are ``(row, col +- 2)`` and ``(row +- 1, col +- 1)``.
HexagDLy expects columns of hexagons stacked vertically, with odd columns shifted down by half a
cell. The two agree when the dense array is the Visium array transposed::

    grid_row = array_col // 2        (0..63)
    grid_col = array_row             (0..77)

and back ``array_row = grid_col``, ``array_col = 2 * grid_row + grid_col % 2``. An even Visium row
becomes an unshifted (even) HexagDLy column, an odd row a shifted one, so the six Visium
neighbours are exactly HexagDLy's ring of radius one. A full 6.5 mm slide is a ``(64, 78)`` grid.
"""
from __future__ import annotations

import numpy as np

VISIUM_ROWS = 78
VISIUM_COLS = 128
VISIUM_GRID_SHAPE = (VISIUM_COLS // 2, VISIUM_ROWS)


def visium_to_hex_grid(array_row, array_col) -> np.ndarray:
    """``(N, 2)`` HexagDLy ``(grid_row, grid_col)`` of Visium array coordinates."""
    row = np.asarray(array_row, dtype=np.int64)
    col = np.asarray(array_col, dtype=np.int64)
    if row.shape != col.shape:
        raise ValueError(f"array_row and array_col differ in shape: {row.shape} vs {col.shape}")
    if (row < 0).any() or (col < 0).any():
        raise ValueError("Visium array coordinates must be non-negative")
    bad = (row % 2) != (col % 2)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"array_col must have the parity of array_row on a hex array; spot {i} has "
            f"array_row={row[i]}, array_col={col[i]}"
        )
    return np.stack([col // 2, row], axis=1)


def hex_grid_to_visium(grid_index) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`visium_to_hex_grid`: ``(array_row, array_col)``."""
    g = np.asarray(grid_index, dtype=np.int64).reshape(-1, 2)
    array_row = g[:, 1]
    array_col = 2 * g[:, 0] + g[:, 1] % 2
    return array_row, array_col


def hex_grid_neighbour_offsets(grid_col_parity: int) -> list[tuple[int, int]]:
    """The six ``(d_row, d_col)`` steps to a cell's neighbours in HexagDLy's layout."""
    shift = 0 if grid_col_parity == 0 else 1
    return [(-1, 0), (1, 0), (shift - 1, -1), (shift, -1), (shift - 1, 1), (shift, 1)]
