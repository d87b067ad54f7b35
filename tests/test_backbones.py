"""timm / torchvision models as f (BackboneEncoder) and the on-disk EmbeddingCache."""
import copy
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from gridgraph.encoders import (
    ENCODERS,
    BackboneEncoder,
    EmbeddingCache,
    Encoder,
    build_encoder,
    logits_and_embedding,
    timm_encoder,
    torchvision_encoder,
)
from gridgraph.patches.transforms import normalize

try:
    import timm
except ImportError:  # the timm extra is not installed: the cache and torchvision tests still run
    timm = None
needs_timm = pytest.mark.skipif(timm is None, reason="needs timm: pip install 'gridgraph[timm]'")


def _x(n=2, p=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, p, p, generator=g)


def _backbone_equal(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0, msg=k)


# ---------------------------------------------------------------------------- building

@needs_timm
def test_timm_encoder_follows_protocol_and_reads_pretrained_cfg():
    torch.manual_seed(0)
    f = build_encoder("timm", 4, model_name="test_resnet")
    assert isinstance(f, BackboneEncoder) and isinstance(f, Encoder)
    assert (f.embedding_dim, f.num_classes) == (96, 4)
    assert isinstance(f.classifier, nn.Linear)
    assert (f.classifier.in_features, f.classifier.out_features) == (96, 4)
    # test_resnet's pretrained cfg: (3, 160, 160), mean = std = 0.5.
    assert f.input_size == 160
    assert f.input_mean == (0.5, 0.5, 0.5) and f.input_std == (0.5, 0.5, 0.5)
    r = timm_encoder(2, "resnet10t")  # (3, 176, 176), ImageNet mean and std
    assert r.input_size == 176 and r.embedding_dim == 512
    assert r.input_mean == (0.485, 0.456, 0.406) and r.input_std == (0.229, 0.224, 0.225)
    f.eval()
    x = _x(3, 160)
    emb = f.embed(x)
    assert emb.shape == (3, 96)
    logits, emb2 = logits_and_embedding(f, x)
    torch.testing.assert_close(emb2, emb)
    torch.testing.assert_close(f(x), f.classifier(emb))
    assert logits.shape == (3, 4)
    # the embedding is timm's own pooled pre-logits output of the same weights
    ref = timm.create_model("test_resnet", num_classes=0).eval()
    ref.load_state_dict(f.backbone.state_dict())
    torch.testing.assert_close(emb, ref(x))


def test_torchvision_encoders_and_input_preset():
    torch.manual_seed(0)
    f = build_encoder("torchvision", 5, model_name="resnet18").eval()
    assert isinstance(f, Encoder) and isinstance(f.backbone.fc, nn.Identity)
    assert (f.embedding_dim, f.num_classes, f.input_size) == (512, 5, 224)
    assert f.input_mean == (0.485, 0.456, 0.406) and f.input_std == (0.229, 0.224, 0.225)
    x = _x(2, 224)
    emb = f.embed(x)
    assert emb.shape == (2, 512) and f(x).shape == (2, 5)
    # mobilenet_v3_small: classifier = (Linear 576->1024, Hardswish, Dropout, Linear): only the
    # last Linear goes, the pretrained hidden layer stays in the backbone.
    m = torchvision_encoder(3, "mobilenet_v3_small")
    assert isinstance(m.backbone.classifier[3], nn.Identity)
    assert isinstance(m.backbone.classifier[0], nn.Linear) and m.embedding_dim == 1024
    # a ViT runs at its own image_size, not at its weights preset's (meta: no memory, fast)
    with torch.device("meta"):
        v = torchvision_encoder(2, "vit_b_16", image_size=64)
        assert (v.input_size, v.embedding_dim) == (64, 768)
        assert v.embed(torch.zeros(1, 3, 40, 40)).shape == (1, 768)
        assert torchvision_encoder(2, "swin_v2_t").input_size == 256  # its preset's crop size
    with pytest.raises(ValueError, match="no final nn.Linear"):
        torchvision_encoder(2, "squeezenet1_0")
    with pytest.raises(ValueError, match="unknown torchvision model 'resnet19'.*resnet18"):
        torchvision_encoder(2, "resnet19")


