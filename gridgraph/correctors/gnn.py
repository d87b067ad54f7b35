"""Graph-neural-network correctors on ``edge_index``: any layout, including kNN graphs of nuclei.

(torch_geometric is imported when a corrector is built, not when gridgraph is imported.)

They are plain PyG-style modules and work without the rest of gridgraph::

    from gridgraph.correctors import GCNCorrector
    g = GCNCorrector(num_classes=7, in_channels=data.num_features)
    logits = g(data.x, data.edge_index)      # or g(data), or g(x, spot_graph)
"""
from __future__ import annotations

from typing import Any, Optional, Union

import warnings
import weakref

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from ..graph.spot_graph import SpotGraph
from .base import Corrector
from .registry import CORRECTORS

__all__ = ["GNNCorrector", "GCNCorrector", "GATCorrector", "SAGECorrector", "gcn_adjacency"]


def _edge_index(graph) -> Tensor:
    if isinstance(graph, Tensor):
        if graph.dim() != 2 or graph.shape[0] != 2:
            raise ValueError(f"edge_index must have shape (2, E), got {tuple(graph.shape)}")
        return graph
    edge_index = getattr(graph, "edge_index", None)  # SpotGraph, PyG Data or Batch
    if edge_index is None:
        raise TypeError(
            f"expected an edge_index tensor, a SpotGraph or a PyG Data, got {type(graph).__name__}"
        )
    return edge_index


class GNNCorrector(Corrector):
    """A stack of message-passing layers mapping node features to node logits.

    ``num_layers`` convolutions: ``in_channels -> hidden -> ... -> hidden -> num_classes``. Every
    layer but the last is followed by optional batch-norm, ReLU and dropout; with ``residual`` a
    hidden layer whose input and output widths match adds its input (``h = h + layer(h)``).

    Args:
        num_classes: K, output width.
        in_channels: input width (default K).
        hidden_channels: hidden width (default 32).
        num_layers: number of graph convolutions (default 3; 1 = a single conv ``in -> K``).
        residual: residual connections around the hidden layers (default ``True``).
        dropout: dropout probability after every hidden layer (default 0).
        batch_norm: :class:`torch.nn.BatchNorm1d` after every hidden layer (default ``False``).
        **conv_kwargs: passed to every convolution (e.g. ``improved=True`` for GCN).

    ``forward(x, graph)``: ``x`` ``(N, in_channels)``; ``graph`` a ``(2, E)`` ``edge_index``, a
    :class:`~gridgraph.graph.SpotGraph` (single or collated) or a PyG ``Data``/``Batch``; or
    ``forward(data)`` with a PyG ``Data`` holding ``x``. Returns ``(N, K)``.
    """

    conv_name = "gnn"

    def __init__(
        self,
        num_classes: int,
        in_channels: Optional[int] = None,
        hidden_channels: int = 32,
        num_layers: int = 3,
        residual: bool = True,
        dropout: float = 0.0,
        batch_norm: bool = False,
        **conv_kwargs: Any,
    ):
        super().__init__(num_classes, in_channels)
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.hidden_channels = int(hidden_channels)
        self.num_layers = int(num_layers)
        self.residual = bool(residual)
        self.dropout = float(dropout)
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        c_in = self.in_channels
        for i in range(num_layers):
            last = i == num_layers - 1
            c_out = self.num_classes if last else self.hidden_channels
            self.convs.append(self.make_conv(c_in, c_out, last, **conv_kwargs))
            if not last:
                self.norms.append(nn.BatchNorm1d(c_out) if batch_norm else nn.Identity())
            c_in = c_out

    def make_conv(
        self, in_channels: int, out_channels: int, last: bool, **kwargs: Any
    ) -> nn.Module:
        """Build one graph convolution ``in_channels -> out_channels``."""
        raise NotImplementedError

    def forward(self, x: Union[Tensor, Any], graph: Union[Tensor, SpotGraph, Any] = None) -> Tensor:
        if graph is None:
            if isinstance(x, Tensor):
                raise TypeError(f"{type(self).__name__}(x, graph) needs a graph or edge_index")
            graph, x = x, x.x
        edge_index = _edge_index(graph).to(x.device)
        num_nodes = None if isinstance(graph, Tensor) else getattr(graph, "num_nodes", None)
        self._check_features(x, num_nodes)
        edge_index = self.adjacency(edge_index, x.shape[0], x)
        h = x
        for i, conv in enumerate(self.convs):
            out = conv(h, edge_index)
            if i == self.num_layers - 1:
                return out
            out = F.relu(self.norms[i](out))
            out = F.dropout(out, self.dropout, self.training)
            h = h + out if self.residual and out.shape == h.shape else out
        return h

    def adjacency(self, edge_index: Tensor, num_nodes: int, x: Tensor) -> Tensor:
        """What every convolution is given as the graph (default: ``edge_index`` itself)."""
        return edge_index

    def output_layer(self) -> nn.Module:
        return self.convs[-1]

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, hidden_channels={self.hidden_channels}, "
            f"num_layers={self.num_layers}, residual={self.residual}, dropout={self.dropout}"
        )


