"""Classification metrics over labeled nodes, in numpy/scipy (no scikit-learn).

Conventions shared by every function here:

* ``y_true`` is an integer ``(N,)`` array (numpy or torch); ``-1`` marks an unlabeled node and is
  dropped before anything is computed (``ignore_index``).
* ``y_pred`` is either ``(N,)`` integer predictions or ``(N, K)`` scores/probabilities, which are
  turned into predictions by ``argmax`` over the class axis.
* ``y_score`` is ``(N, K)`` class scores (probabilities for the usual case); for two classes an
  ``(N,)`` score of class 1 is also accepted.
* Results are numpy arrays or Python floats.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
from scipy.stats import rankdata

IGNORE_INDEX = -1

__all__ = [
    "IGNORE_INDEX",
    "accuracy",
    "binary_auroc",
    "per_class_auroc",
    "macro_auroc",
    "confusion_matrix",
    "precision_recall_f1",
    "f1_score",
    "misclassification",
    "compute_metrics",
]


# ----------------------------------------------------------------------------- input handling
def to_numpy(x: Any) -> np.ndarray:
    """A numpy view/copy of a numpy array, torch tensor (any device) or sequence."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu()
        if str(getattr(x, "dtype", "")) in ("torch.bfloat16", "torch.float16"):
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def _labels(y_true: Any, name: str = "y_true") -> np.ndarray:
    y = to_numpy(y_true)
    if y.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of int labels, got shape {tuple(y.shape)}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if not np.issubdtype(y.dtype, np.floating) or not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError(f"{name} must hold integer labels, got dtype {y.dtype}")
    y = y.astype(np.int64, copy=False)
    if y.size and y.min() < IGNORE_INDEX:
        raise ValueError(f"{name} must be >= {IGNORE_INDEX} (-1 = unlabeled), got {y.min()}")
    return y


def _scores(y_score: Any, n: int, name: str = "y_score") -> np.ndarray:
    """``(N, K)`` float scores; an ``(N,)`` binary score of class 1 becomes ``[-s, s]``."""
    s = to_numpy(y_score).astype(np.float64, copy=False)
    if s.ndim == 1:
        s = np.stack([-s, s], axis=1)
    if s.ndim != 2:
        raise ValueError(f"{name} must have shape (N, K) (or (N,) for two classes), got {s.shape}")
    if s.shape[0] != n:
        raise ValueError(f"{name} has {s.shape[0]} rows but y_true has {n} labels")
    if s.shape[1] < 2:
        raise ValueError(f"{name} needs at least 2 class columns, got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return s


def _predictions(y_pred: Any, n: int) -> np.ndarray:
    p = to_numpy(y_pred)
    if p.ndim == 2:
        if p.shape[0] != n:
            raise ValueError(f"y_pred has {p.shape[0]} rows but y_true has {n} labels")
        return p.argmax(axis=1).astype(np.int64)
    p = _labels(p, "y_pred")
    if p.shape[0] != n:
        raise ValueError(f"y_pred has {p.shape[0]} entries but y_true has {n} labels")
    return p


def _num_classes(y_pred_raw: Any, y_true: np.ndarray, y_pred: np.ndarray, num_classes) -> int:
    shape = tuple(getattr(y_pred_raw, "shape", ()))
    if num_classes is not None:
        k = int(num_classes)
        if len(shape) == 2 and shape[1] != k:
            raise ValueError(f"y_pred has {shape[1]} class columns but num_classes={k}")
    else:
        if len(shape) == 2:
            k = int(shape[1])
        else:
            k = int(max(y_true.max(initial=-1), y_pred.max(initial=-1)) + 1)
    hi = max(y_true.max(initial=-1), y_pred.max(initial=-1))
    if hi >= k:
        raise ValueError(f"label {hi} out of range for num_classes={k}")
    return max(k, 0)


def _true_pred(y_true, y_pred, num_classes=None) -> tuple[np.ndarray, np.ndarray, int]:
    """Labeled ``(y_true, y_pred)`` pairs and the number of classes."""
    yt = _labels(y_true)
    raw = to_numpy(y_pred)
    yp = _predictions(raw, yt.shape[0])
    k = _num_classes(raw, yt, yp, num_classes)
    keep = yt != IGNORE_INDEX
    yt, yp = yt[keep], yp[keep]
    if yp.size and yp.min() < 0:
        raise ValueError("y_pred holds -1 at a labeled node; predictions must be class ids")
    return yt, yp, k


# ----------------------------------------------------------------------------- metrics
def accuracy(y_true: Any, y_pred: Any) -> float:
    """Fraction of labeled nodes predicted correctly.

    Args:
        y_true: ``(N,)`` int labels, ``-1`` ignored.
        y_pred: ``(N,)`` int predictions or ``(N, K)`` scores (argmax).

    Returns ``nan`` when no node is labeled.
    """
    yt, yp, _ = _true_pred(y_true, y_pred)
    if yt.size == 0:
        return float("nan")
    return float(np.mean(yt == yp))


def binary_auroc(is_positive: Any, score: Any) -> float:
    """Area under the ROC curve of one positive-vs-rest problem (Mann-Whitney U / n_pos n_neg).

    Ties between scores count one half (average ranks), which equals the trapezoidal ROC area.

    Args:
        is_positive: ``(N,)`` bool.
        score: ``(N,)`` float, higher = more positive.

    Returns ``nan`` when there are no positives or no negatives.
    """
    pos = to_numpy(is_positive).astype(bool).reshape(-1)
    s = to_numpy(score).astype(np.float64).reshape(-1)
    if pos.shape != s.shape:
        raise ValueError(f"is_positive has {pos.size} entries but score has {s.size}")
    n_pos = int(pos.sum())
    n_neg = pos.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s, method="average")
    u = ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def per_class_auroc(y_true: Any, y_score: Any) -> np.ndarray:
    """One-vs-rest AUROC of each class.

    Args:
        y_true: ``(N,)`` int labels in ``0..K-1``, ``-1`` ignored.
        y_score: ``(N, K)`` class scores, or ``(N,)`` score of class 1 when ``K = 2``.

    Returns:
        ``(K,)`` float; ``nan`` for a class that is absent from the labeled nodes (no positives)
        or is the only class present (no negatives).
    """
    yt = _labels(y_true)
    s = _scores(y_score, yt.shape[0])
    keep = yt != IGNORE_INDEX
    yt, s = yt[keep], s[keep]
    k = s.shape[1]
    if yt.size and yt.max() >= k:
        raise ValueError(f"label {yt.max()} out of range for y_score with {k} columns")
    return np.array([binary_auroc(yt == c, s[:, c]) for c in range(k)], dtype=np.float64)


