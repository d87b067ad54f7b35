"""Ensembles of several models' predictions of the same nodes, and spread of a metric over models.

``probs`` below is either a sequence of ``M`` arrays of shape ``(N, K)`` (numpy or torch) or one
``(M, N, K)`` array: model ``m``'s class probabilities of node ``n``.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Sequence

import numpy as np

from .metrics import to_numpy

__all__ = [
    "stack_predictions",
    "mean_softmax",
    "vote_counts",
    "majority_vote",
    "ensemble",
    "MeanStd",
    "mean_std",
    "metric_over_models",
]


def stack_predictions(probs: Any, name: str = "probs") -> np.ndarray:
    """``(M, N, K)`` float64 stack of ``M`` models' ``(N, K)`` predictions; checks shapes agree."""
    if isinstance(probs, (list, tuple)):
        if len(probs) == 0:
            raise ValueError(f"{name} is empty: an ensemble needs at least one model")
        arrays = [to_numpy(p).astype(np.float64, copy=False) for p in probs]
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1:
            raise ValueError(
                f"{name}: all models must predict the same (N, K), got shapes {sorted(shapes)}"
            )
        stacked = np.stack(arrays)
    else:
        stacked = to_numpy(probs).astype(np.float64, copy=False)
    if stacked.ndim != 3:
        raise ValueError(f"{name} must be M arrays of shape (N, K) or one (M, N, K) array, "
                         f"got shape {stacked.shape}")
    if stacked.shape[0] == 0:
        raise ValueError(f"{name} is empty: an ensemble needs at least one model")
    return stacked


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def mean_softmax(probs: Any, from_logits: bool = False) -> np.ndarray:
    """Average of the models' class probabilities.

    Args:
        probs: ``M x (N, K)`` probabilities (or logits with ``from_logits=True``, softmaxed first).

    Returns ``(N, K)`` float64.
    """
    p = stack_predictions(probs)
    if from_logits:
        p = _softmax(p, axis=-1)
    return p.mean(axis=0)


def vote_counts(predictions: Any, num_classes: Optional[int] = None) -> np.ndarray:
    """``(N, K)`` number of models voting for each class.

    Args:
        predictions: ``(M, N)`` int class ids (or a sequence of ``M`` ``(N,)`` arrays), or
            ``M x (N, K)`` probabilities (each model votes for its argmax).
        num_classes: ``K``; default the probability width or ``max id + 1``.
    """
    votes, k = _votes(predictions, num_classes)
    m, n = votes.shape
    flat = (np.arange(n)[None, :] * k + votes).reshape(-1)
    return np.bincount(flat, minlength=n * k).reshape(n, k)


def _votes(predictions: Any, num_classes: Optional[int]) -> tuple[np.ndarray, int]:
    if isinstance(predictions, (list, tuple)):
        if len(predictions) == 0:
            raise ValueError("predictions is empty: an ensemble needs at least one model")
        arrays = [to_numpy(p) for p in predictions]
        shapes = sorted({a.shape for a in arrays})
        if len(shapes) != 1:
            raise ValueError(f"all models must predict the same shape, got {shapes}")
        arr = np.stack(arrays)
    else:
        arr = to_numpy(predictions)
    if arr.ndim == 3:
        k = arr.shape[2] if num_classes is None else int(num_classes)
        if arr.shape[2] != k:
            raise ValueError(f"probabilities have {arr.shape[2]} classes but num_classes={k}")
        votes = arr.argmax(axis=2)
    elif arr.ndim == 2:
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(
                "class-id predictions must be integers; pass probabilities as (M, N, K)"
            )
        votes = arr.astype(np.int64)
        k = int(votes.max(initial=-1) + 1) if num_classes is None else int(num_classes)
    else:
        raise ValueError(
            f"predictions must be (M, N) class ids or (M, N, K) probabilities, got {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise ValueError("predictions is empty: an ensemble needs at least one model")
    if votes.size and (votes.min() < 0 or votes.max() >= k):
        raise ValueError(f"class ids must lie in 0..{k - 1}")
    return votes.astype(np.int64), k


def majority_vote(
    predictions: Any, probs: Any = None, num_classes: Optional[int] = None
) -> np.ndarray:
    """Class chosen by most models at each node.

    Ties are broken deterministically: among the tied classes, the one with the highest mean
    probability over the models (when probabilities are known), then the lowest class id.

    Args:
        predictions: ``M x (N, K)`` probabilities, or ``(M, N)`` int class ids.
        probs: ``M x (N, K)`` probabilities used only to break ties when ``predictions`` are ids.
        num_classes: ``K`` when only ids are given.

    Returns ``(N,)`` int64.
    """
    arr = predictions if isinstance(predictions, (list, tuple)) else to_numpy(predictions)
    if isinstance(arr, (list, tuple)):
        if len(arr) == 0:
            raise ValueError("predictions is empty: an ensemble needs at least one model")
        is_prob = to_numpy(arr[0]).ndim == 2
    else:
        is_prob = arr.ndim == 3
    if is_prob:
        if probs is not None:
            raise ValueError("give probabilities either as predictions or as probs, not both")
        probs = arr
    mean = None
    if probs is not None:
        mean = mean_softmax(probs)
        if num_classes is None:
            num_classes = mean.shape[1]
    counts = vote_counts(predictions, num_classes)
    if mean is not None and mean.shape != counts.shape:
        raise ValueError(f"probs have shape {mean.shape} but the votes give {counts.shape}")
    tied = counts == counts.max(axis=1, keepdims=True)
    if mean is None:
        return tied.argmax(axis=1).astype(np.int64)
    key = np.where(tied, mean, -np.inf)
    return key.argmax(axis=1).astype(np.int64)


def ensemble(probs: Any, method: str = "mean") -> tuple[np.ndarray, np.ndarray]:
    """Combine ``M x (N, K)`` probabilities into one prediction.

    Args:
        method: ``"mean"`` (mean softmax; label = argmax) or ``"vote"`` (majority vote with
            :func:`majority_vote`'s tie-break; scores = fraction of models voting each class).

    Returns ``(labels (N,) int64, scores (N, K) float64)``.
    """
    p = stack_predictions(probs)
    if method == "mean":
        mean = p.mean(axis=0)
        return mean.argmax(axis=1).astype(np.int64), mean
    if method == "vote":
        return majority_vote(p), vote_counts(p) / p.shape[0]
    raise ValueError(f"method must be 'mean' or 'vote', got {method!r}")


class MeanStd(NamedTuple):
    """Mean and standard deviation of a metric over models, with the per-model values."""

    mean: float
    std: float
    values: list

    def __str__(self) -> str:
        return f"{self.mean:.3f} ± {self.std:.3f}"


def mean_std(values: Sequence[float], ddof: int = 1) -> MeanStd:
    """Mean and SD (``ddof=1``: sample SD; ``nan`` for fewer than ``ddof + 1`` values)."""
    v = np.asarray([float(x) for x in values], dtype=np.float64)
    if v.size == 0:
        raise ValueError("mean_std() needs at least one value")
    std = float(v.std(ddof=ddof)) if v.size > ddof else float("nan")
    return MeanStd(float(v.mean()), std, v.tolist())


def metric_over_models(
    metric: Callable[[Any, Any], float], y_true: Any, probs: Any, ddof: int = 1
) -> MeanStd:
    """``metric(y_true, probs_m)`` for each model ``m``, summarised by :func:`mean_std`.

    Example: ``metric_over_models(accuracy, y, [p1, p2, p3])``.
    """
    p = stack_predictions(probs)
    return mean_std([metric(y_true, p[m]) for m in range(p.shape[0])], ddof=ddof)
