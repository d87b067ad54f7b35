"""Self-supervised pretraining of f: views, the contrastive loss, and the trainer's stage."""
import math

import pytest
import torch

from gridgraph.config import make_config
from gridgraph.config.schema import ConfigError
from gridgraph.workflows import load_splits
from gridgraph.workflows import model_from_config
from gridgraph.train import Trainer
from gridgraph.train.pretrain import nt_xent, pretrain_f, random_crop_resize, simclr_view

from helpers import state_equal, tiny_config


def test_nt_xent_exact_on_orthonormal_pairs():
    z = torch.eye(2)
    # each vector: its partner at cosine 1, two others at cosine 0 -> -log(e / (e + 2))
    assert math.isclose(float(nt_xent(z, z, temperature=1.0)), math.log((math.e + 2) / math.e), rel_tol=1e-6)
    # at temperature 0.5 the partner's logit is 2
    assert math.isclose(float(nt_xent(z, z, temperature=0.5)), math.log((math.e ** 2 + 2) / math.e ** 2),
                        rel_tol=1e-6)
    swapped = nt_xent(z, z.flip(0), temperature=1.0)  # partners orthogonal, a stranger identical
    assert math.isclose(float(swapped), math.log((math.e + 2) / 1.0), rel_tol=1e-6)
    with pytest.raises(ValueError, match="B >= 2"):
        nt_xent(torch.ones(1, 3), torch.ones(1, 3))


def test_random_crop_resize_and_views():
    gen = torch.Generator().manual_seed(0)
    ramp = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4).repeat(5, 3, 1, 1) * 10
    assert torch.equal(random_crop_resize(ramp, min_scale=1.0, generator=gen), ramp)
    flat = torch.full((4, 3, 8, 8), 77, dtype=torch.uint8)
    assert (random_crop_resize(flat, 0.5, gen) == 77).all()
    crops = random_crop_resize(ramp, 0.5, torch.Generator().manual_seed(3))
    assert crops.shape == ramp.shape and crops.dtype == torch.uint8
    assert not torch.equal(crops, ramp) and crops.min() >= 0 and crops.max() <= 150
    assert torch.equal(crops, random_crop_resize(ramp, 0.5, torch.Generator().manual_seed(3)))
    a = simclr_view(ramp, torch.Generator().manual_seed(1))
    assert a.shape == ramp.shape and torch.equal(a, simclr_view(ramp, torch.Generator().manual_seed(1)))
    with pytest.raises(ValueError, match="min_scale"):
        random_crop_resize(ramp, 0.0)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return load_splits(tiny_config(tmp_path_factory.mktemp("data")))


def test_pretrain_f_trains_the_embedding_not_the_classifier(tmp_path, data):
    cfg = tiny_config(tmp_path)
    torch.manual_seed(0)
    model = model_from_config(cfg, len(data[1]))
    before = {k: v.clone() for k, v in model.f.state_dict().items()}
    lines = []
    losses = pretrain_f(model, data[0]["train"], epochs=3, batch_size=64, lr=3e-3,
                        generator=torch.Generator().manual_seed(0), log=lines.append, progress=False)
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses) and losses[-1] < losses[0]
    assert lines[0].startswith("pretrain f epoch 1/3: contrastive loss")
    after = model.f.state_dict()
    assert torch.equal(after["classifier.weight"], before["classifier.weight"])
    assert not torch.equal(after["features.0.weight"], before["features.0.weight"])
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        pretrain_f(model, data[0]["train"], epochs=0)


def test_trainer_pretrains_once_and_not_on_resume(tmp_path, data):
    cfg = tiny_config(tmp_path, pretrain_epochs=1, pretrain_batch_size=64, epochs_g=1)
    torch.manual_seed(0)
    lines = []
    tr = Trainer(model_from_config(cfg, len(data[1])), cfg, data[1], out_dir=tmp_path / "run", log=lines.append)
    tr.fit(data[0]["train"], data[0]["val"])
    assert sum(line.startswith("pretrain f epoch") for line in lines) == 1
    plain = tiny_config(tmp_path, epochs_g=1)
    torch.manual_seed(0)
    other = Trainer(model_from_config(plain, len(data[1])), plain, data[1], log=lambda line: None)
    other.fit(data[0]["train"], data[0]["val"])
    assert not state_equal(tr.model.f.state_dict(), other.model.f.state_dict())
    lines.clear()
    torch.manual_seed(0)
    again = Trainer(model_from_config(cfg, len(data[1])), cfg, data[1], out_dir=tmp_path / "run", log=lines.append)
    again.fit(data[0]["train"], data[0]["val"])  # resumed from last.pt: nothing left, nothing pretrained
    assert not any(line.startswith("pretrain f") for line in lines)
    assert state_equal(again.model.state_dict(), tr.model.state_dict())


def test_pretraining_an_f_that_is_not_trained_is_refused(tmp_path):
    base = tiny_config(tmp_path).to_dict()
    with pytest.raises(ConfigError, match="pretrain_epochs"):
        make_config({**base, "train": {**base["train"], "pretrain_epochs": 2, "epochs_f": 0}})
    with pytest.raises(ConfigError, match="pretrain_batch_size"):
        make_config({**base, "train": {**base["train"], "pretrain_batch_size": 1}})
