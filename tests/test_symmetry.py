"""Lattice symmetries of whole sections: edges kept, geometry kept, exact grid moves."""
import numpy as np
import pytest
import torch

from gridgraph.graph import (
    RandomLatticeSymmetry,
    cartesian_graph,
    hex_graph,
    hex_grid_to_visium,
    knn_graph,
    lattice_symmetry,
    num_symmetries,
    to_dense,
)


def _ragged_hex(seed=0):
    rng = np.random.default_rng(seed)
    rows, cols = np.meshgrid(np.arange(5, 30), np.arange(10, 70), indexing="ij")
    keep = (rows % 2 == cols % 2) & (rng.random(rows.shape) < 0.8)
    return hex_graph(rows[keep], cols[keep], grid_shape=(64, 78))


def _distances(pos):
    p = pos.double()
    return (p[:, None] - p[None]).norm(dim=-1)


def _edges(graph):
    return set(map(tuple, graph.edge_index.T.tolist()))


def test_num_symmetries():
    assert (num_symmetries("hex"), num_symmetries("cartesian"), num_symmetries("irregular")) == (12, 8, 8)
    with pytest.raises(ValueError, match="layout"):
        num_symmetries("triangular")


@pytest.mark.parametrize("k", range(6))
@pytest.mark.parametrize("flip", [False, True])
def test_hex_symmetry_maps_neighbours_to_neighbours(k, flip):
    g = _ragged_hex()
    h = lattice_symmetry(g, k, flip)
    row, col = hex_grid_to_visium(h.grid_index.numpy())
    rebuilt = hex_graph(row, col, grid_shape=h.grid_shape)
    assert _edges(rebuilt) == _edges(g) and torch.equal(h.edge_index, g.edge_index)
    assert (h.grid_index >= 0).all() and (h.grid_index < torch.tensor(h.grid_shape)).all()
    assert len(set(map(tuple, h.grid_index.tolist()))) == g.num_nodes
    torch.testing.assert_close(_distances(h.pos), _distances(g.pos), atol=1e-3, rtol=0)


def test_hex_rotation_has_order_six_and_mirror_order_two():
    g = _ragged_hex(1)
    h = g
    for _ in range(6):
        h = lattice_symmetry(h, 1)
    # each step moves the whole slide, margins included, so compare the spots up to translation
    def spots(graph):
        a = np.stack(hex_grid_to_visium(graph.grid_index.numpy()), 1)
        return a - a.min(0)

    assert np.array_equal(spots(h), spots(g)) and h.grid_shape != g.grid_shape
    twice = lattice_symmetry(lattice_symmetry(g, 0, True), 0, True)
    assert np.array_equal(spots(twice), spots(g))
    assert not np.array_equal(spots(lattice_symmetry(g, 0, True)), spots(g))
    half_turn = lattice_symmetry(g, 3)  # 180 degrees keeps the slide's (64, 78) box
    assert half_turn.grid_shape == (64, 78)
    torch.testing.assert_close(half_turn.grid_index, torch.tensor([63, 77]) - g.grid_index)


def test_identity_returns_the_graph_itself():
    g = _ragged_hex()
    assert lattice_symmetry(g, 0, False) is g


def test_cartesian_quarter_turn_is_rot90_of_the_dense_grid():
    rows, cols = np.meshgrid(np.arange(4), np.arange(6), indexing="ij")
    keep = (rows + 2 * cols) % 5 != 0
    g = cartesian_graph(rows[keep], cols[keep])
    x = torch.arange(g.num_nodes, dtype=torch.float32).view(-1, 1) + 1
    for k in range(4):
        for flip in (False, True):
            h = lattice_symmetry(g, k, flip)
            expected = torch.rot90(to_dense(x, g), k, dims=(-2, -1))
            if flip:
                expected = torch.flip(expected, dims=(-1,))
            assert torch.equal(to_dense(x, h), expected), (k, flip)
            assert _edges(cartesian_graph(*h.grid_index.T.numpy())) == _edges(g)
    # one exact position: (0, 1) of a (4, 6) grid goes to (4, 0) after a quarter turn
    g1 = cartesian_graph(np.array([0, 3]), np.array([1, 5]))
    assert lattice_symmetry(g1, 1).grid_index.tolist() == [[4, 0], [0, 3]]


def test_irregular_rotation_moves_pos_only():
    pts = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0], [5.0, 5.0]])
    g = knn_graph(pts, k=2)
    h = lattice_symmetry(g, 1)
    centre = pts.mean(0)
    expected = torch.stack([-(pts - centre)[:, 1], (pts - centre)[:, 0]], 1) + centre
    torch.testing.assert_close(h.pos, expected)
    assert torch.equal(h.edge_index, g.edge_index)


def test_bad_arguments():
    g = _ragged_hex()
    with pytest.raises(ValueError, match=r"k must be in \[0, 6\)"):
        lattice_symmetry(g, 6)
    c = cartesian_graph(np.array([0, 1]), np.array([0, 0]))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        lattice_symmetry(c, 4)
    from gridgraph.graph import collate
    with pytest.raises(ValueError, match="single graph"):
        lattice_symmetry(collate([c, c]), 1)


def test_random_symmetry_is_seeded_and_covers_all():
    g = _ragged_hex()
    draw = lambda seed: [RandomLatticeSymmetry(torch.Generator().manual_seed(seed))(g)  # noqa: E731
                         for _ in range(1)]
    a, b = draw(3)[0], draw(3)[0]
    assert torch.equal(a.grid_index, b.grid_index)
    t = RandomLatticeSymmetry(torch.Generator().manual_seed(0))
    seen = {tuple(t(g).grid_index[0].tolist()) for _ in range(200)}
    assert len(seen) == 12
    assert repr(t) == "RandomLatticeSymmetry()"
