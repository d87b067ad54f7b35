"""Several correctors of one kind, each from its own initial weights, predicting side by side."""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor, nn

from .base import Corrector

__all__ = ["CorrectorEnsemble", "combine_members"]


class CorrectorEnsemble(Corrector):
    """``M`` correctors built alike (their initial weights drawn one after another), run on the
    same input.

    :meth:`forward` returns every member's logits, ``(M, N, K)``. Trained with the sum of the
    members' losses (:func:`~gridgraph.train.masked_cross_entropy`), each member's gradient is
    exactly its own loss's, and Adam's updates (weight decay included) are per parameter, so
    every member follows the path it would follow trained alone on the same order of sections,
    up to its own dropout draws: a seed ensemble at the cost of one training run of ``M`` times
    the width. :func:`combine_members` averages their probabilities.

    Args:
        build: ``() -> corrector``, called ``size`` times.
        size: ``M`` (default 3).
    """

    def __init__(self, build: Callable[[], nn.Module], size: int = 3):
        if int(size) < 1:
            raise ValueError(f"an ensemble needs at least one member, got size={size}")
        members = [build() for _ in range(int(size))]
        first = members[0]
        super().__init__(getattr(first, "num_classes"), getattr(first, "in_channels", None))
        self.members = nn.ModuleList(members)

    def __len__(self) -> int:
        return len(self.members)

    def forward(self, x: Tensor, graph) -> Tensor:
        """``(N, in_channels)`` node features -> ``(M, N, K)`` logits of the ``M`` members."""
        return torch.stack([g(x, graph) for g in self.members])

    def check_graph(self, graph) -> None:
        check = getattr(self.members[0], "check_graph", None)
        if check is not None:
            check(graph)

    def output_layer(self) -> Optional[nn.Module]:
        layers = [g.output_layer() if isinstance(g, Corrector) else None for g in self.members]
        return None if any(layer is None for layer in layers) else nn.ModuleList(layers)

    def extra_repr(self) -> str:
        return f"size={len(self.members)}"


def combine_members(logits: Tensor) -> Tensor:
    """``(M, N, K)`` members' logits -> ``(N, K)`` logits whose softmax is the mean of the
    members' softmax (``M = 1``: the member's log-probabilities)."""
    log_probs = logits.float().log_softmax(-1)
    if logits.shape[0] == 1:
        return log_probs[0]
    return torch.logsumexp(log_probs, dim=0) - torch.log(torch.tensor(float(logits.shape[0]), device=logits.device))
