"""What the training loops fit: class labels (cross-entropy) or continuous targets (a regression loss).

An :class:`Objective` says, for a prepared section, what its truth is (``labels`` or
``targets``), which nodes have one, and the loss of outputs against it, so that both loops
(:mod:`.loops`) and every regimen train either kind of target alike.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..model.losses import known_rows, masked_regression_loss
from ..names import Metric
from ..patches import SectionTensors

__all__ = ["Objective", "masked_cross_entropy", "objective_for", "score_key"]


def score_key(metric: str, regression: bool = False) -> str:
    """The validation metric that picks the best model: ``train.metric``'s, or for regression
    (an expression target) the mean Pearson r over genes."""
    return "mean_pearson" if regression else Metric(metric).key


def masked_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy over labeled nodes (label ``-1`` ignored); 0 if none is labeled.

    ``logits`` ``(N, K)``, or ``(M, N, K)`` for the members of an ensemble: the sum of the
    members' losses (each member's gradient is exactly its own loss's).
    ``label_smoothing``: as :func:`torch.nn.functional.cross_entropy`'s.
    """
    if not (labels >= 0).any():
        return logits.sum() * 0.0
    if logits.dim() == 3:
        return torch.stack([masked_cross_entropy(m, labels, label_smoothing) for m in logits]).sum()
    return F.cross_entropy(logits.float(), labels, ignore_index=-1, label_smoothing=label_smoothing)


@dataclass(frozen=True)
class Objective:
    """Classification (``regression=False``: ``labels``, cross-entropy with ``label_smoothing``)
    or regression (``targets``, the loss named ``loss``, see :data:`gridgraph.model.losses.LOSSES`)."""

    regression: bool = False
    loss: str = "mse"
    label_smoothing: float = 0.0

    def truth(self, st: SectionTensors) -> torch.Tensor:
        if not self.regression:
            return st.labels
        if st.targets is None:
            raise ValueError(f"section {st.name}: a regression run needs the sections' targets (none were read)")
        return st.targets

    def known(self, truth: torch.Tensor) -> torch.Tensor:
        """``(N,)`` bool: the nodes that have a truth (labeled / with counts)."""
        return known_rows(truth) if self.regression else truth >= 0

    def __call__(self, outputs: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
        if self.regression:
            return masked_regression_loss(outputs, truth, self.loss)
        return masked_cross_entropy(outputs, truth, self.label_smoothing)


def objective_for(model, loss: str = "mse", label_smoothing: float = 0.0) -> Objective:
    """The objective of ``model``: regression when it regresses (``model.regression``)."""
    return Objective(regression=bool(getattr(model, "regression", False)), loss=loss,
                     label_smoothing=label_smoothing)
