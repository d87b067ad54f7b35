"""Class-by-class matrices: confusion and class adjacency heatmaps."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
from matplotlib.figure import Figure

from ..evaluate.adjacency import class_adjacency, dataset_class_adjacency
from ..evaluate.metrics import confusion_matrix, to_numpy
from .common import PathLike, _finish, _new_figure


def _matrix_figure(
    matrix: np.ndarray,
    display: np.ndarray,
    classes: Sequence[str],
    *,
    xlabel: str,
    ylabel: str,
    title: Optional[str],
    cmap: str,
    fmt: str,
    annotate: bool,
    colorbar_label: str,
    ax,
    figsize,
    dpi,
    vmax: Optional[float] = None,
) -> Figure:
    k = matrix.shape[0]
    if ax is None:
        fig = _new_figure(figsize, dpi)
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    if vmax is None:
        vmax = float(display.max()) if display.size and display.max() > 0 else 1.0
    im = ax.imshow(display, cmap=cmap, vmin=0.0, vmax=vmax, interpolation="nearest")
    ax.set_xticks(range(k), [str(c) for c in classes], rotation=45, ha="right")
    ax.set_yticks(range(k), [str(c) for c in classes])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if annotate and k <= 30:
        for i in range(k):
            for j in range(k):
                v = matrix[i, j]
                dark = display[i, j] > 0.5 * vmax
                ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize="x-small",
                        color="white" if dark else "black")
    fig.colorbar(im, ax=ax, label=colorbar_label, shrink=0.8)
    return fig


def _square_matrix(matrix: Any, classes: Sequence[str], name: str) -> np.ndarray:
    m = np.asarray(to_numpy(matrix))
    k = len(classes)
    if m.shape != (k, k):
        raise ValueError(f"{name} must have shape ({k}, {k}) for {k} classes, got {m.shape}")
    return m


def plot_confusion_matrix(
    cm: Any,
    classes: Sequence[str],
    *,
    normalize: bool = True,
    title: Optional[str] = None,
    cmap: str = "Blues",
    annotate: bool = True,
    ax=None,
    figsize: tuple[float, float] = (5.5, 4.5),
    dpi: float = 100,
    path: Optional[PathLike] = None,
) -> Figure:
    """Heatmap of a ``(K, K)`` confusion matrix (rows true, columns predicted).

    Args:
        cm: counts, e.g. from :func:`gridgraph.evaluate.confusion_matrix`, or a ``(y_true, y_pred)``
            pair to compute them from.
        normalize: colour and annotate by row fractions (empty rows stay zero) instead of counts.
    """
    if isinstance(cm, tuple) and len(cm) == 2:
        cm = confusion_matrix(cm[0], cm[1], num_classes=len(classes))
    counts = _square_matrix(cm, classes, "cm")
    if normalize:
        rows = counts.sum(axis=1, keepdims=True).astype(np.float64)
        shown = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
        fmt, label = ".2f", "fraction of true class"
    else:
        shown = counts.astype(np.float64)
        fmt = "d" if np.issubdtype(counts.dtype, np.integer) else ".3g"
        label = "count"
    fig = _matrix_figure(shown if normalize else counts, shown, classes, xlabel="predicted",
                         ylabel="true", title=title, cmap=cmap, fmt=fmt, annotate=annotate,
                         colorbar_label=label, ax=ax, figsize=figsize, dpi=dpi,
                         vmax=1.0 if normalize else None)
    return _finish(fig, path)


def plot_class_adjacency(
    data: Any,
    classes: Sequence[str],
    *,
    edge_index: Any = None,
    normalize: Optional[str] = "row",
    title: Optional[str] = "class adjacency",
    cmap: str = "viridis",
    annotate: bool = True,
    ax=None,
    figsize: tuple[float, float] = (5.5, 4.5),
    dpi: float = 100,
    path: Optional[PathLike] = None,
) -> Figure:
    """Heatmap of how often class-``i`` nodes neighbour class-``j`` nodes.

    Args:
        data: a ``(K, K)`` count matrix (:func:`gridgraph.evaluate.class_adjacency`), ``(N,)``
            labels together with ``edge_index``, or a sequence of sections (``.labels``,
            ``.graph.edge_index``), summed over the dataset.
        normalize: ``"row"`` (fraction of a class's neighbours in each class), ``"all"`` or
            ``None`` (counts).
    """
    k = len(classes)
    if edge_index is not None:
        counts = class_adjacency(data, edge_index, num_classes=k)
    elif isinstance(data, (list, tuple)) and data and hasattr(data[0], "graph"):
        counts = dataset_class_adjacency(data, num_classes=k)
    else:
        counts = _square_matrix(data, classes, "class adjacency matrix")
    counts = np.asarray(counts)
    if normalize is None:
        shown = counts.astype(np.float64)
        fmt = "d" if np.issubdtype(counts.dtype, np.integer) else ".3g"
        label, values = "neighbour pairs", counts
    else:
        if normalize == "row":
            rows = counts.sum(axis=1, keepdims=True).astype(np.float64)
            shown = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
            label = "fraction of row class's neighbours"
        elif normalize == "all":
            total = counts.sum()
            shown = counts / total if total else np.zeros(counts.shape)
            label = "fraction of neighbour pairs"
        else:
            raise ValueError(f"normalize must be None, 'row' or 'all', got {normalize!r}")
        fmt, values = ".2f", shown
    fig = _matrix_figure(values, shown, classes, xlabel="neighbour class", ylabel="node class",
                         title=title, cmap=cmap, fmt=fmt, annotate=annotate,
                         colorbar_label=label, ax=ax, figsize=figsize, dpi=dpi)
    return _finish(fig, path)
