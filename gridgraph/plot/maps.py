"""Label maps: true, f and f + g labels of a section's nodes, and where they are wrong."""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from ..colors import class_colors
from ..evaluate.metrics import misclassification, to_numpy
from .common import (UNLABELED_COLOR, PathLike, _finish, _label_colors, _legend, _new_figure, _node_labels,
                     _unpack_nodes)
from .nodes import _draw_nodes, _setup_map_axes, _spacing


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
