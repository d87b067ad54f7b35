"""Config and run-folder errors through the command line: one line, exit 2, nothing written."""
import json

import pytest
import yaml

from gridgraph.cli import main

from helpers import tiny_config


def write(tmp_path, text: str = None, **changes):
    cfg = tiny_config(tmp_path).to_dict()
    cfg["output"] = str(tmp_path / "out")
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            cfg[section][field] = value
        else:
            cfg[section] = value
    path = tmp_path / "run.yaml"
    path.write_text(text if text is not None else yaml.safe_dump(cfg))
    return path


def error_line(capsys, code: int, *fragments) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("gridgraph: error:") and "\n" not in err and "Traceback" not in err, err
    for frag in fragments:
        assert frag in err, err
    return err


@pytest.mark.parametrize("changes, overrides, fragments", [
    ({}, ["patches.window_spots=-1"], ["patches.window_spots", "greater than 0", "-1"]),
    ({"train__lr": 0}, [], ["train.lr", "greater than 0"]),
    ({"train__lr": float("nan")}, [], ["train.lr", "finite"]),
    ({"seed": True}, [], ["seed", "valid integer", "True"]),
    ({"data__train": "12"}, [], ["data.train", "valid list", "'12'"]),
    ({"patches__patch_size": "abc"}, [], ["patches.patch_size", "valid integer", "'abc'"]),
    ({"data__name": "excel"}, [], ["data.name", "unknown reader 'excel'", "spaceranger"]),
    ({"train__alpha": 2}, [], ["train.alpha", "less than or equal to 1"]),
    ({"g": {"name": "gcn", "kwargs": {"hiden": 3}}}, [], ["g.kwargs.hiden", "corrector 'gcn'"]),
    ({}, ["train.epochs_g=-3"], ["train.epochs_g"]),
    ({}, ["trian.lr=1"], ["unknown key", "trian"]),
])
def test_bad_config_is_one_line_and_writes_nothing(tmp_path, capsys, changes, overrides, fragments):
    path = write(tmp_path, **changes)
    argv = ["train", str(path)] + (["--set", *overrides] if overrides else [])
    error_line(capsys, main(argv), str(path), *fragments)
    assert not (tmp_path / "out").exists()


def test_duplicate_yaml_keys_are_refused(tmp_path, capsys):
    path = write(tmp_path, text="seed: 1\ntrain: {lr: 0.1}\nseed: 2\n")
    error_line(capsys, main(["train", str(path)]), "key 'seed' is given twice")


def test_binary_config_names_the_file(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_bytes(bytes(range(256)))
    error_line(capsys, main(["train", str(path)]), "run.yaml", "not a YAML text file")


def test_set_takes_several_pairs_after_one_flag(tmp_path, capsys):
    path = write(tmp_path)
    code = main(["train", str(path), "--set", "train.epochs_f=0", "train.epochs_g=1",
                 "train.lr=not-a-number"])
    error_line(capsys, code, "train.lr")  # the third pair was read too
    assert main(["train", str(path), "--set", "train.epochs_f=0", "train.epochs_g=1"]) == 0
    rows = (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["stage"] for r in rows] == ["g"]


def test_internal_errors_say_so_and_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    import gridgraph.workflows as pipeline

    def broken(*args, **kwargs):
        raise KeyError("bug")

    monkeypatch.setattr(pipeline, "run_training", broken)
    path = write(tmp_path)
    assert main(["train", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("gridgraph: internal error (KeyError") and "--debug" in err
    assert main(["--debug", "train", str(path)]) == 1
    assert "Traceback" in capsys.readouterr().err

    def oom(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(pipeline, "run_training", oom)
    assert main(["train", str(path)]) == 1
    assert capsys.readouterr().err.startswith("gridgraph: out of memory")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("finished")
    path = write(tmp)
    assert main(["train", str(path), "--set", "train.epochs_g=1"]) == 0
    return tmp, path


def test_resume_with_other_train_settings_refuses_and_keeps_the_files(finished, capsys):
    tmp, path = finished
    before = {n: (tmp / "out" / n).read_bytes() for n in ("config.yaml", "best.pt", "last.pt")}
    error_line(capsys, main(["train", str(path), "--set", "train.epochs_g=1", "train.lr=0.05"]),
               "last.pt", "train.lr=0.003", "train.lr=0.05")
    assert {n: (tmp / "out" / n).read_bytes() for n in before} == before


def test_no_resume_refuses_another_run_unless_overwrite(finished, capsys, tmp_path):
    tmp, path = finished
    error_line(capsys, main(["train", str(path), "--no-resume"]), "holds another run", "--overwrite")
    copy = tmp_path / "run.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["output"] = str(tmp_path / "o")
    copy.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(copy), "--set", "train.epochs_g=1"]) == 0
    (tmp_path / "o" / "stale.txt").write_text("mine")
    assert main(["train", str(copy), "--overwrite", "--set", "train.epochs_g=2"]) == 0
    rows = (tmp_path / "o" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["stage"] for r in rows] == ["f", "g", "g"]
    assert (tmp_path / "o" / "stale.txt").read_text() == "mine"  # only run files are replaced


def test_output_next_to_the_config_never_overwrites_it(tmp_path, capsys):
    cfg = tiny_config(tmp_path).to_dict()
    cfg["output"] = "."
    path = tmp_path / "config.yaml"
    text = "# my notes\n" + yaml.safe_dump(cfg)
    path.write_text(text)
    error_line(capsys, main(["train", str(path)]), "over the config file")
    assert path.read_text() == text


def test_evaluate_out_does_not_replace_a_file(finished, capsys):
    tmp, _ = finished
    best = tmp / "out" / "best.pt"
    before = best.read_bytes()
    error_line(capsys, main(["evaluate", str(best), "--out", str(best)]), "exists", "--overwrite")
    assert best.read_bytes() == before


def test_evaluate_uses_each_checkpoints_own_settings(finished, tmp_path, capsys):
    tmp, path = finished
    cfg = yaml.safe_load(path.read_text())
    cfg["output"] = str(tmp_path / "wide")
    cfg["patches"] = {"patch_size": 12, "window_spots": 2.0}
    other = tmp_path / "wide.yaml"
    other.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(other), "--set", "train.epochs_g=1"]) == 0
    a, b = str(tmp / "out" / "best.pt"), str(tmp_path / "wide" / "best.pt")
    results = []
    for order in ([a], [b], [a, b], [b, a]):
        out = tmp_path / f"ev{len(results)}.json"
        assert main(["evaluate", *order, "--out", str(out)]) == 0
        results.append(json.loads(out.read_text())["models"])
    assert results[2][a] == results[3][a] == results[0][a]
    assert results[2][b] == results[3][b] == results[1][b]
    cfg["data"]["test"] = [2]
    cfg["output"] = str(tmp_path / "elsewhere")
    other.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(other), "--set", "train.epochs_g=1"]) == 0
    capsys.readouterr()
    error_line(capsys, main(["evaluate", a, str(tmp_path / "elsewhere" / "best.pt")]),
               "elsewhere", "same nodes")


