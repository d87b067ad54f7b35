"""Dense-grid machinery of the convolutional correctors (``conv2d``, ``hexconv``, ``unet``).

Dense correctors scatter node features into the ``(B, C, H, W)`` grid of a grid-layout
:class:`~gridgraph.graph.SpotGraph` (:func:`~gridgraph.graph.dense.to_dense`; cells without a node
are zero), convolve, and gather the node rows back (:func:`~gridgraph.graph.dense.from_dense`).
Several sections batch as one dense stack (``collate`` pads every grid to the largest shape).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..graph.dense import foreground_mask, from_dense, to_dense
from ..graph.spot_graph import SpotGraph
from ..names import Layout
from .base import Corrector

__all__ = ["GridLayer", "GridCorrector", "DenseCorrector"]


class GridLayer(nn.Module):
    """One convolution of a dense corrector, applied to node features.

    ``(N, C_in)`` -> scatter into ``(B, C_in, H, W)`` with zeros at cells without a node ->
    ``conv`` -> gather ``(N, C_out)`` -> optional batch-norm -> optional ReLU.

    Gathering after every convolution and scattering before the next one zeroes the background
    (and batch-padding) cells between layers: their values never leak into nodes, so a node's
    output depends only on the nodes within the receptive field, and the result of a section is
    the same alone or in a batch. Batch-norm therefore normalises over nodes only
    (:class:`torch.nn.BatchNorm1d` on ``(N, C_out)``), never over empty cells.
    """

    def __init__(self, conv: nn.Module, out_channels: int, batch_norm: bool = False,
                 relu: bool = False):
        super().__init__()
        self.conv = conv
        self.norm = nn.BatchNorm1d(out_channels) if batch_norm else None
        self.relu = relu

    def forward(self, h: Tensor, graph: SpotGraph) -> Tensor:
        h = from_dense(self.conv(to_dense(h, graph)), graph)
        if self.norm is not None:
            h = self.norm(h)
        return F.relu(h) if self.relu else h

    def forward_dense(self, h: Tensor, mask: Tensor) -> Tensor:
        """The same layer on a dense ``(B, C, H, W)`` grid, ``mask`` 1 at node cells.

        Equal to :meth:`forward` without batch-norm, and cheaper: multiplying by the mask zeroes
        the background instead of gathering and scattering the nodes around every convolution.
        """
        if self.norm is not None:
            raise ValueError("forward_dense() has no batch-norm over nodes; use forward()")
        h = self.conv(h) * mask
        return F.relu(h) if self.relu else h

    def extra_repr(self) -> str:
        return f"relu={self.relu}"


class GridCorrector(Corrector):
    """A corrector that works on the dense grid of a grid-layout :class:`SpotGraph`.

    Subclasses set ``layouts`` (the accepted ``graph.layout`` values).
    """

    layouts: Sequence[str] = (Layout.CARTESIAN.value, Layout.HEX.value)

    def check_graph(self, graph) -> None:
        """Raise a clear error unless ``graph`` is a SpotGraph of an accepted layout."""
        name = type(self).__name__
        if not isinstance(graph, SpotGraph):
            raise TypeError(
                f"{name} needs a SpotGraph with a grid layout, got {type(graph).__name__}; "
                "only the GNN correctors work on a bare edge_index"
            )
        if graph.layout not in self.layouts or graph.grid_index is None:
            hint = (
                "use a GNN corrector ('gcn', 'gat', 'sage')"
                if graph.layout == Layout.IRREGULAR
                else "use 'conv2d' or a GNN corrector"
            )
            raise ValueError(
                f"{name} works on {' or '.join(repr(v) for v in self.layouts)} graphs, got a graph "
                f"of layout {graph.layout!r}; {hint}"
            )


class DenseCorrector(GridCorrector):
    """A stack of :class:`GridLayer` s on the dense grid; subclasses fill ``self.layers``."""

    def __init__(self, num_classes: int, in_channels: Optional[int] = None):
        super().__init__(num_classes, in_channels)
        self.layers = nn.ModuleList()

    def extra_repr(self) -> str:
        hidden = getattr(self, "hidden_channels", None)
        extra = "" if hidden is None else f", hidden_channels={hidden}"
        if getattr(self, "batch_norm", False):
            extra += ", batch_norm=True"
        return super().extra_repr() + extra

    def output_layer(self) -> Optional[nn.Module]:
        return self.layers[-1] if len(self.layers) else None

    @staticmethod
    def crop_to_nodes(graph: SpotGraph) -> SpotGraph:
        """The same graph on the smallest dense grid that holds its nodes.

        Exact for :class:`GridLayer` stacks: cells outside the nodes' bounding box are background,
        zero before and after every layer, as the convolutions' zero padding is. Hex grids start
        at an even column, so every column keeps its parity and its hexagonal neighbourhood.
        """
        if graph.num_nodes == 0:
            return graph
        low = graph.grid_index.amin(0)
        if graph.layout == Layout.HEX:
            low = torch.stack([low[0], low[1] - low[1] % 2])
        high = graph.grid_index.amax(0)
        shape = tuple(int(v) for v in (high - low + 1))
        if shape == tuple(graph.grid_shape):
            return graph
        return replace(graph, grid_index=graph.grid_index - low, grid_shape=shape)

    def forward(self, x: Tensor, graph: SpotGraph) -> Tensor:
        """``(N, in_channels)`` node features -> ``(N, num_classes)`` node logits."""
        self.check_graph(graph)
        self._check_features(x, graph.num_nodes)
        graph = self.crop_to_nodes(graph)
        if any(layer.norm is not None for layer in self.layers):
            for layer in self.layers:
                x = layer(x, graph)
            return x
        h, mask = to_dense(x, graph), foreground_mask(graph).to(x.device, x.dtype)
        for layer in self.layers:
            h = layer.forward_dense(h, mask)
        return from_dense(h, graph)
