"""Ridge regression of gene expression on patch embeddings: the HEST-Benchmark's baseline.

HEST (Jaume et al. 2024) fits a ridge regression from frozen patch embeddings to the most
variable genes and reports the Pearson r per gene. Here it is closed form in numpy: the
embeddings are z-scored with the training nodes' statistics, the intercept is not penalised, and
the penalty is picked from a grid by the mean Pearson r on validation nodes
(:func:`select_ridge`). Rows of the targets that are not all finite (nodes without counts) are
left out.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .metrics import to_numpy
from .regression import regression_metrics

__all__ = ["Ridge", "fit_ridge", "select_ridge", "RIDGE_PENALTIES"]

RIDGE_PENALTIES = tuple(10.0 ** k for k in range(-2, 9))


@dataclass(frozen=True)
class Ridge:
    """A fitted ridge map: ``predict(x) = ((x - mean) / scale) @ weight + bias``."""

    mean: np.ndarray
    scale: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    penalty: float

    def predict(self, x: Any) -> np.ndarray:
        x = to_numpy(x).astype(np.float64)
        return ((x - self.mean) / self.scale) @ self.weight + self.bias


def _rows(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = to_numpy(x).astype(np.float64), to_numpy(y).astype(np.float64)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise ValueError(f"expected (N, D) embeddings and (N, G) targets, got {x.shape} and {y.shape}")
    keep = np.isfinite(y).all(axis=1)
    if not keep.any():
        raise ValueError("no node has a target (every row of y holds NaN)")
    return x[keep], y[keep]


def fit_ridge(x: Any, y: Any, penalty: float = 1.0) -> Ridge:
    """Minimise ``|Y - Z W - b|^2 + penalty |W|^2`` over the nodes with a target, ``Z`` the
    z-scored embeddings (features constant over the training nodes are kept at zero)."""
    x, y = _rows(x, y)
    mean = x.mean(0)
    scale = x.std(0)
    scale = np.where(scale > 0, scale, 1.0)
    z = (x - mean) / scale
    ym = y.mean(0)
    gram = z.T @ z + float(penalty) * np.eye(z.shape[1])
    weight = np.linalg.solve(gram, z.T @ (y - ym))
    return Ridge(mean=mean, scale=scale, weight=weight, bias=ym, penalty=float(penalty))


def select_ridge(x_train: Any, y_train: Any, x_val: Any, y_val: Any,
                 penalties: Sequence[float] = RIDGE_PENALTIES) -> Ridge:
    """The ridge of the penalty (of ``penalties``) with the best mean Pearson r on validation."""
    best, best_r = None, -np.inf
    for penalty in penalties:
        model = fit_ridge(x_train, y_train, penalty)
        r = regression_metrics(y_val, model.predict(x_val))["mean_pearson"]
        if best is None or (np.isfinite(r) and r > best_r):
            best, best_r = model, (r if np.isfinite(r) else best_r)
    return best
