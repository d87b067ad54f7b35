"""Metrics of predicted gene expression, as the field reports them (ST-Net, HisToGene, Hist2ST,
HEST-Benchmark): per gene, the Pearson r and Spearman rho across the nodes, summarised over genes.

``y_true`` and ``y_pred`` are ``(N, G)`` (numpy or torch); rows of ``y_true`` that are not all
finite (nodes without counts) are dropped first. A gene whose truth or prediction is constant
over the nodes has no correlation (NaN); means and medians are over the genes that have one.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special
from scipy.stats import rankdata

from .metrics import to_numpy

__all__ = ["pearson_per_gene", "spearman_per_gene", "pearson_pvalues", "regression_metrics", "R_THRESHOLD"]

R_THRESHOLD = 0.3  # "well predicted" genes: r above this
ALPHA = 0.05  # family-wise level of the Bonferroni-corrected test


def _pairs(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    y, p = to_numpy(y_true).astype(np.float64), to_numpy(y_pred).astype(np.float64)
    if y.ndim == 1:
        y, p = y[:, None], p.reshape(-1, 1)
    if y.ndim != 2 or p.shape != y.shape:
        raise ValueError(f"y_true and y_pred must both be (N, G), got {y.shape} and {p.shape}")
    keep = np.isfinite(y).all(axis=1)
    y, p = y[keep], p[keep]
    if not np.isfinite(p).all():
        raise ValueError("y_pred contains NaN or infinite values at nodes that have a target")
    return y, p


def _pearson(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    yc, pc = y - y.mean(0), p - p.mean(0)
    num = (yc * pc).sum(0)
    den = np.sqrt((yc * yc).sum(0) * (pc * pc).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return np.clip(r, -1.0, 1.0)


def pearson_per_gene(y_true: Any, y_pred: Any) -> np.ndarray:
    """``(G,)`` Pearson r of each gene (column) across the nodes; NaN where a column is constant."""
    return _pearson(*_pairs(y_true, y_pred))


def spearman_per_gene(y_true: Any, y_pred: Any) -> np.ndarray:
    """``(G,)`` Spearman rho: Pearson r of the ranks (ties get their average rank)."""
    y, p = _pairs(y_true, y_pred)
    return _pearson(rankdata(y, axis=0), rankdata(p, axis=0))


def pearson_pvalues(r: np.ndarray, n: int) -> np.ndarray:
    """Two-sided p-values of Pearson r over ``n`` pairs (the exact test of ``scipy.stats.pearsonr``:
    under independence ``(r + 1) / 2`` follows Beta(n/2 - 1, n/2 - 1))."""
    r = np.asarray(r, dtype=np.float64)
    if n < 3:
        return np.full(r.shape, np.nan)
    a = n / 2 - 1
    with np.errstate(invalid="ignore"):
        return np.clip(2 * special.betainc(a, a, 0.5 * (1 - np.abs(r))), 0.0, 1.0)


def _summary(values: np.ndarray) -> tuple[float, float]:
    ok = values[np.isfinite(values)]
    return (float(ok.mean()), float(np.median(ok))) if ok.size else (float("nan"), float("nan"))


def regression_metrics(y_true: Any, y_pred: Any, per_gene: bool = False) -> dict:
    """``mean_pearson``/``median_pearson`` and ``mean_spearman``/``median_spearman`` over genes,
    ``genes_r_above_0.3`` (how many genes have r > 0.3), ``genes_significant`` (how many have a
    positive r significant at 0.05 after Bonferroni correction over the genes), ``mse`` (mean
    over nodes and genes), ``num_genes`` and ``num_nodes``; with ``per_gene`` also the lists
    ``pearson`` and ``spearman`` (NaN as ``None``)."""
    y, p = _pairs(y_true, y_pred)
    r = _pearson(y, p)
    rho = _pearson(rankdata(y, axis=0), rankdata(p, axis=0)) if len(y) else np.full(y.shape[1], np.nan)
    pvals = pearson_pvalues(r, len(y))
    genes = y.shape[1]
    mean_r, median_r = _summary(r)
    mean_rho, median_rho = _summary(rho)
    out = {
        "mean_pearson": mean_r, "median_pearson": median_r,
        "mean_spearman": mean_rho, "median_spearman": median_rho,
        f"genes_r_above_{R_THRESHOLD}": int(np.sum(np.nan_to_num(r, nan=-1.0) > R_THRESHOLD)),
        "genes_significant": int(np.sum((np.nan_to_num(r, nan=0.0) > 0) & (np.nan_to_num(pvals, nan=1.0)
                                                                         < ALPHA / max(genes, 1)))),
        "mse": float(np.mean((y - p) ** 2)) if y.size else float("nan"),
        "num_genes": int(genes), "num_nodes": int(len(y)),
    }
    if per_gene:
        out["pearson"] = [None if not np.isfinite(v) else float(v) for v in r]
        out["spearman"] = [None if not np.isfinite(v) else float(v) for v in rho]
    return out
