"""Hyperparameter sampling and section-grouped (nested) cross-validation.

Pure functions over section names: nothing here trains a model. A *fold* is a group of sections
that are always held out together (e.g. the two adjacent sections of one DLPFC donor pair), so no
information leaks between sections of the same group.
"""
from __future__ import annotations

from typing import Any, Callable, Hashable, Mapping, NamedTuple, Optional, Sequence, Union

import numpy as np

__all__ = [
    "PAPER_SEARCH_SPACE",
    "DLPFC_FOLDS",
    "sample_hyperparameters",
    "Split",
    "NestedSplit",
    "make_folds",
    "cv_splits",
    "cv_splits_with_validation",
    "ValidatedSplit",
    "nested_cv_splits",
    "select_hyperparameters",
]

#: The paper's random search: ``log10(lr) ~ U(-4, -3)``, ``alpha ~ U(0, 0.1)``.
PAPER_SEARCH_SPACE: dict[str, tuple] = {
    "lr": ("log10_uniform", -4.0, -3.0),
    "alpha": ("uniform", 0.0, 0.1),
}

#: DLPFC's six folds of two adjacent sections each.
DLPFC_FOLDS: tuple[tuple[str, str], ...] = (
    ("151507", "151508"),
    ("151509", "151510"),
    ("151669", "151670"),
    ("151671", "151672"),
    ("151673", "151674"),
    ("151675", "151676"),
)

SeedLike = Union[None, int, np.random.Generator]


def _draw(rng: np.random.Generator, name: str, spec: Any):
    if not isinstance(spec, (tuple, list)) or not spec:
        raise ValueError(f"search space entry {name!r} must be a tuple like ('uniform', low, high)")
    kind = spec[0]
    if kind in ("uniform", "log10_uniform", "int_uniform"):
        if len(spec) != 3:
            raise ValueError(f"{name!r}: {kind} needs (kind, low, high), got {spec!r}")
        low, high = float(spec[1]), float(spec[2])
        if not low <= high:
            raise ValueError(f"{name!r}: low must be <= high, got {low} > {high}")
        if kind == "uniform":
            return float(rng.uniform(low, high))
        if kind == "log10_uniform":
            return float(10.0 ** rng.uniform(low, high))
        return int(rng.integers(int(low), int(high), endpoint=True))
    if kind == "choice":
        if len(spec) != 2 or len(spec[1]) == 0:
            raise ValueError(f"{name!r}: choice needs ('choice', [options...]), got {spec!r}")
        options = list(spec[1])
        return options[int(rng.integers(len(options)))]
    raise ValueError(
        f"{name!r}: unknown distribution {kind!r} (use uniform, log10_uniform, int_uniform, choice)"
    )


def sample_hyperparameters(
    num_samples: int,
    seed: SeedLike = 0,
    space: Optional[Mapping[str, tuple]] = None,
) -> list[dict[str, Any]]:
    """Random-search candidates.

    Args:
        num_samples: number of candidates.
        seed: int seed, ``None`` (fresh entropy) or a :class:`numpy.random.Generator` (advanced).
        space: name -> ``("uniform", low, high)``, ``("log10_uniform", low, high)`` (the value is
            ``10 ** U(low, high)``), ``("int_uniform", low, high)`` (inclusive) or
            ``("choice", options)``. Default :data:`PAPER_SEARCH_SPACE`.

    Returns a list of ``num_samples`` dicts. Candidates are drawn one after another, so the first
    ``n`` candidates of a seed do not depend on ``num_samples``.
    """
    if int(num_samples) != num_samples or num_samples < 0:
        raise ValueError(f"num_samples must be a non-negative integer, got {num_samples!r}")
    space = PAPER_SEARCH_SPACE if space is None else space
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return [
        {name: _draw(rng, name, spec) for name, spec in space.items()}
        for _ in range(int(num_samples))
    ]


class Split(NamedTuple):
    """Sections to train on and sections to evaluate on (validation for inner splits)."""

    train: list
    test: list


class ValidatedSplit(NamedTuple):
    """Sections to train on, to select the model on (validation) and to test on."""

    train: list
    val: list
    test: list


class NestedSplit(NamedTuple):
    """An outer split plus the inner splits over its training sections, for model selection."""

    train: list
    test: list
    inner: list  # list[Split]


def _check_folds(
    folds: Sequence[Sequence[Hashable]], sections: Optional[Sequence[Hashable]]
) -> list[list]:
    if isinstance(folds, (str, bytes)) or not isinstance(folds, Sequence):
        raise ValueError("folds must be a sequence of sequences of section names")
    out = []
    seen: dict = {}
    for i, fold in enumerate(folds):
        if isinstance(fold, (str, bytes)) or not isinstance(fold, Sequence):
            raise ValueError(f"fold {i} must be a sequence of section names, got {fold!r}")
        fold = list(fold)
        if not fold:
            raise ValueError(f"fold {i} is empty")
        for s in fold:
            if s in seen:
                raise ValueError(f"section {s!r} appears in fold {seen[s]} and fold {i}")
            seen[s] = i
        out.append(fold)
    if len(out) < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {len(out)}")
    if sections is not None:
        given = list(sections)
        missing = [s for s in given if s not in seen]
        unknown = [s for s in seen if s not in set(given)]
        if missing:
            raise ValueError(f"sections not in any fold: {missing}")
        if unknown:
            raise ValueError(f"folds name unknown sections: {unknown}")
    return out


