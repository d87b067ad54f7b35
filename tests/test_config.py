from pathlib import Path

import pytest

from gridgraph.config import DEFAULTS, ConfigError, load_config, make_config, parse_override

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))


def test_defaults_and_overrides():
    cfg = make_config({"g": {"name": "hexconv"}}, ["train.lr=1e-4", "g.kwargs.hidden_channels=64",
                                                   "patches.window_px=20", "data.train=[1, 2]"])
    assert cfg["train"]["lr"] == 1e-4 and isinstance(cfg["train"]["lr"], float)
    assert cfg["g"] == {"name": "hexconv", "kwargs": {"hidden_channels": 64}}
    assert cfg["patches"]["window_px"] == 20 and cfg["patches"]["window_spots"] is None
    assert cfg["data"]["train"] == [1, 2]
    assert cfg["train"]["epochs_f"] == DEFAULTS["train"]["epochs_f"]
    assert DEFAULTS["g"]["kwargs"] == {}, "make_config must not mutate the defaults"


def test_parse_override_yaml_values():
    assert parse_override("a.b=3") == (["a", "b"], 3)
    assert parse_override("x=[1, two]") == (["x"], [1, "two"])
    assert parse_override("y=null") == (["y"], None)
    with pytest.raises(ConfigError, match="key.sub=value"):
        parse_override("novalue")


@pytest.mark.parametrize("update, key", [
    ({"train": {"regimen": "x"}}, "train.regimen"),
    ({"train": {"epochs_g": 0}}, "train.epochs_g"),
    ({"train": {"lr": "fast"}}, "train.lr"),
    ({"train": {"metric": "f1"}}, "train.metric"),
    ({"train": {"augment_sections": "yes"}}, "train.augment_sections"),
    ({"train": {"color_jitter": -0.2}}, "train.color_jitter"),
    ({"model": {"g_input": "pixels"}}, "model.g_input"),
    ({"patches": {"window_px": 3, "window_spots": 2}}, "exactly one"),
    ({"data": {"val": []}}, "data.val"),
    ({"f": {"kwargz": {}}}, "f.kwargz"),
    ({"train": 3}, "train must be a mapping"),
])
def test_bad_values_name_the_key(update, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        make_config(update)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_configs_load(path):
    cfg = load_config(path)
    assert cfg["output"].startswith("runs/")
    if cfg["data"]["root"] is not None:
        assert Path(cfg["data"]["root"]).is_absolute()


def test_load_config_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_config(tmp_path / "missing.yaml")
    p = tmp_path / "list.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level"):
        load_config(p)


def test_overrides_merge_into_free_form_sections():
    cfg = make_config({"graph": {"builder": "knn", "k": 6},
                       "g": {"name": "gcn", "kwargs": {"hidden_channels": 64, "num_layers": 4}}},
                      ["graph.k=8", "g.kwargs.num_layers=2"])
    assert cfg["graph"] == {"builder": "knn", "k": 8}
    assert cfg["g"]["kwargs"] == {"hidden_channels": 64, "num_layers": 2}


@pytest.mark.parametrize("override, key", [
    ("train.amp=bf16", "train.amp"),
    ("train.device=gpu", "train.device"),
    ("graph.buider=knn", "graph.buider"),
    ("train.init_from=x.pt", "train.init_from"),
    ("graph.builder=delaunay", "graph.builder"),
])
def test_more_bad_overrides(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        make_config({}, [override])
