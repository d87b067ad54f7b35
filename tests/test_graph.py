import csv

import networkx as nx
import numpy as np
import pytest
import torch

from gridgraph.graph import (
    VISIUM_GRID_SHAPE,
    SpotGraph,
    cartesian_graph,
    collate,
    foreground_mask,
    from_dense,
    hex_graph,
    hex_grid_to_visium,
    knn_graph,
    radius_graph,
    to_dense,
    visium_to_hex_grid,
)


def full_visium():
    r, c = np.meshgrid(np.arange(78), np.arange(128), indexing="ij")
    keep = (r % 2) == (c % 2)
    return r[keep], c[keep]


def edge_set(g):
    return set(map(tuple, g.edge_index.t().tolist()))


def assert_undirected(g):
    e = edge_set(g)
    assert len(e) == g.num_edges, "duplicate edges"
    assert all((b, a) in e for a, b in e), "missing reverse edge"
    assert all(a != b for a, b in e), "self loop"


def test_hex_full_visium_array_degrees():
    row, col = full_visium()
    g = hex_graph(row, col)
    assert g.num_nodes == 78 * 64
    assert g.grid_shape == VISIUM_GRID_SHAPE == (64, 78)
    assert_undirected(g)
    deg = g.degree().numpy()
    interior = (row > 0) & (row < 77) & (col > 1) & (col < 126)
    assert (deg[interior] == 6).all()
    assert (deg[~interior] < 6).all()
    # Undirected edges of a full 78 x 64 hex array: rows 78*63 horizontal + 2*77*64 - 77 diagonal.
    assert g.num_edges // 2 == 78 * 63 + 2 * 77 * 64 - 77


def test_hex_neighbours_are_the_six_true_ones():
    row, col = full_visium()
    g = hex_graph(row, col)
    index = {(r, c): i for i, (r, c) in enumerate(zip(row.tolist(), col.tolist()))}
    nbrs = {i: set() for i in range(g.num_nodes)}
    for a, b in g.edge_index.t().tolist():
        nbrs[a].add(b)
    for r, c in [(10, 20), (11, 21), (0, 0), (77, 127), (40, 64)]:
        expect = {
            index[(r + dr, c + dc)]
            for dr, dc in [(0, -2), (0, 2), (-1, -1), (-1, 1), (1, -1), (1, 1)]
            if (r + dr, c + dc) in index
        }
        assert nbrs[index[(r, c)]] == expect


def test_hex_layout_round_trip_and_parity_error():
    row, col = full_visium()
    grid = visium_to_hex_grid(row, col)
    r2, c2 = hex_grid_to_visium(grid)
    np.testing.assert_array_equal(r2, row)
    np.testing.assert_array_equal(c2, col)
    assert len({tuple(x) for x in grid.tolist()}) == len(row)
    with pytest.raises(ValueError, match="parity"):
        hex_graph([0, 1], [0, 2])


def test_hex_graph_on_dlpfc_151673(dlpfc_dir):
    path = dlpfc_dir / "151673" / "spatial" / "tissue_positions_list.csv"
    with open(path) as fh:
        rows = [r for r in csv.reader(fh) if r[1] == "1"]
    assert len(rows) == 3639
    row = np.array([int(r[2]) for r in rows])
    col = np.array([int(r[3]) for r in rows])
    g = hex_graph(row, col)
    assert_undirected(g)
    deg = g.degree().numpy()
    present = set(zip(row.tolist(), col.tolist()))
    offsets = [(0, -2), (0, 2), (-1, -1), (-1, 1), (1, -1), (1, 1)]
    expect = np.array([sum((r + a, c + b) in present for a, b in offsets) for r, c in zip(row, col)])
    np.testing.assert_array_equal(deg, expect)
    assert deg.max() == 6 and (deg == 6).sum() > 3000 and (deg < 6).sum() > 0


