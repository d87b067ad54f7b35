"""The base class of the correctors g: node features + graph -> node logits."""
from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

__all__ = ["Corrector"]


class Corrector(nn.Module):
    """Base class of the correctors.

    Maps node features ``(N, in_channels)`` + a graph to node logits ``(N, num_classes)``;
    ``in_channels`` defaults to ``num_classes`` (g fed with f's probabilities or logits).
    """

    def __init__(self, num_classes: int, in_channels: Optional[int] = None):
        super().__init__()
        self.num_classes = int(num_classes)
        self.in_channels = int(num_classes if in_channels is None else in_channels)

    def _check_features(self, x: Tensor, num_nodes: Optional[int]) -> None:
        if x.dim() != 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} expects node features (N, {self.in_channels}), "
                f"got {tuple(x.shape)}"
            )
        if num_nodes is not None and x.shape[0] != num_nodes:
            raise ValueError(f"x has {x.shape[0]} rows but the graph has {num_nodes} nodes")

    def check_graph(self, graph) -> None:
        """Raise a clear error if this corrector cannot run on ``graph`` (any graph here)."""

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, num_classes={self.num_classes}"
