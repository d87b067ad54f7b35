"""The one label encoder of the readers: class names to int codes, in a fixed class order."""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np

from .tables.checks import natural_sorted

__all__ = ["encode_labels", "map_labels"]


def encode_labels(
    names: Sequence, classes: Optional[Sequence[str]] = None, source: str = "labels"
) -> tuple[np.ndarray, list]:
    """Map label names to ints (``None``/NaN/empty -> -1); ``classes`` fixes the order.

    Without ``classes`` the distinct names in natural order (``L1..L6, WM``; see
    :func:`~gridgraph.io.tables.natural_sorted`). A name absent from a given ``classes`` raises
    ``ValueError`` naming ``source``. The one label encoder of every reader.
    """
    def missing(v) -> bool:
        return v is None or (isinstance(v, float) and np.isnan(v)) or str(v).strip() == ""

    clean = [None if missing(v) else str(v).strip() for v in names]
    if classes is None:
        classes = natural_sorted(v for v in clean if v is not None)
    classes = [str(c) for c in classes]
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({v for v in clean if v is not None and v not in index})
    if unknown:
        raise ValueError(f"{source}: unknown label names {unknown[:5]}; expected one of {classes}")
    codes = np.array([-1 if v is None else index[v] for v in clean], dtype=np.int64)
    return codes, classes


def map_labels(ids: Sequence[str], mapping: Mapping, classes: Optional[Sequence[str]],
               source: str) -> tuple[np.ndarray, list]:
    """``(codes, classes)``: the ``(N,)`` int64 class of each id through ``mapping`` (``-1``
    for ids without a label), as :func:`encode_labels` would give, but
    encoding only the distinct names (fast for 10^6 ids)."""
    import pandas as pd

    if not mapping:
        return np.full(len(ids), -1, dtype=np.int64), list(classes or [])
    names = pd.Series(np.asarray(ids, dtype=object)).map(dict(mapping))
    codes, uniques = pd.factorize(names, use_na_sentinel=True)
    unique_codes, class_names = encode_labels(list(uniques), classes, source)
    out = np.full(len(ids), -1, dtype=np.int64)
    known = codes >= 0
    out[known] = unique_codes[codes[known]]
    return out, class_names


def labels_from_obs(obs, label_key: Optional[str], keep, classes: Optional[Sequence[str]], source: str,
                    count: int) -> tuple:
    """``(labels, classes)`` of the kept rows of an AnnData ``obs`` column (categorical columns give
    their category order unless ``classes`` is given; missing values are unlabeled); no column
    (``label_key=None``): ``count`` unlabeled nodes."""
    names = [None] * count
    if label_key is not None:
        if label_key not in obs:
            raise ValueError(f"{source}: obs has no column {label_key!r}; found {list(obs.columns)}")
        column = obs[label_key][keep]
        if classes is None and hasattr(column, "cat"):
            classes = [str(c) for c in column.cat.categories]
        names = [None if v is None or v != v else v for v in column.tolist()]
    return encode_labels(names, classes, f"{source}: obs[{label_key!r}]")