def macro_auroc(y_true: Any, y_score: Any) -> float:
    """Mean one-vs-rest AUROC over the classes where it is defined (see :func:`per_class_auroc`).

    For two classes with probabilities that sum to one this equals the binary AUROC of class 1.
    Returns ``nan`` when no class is defined.
    """
    per = per_class_auroc(y_true, y_score)
    defined = per[~np.isnan(per)]
    return float(defined.mean()) if defined.size else float("nan")


def confusion_matrix(
    y_true: Any, y_pred: Any, num_classes: Optional[int] = None, normalize: bool = False
) -> np.ndarray:
    """``(K, K)`` confusion matrix, rows = true class, columns = predicted class.

    Args:
        y_true: ``(N,)`` int labels, ``-1`` ignored.
        y_pred: ``(N,)`` int predictions or ``(N, K)`` scores (argmax).
        num_classes: ``K``; default ``y_pred.shape[1]`` for scores, else ``max label + 1``.
        normalize: divide each row by its number of samples (recall on the diagonal); a row of a
            class with no samples stays all zero.

    Returns int64 counts, or float64 when ``normalize``.
    """
    yt, yp, k = _true_pred(y_true, y_pred, num_classes)
    cm = np.bincount(yt * k + yp, minlength=k * k).reshape(k, k).astype(np.int64)
    if not normalize:
        return cm
    rows = cm.sum(axis=1, keepdims=True).astype(np.float64)
    return np.divide(cm, rows, out=np.zeros((k, k), dtype=np.float64), where=rows > 0)


def precision_recall_f1(
    y_true: Any, y_pred: Any, num_classes: Optional[int] = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall, F1 and support (``(K,)`` each); a 0/0 ratio is 0."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return precision, recall, f1, support


def f1_score(
    y_true: Any, y_pred: Any, average: Optional[str] = "weighted", num_classes: Optional[int] = None
):
    """F1 score.

    Args:
        average: ``"weighted"`` (mean over classes weighted by support), ``"macro"`` (plain mean
            over the classes that occur in ``y_true`` or in the predictions of labeled nodes) or
            ``None`` (``(K,)`` per-class F1).

    Returns a float (``nan`` when no node is labeled) or a ``(K,)`` array.
    """
    if average not in ("weighted", "macro", None):
        raise ValueError(f"average must be 'weighted', 'macro' or None, got {average!r}")
    _, _, f1, support = precision_recall_f1(y_true, y_pred, num_classes)
    if average is None:
        return f1
    if average == "weighted":
        total = support.sum()
        return float((f1 * support).sum() / total) if total else float("nan")
    cm = confusion_matrix(y_true, y_pred, num_classes)
    seen = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
    return float(f1[seen].mean()) if seen.any() else float("nan")


def misclassification(y_true: Any, probs: Any) -> np.ndarray:
    """Misclassification density ``1 - P(correct class)`` of each node.

    Args:
        y_true: ``(N,)`` int labels, ``-1`` = unlabeled.
        probs: ``(N, K)`` class probabilities.

    Returns ``(N,)`` float64, ``nan`` at unlabeled nodes.
    """
    yt = _labels(y_true)
    p = to_numpy(probs).astype(np.float64, copy=False)
    if p.ndim != 2 or p.shape[0] != yt.shape[0]:
        raise ValueError(f"probs must have shape ({yt.shape[0]}, K), got {tuple(p.shape)}")
    if yt.size and yt.max() >= p.shape[1]:
        raise ValueError(f"label {yt.max()} out of range for probs with {p.shape[1]} columns")
    out = np.full(yt.shape[0], np.nan)
    keep = yt != IGNORE_INDEX
    out[keep] = 1.0 - p[np.flatnonzero(keep), yt[keep]]
    return out


# ----------------------------------------------------------------------------- dataset statistics
def compute_metrics(y_true: Any, y_score: Any) -> dict[str, float]:
    """The headline scalars of one prediction.

    Args:
        y_true: ``(N,)`` int labels, ``-1`` ignored.
        y_score: ``(N, K)`` class probabilities (AUROC included) or ``(N,)`` predictions (no AUROC).

    Returns ``{"accuracy", "macro_auroc", "macro_f1", "weighted_f1", "num_labeled"}``;
    ``macro_auroc`` is ``nan`` for hard predictions.
    """
    yt = _labels(y_true)
    raw = to_numpy(y_score)
    has_scores = raw.ndim == 2
    if has_scores:
        _scores(raw, yt.shape[0])
    out = {
        "accuracy": accuracy(yt, raw),
        "macro_auroc": macro_auroc(yt, raw) if has_scores else float("nan"),
        "macro_f1": f1_score(yt, raw, "macro"),
        "weighted_f1": f1_score(yt, raw, "weighted"),
        "num_labeled": int((yt != IGNORE_INDEX).sum()),
    }
    return out
