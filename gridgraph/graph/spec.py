"""Graph specs: an edge rule and its arguments, built the same way wherever a graph is needed.

:data:`GRAPH_BUILDERS` maps each :class:`~gridgraph.names.GraphRule` to its builder;
:class:`GraphSpec` names one with keyword arguments (``GraphSpec("knn", {"k": 8})``), checks them
against the builder's signature, and builds a :class:`SpotGraph` from a section's coordinates.
Readers and configs take a spec instead of carrying their own graph policy.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

import numpy as np

from ..names import GraphRule
from ..registry import Registry
from .builders import cartesian_graph, hex_graph, knn_graph, radius_graph
from .spot_graph import SpotGraph

__all__ = ["GRAPH_BUILDERS", "GraphSpec", "GraphSpecLike"]

GRAPH_BUILDERS = Registry("graph builder", fixed=("array_row", "array_col", "pos"))
GRAPH_BUILDERS.register(GraphRule.HEX.value, hex_graph)
GRAPH_BUILDERS.register(GraphRule.CARTESIAN.value, cartesian_graph)
GRAPH_BUILDERS.register(GraphRule.KNN.value, knn_graph)
GRAPH_BUILDERS.register(GraphRule.RADIUS.value, radius_graph)

_ON_ARRAYS = (GraphRule.HEX, GraphRule.CARTESIAN)


@dataclass(frozen=True)
class GraphSpec:
    """An edge rule and its keyword arguments.

    Args:
        rule: a :class:`~gridgraph.names.GraphRule` (``"hex"``, ``"cartesian"``: on array
            indices; ``"knn"``, ``"radius"``: on pixel positions).
        kwargs: the builder's own arguments (``k``, ``r``, ``connectivity``, ...), checked
            against its signature.
    """

    rule: GraphRule
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        try:
            object.__setattr__(self, "rule", GraphRule(self.rule))
        except ValueError:
            raise ValueError(f"graph rule must be one of {GraphRule.values()}, got {self.rule!r}") from None
        object.__setattr__(self, "kwargs", dict(self.kwargs))
        GRAPH_BUILDERS.check_kwargs(self.rule.value, self.kwargs, "graph")
        missing = [k for k in GRAPH_BUILDERS.required(self.rule.value) if k not in self.kwargs]
        if missing:
            raise ValueError(f"graph.{missing[0]}: graph rule {self.rule.value!r} needs {missing[0]}")

    @classmethod
    def parse(cls, value: "GraphSpecLike") -> Optional["GraphSpec"]:
        """``None``, a rule name, ``{"builder": rule, **kwargs}`` or a spec -> a spec (or ``None``)."""
        if value is None or isinstance(value, GraphSpec):
            return value
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, Mapping):
            kwargs = dict(value)
            rule = kwargs.pop("builder", None)
            return None if rule is None else cls(rule, kwargs)
        raise TypeError(f"a graph spec is a rule name or a mapping with 'builder', got {value!r}")

    @property
    def needs_array(self) -> bool:
        """Whether the rule works on array indices (``array_row``, ``array_col``)."""
        return self.rule in _ON_ARRAYS

    def build(self, pos, array_row=None, array_col=None, where: str = "graph") -> SpotGraph:
        """The graph over ``(N, 2)`` pixel ``pos`` (and array indices for hex / cartesian)."""
        builder = GRAPH_BUILDERS.get(self.rule.value)
        if self.needs_array:
            if array_row is None or array_col is None:
                raise ValueError(f"{where}: graph rule {self.rule.value!r} needs array coordinates "
                                 "(array_row, array_col); use 'knn' or 'radius' for points")
            return builder(array_row, array_col, pos=np.asarray(pos), **self.kwargs)
        return builder(np.asarray(pos), **self.kwargs)

    def to_dict(self) -> dict:
        return {"builder": self.rule.value, **self.kwargs}

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self.kwargs.items())
        return f"GraphSpec({self.rule.value!r}{args})"


GraphSpecLike = Union[GraphSpec, str, Mapping, None]