@needs_timm
def test_nothing_downloaded_unless_asked(monkeypatch):
    seen = {}
    real_create, real_get = timm.create_model, torchvision.models.get_model

    def create(*a, **k):
        seen["timm"] = k
        return real_create(*a, **k)

    def get(*a, **k):
        seen["tv"] = k
        return real_get(*a, **k)

    monkeypatch.setattr(timm, "create_model", create)
    monkeypatch.setattr(torchvision.models, "get_model", get)
    timm_encoder(2, "test_resnet")
    torchvision_encoder(2, "mobilenet_v3_small")
    assert seen["timm"]["pretrained"] is False and seen["timm"]["num_classes"] == 0
    assert seen["tv"]["weights"] is None
    with pytest.raises(ValueError, match="not both"):
        timm_encoder(2, "test_resnet", pretrained=True, weights="w.pt")


@needs_timm
def test_resize_when_patch_size_differs():
    torch.manual_seed(0)
    f = timm_encoder(3, "test_resnet").eval()
    x = _x(2, 40)
    resized = nn.functional.interpolate(x, size=(160, 160), mode="bilinear",
                                        align_corners=False, antialias=True)
    torch.testing.assert_close(f.embed(x), f.embed(resized))
    # resizing after normalisation equals normalising the resized image
    u8 = torch.randint(0, 256, (2, 3, 48, 48), dtype=torch.uint8)
    a = f.embed(normalize(u8, f.input_mean, f.input_std))
    up = nn.functional.interpolate(u8.float() / 255, size=(160, 160), mode="bilinear",
                                   align_corners=False, antialias=True)
    b = f.embed(normalize(up, f.input_mean, f.input_std))
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    # a fixed-size ViT built at img_size=32 runs at 32: 32 px is not resized, 48 px is
    v = timm_encoder(2, "test_vit", img_size=32).eval()
    assert v.input_size == 32 and v.source == "timm:test_vit(img_size=32)"
    assert v.embed(_x(1, 32)).shape == (1, v.embedding_dim)
    assert v.embed(_x(1, 48)).shape == (1, v.embedding_dim)
    with pytest.raises(TypeError, match="float"):
        f.embed(u8)
    with pytest.raises(ValueError, match="unknown timm model"):
        timm_encoder(2, "no_such_model_xyz")


# ---------------------------------------------------------------------------- weights files

@needs_timm
def test_timm_weights_round_trip_pt_and_safetensors(tmp_path):
    from safetensors.torch import save_file  # installed with timm

    torch.manual_seed(1)
    src = timm.create_model("test_resnet", num_classes=1000).eval()  # with its 1000-class head
    pt, st = tmp_path / "full.pt", tmp_path / "full.safetensors"
    torch.save(src.state_dict(), pt)
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(st))
    src.reset_classifier(0)
    x = _x(2, 160)
    want = src(x)
    for path in (pt, st):
        torch.manual_seed(2)  # a different random init, overwritten by the file
        f = timm_encoder(3, "test_resnet", weights=path).eval()
        torch.testing.assert_close(f.embed(x), want)
        assert f.classifier.weight.shape == (3, 96)  # new head; the file's fc was dropped
    # the backbone's own state dict and a BackboneEncoder's state dict load too
    torch.save(f.backbone.state_dict(), tmp_path / "backbone.pt")
    torch.save({"state_dict": f.state_dict()}, tmp_path / "encoder.pt")
    for name in ("backbone.pt", "encoder.pt"):
        g = timm_encoder(3, "test_resnet", weights=tmp_path / name).eval()
        torch.testing.assert_close(g.embed(x), want)


def test_torchvision_weights_file_head_dropped(tmp_path):
    torch.manual_seed(0)
    src = torchvision.models.resnet18().eval()  # fc: 512 -> 1000
    path = tmp_path / "resnet18.pth"
    torch.save(src.state_dict(), path)
    f = torchvision_encoder(7, "resnet18", weights=str(path)).eval()
    src.fc = nn.Identity()
    x = _x(2, 224)
    torch.testing.assert_close(f.embed(x), src(x))
    assert f.classifier.weight.shape == (7, 512)
    assert not any(k.startswith("fc.") for k in f.backbone.state_dict())


