"""model.f_ensemble: several f's averaged before g, each trained with its own loss in stage f."""
from __future__ import annotations

import copy

import pytest
import torch

from gridgraph.encoders import EncoderEnsemble, encode, gridnet_simple
from gridgraph.model import build_model
from gridgraph.patches.transforms import normalize
from gridgraph.train import masked_cross_entropy
from gridgraph.workflows import load_model, predict_probabilities, run_training
from gridgraph.io.readers.synthetic import make_section

from helpers import tiny_config

SMALL = {"stage_channels": [8, 8, 16, 16], "stem_channels": 8, "blocks": [1, 1, 1, 1]}


def _patches(n, p=16, seed=0):
    return torch.randint(0, 256, (n, 3, p, p), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_the_ensemble_is_the_mean_of_its_members_probabilities():
    torch.manual_seed(0)
    ens = EncoderEnsemble(lambda: gridnet_simple(4, **SMALL), 3).eval()
    x = normalize(_patches(6))
    members = [f(x).softmax(-1) for f in ens.members]
    torch.testing.assert_close(ens(x).exp(), sum(members) / 3, rtol=0, atol=1e-6)
    assert ens.member_logits(x).shape == (3, 6, 4) and len(ens) == 3 and ens.num_classes == 4
    assert not torch.equal(members[0], members[1])  # each member has its own initial weights


def test_each_member_gets_its_own_losss_gradient():
    torch.manual_seed(0)
    ens = EncoderEnsemble(lambda: gridnet_simple(3, **SMALL), 2).eval()  # eval: batch norm without batch stats
    alone = [copy.deepcopy(f) for f in ens.members]
    x, y = normalize(_patches(10)), torch.randint(0, 3, (10,))
    masked_cross_entropy(ens.member_logits(x), y).backward()
    for f, g in zip(ens.members, alone):
        masked_cross_entropy(g(x), y).backward()
        for p, q in zip(f.parameters(), g.parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7)


def test_chunked_checkpointed_gradients_equal_plain_backprop():
    torch.manual_seed(1)
    ens = EncoderEnsemble(lambda: gridnet_simple(3, **SMALL), 2)
    ref = copy.deepcopy(ens)
    patches, w = _patches(24), torch.randn(24, 3)
    (ref(normalize(patches)) * w).sum().backward()
    out = encode(ens, patches, chunk_size=7, checkpoint=True)
    torch.testing.assert_close(out, ref(normalize(patches)), rtol=1e-5, atol=1e-6)
    (out * w).sum().backward()
    for p, q in zip(ens.parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6)


def test_bad_f_ensembles_are_refused():
    with pytest.raises(ValueError, match="with g_input 'features'"):
        build_model(3, encoder="gridnet_simple", corrector="gcn", g_input="features", f_ensemble=2,
                    encoder_kwargs=SMALL)
    pytest.importorskip("timm")
    with pytest.raises(ValueError, match="with a frozen backbone"):
        build_model(3, encoder="timm", corrector="gcn", f_ensemble=2,
                    encoder_kwargs={"model_name": "resnet18", "freeze": True})
    with pytest.raises(ValueError, match="at least two members"):
        EncoderEnsemble(lambda: gridnet_simple(3, **SMALL), 1)


def test_a_run_with_an_f_ensemble_round_trips_through_its_checkpoint(tmp_path):
    cfg = tiny_config(tmp_path)
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"f_ensemble": 2})})
    run_training(cfg, figures=False, log=lambda line: None)
    model, ckpt = load_model(tmp_path / "run" / "best.pt")
    assert isinstance(model.f, EncoderEnsemble) and len(model.f) == 2
    assert ckpt.config.model.f_ensemble == 2
    section = make_section(layout="hex", shape=(8, 16), n_classes=3, seed=9)
    _, f_prob, _ = predict_probabilities(model, ckpt, section)
    torch.testing.assert_close(f_prob.sum(1), torch.ones(section.graph.num_nodes))
