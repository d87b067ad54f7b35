import numpy as np
import pytest
import torch

from gridgraph.graph import GRAPH_BUILDERS, GraphSpec, hex_graph, knn_graph


def test_registry_lists_every_rule_and_checks_kwargs():
    assert GRAPH_BUILDERS.names() == ["cartesian", "hex", "knn", "radius"]
    assert GRAPH_BUILDERS.parameters("knn") == ["k", "workers"]
    with pytest.raises(ValueError, match=r"graph\.kwargs\.kk: graph builder 'knn' takes no argument 'kk' \(it takes: k, workers\)"):
        GraphSpec("knn", {"kk": 3})
    with pytest.raises(ValueError, match="graph rule must be one of"):
        GraphSpec("delaunay")


@pytest.mark.parametrize("value, expected", [
    (None, None),
    ("knn", GraphSpec("knn")),
    ({"builder": "radius", "r": 2.5}, GraphSpec("radius", {"r": 2.5})),
    ({"builder": None}, None),
])
def test_parse(value, expected):
    assert GraphSpec.parse(value) == expected


def test_build_equals_the_builder_and_round_trips():
    pos = np.random.default_rng(0).random((40, 2)) * 100
    spec = GraphSpec.parse({"builder": "knn", "k": 4})
    assert torch.equal(spec.build(pos).edge_index, knn_graph(pos, k=4).edge_index)
    assert GraphSpec.parse(spec.to_dict()) == spec
    assert repr(spec) == "GraphSpec('knn', k=4)"
    rows, cols = np.array([0, 0, 1]), np.array([0, 2, 1])
    hexed = GraphSpec("hex").build(np.zeros((3, 2)), rows, cols)
    assert torch.equal(hexed.edge_index, hex_graph(rows, cols, pos=np.zeros((3, 2))).edge_index)
    with pytest.raises(ValueError, match="section s1: graph rule 'hex' needs array coordinates"):
        GraphSpec("hex").build(pos, where="section s1")