def test_cartesian_4_and_8_exact():
    r, c = np.meshgrid(np.arange(3), np.arange(4), indexing="ij")
    g4 = cartesian_graph(r.ravel(), c.ravel(), connectivity=4)
    assert_undirected(g4)
    assert g4.num_edges // 2 == 3 * 3 + 2 * 4
    assert sorted(g4.degree().tolist()) == [2] * 4 + [3] * 6 + [4] * 2
    g8 = cartesian_graph(r.ravel(), c.ravel(), connectivity=8)
    assert g8.num_edges // 2 == 17 + 2 * (2 * 3)
    assert g8.degree().max() == 8
    assert g4.grid_shape == (3, 4)
    torch.testing.assert_close(g4.pos, torch.tensor(np.stack([c.ravel(), r.ravel()], 1), dtype=torch.float32))
    with pytest.raises(ValueError, match="connectivity"):
        cartesian_graph([0], [0], connectivity=6)
    with pytest.raises(ValueError, match="share the grid cell"):
        cartesian_graph([0, 0], [1, 1])
    with pytest.raises(ValueError, match="too small"):
        cartesian_graph([0, 5], [0, 0], grid_shape=(3, 3))


def test_knn_symmetric_min_degree_and_exact_small_case():
    pts = np.random.default_rng(0).random((500, 2)) * 100
    g = knn_graph(pts, k=6)
    assert_undirected(g)
    assert g.degree().min() >= 6
    # Every point's 6 nearest neighbours (brute force) are among its graph neighbours.
    d = ((pts[:, None] - pts[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    nearest = np.argsort(d, axis=1)[:, :6]
    e = edge_set(g)
    assert all((i, int(j)) in e for i in range(500) for j in nearest[i])
    # and the graph holds nothing else: each edge is a kNN edge in at least one direction
    assert all(b in nearest[a] or a in nearest[b] for a, b in e)
    line = knn_graph([[0, 0], [1, 0], [3, 0], [7, 0]], k=1)
    assert edge_set(line) == {(0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (3, 2)}


def test_radius_graph_matches_brute_force():
    pts = np.random.default_rng(1).random((300, 2)) * 50
    g = radius_graph(pts, r=5.0)
    d = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1))
    expect = {(i, j) for i, j in zip(*np.nonzero(d <= 5.0)) if i != j}
    assert edge_set(g) == expect
    with pytest.raises(ValueError, match="positive"):
        radius_graph(pts, r=0)
    with pytest.raises(ValueError, match="NaN"):
        knn_graph([[0, 0], [np.nan, 1]])


def test_exports_agree():
    g = hex_graph([0, 0, 1, 1, 2], [0, 2, 1, 3, 0])
    a = g.adjacency()
    assert (a != a.T).nnz == 0 and a.nnz == g.num_edges
    nxg = g.to_networkx()
    assert nxg.number_of_edges() == g.num_edges // 2
    assert nx.to_scipy_sparse_array(nxg, nodelist=range(5)).toarray().tolist() == a.toarray().tolist()
    data = g.to_pyg(x=torch.ones(5, 3))
    assert data.num_nodes == 5 and data.x.shape == (5, 3)
    assert torch.equal(data.edge_index, g.edge_index)


def test_collate_offsets_and_dense_round_trip():
    g1 = cartesian_graph([0, 0, 1], [0, 1, 1])
    g2 = cartesian_graph([0, 1, 2, 2], [0, 0, 0, 3])
    b = collate([g1, g2])
    assert b.num_graphs == 2 and b.ptr.tolist() == [0, 3, 7]
    assert b.batch.tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert b.grid_shape == (3, 4)
    assert edge_set(b) == edge_set(g1) | {(i + 3, j + 3) for i, j in edge_set(g2)}
    x = torch.arange(14, dtype=torch.float32).view(7, 2)
    dense = to_dense(x, b)
    assert dense.shape == (2, 2, 3, 4)
    assert dense[1, :, 2, 3].tolist() == [12.0, 13.0]
    assert dense.sum() == x.sum()
    torch.testing.assert_close(from_dense(dense, b), x)
    assert foreground_mask(b).sum() == 7
    with pytest.raises(ValueError, match="grid layout"):
        to_dense(x[:3], knn_graph(np.random.rand(3, 2), k=1))


def test_subgraph_keeps_internal_edges():
    g = cartesian_graph(*np.nonzero(np.ones((3, 3))))
    sub = g.subgraph(torch.tensor([1, 1, 0, 1, 1, 0, 0, 0, 0], dtype=torch.bool))
    assert sub.num_nodes == 4 and sub.num_edges // 2 == 4
    assert isinstance(sub, SpotGraph) and sub.grid_index.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
