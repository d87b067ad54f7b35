"""gridgraph: registration of histology images at spatial -omics spots and cells.

f (a patch CNN) classifies the image around every node; g (a corrector on the nodes' layout)
refines those predictions: GridNet (Daly, Geras & Bonneau 2020) generalised to graphs.
"""
__version__ = "0.1.0"

from .baselines import resnet34_seg
from .correctors import available_correctors, build_corrector, register_corrector
from .encoders import build_encoder, densenet121, encode, gridnet_simple
from .graph import SpotGraph, cartesian_graph, collate, hex_graph, knn_graph, radius_graph
from .io import Section
from .model import GridGraphNet, build_model

__all__ = [
    "SpotGraph",
    "Section",
    "cartesian_graph",
    "hex_graph",
    "knn_graph",
    "radius_graph",
    "collate",
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
