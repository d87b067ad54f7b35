"""What every prediction export shares: checked probabilities, class colours, confidence and
provenance (the AnnData, SpatialData, Xenium Explorer and QuPath writers use the same ones)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

__all__ = ["check_probabilities", "class_hex_colors", "confidence", "prediction_provenance",
           "gridgraph_version"]


def check_probabilities(probs, n: int, classes: Sequence[str], what: str = "probabilities") -> np.ndarray:
    """``probs`` as an ``(n, K)`` float32 array of finite numbers; ``ValueError`` naming ``what``
    for another shape, NaN or infinity."""
    array = np.asarray(probs.detach().cpu().numpy() if hasattr(probs, "detach") else probs, dtype=np.float32)
    k = len(classes)
    if array.ndim != 2 or array.shape != (n, k):
        raise ValueError(f"{what}: expected shape ({n}, {k}) (nodes x classes {list(classes)}), got {array.shape}")
    bad = ~np.isfinite(array).all(axis=1)
    if bad.any():
        raise ValueError(f"{what}, row {int(np.flatnonzero(bad)[0])}: expected finite probabilities, got NaN/inf")
    return array


def class_hex_colors(classes: Sequence[str]) -> list:
    """One ``#rrggbb`` colour per class, in class order: the colours of gridgraph's figures
    (``tab10`` up to 10 classes, ``tab20`` up to 20, else ``hsv``)."""
    from matplotlib.colors import to_hex

    from ...colors import class_colors

    if not len(classes):
        return []
    return [to_hex(tuple(rgb[:3])) for rgb in class_colors(len(classes))]


def confidence(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(max probability, entropy)`` of each row of ``(N, K)`` probabilities; the entropy in
    nats (0 for a certain prediction, ``log K`` for a uniform one). Rows of NaN give NaN."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape[0] == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    top = probs.max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(probs > 0, probs * np.log(np.where(probs > 0, probs, 1.0)), 0.0)
    entropy = -terms.sum(axis=1)
    entropy[np.isnan(top)] = np.nan
    return top.astype(np.float32), np.maximum(entropy, 0.0).astype(np.float32)


def gridgraph_version() -> str:
    """The installed gridgraph's version (package metadata, else ``gridgraph.__version__``)."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("gridgraph")
    except (ImportError, PackageNotFoundError):
        from ... import __version__

        return __version__


def prediction_provenance(checkpoint=None, f: Optional[str] = None, g: Optional[str] = None,
                          used: Optional[str] = None, **extra) -> dict:
    """What made a set of predictions, as plain data (stored in ``uns["gridgraph"]``).

    Args:
        checkpoint: the checkpoint file; stored as an absolute path.
        f: the name of the node classifier f.
        g: the name of the spatial corrector g, ``None`` (or ``"none"``) when f was used alone.
        used: ``"f+g"`` or ``"f"``; by default ``"f+g"`` when ``g`` is named, else ``"f"``.
        **extra: further plain entries (validation metrics, ...).

    Returns ``{"checkpoint", "f", "g", "used", "gridgraph_version", **extra}``; a ``None``
    value is left out (h5ad files cannot hold ``None``) except that ``g`` is then ``"none"``.
    """
    g = None if g in (None, "", "none", "None") else str(g)
    used = used or ("f+g" if g is not None else "f")
    if used not in ("f", "f+g"):
        raise ValueError(f"prediction provenance: used must be 'f' or 'f+g', got {used!r}")
    out = {"checkpoint": str(Path(os.fspath(checkpoint)).absolute()) if checkpoint not in (None, "") else None,
           "f": f, "g": g if g is not None else "none", "used": used, "gridgraph_version": gridgraph_version()}
    out.update(extra)
    return {k: v for k, v in out.items() if v is not None}


def complete_provenance(info: Optional[Mapping], g_used: bool) -> dict:
    """``info`` (a checkpoint's summary: ``checkpoint``, ``f``, ``g``, ...) completed as
    :func:`prediction_provenance` would give it: the checkpoint absolute, ``used`` and the
    version added. Any other mapping is kept as given."""
    info = dict(info or {})
    if "checkpoint" not in info:
        return info
    extra = {k: v for k, v in info.items() if k not in ("checkpoint", "f", "g", "used")}
    extra.pop("gridgraph_version", None)
    used = info.get("used") or ("f+g" if g_used else "f")
    return prediction_provenance(info["checkpoint"], info.get("f"), info.get("g") if g_used else None,
                                 used=used, **extra)
