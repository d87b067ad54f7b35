"""Ensembles that predict: ensemble.pt, Ensemble, predict and evaluate with several checkpoints."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gridgraph.checkpoint import EnsembleFile, load_checkpoint, load_trained, save_checkpoint, save_ensemble
from gridgraph.cli import main
from gridgraph.io.readers.synthetic import make_section
from gridgraph.workflows import evaluate_checkpoints, load_model, predict_probabilities, run_training
from gridgraph.workflows.ensemble import Ensemble, combine_probabilities, load_predictor

from helpers import tiny_config


@pytest.fixture(scope="module")
def second(tmp_path_factory) -> Path:
    """Another tiny model: other seed, other patch size and window, a cartesian-free kNN graph."""
    tmp = tmp_path_factory.mktemp("second")
    cfg = tiny_config(tmp, epochs_f=1, epochs_g=1).model_copy(update={"seed": 3})
    cfg = cfg.model_copy(update={"patches": cfg.patches.model_copy(update={"patch_size": 12, "window_spots": 1.5})})
    run_training(cfg, figures=False, log=lambda line: None)
    return tmp / "run" / "best.pt"


def test_mean_is_the_members_mean_and_vote_breaks_ties_by_it():
    a = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3]])
    b = torch.tensor([[0.2, 0.7, 0.1], [0.1, 0.3, 0.6]])
    assert torch.equal(combine_probabilities([a, b]), ((a.double() + b.double()) / 2).float())
    votes = combine_probabilities([a, b], "vote")  # one vote each for 0 and 1 (mean 0.4 < 0.5), for 1 and 2 (0.4 < 0.45)
    assert votes.argmax(1).tolist() == [1, 2]
    assert torch.allclose(votes, torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]]), atol=1e-7, rtol=0)
    c = torch.tensor([[0.1, 0.8, 0.1], [0.1, 0.8, 0.1]])
    assert torch.equal(combine_probabilities([a, b, c], "vote"), torch.tensor([[1 / 3, 2 / 3, 0.0], [0.0, 2 / 3, 1 / 3]]))


def test_ensemble_file_round_trip_and_misuse(tiny_checkpoint, second, tmp_path):
    path = save_ensemble(tmp_path / "ensemble.pt", [tiny_checkpoint, second], method="vote",
                         info={"study": "s"}, sources=["a", "b"])
    ens = load_trained(path)
    assert isinstance(ens, EnsembleFile) and ens.method == "vote" and ens.sources == ["a", "b"]
    assert ens.info == {"study": "s"} and [m.config.patches.patch_size for m in ens.members] == [16, 12]
    with pytest.raises(ValueError, match="is an ensemble of 2 checkpoints, not one checkpoint"):
        load_checkpoint(path)  # resuming / init_from need one checkpoint
    raw = load_checkpoint(second)
    raw["classes"] = ["x", "y", "z"]
    save_checkpoint(tmp_path / "other.pt", raw)
    with pytest.raises(ValueError, match=r"other.pt: classes \['x', 'y', 'z'\] differ from"):
        save_ensemble(tmp_path / "bad.pt", [tiny_checkpoint, tmp_path / "other.pt"])
    assert not (tmp_path / "bad.pt").exists()
    with pytest.raises(ValueError, match="ensemble method must be one of mean, vote"):
        save_ensemble(tmp_path / "bad.pt", [tiny_checkpoint], method="median")
    with pytest.raises(ValueError, match=r"other.pt: classes .* differ"):
        load_predictor([tiny_checkpoint, tmp_path / "other.pt"])
    raw = load_checkpoint(second)
    raw["config"]["data"]["kwargs"] = {**raw["config"]["data"]["kwargs"], "layout": "cartesian"}
    save_checkpoint(tmp_path / "reader.pt", raw)
    with pytest.raises(ValueError, match="reader.pt: trained on reader 'synthetic' .*an ensemble reads each "
                                         "section once, with one reader's settings"):
        load_predictor([tiny_checkpoint, tmp_path / "reader.pt"])


def test_an_ensemble_predicts_the_mean_of_its_members_on_their_own_settings(tiny_checkpoint, second):
    section = make_section(layout="hex", shape=(8, 16), n_classes=3, seed=11)
    parts = [predict_probabilities(*load_model(p), section)[1:] for p in (tiny_checkpoint, second)]
    assert not torch.equal(parts[0][1], parts[1][1])
    model, ckpt = load_predictor([tiny_checkpoint, second])
    assert isinstance(model, Ensemble) and len(model) == 2 and "2 members, method='mean'" in repr(model)
    _, f_prob, g_prob = predict_probabilities(model, ckpt, section)
    assert torch.equal(f_prob, ((parts[0][0].double() + parts[1][0].double()) / 2).float())
    assert torch.equal(g_prob, ((parts[0][1].double() + parts[1][1].double()) / 2).float())


def test_predict_with_an_ensemble_writes_what_one_checkpoint_writes(tiny_checkpoint, second, tmp_path, capsys):
    ens = save_ensemble(tmp_path / "ensemble.pt", [tiny_checkpoint, second])
    for name, cks in (("one", [tiny_checkpoint]), ("file", [ens]), ("adhoc", [tiny_checkpoint, second])):
        assert main(["predict", *map(str, cks), "--synthetic", "7", "--out", str(tmp_path / name),
                     "--anndata", "--no-figure"]) == 0
    listing = {n: sorted(p.name for p in (tmp_path / n).iterdir()) for n in ("one", "file", "adhoc")}
    assert listing["one"] == listing["file"] == listing["adhoc"]
    assert (tmp_path / "file" / "predictions.csv").read_text() == (tmp_path / "adhoc" / "predictions.csv").read_text()
    import anndata

    info = anndata.read_h5ad(tmp_path / "file" / "predictions.h5ad").uns["gridgraph"]
    assert info["checkpoint"] == str(ens.resolve()) and info["ensemble_method"] == "mean"
    assert len(info["members"]) == 2
    assert main(["predict", str(tiny_checkpoint), "--ensemble-method", "vote", "--synthetic", "7",
                 "--out", str(tmp_path / "x")]) == 2
    assert "one checkpoint is not an ensemble" in capsys.readouterr().err


def test_evaluate_counts_an_ensemble_file_as_its_members(tiny_checkpoint, second, tmp_path):
    ens = save_ensemble(tmp_path / "ensemble.pt", [tiny_checkpoint, second], method="vote")
    by_file = evaluate_checkpoints([ens], log=lambda line: None)
    by_paths = evaluate_checkpoints([tiny_checkpoint, second], log=lambda line: None)
    assert by_file["predict_method"] == "vote"
    assert len(by_file["models"]) == 2
    for key in ("ensemble_mean_f+g", "ensemble_vote_f+g", "ensemble_mean_f"):
        assert json.dumps(by_file[key], sort_keys=True) == json.dumps(by_paths[key], sort_keys=True)
    assert np.isfinite(by_file["ensemble_mean_f+g"]["accuracy"])
