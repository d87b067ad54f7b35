"""GridGraphNet: f over node patches only, g on the graph, batching, gradients."""
import copy

import numpy as np
import pytest
import torch

import gridgraph
from gridgraph import GridGraphNet, build_model
from gridgraph.correctors import Conv2dCorrector, GCNCorrector, HexConvCorrector
from gridgraph.encoders import densenet_tiny, gridnet_simple
from gridgraph.graph import cartesian_graph, collate, hex_graph, knn_graph
from gridgraph.patches.transforms import normalize


K = 4
P = 16


def _patches(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, P, P), dtype=torch.uint8, generator=g)


def _sparse_cartesian():
    """12 spots on a 5 x 6 grid: most cells are background."""
    rows = np.array([0, 0, 1, 1, 1, 2, 2, 3, 4, 4, 4, 4])
    cols = np.array([0, 1, 1, 2, 5, 2, 3, 3, 0, 3, 4, 5])
    return cartesian_graph(rows, cols)


def _hex_section(n_rows, n_cols, skip=()):
    rows, cols = [], []
    for r in range(n_rows):
        for c in range(r % 2, 2 * n_cols, 2):
            if (r, c) not in skip:
                rows.append(r)
                cols.append(c)
    return hex_graph(np.array(rows), np.array(cols))


def test_exported():
    assert gridgraph.GridGraphNet is GridGraphNet
    for name in ("GridGraphNet", "build_model", "build_corrector", "encode", "resnet34_seg"):
        assert name in gridgraph.__all__


def test_f_sees_exactly_the_node_patches():
    graph = _sparse_cartesian()
    h, w = graph.grid_shape
    assert graph.num_nodes < h * w
    model = GridGraphNet(gridnet_simple(K), Conv2dCorrector(K), chunk_size=5)
    seen = []
    model.f.register_forward_pre_hook(lambda m, i: seen.append(i[0].detach().clone()))
    patches = _patches(graph.num_nodes)
    with torch.no_grad():
        out = model(patches, graph)
    assert out.shape == (graph.num_nodes, K)
    rows = torch.cat(seen)
    assert rows.shape[0] == graph.num_nodes  # N rows, never H * W
    torch.testing.assert_close(rows, normalize(patches))  # each node's own patch, in order
    # While training (checkpointed), f still only ever receives node patches.
    seen.clear()
    model(patches, graph).sum().backward()
    assert sum(r.shape[0] for r in seen) == 2 * graph.num_nodes  # forward + recomputation
    norm = normalize(patches)
    for r in seen:
        assert any(torch.equal(r[:1], norm[i : i + 1]) for i in range(graph.num_nodes))


def test_wrong_number_of_patches():
    graph = _sparse_cartesian()
    model = GridGraphNet(gridnet_simple(K), Conv2dCorrector(K))
    with pytest.raises(ValueError, match="one patch per node"):
        model(_patches(30), graph)


@pytest.mark.parametrize("g_input", ["softmax", "logits", "features"])
def test_g_input_modes(g_input):
    graph = _sparse_cartesian()
    f = gridnet_simple(K)
    in_channels = f.embedding_dim if g_input == "features" else K
    model = GridGraphNet(f, GCNCorrector(K, in_channels=in_channels), g_input=g_input).eval()
    got = {}
    model.g.register_forward_pre_hook(lambda m, args: got.update(x=args[0]))
    patches = _patches(graph.num_nodes)
    with torch.no_grad():
        out = model(patches, graph, return_f=True)
        f_logits = model.forward_f(patches)
    assert out.g_logits.shape == out.f_logits.shape == (graph.num_nodes, K)
    torch.testing.assert_close(out.f_logits, f_logits)
    torch.testing.assert_close(f_logits, f(normalize(patches)))
    x = got["x"]
    if g_input == "softmax":
        torch.testing.assert_close(x, f_logits.softmax(-1))
    elif g_input == "logits":
        torch.testing.assert_close(x, f_logits)
    else:
        torch.testing.assert_close(x, f.embed(normalize(patches)))
    # The two halves alone give the same result.
    with torch.no_grad():
        f_logits2, g_in = model.f_outputs(patches)
        torch.testing.assert_close(model.g_outputs(g_in, graph), out.g_logits)
    torch.testing.assert_close(f_logits2, f_logits)


