"""Predicted gene expression, written back: a table and an AnnData.

Values are on the scale the model was trained on before standardisation: per-spot normalised
``log1p`` expression (``log1p(counts / spot total * target_sum)``).

- :func:`write_expression_csv` / :func:`read_expression_csv`: ``expression.csv``, one row per
  node (``id``, then one column per gene, f + g's values).
- :func:`add_expression`: a copy of an AnnData with ``obsm["gridgraph_expression"]`` (f + g,
  or f when g was not used), ``obsm["gridgraph_expression_f"]`` (f alone), both ``(n_obs, G)``
  with NaN for observations not predicted, and ``uns["gridgraph_expression"]``: ``genes`` (the
  columns' gene names) and ``info``.
- :func:`write_expression_outputs`: both, as one set of files (all or none).
"""
from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from ...files.atomic import atomic_write
from ...files.output_set import OutputSet

__all__ = ["write_expression_csv", "read_expression_csv", "add_expression", "write_expression_outputs",
           "EXPRESSION_KEY"]

EXPRESSION_KEY = "gridgraph_expression"


def _values(values, n: int, genes: Sequence[str], what: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float32)
    if values.shape != (n, len(genes)):
        raise ValueError(f"{what}: expected shape ({n}, {len(genes)}) (nodes, genes), got {values.shape}")
    return values


def write_expression_csv(path, ids: Sequence[str], values, genes: Sequence[str]) -> Path:
    """``id`` then one column per gene, one row per node (written atomically)."""
    import pandas as pd

    values = _values(values, len(ids), genes, "expression")
    frame = pd.DataFrame(values, columns=[str(g) for g in genes])
    frame.insert(0, "id", [str(i) for i in ids])
    with atomic_write(path) as fh:
        frame.to_csv(fh, index=False, float_format="%.6g")
    return Path(path)


def read_expression_csv(path) -> tuple[list, list, np.ndarray]:
    """``(ids, genes, (N, G) float32 values)`` of an ``expression.csv``."""
    import pandas as pd

    frame = pd.read_csv(path, dtype={"id": str})
    if not len(frame.columns) or frame.columns[0] != "id":
        raise ValueError(f"{path}: expected an 'id' column then one column per gene")
    return frame["id"].tolist(), [str(c) for c in frame.columns[1:]], frame.iloc[:, 1:].to_numpy(np.float32)


def add_expression(adata, ids: Sequence[str], f_values, g_values, genes: Sequence[str],
                   info: Optional[Mapping] = None, key: str = EXPRESSION_KEY):
    """A copy of ``adata`` with the predicted expression of the observations ``ids`` (see the
    module; ``g_values`` ``None``: f was used alone). Ids not among the obs names are an error."""
    genes = [str(g) for g in genes]
    f_values = _values(f_values, len(ids), genes, "f expression")
    g_values = f_values if g_values is None else _values(g_values, len(ids), genes, "f + g expression")
    rows = adata.obs_names.get_indexer([str(i) for i in ids])
    if (rows < 0).any():
        raise ValueError(f"adata: {int((rows < 0).sum())} predicted nodes are not among its observations "
                         f"(e.g. {str(ids[int(np.flatnonzero(rows < 0)[0])])!r})")
    out = adata.copy()
    for name, values in ((key, g_values), (f"{key}_f", f_values)):
        full = np.full((out.n_obs, len(genes)), np.nan, dtype=np.float32)
        full[rows] = values
        out.obsm[name] = full
    out.uns[key] = {"genes": genes, "info": dict(info or {})}
    return out


def write_expression_outputs(out_dir, ids: Sequence[str], f_values, g_values, genes: Sequence[str],
                             adata=None, info: Optional[Mapping] = None) -> dict:
    """``expression.csv`` (f + g's values, or f's when ``g_values`` is ``None``) and, with
    ``adata`` (or a :class:`~concurrent.futures.Future` of it), ``predictions.h5ad``
    (:func:`add_expression`), as one set. Returns the paths by kind."""
    from .anndata import write_h5ad

    files = {"expression": "expression.csv"}
    if adata is not None:
        files["h5ad"] = "predictions.h5ad"
    with OutputSet(out_dir, list(files.values())) as tmp:
        write_expression_csv(tmp / files["expression"], ids, f_values if g_values is None else g_values, genes)
        if adata is not None:
            adata = adata.result() if isinstance(adata, Future) else adata
            write_h5ad(add_expression(adata, ids, f_values, g_values, genes, info), tmp / files["h5ad"])
    return {k: Path(out_dir) / name for k, name in files.items()}
