"""Spatial correctors g: node features ``(N, C)`` + graph -> node logits ``(N, K)``.

Build one by name with :func:`build_corrector` (``"conv2d"``, ``"hexconv"``, ``"gcn"``,
``"gat"``, ``"sage"``, ``"unet"``) or use the classes directly. Dense correctors need a grid-layout
:class:`~gridgraph.graph.SpotGraph`; GNN correctors take any ``edge_index``.
"""
from .base import Corrector, zero_output_layer
from .conv2d import Conv2dCorrector
from .ensemble import CorrectorEnsemble, combine_members
from .dense import DenseCorrector, GridCorrector, GridLayer
from .gnn import GATCorrector, GCNCorrector, GNNCorrector, SAGECorrector
from .hexconv import HexConv2d, HexConvCorrector
from .registry import CORRECTORS, available_correctors, build_corrector, register_corrector
from .unet import UNetCorrector

__all__ = [
    "CORRECTORS",
    "Corrector",
    "CorrectorEnsemble",
    "combine_members",
    "zero_output_layer",
    "GridCorrector",
    "DenseCorrector",
    "GridLayer",
    "Conv2dCorrector",
    "HexConv2d",
    "HexConvCorrector",
    "GNNCorrector",
    "GCNCorrector",
    "GATCorrector",
    "SAGECorrector",
    "UNetCorrector",
    "build_corrector",
    "register_corrector",
    "available_correctors",
]
