"""Predictions into the AnnData a user started from (scanpy / squidpy conventions)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from ...files.atomic import atomic_path

__all__ = ["add_predictions", "write_h5ad", "section_anndata"]


def section_anndata(section):
    """An AnnData of a section's nodes: ``obs_names`` the node ids, ``obsm["spatial"]`` their
    pixel ``(x, y)`` in the section's image, ``obs["array_row"/"array_col"]`` where known."""
    import anndata
    import pandas as pd

    obs = pd.DataFrame(index=pd.Index(np.asarray(section.barcodes, dtype=str).astype(object), name="id"))
    if section.array_row is not None:
        obs["array_row"], obs["array_col"] = np.asarray(section.array_row), np.asarray(section.array_col)
    adata = anndata.AnnData(obs=obs)
    adata.obsm["spatial"] = section.pixel_pos.numpy().astype(np.float64)
    return adata


def _categorical(codes: np.ndarray, classes: Sequence[str]):
    import pandas as pd

    return pd.Categorical.from_codes(codes, categories=list(classes))


def add_predictions(adata, ids: Sequence[str], f_probs: np.ndarray, g_probs: np.ndarray,
                    classes: Sequence[str], info: Optional[Mapping] = None, key: str = "gridgraph"):
    """A copy of ``adata`` with gridgraph's predictions for the observations ``ids``.

    Writes ``obs[key]`` (f + g's class, categorical in class order), ``obs[key + "_f"]`` (f
    alone), ``obsm[key + "_probs"]`` (``(n_obs, K)`` f + g probabilities) and ``uns[key]``
    (``classes`` and ``info``). Observations that were not predicted (outside the tissue,
    another library) get a missing class and NaN probabilities.

    Args:
        adata: the AnnData the section was read from.
        ids: ``(N,)`` obs names of the predicted nodes, in the order of the probability rows.
        f_probs, g_probs: ``(N, K)`` class probabilities of f alone and of f + g.
        classes: the K class names.
        info: plain data stored beside the classes (e.g. the checkpoint's summary).
    """
    f_probs, g_probs = np.asarray(f_probs, dtype=np.float32), np.asarray(g_probs, dtype=np.float32)
    k = len(classes)
    if f_probs.shape != (len(ids), k) or g_probs.shape != (len(ids), k):
        raise ValueError(f"probabilities must have shape ({len(ids)}, {k}), got {f_probs.shape} and {g_probs.shape}")
    rows = adata.obs_names.get_indexer(list(ids))
    if (rows < 0).any():
        missing = list(ids)[int(np.flatnonzero(rows < 0)[0])]
        raise ValueError(f"node id {missing!r} is not an obs name of the AnnData")
    out = adata.copy()
    probs = np.full((out.n_obs, k), np.nan, dtype=np.float32)
    probs[rows] = g_probs
    for column, p in ((key, g_probs), (f"{key}_f", f_probs)):
        codes = np.full(out.n_obs, -1, dtype=np.int64)  # -1: a missing class
        codes[rows] = p.argmax(1)
        out.obs[column] = _categorical(codes, classes)
    out.obsm[f"{key}_probs"] = probs
    out.uns[key] = {"classes": list(classes), **dict(info or {})}
    return out


def write_h5ad(adata, path: Union[str, os.PathLike]) -> Path:
    """Write ``adata`` to ``path`` atomically (see :func:`~gridgraph.files.atomic.atomic_path`)."""
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp)
    return Path(path)
