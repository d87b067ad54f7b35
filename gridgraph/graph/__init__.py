"""Spot and cell graphs: the :class:`SpotGraph` and one builder per edge rule."""
from .builders import cartesian_graph, hex_graph, knn_graph, radius_graph, undirected_edges
from .dense import foreground_mask, from_dense, to_dense
from .hex_layout import VISIUM_GRID_SHAPE, hex_grid_to_visium, visium_to_hex_grid
from .spot_graph import LAYOUTS, SpotGraph, collate
from .spec import GRAPH_BUILDERS, GraphSpec
from .symmetry import RandomLatticeSymmetry, lattice_symmetry, num_symmetries

__all__ = [
    "SpotGraph",
    "LAYOUTS",
    "collate",
    "cartesian_graph",
    "hex_graph",
    "knn_graph",
    "radius_graph",
    "GRAPH_BUILDERS",
    "GraphSpec",
    "undirected_edges",
    "to_dense",
    "from_dense",
    "foreground_mask",
    "visium_to_hex_grid",
    "hex_grid_to_visium",
    "VISIUM_GRID_SHAPE",
    "lattice_symmetry",
    "RandomLatticeSymmetry",
    "num_symmetries",
]
