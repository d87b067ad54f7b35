"""Reports: per-class precision / recall / F1 / AUROC tables and model comparisons as text."""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

from .metrics import _labels, compute_metrics, confusion_matrix, per_class_auroc, precision_recall_f1, to_numpy

__all__ = ["classification_report", "format_report", "compare_models", "format_comparison"]


def classification_report(
    y_true: Any,
    y_score: Any,
    classes: Optional[Sequence[str]] = None,
    output_dict: bool = False,
    digits: int = 3,
):
    """Per-class precision / recall / F1 / AUROC / support plus the overall scores.

    Args:
        y_true: ``(N,)`` int labels, ``-1`` ignored.
        y_score: ``(N, K)`` class probabilities, or ``(N,)`` predictions (AUROC left out).
        classes: ``K`` class names; default ``"0" .. "K-1"``.
        output_dict: return the dict instead of the formatted text.
        digits: decimals in the text.

    The dict holds ``"per_class"`` (``{name: {"precision", "recall", "f1", "auroc", "support"}}``),
    the keys of :func:`compute_metrics` and ``"confusion_matrix"`` (nested lists of counts).
    """
    yt = _labels(y_true)
    raw = to_numpy(y_score)
    k = raw.shape[1] if raw.ndim == 2 else None
    if classes is not None:
        if k is not None and len(classes) != k:
            raise ValueError(f"{len(classes)} class names for y_score with {k} columns")
        k = len(classes)
    cm = confusion_matrix(yt, raw, k)
    k = cm.shape[0]
    names = [str(c) for c in classes] if classes is not None else [str(i) for i in range(k)]
    precision, recall, f1, support = precision_recall_f1(yt, raw, k)
    auc = per_class_auroc(yt, raw) if raw.ndim == 2 else np.full(k, np.nan)
    report: dict[str, Any] = {
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "auroc": float(auc[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(names)
        }
    }
    report.update(compute_metrics(yt, raw))
    report["confusion_matrix"] = cm.tolist()
    return report if output_dict else format_report(report, digits)


def _fmt(x: float, digits: int) -> str:
    return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}f}"


def format_report(report: Mapping[str, Any], digits: int = 3) -> str:
    """Text table of a :func:`classification_report` dict."""
    names = list(report["per_class"])
    width = max([len(n) for n in names] + [len("weighted_f1")])
    cols = ("precision", "recall", "f1", "auroc")
    lines = [f"{'':>{width}}  " + "  ".join(f"{c:>9}" for c in cols) + f"  {'support':>8}"]
    for name in names:
        row = report["per_class"][name]
        vals = "  ".join(f"{_fmt(row[c], digits):>9}" for c in cols)
        lines.append(f"{name:>{width}}  {vals}  {row['support']:>8d}")
    lines.append("")
    for key in ("accuracy", "macro_auroc", "macro_f1", "weighted_f1"):
        lines.append(f"{key:>{width}}  {_fmt(report[key], digits):>9}")
    lines.append(f"{'num_labeled':>{width}}  {report['num_labeled']:>9d}")
    return "\n".join(lines)


def compare_models(y_true: Any, predictions: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """:func:`compute_metrics` of several predictions of the same nodes (e.g. f-only vs f+g).

    Args:
        y_true: ``(N,)`` int labels, ``-1`` ignored.
        predictions: name -> ``(N, K)`` probabilities (or ``(N,)`` predictions).
    """
    if not predictions:
        raise ValueError("compare_models() needs at least one prediction")
    return {name: compute_metrics(y_true, p) for name, p in predictions.items()}


def format_comparison(results: Mapping[str, Mapping[str, float]], digits: int = 3) -> str:
    """Text table of :func:`compare_models`: one column per model, one row per metric."""
    names = list(results)
    keys = ("accuracy", "macro_auroc", "macro_f1", "weighted_f1")
    if "mean_pearson" in results[names[0]]:  # regression (expression) metrics
        keys = ("mean_pearson", "median_pearson", "mean_spearman", "genes_r_above_0.3", "genes_significant", "mse")
    label = max(12, max(len(k) for k in keys) + 1)
    width = max(max(len(n) for n in names), digits + 3) + 2
    lines = [f"{'':<{label}}" + "".join(f"{n:>{width}}" for n in names)]
    for key in keys:
        cells = "".join(f"{_fmt(results[n][key], digits):>{width}}" for n in names)
        lines.append(f"{key:<{label}}{cells}")
    return "\n".join(lines)
