"""Graph specs: an edge rule and its arguments, built the same way wherever a graph is needed.

:data:`GRAPH_BUILDERS` maps each rule name to its builder;
:class:`GraphSpec` names one with keyword arguments (``GraphSpec("knn", {"k": 8})``), checks them
against the builder's signature, and builds a :class:`SpotGraph` from a section's coordinates.
Readers and configs take a spec instead of carrying their own graph policy.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

import numpy as np

from ..registry import Registry
from .builders import cartesian_graph, hex_graph, knn_graph, radius_graph
from .spot_graph import SpotGraph

__all__ = ["GRAPH_BUILDERS", "GraphSpec", "GraphSpecLike"]

GRAPH_BUILDERS = Registry("graph builder", fixed=("array_row", "array_col", "pos"))
GRAPH_BUILDERS.register("hex", hex_graph)
GRAPH_BUILDERS.register("cartesian", cartesian_graph)
GRAPH_BUILDERS.register("knn", knn_graph)
GRAPH_BUILDERS.register("radius", radius_graph)


def _on_arrays(rule: str) -> bool:
    """Whether a builder takes array indices (its first argument is ``array_row``) or positions."""
    import inspect

    first = next(iter(inspect.signature(GRAPH_BUILDERS.get(rule)).parameters), None)
    return first == "array_row"


@dataclass(frozen=True)
class GraphSpec:
    """An edge rule and its keyword arguments.

    Args:
        rule: a name in :data:`GRAPH_BUILDERS` (``"hex"``, ``"cartesian"``: on array indices;
            ``"knn"``, ``"radius"``: on pixel positions; or one registered with
            ``GRAPH_BUILDERS.register``: on array indices when its first argument is ``array_row``).
        kwargs: the builder's own arguments (``k``, ``r``, ``connectivity``, ...), checked
            against its signature.
    """

    rule: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        rule = str(getattr(self.rule, "value", self.rule))
        if rule not in GRAPH_BUILDERS:
            raise ValueError(f"graph rule must be one of {GRAPH_BUILDERS.names()}, got {self.rule!r}")
        object.__setattr__(self, "rule", rule)
        object.__setattr__(self, "kwargs", dict(self.kwargs))
        GRAPH_BUILDERS.check_kwargs(rule, self.kwargs, "graph.kwargs")
        missing = [k for k in GRAPH_BUILDERS.required(rule) if k not in self.kwargs]
        if missing:
            raise ValueError(f"graph.kwargs.{missing[0]}: graph rule {rule!r} needs {missing[0]}")

    @classmethod
    def parse(cls, value: "GraphSpecLike") -> Optional["GraphSpec"]:
        """``None``, a rule name, ``{"name": rule, "kwargs": {...}}`` (the config's spelling;
        the older ``{"builder": rule, **kwargs}`` too) or a spec -> a spec (or ``None``)."""
        if value is None or isinstance(value, GraphSpec):
            return value
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, Mapping):
            if "builder" in value:
                kwargs = {k: v for k, v in value.items() if k != "builder"}
                return None if value["builder"] is None else cls(value["builder"], kwargs)
            rule = value.get("name")
            return None if rule is None else cls(rule, dict(value.get("kwargs") or {}))
        raise TypeError(f"a graph spec is a rule name or a mapping with 'name' and 'kwargs', got {value!r}")

    @property
    def needs_array(self) -> bool:
        """Whether the rule works on array indices (``array_row``, ``array_col``)."""
        return _on_arrays(self.rule)

    def build(self, pos, array_row=None, array_col=None, where: str = "graph") -> SpotGraph:
        """The graph over ``(N, 2)`` pixel ``pos`` (and array indices for hex / cartesian)."""
        builder = GRAPH_BUILDERS.get(self.rule)
        if self.needs_array:
            if array_row is None or array_col is None:
                raise ValueError(f"{where}: graph rule {self.rule!r} needs array coordinates "
                                 "(array_row, array_col); use 'knn' or 'radius' for points")
            return builder(array_row, array_col, pos=np.asarray(pos), **self.kwargs)
        return builder(np.asarray(pos), **self.kwargs)

    def to_dict(self) -> dict:
        return {"name": self.rule, "kwargs": dict(self.kwargs)}

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self.kwargs.items())
        return f"GraphSpec({self.rule!r}{args})"


GraphSpecLike = Union[GraphSpec, str, Mapping, None]
