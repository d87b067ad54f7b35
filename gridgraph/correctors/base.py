"""The base class of the correctors g: node features + graph -> node logits."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

__all__ = ["Corrector", "zero_output_layer"]


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

    def output_layer(self) -> Optional[nn.Module]:
        """The last layer, whose output is g's logits (``None``: not known for this class)."""
        return None

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, num_classes={self.num_classes}"


def zero_output_layer(g: nn.Module) -> bool:
    """Zero every parameter of ``g``'s output layer, so that ``g`` outputs zeros until trained.

    Used for residual correctors (a correction added to f's log-probabilities), which then start
    exactly at f. Returns ``False`` (and changes nothing) when ``g`` does not say which layer is
    its output (:meth:`Corrector.output_layer`).
    """
    layer = g.output_layer() if isinstance(g, Corrector) else None
    if layer is None:
        return False
    with torch.no_grad():
        for p in layer.parameters():
            p.zero_()
    return True
