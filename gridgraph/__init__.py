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

from .baselines import resnet34_seg
from .correctors import available_correctors, build_corrector, register_corrector
from .encoders import build_encoder, densenet121, encode, gridnet_simple
from .model import GridGraphNet, build_model

__all__ += [
    "GridGraphNet",
    "build_model",
    "build_encoder",
    "build_corrector",
    "register_corrector",
    "available_correctors",
    "encode",
    "gridnet_simple",
    "densenet121",
    "resnet34_seg",
]