class GCNCorrector(GNNCorrector):
    """:class:`GNNCorrector` of :class:`torch_geometric.nn.GCNConv` layers (self-loops included,
    symmetric normalisation): one layer mixes each node with exactly its graph neighbours.

    ``improved``, ``add_self_loops`` and ``normalize`` mean what they mean for ``GCNConv``; the
    normalised adjacency is built once per graph (:func:`gcn_adjacency`, a sparse CSR matrix
    shared by all layers and by correctors called on the same ``edge_index`` in a row), not
    once per layer.
    """

    def make_conv(self, in_channels, out_channels, last, improved=False, add_self_loops=True, normalize=True,
                  **kwargs):
        from torch_geometric.nn import GCNConv

        self.improved, self.add_self_loops, self.normalize = bool(improved), bool(add_self_loops), bool(normalize)
        return GCNConv(in_channels, out_channels, add_self_loops=False, normalize=False, **kwargs)

    def adjacency(self, edge_index: Tensor, num_nodes: int, x: Tensor) -> Tensor:
        return gcn_adjacency(edge_index, num_nodes, self.improved, self.add_self_loops, self.normalize, x.dtype)


class SAGECorrector(GNNCorrector):
    """:class:`GNNCorrector` of :class:`torch_geometric.nn.SAGEConv` layers (mean aggregation by
    default; ``aggr=...`` changes it)."""

    def make_conv(self, in_channels, out_channels, last, **kwargs):
        from torch_geometric.nn import SAGEConv

        return SAGEConv(in_channels, out_channels, **kwargs)


class GATCorrector(GNNCorrector):
    """:class:`GNNCorrector` of :class:`torch_geometric.nn.GATConv` layers.

    Extra argument ``heads`` (default 1): hidden layers concatenate ``heads`` heads of
    ``hidden_channels // heads`` channels (``hidden_channels`` must be divisible by it); the last
    layer averages its heads.
    """

    def __init__(self, num_classes: int, in_channels: Optional[int] = None,
                 hidden_channels: int = 32, num_layers: int = 3, heads: int = 1, **kwargs: Any):
        if heads < 1 or hidden_channels % heads:
            raise ValueError(
                f"hidden_channels ({hidden_channels}) must be divisible by heads ({heads})"
            )
        self.heads = int(heads)
        super().__init__(num_classes, in_channels, hidden_channels, num_layers, **kwargs)

    def make_conv(self, in_channels, out_channels, last, **kwargs):
        from torch_geometric.nn import GATConv

        if last:
            return GATConv(in_channels, out_channels, heads=self.heads, concat=False, **kwargs)
        return GATConv(in_channels, out_channels // self.heads, heads=self.heads, **kwargs)


_LAST_ADJACENCY: list = []  # [(weakref to edge_index, its version, settings), adjacency]


def gcn_adjacency(edge_index: Tensor, num_nodes: int, improved: bool = False, add_self_loops: bool = True,
                  normalize: bool = True, dtype: torch.dtype = torch.float32) -> Tensor:
    """``(2, E)`` edges (source, target) -> the ``(N, N)`` sparse CSR matrix ``A_t`` with
    ``A_t[i, j]`` the weight of ``j``'s message to ``i``: GCN's symmetric normalisation of the
    graph with self-loops (``improved``: weight 2) when ``normalize``, ones otherwise; duplicate
    edges add up. The last result is kept for the same ``edge_index`` tensor (unchanged since)."""
    settings = (num_nodes, improved, add_self_loops, normalize, dtype, edge_index.device)
    if _LAST_ADJACENCY:
        (ref, version, known), adj = _LAST_ADJACENCY
        if ref() is edge_index and version == edge_index._version and known == settings:
            return adj
    if normalize:
        from torch_geometric.nn.conv.gcn_conv import gcn_norm

        edges, weight = gcn_norm(edge_index, None, num_nodes, improved, add_self_loops, dtype=dtype)
    else:
        edges, weight = edge_index, torch.ones(edge_index.shape[1], dtype=dtype, device=edge_index.device)
    keys = [edges[1] * num_nodes + edges[0]]
    del edges  # neither gcn_norm's (2, E) copy nor the unsorted keys are held while the matrix is built
    adj = _csr_from_keys(keys, weight, num_nodes)
    _LAST_ADJACENCY[:] = [(weakref.ref(edge_index), edge_index._version, settings), adj]
    return adj


def _csr_from_keys(keys: list, values: Tensor, n: int) -> Tensor:
    """``(n, n)`` sparse CSR matrix of the entries ``keys[0] = row * n + col`` with ``values``;
    repeated entries add up. The keys are taken out of the list, so that only their sorted copy
    lives on; no inverse index is made unless some entry repeats, and no row array (the row
    pointers come from a binary search of the sorted keys)."""
    key, order = torch.sort(keys.pop())
    values = values[order]
    del order
    if bool((key[1:] == key[:-1]).any()):
        key, inverse = torch.unique_consecutive(key, return_inverse=True)
        values = torch.zeros(len(key), dtype=values.dtype, device=values.device).index_add_(0, inverse, values)
        del inverse
    crow = torch.searchsorted(key, torch.arange(n + 1, dtype=key.dtype, device=key.device) * n)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, key % n, values, (n, n), check_invariants=False)


def _convs(name: str):
    def targets():
        import torch_geometric.nn as pyg

        return [getattr(pyg, name), pyg.MessagePassing]

    return targets


CORRECTORS.register("gcn", GCNCorrector, forwards_to=_convs("GCNConv"))
CORRECTORS.register("gat", GATCorrector, forwards_to=_convs("GATConv"))
CORRECTORS.register("sage", SAGECorrector, forwards_to=_convs("SAGEConv"))
