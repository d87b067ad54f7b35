"""Spatial correctors g: registry, neighbourhoods, batching, layouts."""
import csv

import numpy as np
import pytest
import torch

from gridgraph.correctors import registry
from gridgraph.correctors import (
    Conv2dCorrector,
    Corrector,
    DenseCorrector,
    GATCorrector,
    GCNCorrector,
    HexConv2d,
    HexConvCorrector,
    SAGECorrector,
    UNetCorrector,
    available_correctors,
    build_corrector,
    register_corrector,
)
from gridgraph.graph import (
    cartesian_graph,
    collate,
    foreground_mask,
    from_dense,
    hex_graph,
    hex_grid_to_visium,
    knn_graph,
    to_dense,
)


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
    assert {"conv2d", "hexconv", "gcn", "gat", "sage", "unet"} <= set(available_correctors())
    g = build_corrector("gcn", 4, in_channels=9, hidden_channels=8, num_layers=2)
    assert isinstance(g, GCNCorrector) and g.in_channels == 9 and g.num_classes == 4
    assert build_corrector("conv2d", 4).in_channels == 4
    with pytest.raises(ValueError, match=r"unknown corrector 'nope'; known: conv2d, gat, gcn, hexconv"):
        build_corrector("nope", 4)
    assert available_correctors() == registry.CORRECTORS.names()

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
        registry.CORRECTORS.remove("test_identity")


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
    torch.manual_seed(0)  # (an unseeded ReLU could be dead at node 0 and hide the check)
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


@pytest.mark.parametrize("kwargs", [{}, {"improved": True}, {"add_self_loops": False}, {"normalize": False}])
def test_gcn_equals_plain_gcnconv_layers_forward_and_backward(kwargs):
    from torch_geometric.nn import GCNConv

    torch.manual_seed(0)
    edge_index = knn_graph(torch.rand(80, 2) * 50, k=5).edge_index
    edge_index = torch.cat([edge_index, edge_index[:, :7]], 1)  # duplicate edges add up in both
    g = GCNCorrector(K, in_channels=4, hidden_channels=6, num_layers=3, **kwargs)
    plain = [GCNConv(c.in_channels, c.out_channels, **kwargs) for c in g.convs]
    for layer, conv in zip(plain, g.convs):
        layer.load_state_dict(conv.state_dict())
    x = torch.randn(80, 4, requires_grad=True)
    h = x
    for i, layer in enumerate(plain):
        out = layer(h, edge_index)
        if i < 2:
            out = torch.relu(out)
            h = h + out if out.shape == h.shape else out
    ours = g(x, edge_index)
    torch.testing.assert_close(ours, out, rtol=1e-5, atol=1e-6)
    grads = torch.autograd.grad(ours.square().sum(), [x, g.convs[0].lin.weight])
    expected = torch.autograd.grad(out.square().sum(), [x, plain[0].lin.weight])
    for a, b in zip(grads, expected):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_gcn_adjacency_is_reused_only_for_the_same_unchanged_edges():
    from gridgraph.correctors.gnn import gcn_adjacency

    edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    adj = gcn_adjacency(edge_index, 3)
    assert gcn_adjacency(edge_index, 3) is adj
    # path 0-1-2 with self-loops: degrees 2, 3, 2
    expected = torch.tensor([[1 / 2, 1 / 6 ** 0.5, 0], [1 / 6 ** 0.5, 1 / 3, 1 / 6 ** 0.5], [0, 1 / 6 ** 0.5, 1 / 2]])
    torch.testing.assert_close(adj.to_dense(), expected)
    assert gcn_adjacency(edge_index.clone(), 3) is not adj
    same = gcn_adjacency(edge_index, 3)
    edge_index[1, 3] = 0  # edited in place: 2 -> 0 instead of 2 -> 1
    changed = gcn_adjacency(edge_index, 3)
    assert changed is not same and changed.to_dense()[0, 2] > 0 and changed.to_dense()[1, 2] == 0
    assert gcn_adjacency(edge_index, 4).shape == (4, 4)


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