class _PlainClassifier(torch.nn.Module):
    """A torchvision-style f without ``embed``: trunk, pool, ``classifier``."""

    def __init__(self):
        super().__init__()
        self.trunk = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3), torch.nn.AdaptiveAvgPool2d(1))
        self.classifier = torch.nn.Linear(6, K)

    def forward(self, x):
        return self.classifier(self.trunk(x).flatten(1))


def test_features_of_any_f_with_classifier_and_hooks_see_f():
    graph = _sparse_cartesian()
    f = _PlainClassifier()
    model = GridGraphNet(f, GCNCorrector(K, in_channels=6), g_input="features", chunk_size=5, g_residual=False)
    calls = []
    f.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    patches = _patches(graph.num_nodes)
    f_logits, g_in = model.f_outputs(patches)
    assert sum(calls) == graph.num_nodes
    with torch.no_grad():
        emb = f.trunk(normalize(patches)).flatten(1)
    torch.testing.assert_close(g_in, emb)
    model.g_outputs(g_in, graph).sum().backward()  # checkpointed chunks backprop into f
    assert f.trunk[0].weight.grad is not None and f.classifier.weight.grad is None


def test_mismatched_widths_raise():
    with pytest.raises(ValueError, match="input channels"):
        GridGraphNet(gridnet_simple(K), Conv2dCorrector(K), g_input="features")
    with pytest.raises(ValueError, match="g_input"):
        GridGraphNet(gridnet_simple(K), Conv2dCorrector(K), g_input="probs")
    with pytest.raises(ValueError, match="classifier"):
        GridGraphNet(torch.nn.Linear(3, K), Conv2dCorrector(K), g_input="features")


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("make_f", [gridnet_simple, densenet_tiny])
def test_features_protocol_path_equals_hook_fallback_bitwise(make_f, train, monkeypatch):
    """f.embed + f.classifier (protocol) == f's forward with a hook on f.classifier (fallback)."""
    import gridgraph.model.net as model_module
    from gridgraph.encoders import Encoder
    from gridgraph.encoders.protocol import _hooked

    torch.manual_seed(0)
    graph = _sparse_cartesian()
    f = make_f(K)
    assert isinstance(f, Encoder)
    model = GridGraphNet(f, GCNCorrector(K, in_channels=f.embedding_dim), g_input="features",
                         chunk_size=5).train(train)
    patches = _patches(graph.num_nodes)
    state = copy.deepcopy(f.state_dict())
    logits, emb = model.f_outputs(patches)
    f.load_state_dict(state)  # the same batch-norm running statistics for the second pass
    monkeypatch.setattr(model_module, "logits_and_embedding", _hooked)
    hooked_logits, hooked_emb = model.f_outputs(patches)
    assert torch.equal(logits, hooked_logits) and torch.equal(emb, hooked_emb)
    assert emb.shape == (graph.num_nodes, f.embedding_dim) and logits.shape == (graph.num_nodes, K)


@pytest.mark.parametrize("g_input", ["softmax", "features"])
def test_a_hook_on_f_classifier_counts_every_pass_of_f(g_input):
    graph = _sparse_cartesian()  # 12 nodes: chunks of 5, 5, 2
    f = gridnet_simple(K)
    in_channels = f.embedding_dim if g_input == "features" else K
    model = GridGraphNet(f, GCNCorrector(K, in_channels=in_channels), g_input=g_input,
                         chunk_size=5, g_residual=False)
    rows, forward_calls = [], []
    f.classifier.register_forward_hook(lambda m, i, o: rows.append(o.shape[0]))
    f.register_forward_hook(lambda *a: forward_calls.append(1))
    model(_patches(graph.num_nodes), graph)  # training mode: chunked and checkpointed
    assert rows == [5, 5, 2]
    # f.forward runs only for logits/probabilities: an Encoder's features skip it.
    assert len(forward_calls) == (0 if g_input == "features" else 3)


def test_g_input_is_checked_and_stored_as_a_plain_string():
    from gridgraph.names import GInput

    model = GridGraphNet(gridnet_simple(K), Conv2dCorrector(K), g_input=GInput.LOGITS)
    assert type(model.g_input) is str and model.g_input == "logits"
    with pytest.raises(ValueError, match="g_input must be 'softmax', 'logits' or 'features'"):
        GridGraphNet(gridnet_simple(K), Conv2dCorrector(K), g_input="probs")


