"""Spatial correctors g: registry, neighbourhoods, batching, layouts."""
import csv

import numpy as np
import pytest
import torch

from gridgraph.correctors import registry
from gridgraph.correctors import (
    Conv2dCorrector,
    Corrector,
    GATCorrector,
    GCNCorrector,
    HexConvCorrector,
    SAGECorrector,
    available_correctors,
    build_corrector,
    register_corrector,
)
from gridgraph.graph import cartesian_graph, collate, from_dense, hex_graph, knn_graph, to_dense


K = 3


def _full_cartesian(h, w):
    r, c = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return cartesian_graph(r.ravel(), c.ravel())


def _hex_disc(radius, centre=(6, 12)):
    """Visium-style spots within ``radius`` array rows of a centre (a ragged hex section)."""
    rows, cols = [], []
    for r in range(centre[0] - radius, centre[0] + radius + 1):
        for c in range(r % 2, 2 * centre[1] + 2, 2):
            if (r - centre[0]) ** 2 * 3 + (c - centre[1]) ** 2 <= (2 * radius) ** 2 and r >= 0:
                rows.append(r)
                cols.append(c)
    return hex_graph(np.array(rows), np.array(cols))


def _changed(model, x, graph, node):
    model.eval()
    with torch.no_grad():
        base = model(x, graph)
        x2 = x.clone()
        x2[node] += 1.0
        diff = (model(x2, graph) - base).abs().amax(1)
    return set(torch.nonzero(diff > 1e-6).flatten().tolist())


def _neighbours(graph, node):
    ei = graph.edge_index
    return set(ei[1, ei[0] == node].tolist())


def test_registry():
    assert {"conv2d", "hexconv", "gcn", "gat", "sage"} <= set(available_correctors())
    g = build_corrector("gcn", 4, in_channels=9, hidden_channels=8, num_layers=2)
    assert isinstance(g, GCNCorrector) and g.in_channels == 9 and g.num_classes == 4
    assert build_corrector("conv2d", 4).in_channels == 4
    with pytest.raises(ValueError, match="unknown corrector 'nope'"):
        build_corrector("nope", 4)

    @register_corrector("test_identity")
    class Identity(Corrector):
        def forward(self, x, graph):
            return x

    try:
        assert "test_identity" in available_correctors()
        assert isinstance(build_corrector("test_identity", 2), Identity)
        with pytest.raises(ValueError, match="already registered"):
            register_corrector("test_identity", lambda num_classes, in_channels=None: None)
    finally:
        registry._CORRECTORS.pop("test_identity", None)


