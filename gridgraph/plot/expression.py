"""Expression maps: measured against predicted expression of a few genes, beside the H&E."""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from ..evaluate.metrics import to_numpy
from .common import UNLABELED_COLOR, PathLike, _finish, _new_figure, _unpack_nodes
from .nodes import _draw_nodes, _setup_map_axes, _spacing

__all__ = ["pick_genes", "plot_expression_maps"]


def pick_genes(r: Sequence[Optional[float]]) -> dict:
    """``{"best": j, "median": j, "worst": j}``: the genes of the highest, the median and the
    lowest correlation ``r`` (genes without one, ``None`` / NaN, are skipped)."""
    values = np.array([np.nan if v is None else float(v) for v in r])
    ok = np.flatnonzero(np.isfinite(values))
    if not len(ok):
        raise ValueError("no gene has a correlation to rank by")
    order = ok[np.argsort(-values[ok], kind="stable")]
    return {"best": int(order[0]), "median": int(order[len(order) // 2]), "worst": int(order[-1])}


def _colors(values: np.ndarray, lo: float, hi: float, cmap) -> np.ndarray:
    scaled = np.clip((values - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    out = cmap(np.nan_to_num(scaled))
    out[~np.isfinite(values)] = to_rgba(UNLABELED_COLOR)
    return out


def plot_expression_maps(
    graph_or_pos: Any,
    measured: Any,
    predicted: Mapping[str, Any],
    genes: Sequence[str],
    rows: Mapping[str, int],
    *,
    image: Any = None,
    cmap: str = "viridis",
    panel_size: float = 3.0,
    dpi: float = 100,
    path: Optional[PathLike] = None,
) -> Figure:
    """One row per gene of ``rows`` (``{row title: gene index}``, e.g. :func:`pick_genes`):
    the H&E (with ``image``), the measured values and each prediction of ``predicted`` (``{name:
    (N, G)}``), all of a row on the measured values' 2nd..98th percentile scale. Nodes without a
    measurement are grey."""
    pos, layout = _unpack_nodes(graph_or_pos, None)
    y = to_numpy(measured).astype(np.float64)
    preds = {k: to_numpy(v).astype(np.float64) for k, v in predicted.items()}
    columns = (["H&E"] if image is not None else []) + ["measured", *preds]
    fig = _new_figure((panel_size * len(columns), panel_size * len(rows)), dpi)
    spacing = _spacing(pos)
    colormap = colormaps[cmap]
    for i, (title, j) in enumerate(rows.items()):
        known = y[:, j][np.isfinite(y[:, j])]
        lo, hi = (np.percentile(known, [2, 98]) if known.size else (0.0, 1.0))
        for c, name in enumerate(columns):
            ax = fig.add_subplot(len(rows), len(columns), i * len(columns) + c + 1)
            label = f"{title}: {genes[j]}\n{name}" if c == 0 else name
            if name == "H&E":
                _setup_map_axes(ax, pos, spacing, image, label)
                continue
            values = y[:, j] if name == "measured" else preds[name][:, j]
            _setup_map_axes(ax, pos, spacing, None, label)
            _draw_nodes(ax, pos, layout, _colors(values, lo, hi, colormap), spacing, None)
    return _finish(fig, path)
