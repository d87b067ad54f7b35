"""Scatter node features into dense grids and gather them back (for convolutional correctors)."""
from __future__ import annotations

import torch
from torch import Tensor

from .spot_graph import SpotGraph


def _require_grid(graph: SpotGraph) -> None:
    if graph.grid_index is None:
        raise ValueError(
            f"a dense grid needs a grid layout (cartesian or hex), got a {graph.layout!r} graph"
        )


def to_dense(x: Tensor, graph: SpotGraph) -> Tensor:
    """Scatter node features ``(N, C)`` into ``(B, C, H, W)``; cells without a node are zero."""
    _require_grid(graph)
    if x.shape[0] != graph.num_nodes:
        raise ValueError(f"x has {x.shape[0]} rows but the graph has {graph.num_nodes} nodes")
    h, w = graph.grid_shape
    b = graph.num_graphs
    gi = graph.grid_index.to(x.device)
    flat = graph.node_batch().to(x.device) * (h * w) + gi[:, 0] * w + gi[:, 1]
    dense = x.new_zeros(b * h * w, x.shape[1])
    dense = dense.index_copy(0, flat, x)
    return dense.view(b, h, w, -1).permute(0, 3, 1, 2)


def from_dense(dense: Tensor, graph: SpotGraph) -> Tensor:
    """Gather ``(B, C, H, W)`` back to node features ``(N, C)``."""
    _require_grid(graph)
    gi = graph.grid_index.to(dense.device)
    nb = graph.node_batch().to(dense.device)
    return dense[nb, :, gi[:, 0], gi[:, 1]]


def foreground_mask(graph: SpotGraph) -> Tensor:
    """``(B, 1, H, W)`` float mask, 1 at cells holding a node."""
    ones = torch.ones(graph.num_nodes, 1, device=graph.pos.device)
    return to_dense(ones, graph)