def test_conv2d_paper_layers():
    g = Conv2dCorrector(K, batch_norm=True)
    convs = [layer.conv for layer in g.layers]
    assert [c.kernel_size[0] for c in convs] == [3, 5, 5, 3]
    assert all(c.padding[0] == c.kernel_size[0] // 2 for c in convs)
    assert all(c.out_channels == K for c in convs)  # hidden width defaults to K, as the paper
    assert [layer.relu for layer in g.layers] == [True, True, True, False]
    assert [layer.norm.num_features for layer in g.layers[:3]] == [K, K, K]
    assert g.layers[3].norm is None
    wide = Conv2dCorrector(K, in_channels=10, hidden_channels=16)
    assert [(c.conv.in_channels, c.conv.out_channels) for c in wide.layers] == [
        (10, 16), (16, 16), (16, 16), (16, K)]


def test_conv2d_one_layer_touches_3x3_block():
    graph = _full_cartesian(6, 7)
    g = Conv2dCorrector(K, kernel_sizes=(3,))
    x = torch.randn(graph.num_nodes, K)
    gi = graph.grid_index
    for node in (0, 17, 41):
        r, c = gi[node].tolist()
        block = {
            i for i, (rr, cc) in enumerate(gi.tolist()) if abs(rr - r) <= 1 and abs(cc - c) <= 1
        }
        assert _changed(g, x, graph, node) == block


def test_conv2d_background_cells_do_not_leak():
    # Nodes at (0, 0) and (0, 2); the cell between them is empty. Two 3x3 layers would carry
    # (0, 0) to (0, 2) through the empty cell if it were not zeroed between layers.
    graph = cartesian_graph(np.array([0, 0]), np.array([0, 2]))
    g = Conv2dCorrector(K, kernel_sizes=(3, 3))
    x = torch.randn(2, K)
    assert _changed(g, x, graph, 0) == {0}


def test_hexconv_paper_layers():
    g = HexConvCorrector(K, batch_norm=True)
    chans = [(layer.conv.hex.in_channels, layer.conv.hex.out_channels) for layer in g.layers]
    assert chans == [(K, 32), (32, 32), (32, 32), (32, 32), (32, K)]
    assert [layer.relu for layer in g.layers] == [False, True, False, True, False]
    assert [layer.norm.num_features for layer in g.layers[:4]] == [32] * 4
    assert all(layer.conv.hex.hexbase_size == 1 for layer in g.layers)


def _dlpfc_graph(dlpfc_dir):
    path = dlpfc_dir / "151673" / "spatial" / "tissue_positions_list.csv"
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent")
    rows, cols = [], []
    with open(path, newline="") as fh:
        for rec in csv.reader(fh):
            if rec[1] == "1":
                rows.append(int(rec[2]))
                cols.append(int(rec[3]))
    return hex_graph(np.array(rows), np.array(cols))


@pytest.mark.realdata
def test_hexconv_one_layer_mixes_exactly_six_neighbours_dlpfc(dlpfc_dir):
    graph = _dlpfc_graph(dlpfc_dir)
    assert graph.num_nodes == 3639
    torch.manual_seed(0)
    # Through the corrector: perturb single nodes, interior and on the tissue border.
    g = HexConvCorrector(K, num_layers=1)
    x = torch.randn(graph.num_nodes, K)
    deg = graph.degree()
    interior = torch.nonzero(deg == 6).flatten()[:3].tolist()
    border = torch.nonzero(deg < 6).flatten()[:3].tolist()
    nodes = interior + border
    for node in nodes:
        assert _changed(g, x, graph, node) == {node} | _neighbours(graph, node)
    # Every node at once: one impulse per batch item through the layer's hexagonal convolution.
    conv = HexConvCorrector(1, num_layers=1).layers[0].conv
    n = graph.num_nodes
    h, w = graph.grid_shape
    gi = graph.grid_index
    impulses = torch.zeros(n, 1, h, w)  # batch item i: a unit impulse at node i
    impulses[torch.arange(n), 0, gi[:, 0], gi[:, 1]] = 1.0
    with torch.no_grad():
        resp = conv(impulses) - conv(torch.zeros(1, 1, h, w))
    touched = resp[:, 0, gi[:, 0], gi[:, 1]].abs() > 1e-7  # (source, target) over nodes
    adj = torch.zeros(n, n, dtype=torch.bool)
    adj[graph.edge_index[0], graph.edge_index[1]] = True
    adj |= torch.eye(n, dtype=torch.bool)
    assert torch.equal(touched, adj)


def test_hexconv_varying_grid_shapes_and_batches():
    torch.manual_seed(0)
    g = HexConvCorrector(K).eval()
    graphs = [_hex_disc(3), _hex_disc(5, centre=(7, 13)), _hex_disc(4, centre=(5, 9))]
    shapes = {gr.grid_shape for gr in graphs}
    assert len(shapes) == 3 and {s[1] % 2 for s in shapes} == {0, 1}
    xs = [torch.randn(gr.num_nodes, K) for gr in graphs]
    with torch.no_grad():
        alone = [g(x, gr) for x, gr in zip(xs, graphs)]
        again = [g(x, gr) for x, gr in zip(xs[::-1], graphs[::-1])][::-1]
        batched = g(torch.cat(xs), collate(graphs))
    for a, b in zip(alone, again):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(batched, torch.cat(alone))
    # Neighbourhoods stay hexagonal in a batch whose grid is larger than each section's.
    one = HexConvCorrector(K, num_layers=1)
    batch = collate(graphs)
    x = torch.randn(batch.num_nodes, K)
    for node in (0, int(batch.ptr[1]) + 5, int(batch.ptr[2]) + 11):
        assert _changed(one, x, batch, node) == {node} | _neighbours(batch, node)


def test_hexconv_batchnorm_over_nodes_only():
    graph = _hex_disc(4)
    g = HexConvCorrector(K, batch_norm=True)
    first = g.layers[0]
    first.norm.momentum = 1.0  # running stats = the last batch's statistics
    x = torch.randn(graph.num_nodes, K)
    out = g(x, graph)
    assert out.shape == (graph.num_nodes, K)
    out.sum().backward()
    with torch.no_grad():
        pre = from_dense(first.conv(to_dense(x, graph)), graph)
    torch.testing.assert_close(first.norm.running_mean, pre.mean(0))
    g.eval()
    assert g(x, graph).shape == (graph.num_nodes, K)


def test_gcn_one_layer_touches_exactly_graph_neighbours():
    torch.manual_seed(0)
    pos = torch.rand(60, 2) * 100
    graph = knn_graph(pos, k=4)
    g = GCNCorrector(K, in_channels=5, num_layers=1)
    x = torch.randn(60, 5)
    for node in (0, 13, 59):
        assert _changed(g, x, graph, node) == {node} | _neighbours(graph, node)


@pytest.mark.parametrize("cls", [GCNCorrector, GATCorrector, SAGECorrector])
def test_gnn_standalone_on_pyg_data(cls):
    from torch_geometric.data import Data

    torch.manual_seed(0)
    graph = knn_graph(torch.rand(30, 2), k=3)
    x = torch.randn(30, 6)
    data = Data(x=x, edge_index=graph.edge_index)
    g = cls(4, in_channels=6, hidden_channels=8, num_layers=3, dropout=0.5, batch_norm=True).eval()
    out = g(data.x, data.edge_index)
    assert out.shape == (30, 4)
    torch.testing.assert_close(g(data), out)
    torch.testing.assert_close(g(x, graph), out)
    torch.testing.assert_close(g(x, graph.to_pyg(x=x)), out)
    g.train()
    out = g(data.x, data.edge_index)
    out.sum().backward()
    assert all(p.grad is not None for p in g.parameters())


def test_gnn_options():
    g = GCNCorrector(K, in_channels=8, hidden_channels=8, num_layers=4, residual=True)
    assert len(g.convs) == 4 and g.convs[0].in_channels == 8 and g.convs[-1].out_channels == K
    gat = GATCorrector(K, hidden_channels=8, heads=2)
    assert gat.convs[0].heads == 2 and gat.convs[0].out_channels == 4
    with pytest.raises(ValueError, match="divisible"):
        GATCorrector(K, hidden_channels=7, heads=2)
    with pytest.raises(ValueError, match="num_layers"):
        GCNCorrector(K, num_layers=0)
    assert "hidden_channels=8" in repr(g)


def _two_sections(layout):
    if layout == "cartesian":
        a = _full_cartesian(4, 5)
        b = cartesian_graph(np.array([0, 0, 1, 2, 2, 3, 5]), np.array([0, 1, 1, 1, 6, 2, 3]))
    elif layout == "hex":
        a, b = _hex_disc(3), _hex_disc(4, centre=(5, 9))
    else:
        a = knn_graph(torch.rand(25, 2), k=4)
        b = knn_graph(torch.rand(12, 2), k=4)
    return a, b


@pytest.mark.parametrize(
    "name,layout",
    [("conv2d", "cartesian"), ("conv2d", "hex"), ("hexconv", "hex"), ("gcn", "cartesian"),
     ("gcn", "hex"), ("gcn", "irregular"), ("gat", "irregular"), ("sage", "hex")],
)
def test_batches_of_two_sections(name, layout):
    torch.manual_seed(0)
    a, b = _two_sections(layout)
    assert a.num_nodes != b.num_nodes
    g = build_corrector(name, K, in_channels=5).eval()
    xa, xb = torch.randn(a.num_nodes, 5), torch.randn(b.num_nodes, 5)
    with torch.no_grad():
        out = g(torch.cat([xa, xb]), collate([a, b]))
        assert out.shape == (a.num_nodes + b.num_nodes, K)
        torch.testing.assert_close(out, torch.cat([g(xa, a), g(xb, b)]))


def test_wrong_layouts_raise_clear_errors():
    cart = _full_cartesian(3, 3)
    irregular = knn_graph(torch.rand(9, 2), k=3)
    x = torch.randn(9, K)
    with pytest.raises(ValueError, match="'hex'.*'cartesian'"):
        HexConvCorrector(K)(x, cart)
    with pytest.raises(ValueError, match="'hex'.*'irregular'"):
        HexConvCorrector(K)(x, irregular)
    with pytest.raises(ValueError, match="irregular.*GNN"):
        Conv2dCorrector(K)(x, irregular)
    with pytest.raises(TypeError, match="SpotGraph"):
        Conv2dCorrector(K)(x, cart.edge_index)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        Conv2dCorrector(K, in_channels=4)(x, cart)
    with pytest.raises(ValueError, match="rows"):
        GCNCorrector(K)(x[:5], cart)
