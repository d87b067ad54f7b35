"""Every fixed set of names a config or a file may hold, in one place, as ``StrEnum`` s.

A member compares equal to its string (``Regimen.TWO_STAGE == "two_stage"``), so configs and
checkpoints keep plain strings.
"""
from __future__ import annotations

from enum import Enum

__all__ = ["Regimen", "Stage", "GInput", "Metric", "Layout", "EnsembleMethod", "choices"]


class _Names(str, Enum):
    def __str__(self) -> str:
        return self.value

    @classmethod
    def values(cls) -> tuple:
        return tuple(m.value for m in cls)


class Regimen(_Names):
    """How f and g are trained: the GridNet paper's three regimens."""

    TWO_STAGE = "two_stage"
    AT_ONCE = "at_once"
    FINE_TUNE = "fine_tune"


class Stage(_Names):
    """One stage of a regimen: f alone, g alone on f's cached outputs, or both together."""

    F = "f"
    G = "g"
    JOINT = "joint"


class GInput(_Names):
    """What g reads of f: its class probabilities, its logits or its embedding."""

    SOFTMAX = "softmax"
    LOGITS = "logits"
    FEATURES = "features"


class Metric(_Names):
    """Validation metric that picks the best model."""

    ACCURACY = "accuracy"
    AUROC = "auroc"

    @property
    def key(self) -> str:
        """The name of this metric in :func:`gridgraph.evaluate.compute_metrics` results."""
        return "macro_auroc" if self is Metric.AUROC else "accuracy"


class EnsembleMethod(_Names):
    """How an ensemble combines its members' class probabilities."""

    MEAN = "mean"
    VOTE = "vote"


class Layout(_Names):
    """Node layout of a :class:`~gridgraph.graph.SpotGraph`."""

    CARTESIAN = "cartesian"
    HEX = "hex"
    IRREGULAR = "irregular"


def choices(names: type[_Names]) -> str:
    """``"a, b or c"``: the values of an enum for error messages."""
    values = [repr(v) for v in names.values()]
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]
