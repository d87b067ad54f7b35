"""Shared pieces of the figures: colours, Agg figures written atomically, node arrays."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..evaluate.metrics import to_numpy
from ..files.atomic import atomic_write
from ..names import Layout

PathLike = Union[str, os.PathLike]
_LAYOUTS = Layout.values()
UNLABELED_COLOR = "#d9d9d9"


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
        layout = Layout.IRREGULAR.value if layout is None else layout
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