def test_a_failed_predict_leaves_the_previous_outputs(finished, tmp_path, capsys, monkeypatch):
    tmp, _ = finished
    best, out = str(tmp / "out" / "best.pt"), tmp_path / "pred"
    assert main(["predict", best, "--synthetic", "7", "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == ["predictions.csv", "predictions.png", "predictions_loupe.csv"]
    import gridgraph.plot as plot

    def killed(*args, **kwargs):
        raise OSError("disk went away")

    monkeypatch.setattr(plot, "plot_label_maps", killed)
    error_line(capsys, main(["predict", best, "--synthetic", "8", "--out", str(out)]), "disk went away")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_the_same_config_trains_the_same_weights(tmp_path):
    from gridgraph.train import load_checkpoint

    states = []
    for name in ("a", "b"):
        path = write(tmp_path)
        assert main(["train", str(path), "--overwrite", "--set", f"output={tmp_path / name}",
                     "train.epochs_g=1"]) == 0
        states.append(load_checkpoint(tmp_path / name / "best.pt")["model"])
    assert all((states[0][k] == states[1][k]).all() for k in states[0])


def test_python_dash_m_gridgraph_runs_the_cli():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "gridgraph", "train", "missing.yaml"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("gridgraph: error: config file not found")


def test_progress_bars_follow_the_terminal(monkeypatch):
    import sys

    from gridgraph.config import TrainConfig
    from gridgraph.model import build_model
    from gridgraph.train import Trainer

    model = build_model(3, corrector="gcn")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert Trainer(model, TrainConfig(), ["a", "b", "c"]).progress is False
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert Trainer(model, TrainConfig(), ["a", "b", "c"]).progress is True
    assert Trainer(model, TrainConfig(progress=False), ["a", "b", "c"]).progress is False
    assert Trainer(model, TrainConfig(progress=True), ["a", "b", "c"]).progress is True


def test_checkpoint_records_its_scale_and_predict_applies_it(finished, monkeypatch):
    from dataclasses import replace

    import gridgraph.patches.extract as extract
    from gridgraph.workflows import prepare
    from gridgraph.workflows import load_model, trained_window
    from gridgraph.io.readers.synthetic import make_section

    tmp, _ = finished
    _, ckpt = load_model(tmp / "out" / "best.pt")
    assert ckpt.scale == {"window_um": 100.0, "patch_um_per_px": 100.0 / 16}  # 1 spot of 100 µm
    section = make_section("hex", seed=3, shape=(8, 16), n_classes=3)
    window = trained_window(ckpt, section)
    assert window.window_um == 100.0 and window.window_spots is None
    windows = []
    real = extract.extract_patches
    monkeypatch.setattr(extract, "extract_patches", lambda img, pos, w, p, **kw: windows.append(w) or real(img, pos, w, p, **kw))
    magnified = make_section("hex", seed=3, shape=(8, 16), n_classes=3, spacing_px=2 * section.spot_diameter_px)
    for s in (section, magnified):
        prepare(s, trained_window(ckpt, s))
    assert windows == pytest.approx([section.spot_diameter_px, 2 * section.spot_diameter_px])
    with pytest.raises(ValueError, match="µm per pixel is unknown.*100.0 µm windows"):
        trained_window(ckpt, replace(section, spot_diameter_px=None))
