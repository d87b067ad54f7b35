"""How often the classes neighbour each other on a graph: a section's or a dataset's."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .metrics import IGNORE_INDEX, _labels, to_numpy

__all__ = ["class_adjacency", "dataset_class_adjacency"]


def class_adjacency(
    labels: Any,
    edge_index: Any,
    num_classes: Optional[int] = None,
    normalize: Optional[str] = None,
) -> np.ndarray:
    """How often a node of class ``i`` has a neighbour of class ``j``.

    Every directed edge ``(u, v)`` of ``edge_index`` with both ends labeled adds one to
    ``A[labels[u], labels[v]]``. With undirected graphs stored in both directions (as
    :class:`~gridgraph.graph.SpotGraph` does) ``A`` is symmetric and an edge joining two nodes of
    the same class adds 2 to the diagonal (one per end).

    Args:
        labels: ``(N,)`` int labels, ``-1`` ignored.
        edge_index: ``(2, E)`` int node pairs.
        num_classes: ``K``; default ``max label + 1``.
        normalize: ``None`` (counts), ``"row"`` (each row sums to one; empty rows stay zero) or
            ``"all"`` (the whole matrix sums to one).

    Returns ``(K, K)`` int64 counts, or float64 when normalised.
    """
    y = _labels(labels, "labels")
    ei = to_numpy(edge_index)
    if ei.ndim != 2 or ei.shape[0] != 2:
        raise ValueError(f"edge_index must have shape (2, E), got {tuple(ei.shape)}")
    ei = ei.astype(np.int64, copy=False)
    if ei.size and (ei.min() < 0 or ei.max() >= y.shape[0]):
        raise ValueError(f"edge_index refers to nodes outside 0..{y.shape[0] - 1}")
    k = int(num_classes) if num_classes is not None else int(y.max(initial=-1) + 1)
    if y.size and y.max() >= k:
        raise ValueError(f"label {y.max()} out of range for num_classes={k}")
    a, b = y[ei[0]], y[ei[1]]
    keep = (a != IGNORE_INDEX) & (b != IGNORE_INDEX)
    counts = np.bincount(a[keep] * k + b[keep], minlength=k * k).reshape(k, k).astype(np.int64)
    return _normalize_matrix(counts, normalize)


def _normalize_matrix(counts: np.ndarray, normalize: Optional[str]) -> np.ndarray:
    if normalize is None:
        return counts
    if normalize == "row":
        rows = counts.sum(axis=1, keepdims=True).astype(np.float64)
        return np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    if normalize == "all":
        total = counts.sum()
        return counts / total if total else np.zeros(counts.shape)
    raise ValueError(f"normalize must be None, 'row' or 'all', got {normalize!r}")


def dataset_class_adjacency(
    sections: Sequence[Any], num_classes: Optional[int] = None, normalize: Optional[str] = None
) -> np.ndarray:
    """:func:`class_adjacency` summed over several sections.

    Each section needs ``.labels`` and ``.graph.edge_index`` (a :class:`~gridgraph.io.Section`);
    ``num_classes`` defaults to ``len(section.classes)`` of the first section.
    """
    sections = list(sections)
    if not sections:
        raise ValueError("dataset_class_adjacency() needs at least one section")
    if num_classes is None:
        num_classes = len(sections[0].classes)
    total = np.zeros((num_classes, num_classes), dtype=np.int64)
    for s in sections:
        total += class_adjacency(s.labels, s.graph.edge_index, num_classes)
    return _normalize_matrix(total, normalize)


# ----------------------------------------------------------------------------- summaries
