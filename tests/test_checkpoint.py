"""The typed checkpoint: fields checked by type, non-finite weights refused, versions and path recorded."""
import pytest
import torch

from gridgraph import __version__
from gridgraph.checkpoint import Checkpoint, load_checkpoint
from gridgraph.cli import main
from gridgraph.workflows import load_model


@pytest.fixture
def best(tiny_checkpoint):
    return tiny_checkpoint


def _rewrite(best, tmp_path, change):
    raw = torch.load(best, weights_only=True)
    change(raw)
    path = tmp_path / "changed.pt"
    torch.save(raw, path)
    return path


def test_checkpoint_records_versions_and_its_absolute_path(best, monkeypatch):
    monkeypatch.chdir(best.parent)
    ckpt = Checkpoint.load("best.pt")
    assert ckpt.path == best.resolve() and ckpt.path.is_absolute()
    assert ckpt.versions == {"gridgraph": __version__, "torch": str(torch.__version__)}
    assert ckpt.classes == ["band0", "band1", "band2"] and ckpt.scale["window_um"] > 0
    assert set(ckpt.metric_summary()) <= set(ckpt.metrics)


@pytest.mark.parametrize("field, value, message", [
    ("config", "f: gridnet_simple", "field 'config' must be a mapping (the run config), not str"),
    ("classes", "band0", "field 'classes' must be a list of class names, not str"),
    ("classes", [0, 1, 2], "field 'classes' must hold class names (text), not 0"),
    ("model", [1, 2], "field 'model' must be a mapping of tensor names to tensors, not list"),
    ("scale", 3.0, "field 'scale' must be a mapping"),
    ("history", {"a": 1}, "field 'history' must be a list of epoch records, not dict"),
])
def test_every_field_is_checked_by_type(best, tmp_path, field, value, message):
    path = _rewrite(best, tmp_path, lambda raw: raw.__setitem__(field, value))
    with pytest.raises(ValueError, match="changed.pt: " + message.replace("(", r"\(").replace(")", r"\)")):
        load_model(path)


def test_non_finite_weights_are_refused_naming_the_tensor(best, tmp_path, capsys):
    def poison(raw):
        name = next(k for k, v in raw["model"].items() if v.is_floating_point())
        raw["model"][name] = raw["model"][name].clone().fill_(float("nan"))
        raw["poisoned"] = name

    path = _rewrite(best, tmp_path, poison)
    name = torch.load(path, weights_only=True)["poisoned"]
    with pytest.raises(ValueError, match=f"weight '{name}' holds .* non-finite values"):
        Checkpoint.load(path)
    assert load_checkpoint(path)["poisoned"] == name  # the raw file still reads (resume tools)
    code = main(["predict", str(path), "--synthetic", "5", "--out", str(tmp_path / "pred")])
    err = capsys.readouterr().err
    assert code == 2 and "non-finite" in err and name in err
    assert not (tmp_path / "pred").exists()


def test_a_model_too_large_for_memory_is_named(best, tmp_path, monkeypatch):
    import gridgraph.workflows.build as build

    def huge(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] can't allocate memory: you tried to allocate "
                           "2415919104 bytes")

    monkeypatch.setattr(build, "build_model", huge)
    with pytest.raises(ValueError, match=r"out of memory building the model described in .*best.pt \(f gridnet_simple"):
        load_model(best)


def test_a_checkpoint_in_the_older_config_spelling_predicts_the_same_bytes(best, tmp_path):
    def older(raw):
        data = raw["config"]["data"]
        raw["config"]["data"] = {**{k: v for k, v in data.items() if k not in ("name", "kwargs")},
                                 "reader": data["name"], "options": data["kwargs"]}
        raw["config"]["graph"] = {"builder": None}

    path = _rewrite(best, tmp_path, older)
    assert torch.load(path, weights_only=True)["config"]["data"]["reader"] == "synthetic"
    assert Checkpoint.load(path).config == Checkpoint.load(best).config
    for name, ckpt in (("new", best), ("old", path)):
        assert main(["predict", str(ckpt), "--synthetic", "7", "--out", str(tmp_path / name), "--no-figure"]) == 0
    for file in ("predictions.csv", "predictions_loupe.csv"):
        assert (tmp_path / "new" / file).read_bytes() == (tmp_path / "old" / file).read_bytes()
