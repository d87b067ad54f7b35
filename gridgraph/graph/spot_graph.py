"""The :class:`SpotGraph`: nodes (spots or nuclei) with pixel positions, edges and grid indices."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional, Sequence

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from ..names import Layout

LAYOUTS = Layout.values()


@dataclass
class SpotGraph:
    """A graph over the foreground nodes of one tissue section, or a batch of sections.

    Attributes:
        pos: ``(N, 2)`` float pixel coordinates, ``x`` = column, ``y`` = row (squidpy's order).
        edge_index: ``(2, E)`` long, undirected (both directions stored, no duplicates).
        layout: ``"cartesian"``, ``"hex"`` or ``"irregular"``.
        grid_index: ``(N, 2)`` long ``(row, col)`` into a dense array of ``grid_shape``;
            only for grid layouts (``None`` for ``"irregular"``).
        grid_shape: ``(H, W)`` of the dense array used by convolutional correctors.
        batch: ``(N,)`` long graph id of each node when several sections are batched, else ``None``.
        ptr: ``(B + 1,)`` node offsets of each graph in a batch, else ``None``.
    """

    pos: Tensor
    edge_index: Tensor
    layout: str
    grid_index: Optional[Tensor] = None
    grid_shape: Optional[tuple[int, int]] = None
    batch: Optional[Tensor] = None
    ptr: Optional[Tensor] = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        self.pos = torch.as_tensor(self.pos, dtype=torch.float32).reshape(-1, 2)
        self.edge_index = torch.as_tensor(self.edge_index, dtype=torch.long).reshape(2, -1)
        if self.grid_index is not None:
            self.grid_index = torch.as_tensor(self.grid_index, dtype=torch.long).reshape(-1, 2)
            if self.grid_shape is None:
                raise ValueError("grid_index given without grid_shape")
            self.grid_shape = (int(self.grid_shape[0]), int(self.grid_shape[1]))
        elif self.layout != Layout.IRREGULAR:
            raise ValueError(f"a {self.layout!r} graph needs grid_index and grid_shape")

    @property
    def num_nodes(self) -> int:
        return int(self.pos.shape[0])

    @property
    def num_edges(self) -> int:
        """Number of directed edges (twice the number of undirected ones)."""
        return int(self.edge_index.shape[1])

    @property
    def num_graphs(self) -> int:
        return 1 if self.ptr is None else int(self.ptr.numel() - 1)

    @property
    def is_grid(self) -> bool:
        return self.grid_index is not None

    def degree(self) -> Tensor:
        """``(N,)`` number of neighbours of each node."""
        return torch.bincount(self.edge_index[0], minlength=self.num_nodes)

    def node_batch(self) -> Tensor:
        """``(N,)`` graph id of each node (zeros for a single graph)."""
        if self.batch is not None:
            return self.batch
        return torch.zeros(self.num_nodes, dtype=torch.long)

    def subgraph(self, mask: Tensor | np.ndarray) -> "SpotGraph":
        """Keep the nodes where ``mask`` is true and the edges between them (single graph only)."""
        if self.batch is not None:
            raise ValueError("subgraph() works on a single graph, not a batch")
        mask = torch.as_tensor(mask, dtype=torch.bool)
        if mask.shape != (self.num_nodes,):
            raise ValueError(f"mask must have shape ({self.num_nodes},), got {tuple(mask.shape)}")
        new_id = torch.full((self.num_nodes,), -1, dtype=torch.long)
        new_id[mask] = torch.arange(int(mask.sum()))
        keep = mask[self.edge_index[0]] & mask[self.edge_index[1]]
        return replace(
            self,
            pos=self.pos[mask],
            edge_index=new_id[self.edge_index[:, keep]],
            grid_index=None if self.grid_index is None else self.grid_index[mask],
            meta=dict(self.meta),
        )

    def to(self, device: torch.device | str) -> "SpotGraph":
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return replace(
            self,
            pos=move(self.pos),
            edge_index=move(self.edge_index),
            grid_index=move(self.grid_index),
            batch=move(self.batch),
            ptr=move(self.ptr),
        )

    def adjacency(self) -> sp.csr_matrix:
        """Symmetric ``(N, N)`` scipy CSR adjacency with unit weights."""
        ei = self.edge_index.cpu().numpy()
        data = np.ones(ei.shape[1], dtype=np.float32)
        return sp.csr_matrix((data, (ei[0], ei[1])), shape=(self.num_nodes, self.num_nodes))

    def to_networkx(self):
        """Undirected :class:`networkx.Graph`; node attribute ``pos`` is the pixel ``(x, y)``."""
        import networkx as nx

        g = nx.Graph()
        for i, (x, y) in enumerate(self.pos.tolist()):
            g.add_node(i, pos=(x, y))
        ei = self.edge_index.cpu().numpy()
        g.add_edges_from(zip(ei[0].tolist(), ei[1].tolist()))
        return g

    def to_pyg(self, x: Optional[Tensor] = None, y: Optional[Tensor] = None):
        """:class:`torch_geometric.data.Data` with ``pos``, ``edge_index`` and optional ``x``/``y``."""
        from torch_geometric.data import Data

        data = Data(x=x, edge_index=self.edge_index, pos=self.pos, y=y, num_nodes=self.num_nodes)
        if self.grid_index is not None:
            data.grid_index = self.grid_index
        if self.batch is not None:
            data.batch, data.ptr = self.batch, self.ptr
        return data

    def __repr__(self) -> str:
        grid = f", grid_shape={self.grid_shape}" if self.grid_shape else ""
        graphs = f", num_graphs={self.num_graphs}" if self.ptr is not None else ""
        return (
            f"SpotGraph(layout={self.layout!r}, num_nodes={self.num_nodes}, "
            f"num_edges={self.num_edges}{grid}{graphs})"
        )


def collate(graphs: Sequence[SpotGraph]) -> SpotGraph:
    """Batch several graphs into one, PyG style.

    Node ids of graph ``b`` are offset by the node count of the graphs before it; ``batch`` and
    ``ptr`` record where each graph lies. Grid layouts keep their own ``grid_index`` and the batch's
    ``grid_shape`` is the element-wise maximum, so :func:`~gridgraph.graph.dense.to_dense` stacks
    them into one ``(B, C, H, W)`` tensor. All graphs must share a layout.
    """
    if len(graphs) == 0:
        raise ValueError("collate() needs at least one graph")
    layouts = {g.layout for g in graphs}
    if len(layouts) != 1:
        raise ValueError(f"cannot batch graphs of different layouts: {sorted(layouts)}")
    if any(g.batch is not None for g in graphs):
        raise ValueError("collate() takes single graphs, not batches")
    counts = torch.tensor([g.num_nodes for g in graphs])
    ptr = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
    edge_index = torch.cat([g.edge_index + ptr[i] for i, g in enumerate(graphs)], dim=1)
    batch = torch.repeat_interleave(torch.arange(len(graphs)), counts)
    grid_index = grid_shape = None
    if graphs[0].grid_index is not None:
        grid_index = torch.cat([g.grid_index for g in graphs])
        grid_shape = (max(g.grid_shape[0] for g in graphs), max(g.grid_shape[1] for g in graphs))
    return SpotGraph(
        pos=torch.cat([g.pos for g in graphs]),
        edge_index=edge_index,
        layout=graphs[0].layout,
        grid_index=grid_index,
        grid_shape=grid_shape,
        batch=batch,
        ptr=ptr,
    )
