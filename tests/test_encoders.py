"""Patch encoders f and the chunked, checkpointed ``encode``."""
import copy

import pytest
import torch
from torch import nn

from gridgraph.encoders import (
    DenseNetEncoder,
    GridNetSimple,
    build_encoder,
    densenet121,
    densenet_tiny,
    encode,
    gridnet_simple,
    load_densenet_weights,
)
from gridgraph.patches.transforms import normalize


def _patches(n, p=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, p, p), dtype=torch.uint8, generator=g)


def _grads(model):
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def _rel_err(a, b):
    return ((a - b).norm() / b.norm()).item()


def test_gridnet_simple_architecture():
    f = gridnet_simple(7)
    assert isinstance(f, GridNetSimple)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in f.modules())
    convs = [m for m in f.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.bias is None for c in convs)
    stem = convs[0]
    assert (stem.in_channels, stem.out_channels) == (3, 64)
    assert (stem.kernel_size, stem.stride) == ((7, 7), (2, 2))
    stages = [f.features[i] for i in range(3, 7)]
    assert [len(s) for s in stages] == [2, 2, 2, 2]
    assert [s[0].conv1.out_channels for s in stages] == [16, 32, 64, 128]
    assert [s[0].conv1.stride for s in stages] == [(1, 1), (2, 2), (2, 2), (2, 2)]
    # 1x1 projections exactly where the shape changes (first block of every stage here).
    assert [s[0].downsample is not None for s in stages] == [True] * 4
    assert all(s[1].downsample is None for s in stages)
    assert f.embedding_dim == 128 and f.classifier.in_features == 128
    x = normalize(_patches(3))
    out = f(x)
    assert out.shape == (3, 7)
    assert f.embed(x).shape == (3, 128)
    torch.testing.assert_close(f.classifier(f.embed(x)), out)
    assert "embedding_dim=128" in repr(f)


def test_densenet121_builds_without_download():
    f = densenet121(5)
    assert isinstance(f, DenseNetEncoder)
    assert f.classifier.out_features == 5 and f.embedding_dim == 1024
    assert build_encoder("densenet_tiny", 3).num_classes == 3
    with pytest.raises(ValueError, match="unknown encoder"):
        build_encoder("vgg", 3)


def test_densenet_weights_from_local_file(tmp_path):
    src = densenet_tiny(10)
    state = src.state_dict()
    # Old torchvision checkpoints spell dense-layer modules "norm.1"; both spellings must load.
    old = {k.replace("denselayer1.norm1", "denselayer1.norm.1"): v for k, v in state.items()}
    assert old.keys() != state.keys()
    path = tmp_path / "tiny.pt"
    torch.save({"state_dict": old}, path)
    dst = load_densenet_weights(densenet_tiny(3), str(path))
    for k, v in dst.state_dict().items():
        if not k.startswith("classifier"):
            torch.testing.assert_close(v, state[k])
    assert dst.classifier.out_features == 3
    same = load_densenet_weights(densenet_tiny(10), path)
    torch.testing.assert_close(same.classifier.weight, src.classifier.weight)
    with pytest.raises(ValueError, match="do not fit"):
        load_densenet_weights(densenet_tiny(3, growth_rate=6), path)
    with pytest.raises(ValueError, match="DenseNet121_Weights"):
        densenet121(3, weights="NOT_A_WEIGHT")


@pytest.mark.parametrize("chunk_size", [16, 7])
def test_encode_gradients_equal_plain_backprop_gridnet_simple(chunk_size):
    torch.manual_seed(0)
    f = gridnet_simple(5)
    ref = copy.deepcopy(f)
    patches = _patches(40)
    w = torch.randn(40, 5)
    (ref(normalize(patches)) * w).sum().backward()
    out = encode(f, patches, chunk_size=chunk_size, checkpoint=True)
    torch.testing.assert_close(out, ref(normalize(patches)))
    (out * w).sum().backward()
    assert _rel_err(_grads(f), _grads(ref)) <= 1e-5
    for p, q in zip(f.parameters(), ref.parameters()):
        assert _rel_err(p.grad, q.grad) <= 1e-4


def test_encode_gradients_equal_plain_backprop_densenet_eval():
    torch.manual_seed(0)
    f = densenet_tiny(4).eval()
    ref = copy.deepcopy(f)
    patches = _patches(37)
    w = torch.randn(37, 4)
    (ref(normalize(patches)) * w).sum().backward()
    (encode(f, patches, chunk_size=8) * w).sum().backward()
    assert _rel_err(_grads(f), _grads(ref)) <= 1e-5


def test_encode_densenet_train_batchnorm_updated_once():
    """Checkpoint recomputation must not update batch-norm running statistics a second time."""
    torch.manual_seed(0)
    f = densenet_tiny(4).train()
    ref = copy.deepcopy(f)
    patches = _patches(40)
    w = torch.randn(40, 4)
    (encode(ref, patches, chunk_size=10, checkpoint=False) * w).sum().backward()
    (encode(f, patches, chunk_size=10, checkpoint=True) * w).sum().backward()
    assert _rel_err(_grads(f), _grads(ref)) <= 1e-5
    for (name, a), b in zip(f.named_buffers(), ref.buffers()):
        torch.testing.assert_close(a, b, msg=name)
    assert int(f.features.norm0.num_batches_tracked) == 4  # one update per chunk