def make_folds(
    sections: Sequence[Hashable], num_folds: int, shuffle: bool = False, seed: SeedLike = 0
) -> list[list]:
    """Split section names into ``num_folds`` groups of near-equal size.

    Contiguous groups in the given order (so adjacent sections stay together) unless ``shuffle``.
    """
    sections = list(sections)
    if len(set(sections)) != len(sections):
        raise ValueError("section names must be unique")
    if not 2 <= int(num_folds) <= len(sections):
        raise ValueError(f"num_folds must lie in 2..{len(sections)}, got {num_folds}")
    if shuffle:
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        sections = [sections[i] for i in rng.permutation(len(sections))]
    bounds = np.linspace(0, len(sections), int(num_folds) + 1).round().astype(int)
    return [sections[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def cv_splits(
    folds: Sequence[Sequence[Hashable]], sections: Optional[Sequence[Hashable]] = None
) -> list[Split]:
    """Leave-one-fold-out cross-validation grouped by section.

    Args:
        folds: groups of section names, e.g. :data:`DLPFC_FOLDS`; a section may be in one fold only.
        sections: optional list of all sections, checked to be exactly the union of the folds.

    Returns one :class:`Split` ``(train, test)`` per fold: ``test`` is the fold, ``train`` every
    other fold's sections (in fold order). Each section is tested exactly once.
    """
    folds = _check_folds(folds, sections)
    return [
        Split(train=[s for j, f in enumerate(folds) if j != i for s in f], test=list(fold))
        for i, fold in enumerate(folds)
    ]


def cv_splits_with_validation(
    folds: Sequence[Sequence[Hashable]], sections: Optional[Sequence[Hashable]] = None
) -> list[ValidatedSplit]:
    """Leave-one-fold-out cross-validation with the next fold (in the given order, cyclically)
    held out for model selection, as in the GridNet paper's DLPFC runs.

    Returns one :class:`ValidatedSplit` ``(train, val, test)`` per fold; needs at least 3 folds.
    """
    folds = _check_folds(folds, sections)
    if len(folds) < 3:
        raise ValueError(f"cross-validation with a validation fold needs at least 3 folds, got {len(folds)}")
    out = []
    for i, fold in enumerate(folds):
        v = (i + 1) % len(folds)
        train = [s for j, f in enumerate(folds) if j not in (i, v) for s in f]
        out.append(ValidatedSplit(train=train, val=list(folds[v]), test=list(fold)))
    return out


def nested_cv_splits(
    folds: Sequence[Sequence[Hashable]], sections: Optional[Sequence[Hashable]] = None
) -> list[NestedSplit]:
    """Nested cross-validation grouped by section.

    Each outer fold is held out as the test set in turn; the inner splits are leave-one-fold-out
    over the *remaining* folds and serve model selection, so they never see the outer test sections.
    Needs at least 3 folds (the inner loop needs 2).

    Returns one :class:`NestedSplit` ``(train, test, inner)`` per outer fold.
    """
    folds = _check_folds(folds, sections)
    if len(folds) < 3:
        raise ValueError(f"nested cross-validation needs at least 3 folds, got {len(folds)}")
    out = []
    for i, outer in enumerate(cv_splits(folds)):
        remaining = [f for j, f in enumerate(folds) if j != i]
        out.append(NestedSplit(train=outer.train, test=outer.test, inner=cv_splits(remaining)))
    return out


def select_hyperparameters(
    candidates: Sequence[Mapping[str, Any]],
    score: Callable[[Mapping[str, Any], Split], float],
    splits: Sequence[Split],
    greater_is_better: bool = True,
) -> tuple[int, np.ndarray]:
    """Pick the candidate with the best mean score over ``splits``.

    Args:
        candidates: e.g. from :func:`sample_hyperparameters`.
        score: ``score(candidate, split)`` trains on ``split.train`` and returns a validation metric
            on ``split.test`` (the trainer supplies it).
        splits: e.g. ``NestedSplit.inner``.
        greater_is_better: ``False`` for losses.

    Returns ``(best_index, scores)`` with ``scores`` of shape ``(len(candidates), len(splits))``;
    NaN scores are ignored in the mean; ties go to the earliest candidate.
    """
    if not candidates:
        raise ValueError("select_hyperparameters() needs at least one candidate")
    if not splits:
        raise ValueError("select_hyperparameters() needs at least one split")
    scores = np.array([[float(score(c, s)) for s in splits] for c in candidates], dtype=np.float64)
    valid = ~np.isnan(scores)
    counts = valid.sum(axis=1)
    sums = np.where(valid, scores, 0.0).sum(axis=1)
    mean = np.divide(sums, counts, out=np.full(len(candidates), np.nan), where=counts > 0)
    if np.all(np.isnan(mean)):
        raise ValueError("every candidate scored NaN on every split")
    key = np.where(np.isnan(mean), -np.inf, mean if greater_is_better else -mean)
    return int(np.argmax(key)), scores