@pytest.mark.parametrize(
    "corrector,kind",
    [("conv2d", "cartesian"), ("hexconv", "hex"), ("gcn", "hex"), ("gcn", "irregular")],
)
def test_batch_of_two_sections(corrector, kind):
    torch.manual_seed(0)
    if kind == "cartesian":
        a = _sparse_cartesian()
        b = cartesian_graph(np.array([0, 1, 1, 2, 6]), np.array([0, 0, 1, 1, 2]))
    elif kind == "hex":
        a = _hex_section(4, 5)
        b = _hex_section(6, 3, skip={(2, 2), (3, 3)})
    else:
        a = knn_graph(torch.rand(15, 2), k=3)
        b = knn_graph(torch.rand(8, 2), k=3)
    model = build_model(K, corrector=corrector, chunk_size=6).eval()
    pa, pb = _patches(a.num_nodes, 1), _patches(b.num_nodes, 2)
    with torch.no_grad():
        out = model(torch.cat([pa, pb]), collate([a, b]))
        assert out.shape == (a.num_nodes + b.num_nodes, K)
        torch.testing.assert_close(out, torch.cat([model(pa, a), model(pb, b)]))


@pytest.mark.parametrize("make_f", [gridnet_simple, densenet_tiny])
def test_training_step_gradients_equal_plain(make_f):
    """f + g end to end: chunked and checkpointed == one plain pass, for every parameter."""
    torch.manual_seed(0)
    graph = collate([_hex_section(4, 4), _hex_section(3, 5)])
    f = make_f(K).eval()  # eval: batch-norm statistics must not depend on the chunking
    plain = GridGraphNet(f, HexConvCorrector(K), chunk_size=None, checkpoint=False)
    chunked = copy.deepcopy(plain)
    chunked.chunk_size, chunked.checkpoint = 5, True
    patches = _patches(graph.num_nodes)
    target = torch.randint(0, K, (graph.num_nodes,))
    for model in (plain, chunked):
        out = model(patches, graph, return_f=True)
        loss = torch.nn.functional.cross_entropy(out.g_logits, target)
        loss = loss + torch.nn.functional.cross_entropy(out.f_logits, target)
        loss.backward()
    a = torch.cat([p.grad.flatten() for p in chunked.parameters()])
    b = torch.cat([p.grad.flatten() for p in plain.parameters()])
    assert ((a - b).norm() / b.norm()).item() <= 1e-5
    ga = torch.cat([p.grad.flatten() for p in chunked.f.parameters()])
    gb = torch.cat([p.grad.flatten() for p in plain.f.parameters()])
    assert ((ga - gb).norm() / gb.norm()).item() <= 1e-5


def test_freeze_f_trains_g_only():
    graph = _sparse_cartesian()
    model = GridGraphNet(gridnet_simple(K), Conv2dCorrector(K)).freeze_f()
    model(_patches(graph.num_nodes), graph).sum().backward()
    assert all(p.grad is None for p in model.f.parameters())
    assert all(p.grad is not None for p in model.g.parameters())
    model.freeze_f(False)
    assert all(p.requires_grad for p in model.f.parameters())


def test_build_model_features():
    model = build_model(K, corrector="gcn", g_input="features", corrector_kwargs={"num_layers": 2})
    assert model.g.in_channels == model.f.embedding_dim == 128
    assert "g_input='features'" in repr(model)


def test_g_residual_adds_f_log_probabilities_for_every_input_kind():
    import torch.nn.functional as F

    from gridgraph import build_model
    from gridgraph.graph import knn_graph

    torch.manual_seed(0)
    graph = knn_graph(torch.rand(6, 2).numpy(), k=2)
    patches = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8)
    for g_input in ("softmax", "logits", "features"):
        kw = dict(encoder="gridnet_simple", corrector="gcn", g_input=g_input, g_ensemble=1,
                  encoder_kwargs={"stage_channels": (4, 4, 4, 4), "stem_channels": 4})
        torch.manual_seed(1)
        plain = build_model(3, g_residual=False, **kw).eval()
        torch.manual_seed(1)
        res = build_model(3, g_residual=True, g_zero_init=False, **kw).eval()
        with torch.no_grad():
            a, b = plain(patches, graph, return_f=True), res(patches, graph, return_f=True)
        torch.testing.assert_close(a.f_logits, b.f_logits)
        # softmax of (g + log softmax f) equals softmax of (g + f logits): shift invariance.
        torch.testing.assert_close(F.softmax(b.g_logits, -1), F.softmax(a.g_logits + a.f_logits, -1),
                                   rtol=1e-4, atol=1e-5)
