"""gridgraph: registration of histology images at spatial -omics spots and cells."""
__version__ = "0.1.0"

from .graph import SpotGraph, cartesian_graph, collate, hex_graph, knn_graph, radius_graph
from .io import Section

__all__ = [
    "SpotGraph",
    "Section",
    "cartesian_graph",
    "hex_graph",
    "knn_graph",
    "radius_graph",
    "collate",
]