def test_unet_receptive_field_spans_the_section():
    torch.manual_seed(0)
    graph = _hex_disc(12, centre=(14, 30))
    x = torch.randn(graph.num_nodes, K)
    far = int(torch.argmax(graph.pos[:, 0]))  # the rightmost spot
    import networkx as nx

    hops = nx.single_source_shortest_path_length(graph.to_networkx(), far)
    assert max(hops.values()) > 20
    assert len(_changed(build_corrector("hexconv", K), x, graph, far)) == sum(d <= 5 for d in hops.values())

    def without_norm(depth):  # GroupNorm couples all cells; drop it to see the convolutions' reach
        g = UNetCorrector(K, base_channels=8, depth=depth)
        for block in list(g.down) + list(g.merge):
            for i, layer in enumerate(block):
                if isinstance(layer, torch.nn.GroupNorm):
                    block[i] = torch.nn.Identity()
        return g

    def reached(g):  # float64 and a large step: deep unnormalised signals are small, not zero
        g = g.double().eval()
        x64 = x.double()
        with torch.no_grad():
            moved = x64.clone()
            moved[far] += 1e3
            diff = (g(moved, graph) - g(x64, graph)).abs().amax(1)
        return torch.nonzero(diff > 1e-12).flatten().tolist()

    cell = graph.grid_index
    reach = (cell - cell[far]).abs().amax(1)  # Chebyshev distance on the dense grid
    assert max(reach[reached(without_norm(0))].tolist()) == 2  # two 3x3 convolutions
    assert len(reached(without_norm(3))) == graph.num_nodes  # 25 hops away and more


@pytest.mark.parametrize("shape", [(13, 17), (64, 78), (8, 8)])
def test_unet_any_grid_shape_and_gradients(shape):
    torch.manual_seed(0)
    rows, cols = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    keep = (rows + cols) % 3 != 0
    graph = cartesian_graph(rows[keep], cols[keep], grid_shape=shape)
    g = build_corrector("unet", K, in_channels=5, base_channels=4, depth=2, dropout=0.1)
    x = torch.randn(graph.num_nodes, 5, requires_grad=True)
    out = g(x, graph)
    assert out.shape == (graph.num_nodes, K)
    out.square().sum().backward()
    assert x.grad.abs().sum() > 0 and all(p.grad is not None for p in g.parameters())


def test_unet_mask_channel_and_options():
    g = UNetCorrector(K, in_channels=5, base_channels=4, depth=1)
    assert g.down[0][0].in_channels == 6
    assert UNetCorrector(K, in_channels=5, mask_channel=False).down[0][0].in_channels == 5
    assert "base_channels=4, depth=1, mask_channel=True" in repr(g)
    # with the mask channel, two sections whose features are all zero differ by their shape
    small, big = _hex_disc(3), _hex_disc(6)
    g.eval()
    with torch.no_grad():
        a = g(torch.zeros(small.num_nodes, 5), small)
        b = g(torch.zeros(big.num_nodes, 5), big)
    assert not torch.allclose(a[0], b[0])
    with pytest.raises(ValueError, match="depth"):
        UNetCorrector(K, depth=-1)
    with pytest.raises(ValueError, match="dropout"):
        UNetCorrector(K, dropout=1.0)
    with pytest.raises(ValueError, match="irregular"):
        g(torch.zeros(9, 5), knn_graph(torch.rand(9, 2), k=3))


def test_unet_same_alone_or_in_a_batch_of_one_slide_shape():
    torch.manual_seed(0)
    a = _hex_disc(4, centre=(6, 12))
    b = _hex_disc(5, centre=(7, 14))
    a = hex_graph(*hex_grid_to_visium(a.grid_index.numpy()), grid_shape=(16, 16))
    b = hex_graph(*hex_grid_to_visium(b.grid_index.numpy()), grid_shape=(16, 16))
    g = UNetCorrector(K, base_channels=4, depth=2).eval()
    xa, xb = torch.randn(a.num_nodes, K), torch.randn(b.num_nodes, K)
    with torch.no_grad():
        torch.testing.assert_close(g(torch.cat([xa, xb]), collate([a, b])), torch.cat([g(xa, a), g(xb, b)]))


