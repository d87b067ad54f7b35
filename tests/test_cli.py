import json

import numpy as np
import pytest
import torch
import yaml

from gridgraph.cli import main
from gridgraph.io import read_loupe_csv, read_predictions, read_spaceranger
from gridgraph.io.readers.synthetic import make_section
from gridgraph.train import load_checkpoint

from helpers import tiny_config, write_spaceranger


def write_config(tmp_path, out_name="run", **train):
    cfg = tiny_config(tmp_path, **train).to_dict()
    cfg["output"] = str(tmp_path / out_name)
    path = tmp_path / f"{out_name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    assert main(["train", str(write_config(tmp)), "--set", "train.epochs_g=3"]) == 0
    return tmp


def one_line_error(capsys, code, *fragments):
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("gridgraph: error:") and "Traceback" not in err
    for frag in fragments:
        assert frag in err, err


def test_train_writes_checkpoints_metrics_and_figures(trained):
    run = trained / "run"
    for name in ("best.pt", "last.pt", "metrics.jsonl", "test_metrics.json", "config.yaml",
                 "confusion_test.png", "train_labels.png"):
        assert (run / name).is_file(), name
    assert len(list(run.glob("*_labels.png"))) == 2  # a training section and a test section
    metrics = json.loads((run / "test_metrics.json").read_text())
    assert set(metrics["test"]) == {"f", "f+g"}
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in rows] == ["f", "g", "g", "g"]  # --set took effect


def test_predict_loupe_round_trip(trained, tmp_path, capsys):
    section = make_section("hex", seed=9, shape=(8, 16), n_classes=3)
    folder = write_spaceranger(section, tmp_path / "sr")
    out = tmp_path / "pred"
    assert main(["predict", str(trained / "run" / "best.pt"), "--spaceranger", str(folder),
                 "--out", str(out)]) == 0
    ids, names, probs, classes = read_predictions(out / "predictions.csv")
    assert list(ids) == section.barcodes and classes == ["band0", "band1", "band2"]
    np.testing.assert_allclose(np.asarray(probs).sum(1), 1.0, atol=1e-4)
    back = read_spaceranger(folder, labels=out / "predictions_loupe.csv")
    assert back.label_names() == list(names)
    assert read_loupe_csv(out / "predictions_loupe.csv") == dict(zip(ids, names))
    assert (out / "predictions.png").stat().st_size > 0


def test_evaluate_ensemble_of_two(trained, tmp_path, capsys):
    second = write_config(tmp_path, "second", epochs_g=2)
    assert main(["train", str(second), "--set", "seed=1"]) == 0
    paths = [str(trained / "run" / "best.pt"), str(tmp_path / "second" / "best.pt")]
    assert main(["evaluate", *paths, "--out", str(tmp_path / "ev.json")]) == 0
    res = json.loads((tmp_path / "ev.json").read_text())
    assert set(res["models"]) == set(paths)
    for key in ("ensemble_mean_f+g", "ensemble_vote_f+g", "ensemble_mean_f", "accuracy_over_models_f+g"):
        assert key in res
    accs = [m["f+g"]["accuracy"] for m in res["models"].values()]
    assert res["accuracy_over_models_f+g"]["mean"] == pytest.approx(np.mean(accs))
    single = json.loads((trained / "run" / "test_metrics.json").read_text())["test"]
    assert res["models"][paths[0]]["f+g"]["accuracy"] == pytest.approx(single["f+g"]["accuracy"])


def test_resume_skips_finished_epochs(trained, capsys):
    cfg_path = trained / "run.yaml"
    before = (trained / "run" / "metrics.jsonl").read_text()
    assert main(["train", str(cfg_path), "--set", "train.epochs_g=3"]) == 0
    assert "resuming" in capsys.readouterr().out
    assert (trained / "run" / "metrics.jsonl").read_text() == before


@pytest.mark.parametrize("argv, fragments", [
    (["train", "nope.yaml"], ["config file not found", "nope.yaml"]),
    (["evaluate", "missing.pt"], ["checkpoint not found", "missing.pt"]),
    (["predict", "missing.pt", "--synthetic", "1", "--out", "x"], ["checkpoint not found"]),
])
def test_missing_files_exit_2(argv, fragments, capsys):
    one_line_error(capsys, main(argv), *fragments)


def test_bad_config_values_exit_2(tmp_path, capsys):
    path = write_config(tmp_path)
    one_line_error(capsys, main(["train", str(path), "--set", "train.regimen=sideways"]), "train.regimen")
    one_line_error(capsys, main(["train", str(path), "--set", "trian.lr=1"]), "unknown key", "trian")
    one_line_error(capsys, main(["train", str(path), "--set", "lr"]), "key.sub=value")
    one_line_error(capsys, main(["train", str(path), "--set", "g.kwargs.hiden=3"]), "g.kwargs", "hiden")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed")
    one_line_error(capsys, main(["train", str(bad)]), "bad.yaml", "YAML")
    bad.write_text(yaml.safe_dump({"g": {"name": "nonexistent"}, "output": str(tmp_path / "o"),
                                   "data": {"options": {"shape": [6, 8]}, "train": [0], "val": [1]}}))
    one_line_error(capsys, main(["train", str(bad)]), "unknown corrector", "nonexistent")


def test_not_a_checkpoint_and_usage_errors(tmp_path, capsys):
    junk = tmp_path / "junk.pt"
    torch.save({"hello": 1}, junk)
    one_line_error(capsys, main(["evaluate", str(junk)]), "junk.pt", "not a gridgraph checkpoint")
    assert main(["frobnicate"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert main(["predict", "x.pt", "--out", "o"]) == 2  # no input source
    capsys.readouterr()
    one_line_error(capsys, main(["evaluate", str(junk), "--set", "data.test=[1]"]), "--set needs --data")


def test_demo_quick_smoke(tmp_path, capsys):
    code = main(["demo", "--quick", "--out", str(tmp_path / "demo"),
                 "--set", "data.options.shape=[8,16]", "--set", "patches.patch_size=16",
                 "--set", "f.kwargs={stage_channels: [8,8,8,8], stem_channels: 8, blocks: [1,1,1,1]}",
                 "--set", "train.progress=false"])
    assert code == 0
    out = capsys.readouterr().out
    assert "demo: test accuracy f alone" in out
    ckpt = load_checkpoint(tmp_path / "demo" / "best.pt")
    assert ckpt["config"]["data"]["name"] == "synthetic"
