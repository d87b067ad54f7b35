"""Several f's of one kind, each from its own initial weights, classifying the same patches."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from ..correctors.ensemble import combine_members

__all__ = ["EncoderEnsemble"]


class EncoderEnsemble(nn.Module):
    """``M`` patch classifiers built alike (their initial weights drawn one after another).

    :meth:`forward` gives ``(B, K)`` logits whose softmax is the mean of the members'
    probabilities: what g reads and what "f" reports, so a two-stage run does not hang on one
    lucky or unlucky f. :meth:`member_logits` gives each member's ``(M, B, K)``: stage f trains
    with the sum of the members' losses, so each member's gradient is exactly its own loss's (a
    seed ensemble at the cost of one run of ``M`` times the width); joint stages train the
    members through their mean.

    Args:
        build: ``() -> f``, called ``size`` times; each f maps ``(B, 3, P, P)`` to ``(B, K)``.
        size: ``M`` (at least 2).
    """

    def __init__(self, build: Callable[[], nn.Module], size: int):
        super().__init__()
        if int(size) < 2:
            raise ValueError(f"an f ensemble needs at least two members, got size={size}")
        self.members = nn.ModuleList([build() for _ in range(int(size))])
        first = self.members[0]
        self.num_classes = getattr(first, "num_classes", None)
        for name in ("input_mean", "input_std", "input_size"):  # what the members were built to read
            if hasattr(first, name):
                setattr(self, name, getattr(first, name))

    def __len__(self) -> int:
        return len(self.members)

    def member_logits(self, x: Tensor) -> Tensor:
        """``(B, 3, P, P)`` -> ``(M, B, K)`` logits of the ``M`` members."""
        return torch.stack([f(x) for f in self.members])

    def forward(self, x: Tensor) -> Tensor:
        return combine_members(self.member_logits(x))

    def extra_repr(self) -> str:
        return f"size={len(self.members)}"
