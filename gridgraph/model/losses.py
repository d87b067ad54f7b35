"""The regression losses of continuous targets (gene expression), by name, in one place.

:data:`LOSSES` maps a ``target.loss`` name to an elementwise loss ``(pred, target) -> (N, G)``;
:func:`masked_regression_loss` averages it over the nodes that have a target (rows of
``target`` that are all finite; a node without counts is a row of NaN) and over the genes.
"""
from __future__ import annotations

from typing import Callable, Dict

import torch
import torch.nn.functional as F

__all__ = ["LOSSES", "regression_loss", "masked_regression_loss", "known_rows"]

LOSSES: Dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mse": lambda p, t: F.mse_loss(p, t, reduction="none"),
    "l1": lambda p, t: F.l1_loss(p, t, reduction="none"),
    "huber": lambda p, t: F.huber_loss(p, t, reduction="none", delta=1.0),
    "smooth_l1": lambda p, t: F.smooth_l1_loss(p, t, reduction="none", beta=1.0),
}


def regression_loss(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The elementwise loss called ``name`` (an unknown name is an error listing the known)."""
    if name not in LOSSES:
        raise ValueError(f"unknown regression loss {name!r}; known: {', '.join(LOSSES)}")
    return LOSSES[name]


def known_rows(target: torch.Tensor) -> torch.Tensor:
    """``(N,)`` bool: the nodes whose target row is finite (a node without counts is NaN)."""
    return torch.isfinite(target).all(dim=-1)


def masked_regression_loss(pred: torch.Tensor, target: torch.Tensor, name: str = "mse") -> torch.Tensor:
    """Mean of loss ``name`` over the nodes with a target and over the genes; 0 if none has one.

    ``pred`` ``(N, G)``, or ``(M, N, G)`` for the members of an ensemble: the sum of the members'
    losses (as :func:`~gridgraph.train.loops.masked_cross_entropy`).
    """
    if pred.dim() == 3:
        return torch.stack([masked_regression_loss(m, target, name) for m in pred]).sum()
    keep = known_rows(target)
    if not keep.any():
        return pred.sum() * 0.0
    return regression_loss(name)(pred[keep].float(), target[keep].float()).mean()