@needs_timm
def test_weights_mismatch_and_missing_file_are_named(tmp_path):
    path = tmp_path / "other.pt"
    torch.save(timm.create_model("test_resnet").state_dict(), path)
    with pytest.raises(ValueError, match=r"other\.pt does not fit.*(missing|unexpected) keys"):
        timm_encoder(2, "resnet10t", weights=path)
    rn = tmp_path / "rn18.pt"
    state = torchvision.models.resnet18().state_dict()
    state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    torch.save(state, rn)
    with pytest.raises(ValueError, match=r"rn18\.pt .*shape mismatches.*layer1\.0\.conv1\.weight "
                                         r"\(64, 64, 1, 1\) vs \(64, 64, 3, 3\)"):
        torchvision_encoder(2, "resnet18", weights=rn)
    del state["layer1.0.conv1.weight"]
    torch.save(state, rn)
    with pytest.raises(ValueError, match=r"missing keys: layer1\.0\.conv1\.weight"):
        torchvision_encoder(2, "resnet18", weights=rn)
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        timm_encoder(2, "test_resnet", weights=tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"junk\.pt is not a readable state dict"):
        timm_encoder(2, "test_resnet", weights=tmp_path / "junk.pt")


# ---------------------------------------------------------------------------- freezing

def _one_step(f):
    opt = torch.optim.SGD(f.parameters(), lr=0.5, momentum=0.0)
    f.train()
    loss = nn.functional.cross_entropy(f(_x(4, 64, seed=3)), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    opt.step()


@needs_timm
def test_freeze_trains_only_the_classifier():
    torch.manual_seed(0)
    f = timm_encoder(3, "test_resnet", freeze=True)
    assert f.frozen and not any(p.requires_grad for p in f.backbone.parameters())
    f.train()
    assert f.training and f.classifier.training and not f.backbone.training
    assert not any(m.training for m in f.backbone.modules())
    f.requires_grad_(True)  # what GridGraphNet.freeze_f(False) does: the probe stays a probe
    assert not any(p.requires_grad for p in f.backbone.parameters())
    assert all(p.requires_grad for p in f.classifier.parameters())
    before, head, sid = copy.deepcopy(f.backbone), copy.deepcopy(f.classifier), f.backbone_state_id()
    _one_step(f)
    _backbone_equal(f.backbone, before)  # weights and BN running stats unchanged
    assert not torch.equal(f.classifier.weight, head.weight)
    assert f.backbone_state_id() == sid
    # the same step without freezing moves both the weights and the BN statistics
    torch.manual_seed(0)
    g = timm_encoder(3, "test_resnet")
    bn = next(m for m in g.backbone.modules() if isinstance(m, nn.BatchNorm2d))
    mean0, sid0 = bn.running_mean.clone(), g.backbone_state_id()
    assert sid0 == sid  # same seed, same weights, same id
    _one_step(g)
    assert not torch.equal(bn.running_mean, mean0) and g.backbone_state_id() != sid0
    g.set_frozen(True)
    assert not g.backbone.training and not any(p.requires_grad for p in g.backbone.parameters())


def test_backbone_state_id_is_a_stable_digest():
    torch.manual_seed(0)
    a = torchvision_encoder(2, "mobilenet_v3_small")
    b = torchvision_encoder(5, "mobilenet_v3_small")
    b.backbone.load_state_dict(a.backbone.state_dict())
    sid = a.backbone_state_id()
    assert len(sid) == 16 and int(sid, 16) >= 0
    assert b.backbone_state_id() == sid  # the classifier does not count
    with torch.no_grad():
        b.backbone.features[0][0].weight[0, 0, 0, 0] += 1e-3
    assert b.backbone_state_id() != sid


# ---------------------------------------------------------------------------- embedding cache

def test_cache_hits_misses_and_no_recomputation(tmp_path):
    cache = EmbeddingCache(tmp_path / "cache")
    pos = np.arange(20, dtype=np.float64).reshape(10, 2)
    key = cache.key(window=224, positions=pos, model="abc123")
    calls = []

    def compute():
        calls.append(1)
        return torch.arange(30, dtype=torch.float32).reshape(10, 3)

    first = cache.get_or_compute(key, compute)
    second = cache.get_or_compute(key, compute)
    assert len(calls) == 1 and (cache.hits, cache.misses) == (1, 1)
    torch.testing.assert_close(second, first, rtol=0, atol=0)
    assert cache.path(key).is_file() and key in cache
    # a new cache object on the same folder hits too
    other = EmbeddingCache(tmp_path / "cache")
    assert torch.equal(other.get(key), first) and other.hits == 1
    assert repr(cache) == f"EmbeddingCache(root={str(tmp_path / 'cache')!r}, hits=1, misses=1)"


def test_cache_key_changes_with_every_part(tmp_path):
    k = EmbeddingCache.key
    pos = np.arange(20, dtype=np.float64).reshape(10, 2)
    base = dict(window=224, positions=pos, model="abc123")
    key = k(**base)
    assert len(key) == 64 and k(model="abc123", positions=pos.copy(), window=224) == key
    assert k(**{**base, "positions": torch.from_numpy(pos)}) == key  # array or tensor alike
    moved = pos.copy()
    moved[3, 1] += 0.5
    changed = [
        {**base, "window": 225},
        {**base, "positions": moved},
        {**base, "positions": pos.astype(np.float32)},
        {**base, "positions": pos.reshape(20, 1)},
        {**base, "model": "abc124"},
        {**base, "extra": None},
    ]
    assert len({key, *(k(**p) for p in changed)}) == len(changed) + 1
    img = tmp_path / "slide.tif"
    img.write_bytes(b"x" * 10)
    k_img = k(image=img)
    assert k(image=str(img)) != k_img  # a str is a string, not a path
    img.write_bytes(b"y" * 11)
    assert k(image=img) != k_img
    with pytest.raises(FileNotFoundError, match="gone.tif"):
        k(image=tmp_path / "gone.tif")
    with pytest.raises(TypeError, match="part obj"):
        k(obj=object())


@needs_timm
def test_cache_recomputes_when_model_state_changes(tmp_path):
    torch.manual_seed(0)
    f = timm_encoder(2, "test_resnet", freeze=True).eval()
    cache = EmbeddingCache(tmp_path)
    x = _x(3, 32)
    calls = []

    def compute():
        calls.append(1)
        return f.embed(x)

    e1 = cache.get_or_compute(cache.key(window=32, **f.cache_parts()), compute)
    e2 = cache.get_or_compute(cache.key(window=32, **f.cache_parts()), compute)
    assert len(calls) == 1 and torch.equal(e1, e2)
    with torch.no_grad():
        next(f.backbone.parameters()).mul_(1.5)
    e3 = cache.get_or_compute(cache.key(window=32, **f.cache_parts()), compute)
    assert len(calls) == 2 and not torch.allclose(e3, e1)
    assert (cache.hits, cache.misses) == (1, 2)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other_key"])
def test_cache_corrupted_file_is_recomputed(tmp_path, damage):
    cache = EmbeddingCache(tmp_path)
    key, other = cache.key(a=1), cache.key(a=2)
    good = torch.randn(4, 5)
    path = cache.put(key, good)
    if damage == "garbage":
        path.write_bytes(b"\x00garbage")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    else:
        cache.put(other, torch.zeros(1))
        path.write_bytes(cache.path(other).read_bytes())
    calls = []
    with pytest.warns(RuntimeWarning, match=path.name):
        out = cache.get_or_compute(key, lambda: calls.append(1) or good * 2)
    assert calls == [1] and torch.equal(out, good * 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.testing.assert_close(cache.get(key), good * 2, rtol=0, atol=0)  # overwritten


def test_cache_write_is_atomic(tmp_path, monkeypatch):
    cache = EmbeddingCache(tmp_path)
    key = cache.key(a=1)

    def half_write(obj, fh, *a, **k):
        fh.write(b"PK\x03\x04half")
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(torch, "save", half_write)
    with pytest.raises(RuntimeError, match="killed"):
        cache.put(key, torch.ones(3))
    assert not cache.path(key).exists()
    assert [p for p in Path(tmp_path).rglob("*") if p.is_file()] == []
    # put() keeps only the viewed elements of a view, on CPU, without autograd history
    monkeypatch.undo()
    base = torch.randn(1000, 8, requires_grad=True)
    cache.put(key, base[:2])  # a view of 8000 floats
    got = cache.get(key)
    assert got.shape == (2, 8) and not got.requires_grad
    assert cache.path(key).stat().st_size < 8000


def test_registry_names():
    assert {"timm", "torchvision"} <= set(ENCODERS.names())