@pytest.mark.parametrize("shape", [(7, 8), (7, 9), (64, 78)])
def test_fused_hexconv_equals_hexagdly_forward_and_backward(shape):
    torch.manual_seed(0)
    conv = HexConv2d(5, 4)
    torch.nn.init.normal_(conv.bias)
    assert conv.fused
    x = torch.randn(2, 5, *shape, requires_grad=True)
    fused = conv(x)
    fused.square().sum().backward()
    grads = [x.grad.clone()] + [p.grad.clone() for p in conv.parameters()]
    x.grad = None
    conv.zero_grad()
    conv.fused = False
    plain = conv(x)
    plain.square().sum().backward()
    torch.testing.assert_close(fused, plain)
    for a, b in zip(grads, [x.grad] + [p.grad for p in conv.parameters()]):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-5)  # weight gradients sum in another order
    assert not HexConv2d(5, 4, kernel_size=2).fused  # larger kernels use HexagDLy's own path


@pytest.mark.parametrize("name", ["conv2d", "hexconv"])
def test_dense_correctors_crop_the_grid_to_the_nodes_exactly(name):
    torch.manual_seed(0)
    small = _hex_disc(4, centre=(6, 12))
    row, col = hex_grid_to_visium(small.grid_index.numpy())
    framed = hex_graph(row + 9, col + 11, grid_shape=(64, 78))  # odd shift: column parity flips
    cropped = DenseCorrector.crop_to_nodes(framed)
    assert cropped.grid_shape[0] < 64 and cropped.grid_shape[1] < 78
    assert int(cropped.grid_index[:, 1].min()) in (0, 1)  # crops start at an even column
    g = build_corrector(name, K, num_layers=3) if name == "hexconv" else build_corrector(name, K)
    x = torch.randn(framed.num_nodes, K)
    with torch.no_grad():
        full = layer_free_forward(g, x, framed)
        torch.testing.assert_close(g(x, framed), full)
    assert DenseCorrector.crop_to_nodes(cropped) is cropped


def layer_free_forward(g, x, graph):
    """The corrector's layers on the uncropped dense grid (the reference for cropping)."""
    h, mask = to_dense(x, graph), foreground_mask(graph)
    for layer in g.layers:
        h = layer.forward_dense(h, mask)
    return from_dense(h, graph)


def test_base_corrector_accepts_any_graph_and_kwargs_are_checked():
    from gridgraph.correctors import CORRECTORS, Corrector

    assert Corrector(3).check_graph(object()) is None
    assert "hidden_channels" in CORRECTORS.parameters("gcn")
    assert "improved" in CORRECTORS.parameters("gcn")  # forwarded to GCNConv
    CORRECTORS.check_kwargs("gcn", {"hidden_channels": 8, "aggr": "mean"}, "g.kwargs")
    with pytest.raises(ValueError, match=r"g\.kwargs\.hidden_chanels: corrector 'gcn' takes no argument"):
        CORRECTORS.check_kwargs("gcn", {"hidden_chanels": 3}, "g.kwargs")


def test_corrector_modules_and_registry_object():
    import gridgraph.correctors as correctors
    from gridgraph.correctors import base, conv2d, dense, hexconv, unet

    assert correctors.CORRECTORS is registry.CORRECTORS
    assert registry.CORRECTORS.kind == "corrector"
    assert registry.CORRECTORS.fixed == ("num_classes", "in_channels")
    assert correctors.Corrector is base.Corrector
    assert conv2d.__all__ == ["Conv2dCorrector"]
    assert {"GridLayer", "GridCorrector", "DenseCorrector"} <= set(vars(dense))
    assert issubclass(hexconv.HexConvCorrector, dense.DenseCorrector)
    assert issubclass(unet.UNetCorrector, dense.GridCorrector)
    for name in available_correctors():  # every built-in corrector has a check_graph
        assert callable(build_corrector(name, K).check_graph)
    assert registry.CORRECTORS.parameters("conv2d") == [
        "hidden_channels", "kernel_sizes", "batch_norm", "bias"]
