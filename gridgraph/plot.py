"""Figures: label maps, misclassification maps, confusion and class-adjacency matrices.

Everything is drawn on :class:`matplotlib.figure.Figure` objects rendered with the Agg canvas, so
importing or using this module never touches pyplot or changes the user's backend. Every function
returns the figure and, given ``path``, writes it as a PNG atomically (a failed drawing leaves no
partial file). Sizes are exact: the PNG is ``figsize * dpi`` pixels.

Node coordinates are image pixels ``pos[:, 0] = x`` (column), ``pos[:, 1] = y`` (row, downwards),
so maps are drawn with the y axis inverted, matching the section image.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .evaluate.metrics import (
    class_adjacency,
    confusion_matrix,
    dataset_class_adjacency,
    misclassification,
    to_numpy,
)
from .io.atomic import atomic_write
from .names import Layout

__all__ = [
    "class_colors",
    "save_figure",
    "plot_label_map",
    "plot_label_maps",
    "plot_predictions",
    "plot_misclassification",
    "plot_confusion_matrix",
    "plot_class_adjacency",
]

PathLike = Union[str, os.PathLike]
_LAYOUTS = Layout.values()
UNLABELED_COLOR = "#d9d9d9"


# ----------------------------------------------------------------------------- helpers
def class_colors(num_classes: int) -> np.ndarray:
    """``(K, 4)`` RGBA colours: ``tab10`` up to 10 classes, ``tab20`` up to 20, else ``hsv``."""
    from matplotlib import colormaps

    if num_classes <= 10:
        return np.asarray(colormaps["tab10"].colors[:num_classes], dtype=float).reshape(-1, 3)
    if num_classes <= 20:
        return np.asarray(colormaps["tab20"].colors[:num_classes], dtype=float).reshape(-1, 3)
    return colormaps["hsv"](np.linspace(0, 1, num_classes, endpoint=False))[:, :3]


def save_figure(fig: Figure, path: PathLike, dpi: Optional[float] = None) -> Path:
    """Write ``fig`` as a PNG at ``path`` atomically; returns the path.

    ``dpi`` defaults to the figure's own, so the image is ``figsize * dpi`` pixels.
    """
    path = Path(path)
    if fig.canvas is None or not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=fig.dpi if dpi is None else dpi)
    return path


def _new_figure(figsize, dpi) -> Figure:
    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _finish(fig: Figure, path: Optional[PathLike]) -> Figure:
    if path is not None:
        save_figure(fig, path)
    return fig


def _unpack_nodes(graph_or_pos: Any, layout: Optional[str]) -> tuple[np.ndarray, str]:
    """``(N, 2)`` pixel positions and layout from a SpotGraph or a position array."""
    if hasattr(graph_or_pos, "pos") and hasattr(graph_or_pos, "layout"):
        pos = to_numpy(graph_or_pos.pos)
        layout = graph_or_pos.layout if layout is None else layout
    else:
        pos = to_numpy(graph_or_pos)
        layout = "irregular" if layout is None else layout
    pos = np.asarray(pos, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 2:
        raise ValueError(f"pos must have shape (N, 2) of pixel (x, y), got {pos.shape}")
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be one of {_LAYOUTS}, got {layout!r}")
    return pos, layout


def _node_labels(labels: Any, n: int, num_classes: int, name: str = "labels") -> np.ndarray:
    y = to_numpy(labels)
    if y.ndim == 2:  # probabilities -> argmax
        if y.shape != (n, num_classes):
            raise ValueError(
                f"{name} probabilities must have shape ({n}, {num_classes}), got {y.shape}"
            )
        return y.argmax(axis=1).astype(np.int64)
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match pos, got {tuple(y.shape)}")
    y = y.astype(np.int64)
    if y.size and (y.min() < -1 or y.max() >= num_classes):
        raise ValueError(f"{name} must lie in -1..{num_classes - 1} for {num_classes} classes")
    return y


def _spacing(pos: np.ndarray) -> float:
    """Median nearest-neighbour distance (1.0 for fewer than two distinct points)."""
    if len(pos) < 2:
        return 1.0
    from scipy.spatial import cKDTree

    d, _ = cKDTree(pos).query(pos, k=2)
    d = d[:, 1]
    d = d[d > 0]
    return float(np.median(d)) if d.size else 1.0


def _polygons(pos: np.ndarray, layout: str, spacing: float) -> np.ndarray:
    """``(N, V, 2)`` vertices of a square (cartesian) or pointy-top hexagon (hex) per node."""
    if layout == "cartesian":
        h = spacing / 2.0
        offsets = np.array([[-h, -h], [h, -h], [h, h], [-h, h]])
    else:  # hexagons that tile a lattice with neighbour distance ``spacing``
        r = spacing / np.sqrt(3.0)
        ang = np.pi / 2 + np.arange(6) * np.pi / 3
        offsets = np.stack([r * np.cos(ang), r * np.sin(ang)], axis=1)
    return pos[:, None, :] + offsets[None, :, :]


def _draw_nodes(ax, pos, layout, colors, spacing, marker_size) -> None:
    """Draw one marker per node: squares, hexagons (data units) or dots (``marker_size`` pt²)."""
    if len(pos) == 0:
        return
    if layout == "irregular":
        if marker_size is None:
            fig = ax.figure
            bbox = ax.get_position()
            width_pt = bbox.width * fig.get_figwidth() * 72.0
            height_pt = bbox.height * fig.get_figheight() * 72.0
            span = np.ptp(pos, axis=0) + spacing
            scale = min(width_pt / span[0], height_pt / span[1])
            marker_size = float(np.clip((0.8 * spacing * scale) ** 2, 0.25, 100.0))
        ax.scatter(pos[:, 0], pos[:, 1], c=colors, s=marker_size, linewidths=0, marker="o")
    else:
        coll = PolyCollection(_polygons(pos, layout, spacing), facecolors=colors, edgecolors="none")
        ax.add_collection(coll)


def _setup_map_axes(ax, pos, spacing, image, title) -> None:
    if image is not None:
        from .io.image import as_array

        ax.imshow(as_array(image), origin="upper", interpolation="nearest")
    if len(pos):
        lo = pos.min(axis=0) - spacing
        hi = pos.max(axis=0) + spacing
    else:
        lo, hi = np.zeros(2), np.ones(2)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(hi[1], lo[1])  # y downwards, as in the image
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)


def _label_colors(y: np.ndarray, palette: np.ndarray) -> np.ndarray:
    colors = np.tile(np.asarray(to_rgba(UNLABELED_COLOR)), (len(y), 1))
    known = y >= 0
    colors[known, :3] = palette[y[known], :3]
    return colors


def _legend(fig_or_ax, classes: Sequence[str], palette: np.ndarray, unlabeled: bool) -> None:
    handles = [Patch(facecolor=palette[i], label=str(c)) for i, c in enumerate(classes)]
    if unlabeled:
        handles.append(Patch(facecolor=UNLABELED_COLOR, label="unlabeled"))
    fig_or_ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                     frameon=False, fontsize="small")


# ----------------------------------------------------------------------------- label maps
def plot_label_map(
    graph_or_pos: Any,
    labels: Any,
    classes: Sequence[str],
    *,
    layout: Optional[str] = None,
    image: Any = None,
    ax=None,
    title: Optional[str] = None,
    marker_size: Optional[float] = None,
    legend: bool = True,
    figsize: tuple[float, float] = (6.0, 5.0),
    dpi: float = 100,
    path: Optional[PathLike] = None,
) -> Figure:
    """Map of node labels at their pixel positions.

    Args:
        graph_or_pos: a :class:`~gridgraph.graph.SpotGraph` (``pos`` and ``layout`` taken from
            it) or ``(N, 2)`` pixel ``(x, y)``.
        labels: ``(N,)`` int class ids (``-1`` = unlabeled, grey) or ``(N, K)`` probabilities.
        classes: ``K`` class names.
        layout: ``"cartesian"`` (squares), ``"hex"`` (hexagons) or ``"irregular"`` (dots); default
            the graph's layout, or ``"irregular"`` for a bare position array.
        image: section image (``(H, W, 3)`` array, ``LazyImage`` or file) drawn underneath.
        ax: draw into this axes instead of a new figure.
        marker_size: dot area in pt² for irregular layouts (default: from the node spacing).
        figsize, dpi: of the new figure (PNG size ``figsize * dpi``).
        path: write the figure there as a PNG (atomically).
    """
    pos, layout = _unpack_nodes(graph_or_pos, layout)
    k = len(classes)
    y = _node_labels(labels, len(pos), k)
    if ax is None:
        fig = _new_figure(figsize, dpi)
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    palette = class_colors(k)
    spacing = _spacing(pos)
    _setup_map_axes(ax, pos, spacing, image, title)
    _draw_nodes(ax, pos, layout, _label_colors(y, palette), spacing, marker_size)
    if legend:
        _legend(ax, classes, palette, bool((y < 0).any()))
    return _finish(fig, path)


def plot_label_maps(
    graph_or_pos: Any,
    panels: Mapping[str, Any],
    classes: Sequence[str],
    *,
    layout: Optional[str] = None,
    image: Any = None,
    marker_size: Optional[float] = None,
    panel_size: float = 4.0,
    dpi: float = 100,
    path: Optional[PathLike] = None,
) -> Figure:
    """Label maps side by side, one per entry of ``panels`` (title -> ``(N,)`` ids or ``(N, K)``
    probabilities), with one shared legend. Figure size ``(panel_size * P + 1.5, panel_size)``.
    """
    if not panels:
        raise ValueError("plot_label_maps() needs at least one panel")
    pos, layout = _unpack_nodes(graph_or_pos, layout)
    k = len(classes)
    ys = {t: _node_labels(v, len(pos), k, f"panel {t!r}") for t, v in panels.items()}
    fig = _new_figure((panel_size * len(ys) + 1.5, panel_size), dpi)
    axes = fig.subplots(1, len(ys), squeeze=False)[0]
    palette = class_colors(k)
    spacing = _spacing(pos)
    for ax, (t, y) in zip(axes, ys.items()):
        _setup_map_axes(ax, pos, spacing, image, t)
        _draw_nodes(ax, pos, layout, _label_colors(y, palette), spacing, marker_size)
    _legend(axes[-1], classes, palette, any(bool((y < 0).any()) for y in ys.values()))
    return _finish(fig, path)


def plot_predictions(
    graph_or_pos: Any,
    y_true: Any,
    pred_f: Any,
    pred_fg: Any,
    classes: Sequence[str],
    **kwargs,
) -> Figure:
    """``true | f | f+g`` label maps side by side (see :func:`plot_label_maps` for ``kwargs``).

    ``pred_f`` / ``pred_fg`` are ``(N,)`` ids or ``(N, K)`` probabilities; unlabeled nodes keep
    their predictions in the f and f+g panels.
    """
    panels = {"true": y_true, "f": pred_f, "f+g": pred_fg}
    return plot_label_maps(graph_or_pos, panels, classes, **kwargs)


def plot_misclassification(
    graph_or_pos: Any,
    y_true: Any,
    probs: Mapping[str, Any],
    *,
    layout: Optional[str] = None,
    image: Any = None,
    marker_size: Optional[float] = None,
    cmap: str = "inferno",
    panel_size: float = 4.0,
    dpi: float = 100,
    path: Optional[PathLike] = None,
) -> Figure:
    """Misclassification density ``1 - P(correct class)`` per labeled node, one panel per model.

    Args:
        y_true: ``(N,)`` int labels; unlabeled nodes (``-1``) are drawn grey.
        probs: title -> ``(N, K)`` probabilities, e.g. ``{"f": p_f, "f+g": p_fg}``.

    Colour scale 0 (certainly right) .. 1 (certainly wrong), shared by all panels.
    """
    if not probs:
        raise ValueError("plot_misclassification() needs at least one set of probabilities")
    pos, layout = _unpack_nodes(graph_or_pos, layout)
    yt = to_numpy(y_true)
    if yt.shape != (len(pos),):
        raise ValueError(
            f"y_true must have shape ({len(pos)},) to match pos, got {tuple(yt.shape)}"
        )
    dens = {}
    for t, p in probs.items():
        p = to_numpy(p)
        if p.ndim != 2 or p.shape[0] != len(pos):
            raise ValueError(f"probs {t!r} must have shape ({len(pos)}, K), got {tuple(p.shape)}")
        dens[t] = misclassification(yt, p)
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    cm = colormaps[cmap]
    norm = Normalize(0.0, 1.0)
    fig = _new_figure((panel_size * len(dens) + 1.0, panel_size), dpi)
    axes = fig.subplots(1, len(dens), squeeze=False)[0]
    spacing = _spacing(pos)
    for ax, (t, d) in zip(axes, dens.items()):
        colors = np.tile(np.asarray(to_rgba(UNLABELED_COLOR)), (len(d), 1))
        ok = ~np.isnan(d)
        colors[ok] = cm(norm(d[ok]))
        _setup_map_axes(ax, pos, spacing, image, t)
        _draw_nodes(ax, pos, layout, colors, spacing, marker_size)
    fig.colorbar(ScalarMappable(norm=norm, cmap=cm), ax=list(axes), label="1 - P(correct class)",
                 shrink=0.8)
    return _finish(fig, path)


# ----------------------------------------------------------------------------- matrices
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