def test_encode_recomputes_only_when_training():
    f = gridnet_simple(3)
    calls = []
    # A pre-hook: non-reentrant checkpoint stops recomputing once it has what backward needs.
    f.register_forward_pre_hook(lambda m, i: calls.append(i[0].shape[0]))
    patches = _patches(20)
    out = encode(f, patches, chunk_size=8)
    assert calls == [8, 8, 4]
    out.sum().backward()
    assert sorted(calls) == sorted([8, 8, 4] * 2)  # each chunk recomputed once in backward
    calls.clear()
    with torch.no_grad():
        encode(f, patches, chunk_size=8)
    f.requires_grad_(False)
    encode(f, patches, chunk_size=8)
    assert calls == [8, 8, 4] * 2  # no checkpoint without gradients


def test_encode_normalises_chunks_and_options():
    f = gridnet_simple(3).eval()
    patches = _patches(10)
    with torch.no_grad():
        ref = f(normalize(patches))
        torch.testing.assert_close(encode(f, patches, chunk_size=3), ref)
        torch.testing.assert_close(encode(f, patches, chunk_size=None), ref)
        x = normalize(patches)
        torch.testing.assert_close(encode(f, x, chunk_size=4, transform=None), ref)
        emb = encode(f.embed, patches, chunk_size=4)
        assert emb.shape == (10, f.embedding_dim)
    seen = []
    f.register_forward_pre_hook(lambda m, i: seen.append((i[0].dtype, i[0].shape[0])))
    encode(f, patches, chunk_size=4)
    assert seen == [(torch.float32, 4), (torch.float32, 4), (torch.float32, 2)]
    with pytest.raises(ValueError, match="shape"):
        encode(f, patches[0], chunk_size=4)


def test_encoder_registry_lookups_and_parameters():
    from gridgraph.encoders import ENCODERS, available_encoders, build_encoder, register_encoder

    assert available_encoders() == ENCODERS.names()
    assert {"gridnet_simple", "densenet121", "densenet_tiny"} <= set(ENCODERS.names())
    with pytest.raises(ValueError, match=r"unknown encoder 'nope'; known: .*densenet121.*gridnet_simple"):
        build_encoder("nope", 3)
    assert ENCODERS.parameters("gridnet_simple") == ["stage_channels", "stem_channels", "blocks"]
    assert ENCODERS.parameters("densenet121") == [
        "weights", "progress", "bn_size", "drop_rate", "memory_efficient"]
    assert "growth_rate" in ENCODERS.parameters("densenet_tiny")
    with pytest.raises(ValueError, match=r"f\.kwargs\.stage_channel: encoder 'gridnet_simple'"):
        ENCODERS.check_kwargs("gridnet_simple", {"stage_channel": (8,)}, "f.kwargs")
    small = build_encoder("gridnet_simple", 3, stage_channels=(4, 8), blocks=(1, 1))
    assert small.embedding_dim == 8 and small.num_classes == 3

    @register_encoder("test_tiny")
    def tiny(num_classes):
        return gridnet_simple(num_classes, stage_channels=(4,), blocks=(1,))

    try:
        assert "test_tiny" in available_encoders() and build_encoder("test_tiny", 2).num_classes == 2
        with pytest.raises(ValueError, match="already registered"):
            register_encoder("test_tiny", gridnet_simple)
    finally:
        ENCODERS.remove("test_tiny")


@pytest.mark.parametrize("name", ["gridnet_simple", "densenet_tiny"])
def test_builtin_encoders_follow_the_protocol_and_the_hook_fallback_agrees(name):
    from gridgraph.encoders import Encoder, build_encoder, logits_and_embedding
    from gridgraph.encoders.protocol import _hooked

    torch.manual_seed(0)
    x = torch.randn(3, 3, 32, 32)
    f = build_encoder(name, 4).eval()
    assert isinstance(f, Encoder)
    assert isinstance(f.embedding_dim, int) and f.num_classes == 4
    assert f.classifier.in_features == f.embedding_dim
    logits, emb = logits_and_embedding(f, x)
    hooked_logits, hooked_emb = _hooked(f, x)  # the foreign-module path on the same module
    assert torch.equal(logits, hooked_logits) and torch.equal(emb, hooked_emb)
    assert torch.equal(logits, f(x)) and torch.equal(emb, f.embed(x))
    assert emb.shape == (3, f.embedding_dim) and logits.shape == (3, 4)


def test_hook_fallback_reads_the_embedding_of_foreign_modules():
    from collections import OrderedDict

    from gridgraph.encoders import Encoder, logits_and_embedding

    torch.manual_seed(0)
    x = torch.randn(3, 3, 8, 8)
    trunk = nn.Sequential(nn.Conv2d(3, 5, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    f = nn.Sequential(OrderedDict(trunk=trunk, classifier=nn.Linear(5, 2)))
    assert not isinstance(f, Encoder)
    logits, emb = logits_and_embedding(f, x)
    assert torch.equal(emb, trunk(x)) and torch.equal(logits, f(x))
    assert not f.classifier._forward_hooks  # the hook is removed again

    class Unpooled(nn.Module):  # a classifier fed (B, C, 1, 1): the embedding is flattened
        def __init__(self):
            super().__init__()
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(3, 2))

        def forward(self, x):
            return self.classifier(self.pool(x))

    g = Unpooled()
    logits, emb = logits_and_embedding(g, x)
    assert emb.shape == (3, 3) and torch.equal(emb, x.mean((2, 3), keepdim=True).flatten(1))

    class Bypass(nn.Module):  # never calls its classifier
        def __init__(self):
            super().__init__()
            self.classifier = nn.Linear(3, 2)

        def forward(self, x):
            return x.mean((2, 3))[:, :2]

    with pytest.raises(RuntimeError, match="did not call f.classifier"):
        logits_and_embedding(Bypass(), x)


def test_densenet_module_uses_only_public_torchvision_api():
    import inspect

    import gridgraph.encoders.densenet as densenet

    assert "_api" not in inspect.getsource(densenet)
