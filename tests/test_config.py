from pathlib import Path

import pytest

from gridgraph.config import (ConfigError, RunConfig, TrainConfig, dump_config, load_config, make_config,
                              parse_override)
from gridgraph.names import Regimen

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))


def test_defaults_and_overrides():
    cfg = make_config({"g": {"name": "hexconv"}}, ["train.lr=1e-4", "g.kwargs.hidden_channels=64",
                                                   "patches.window_px=20", "data.train=[1, 2]"])
    assert cfg.train.lr == 1e-4 and isinstance(cfg.train.lr, float)
    assert cfg.g.name == "hexconv" and cfg.g.kwargs == {"hidden_channels": 64}
    assert cfg.patches.window_px == 20 and cfg.patches.window_spots is None
    assert cfg.data.train == [1, 2]
    assert cfg.train.epochs_f == TrainConfig().epochs_f == 5
    assert RunConfig().g.kwargs == {}, "make_config must not change the defaults"
    default = RunConfig()
    assert default.patches.auto_window and default.patches.standardize
    assert (default.g.name, default.model.g_residual, default.model.g_zero_init, default.model.g_ensemble) == \
        ("auto", True, True, 3)
    assert (default.train.metric, default.train.color_jitter) == ("auroc", 0.1)


def test_typed_objects_round_trip_through_dict_and_yaml(tmp_path):
    cfg = RunConfig(train=TrainConfig(regimen="at_once", epochs_joint=3), output=str(tmp_path / "o"))
    assert cfg.train.regimen is Regimen.AT_ONCE
    data = cfg.to_dict()
    assert data["train"]["regimen"] == "at_once" and data["model"]["g_input"] == "softmax"
    assert make_config(data) == cfg
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(path) == cfg
    with pytest.raises(Exception):
        cfg.train.lr = 0.5  # frozen


def test_parse_override_yaml_values():
    assert parse_override("a.b=3") == (["a", "b"], 3)
    assert parse_override("x=[1, two]") == (["x"], [1, "two"])
    assert parse_override("y=null") == (["y"], None)
    with pytest.raises(ConfigError, match="key.sub=value"):
        parse_override("novalue")
    with pytest.raises(ConfigError, match="empty key"):
        parse_override("a..b=1")


@pytest.mark.parametrize("update, key", [
    ({"train": {"regimen": "x"}}, "train.regimen"),
    ({"train": {"epochs_g": -1}}, "train.epochs_g"),
    ({"train": {"lr": "fast"}}, "train.lr"),
    ({"train": {"lr": 0}}, "train.lr"),
    ({"train": {"lr": float("nan")}}, "train.lr"),
    ({"train": {"lr": True}}, "train.lr"),
    ({"train": {"alpha": 1.5}}, "train.alpha"),
    ({"train": {"metric": "f1"}}, "train.metric"),
    ({"train": {"augment_sections": "yes"}}, "train.augment_sections"),
    ({"train": {"color_jitter": -0.2}}, "train.color_jitter"),
    ({"train": {"batch_size": 0}}, "train.batch_size"),
    ({"model": {"g_input": "pixels"}}, "model.g_input"),
    ({"patches": {"window_px": 3, "window_spots": 2}}, "at most one"),
    ({"g": {"name": "auto", "kwargs": {"hidden_channels": 8}}}, "g.kwargs"),
    ({"model": {"g_ensemble": 0}}, "model.g_ensemble"),
    ({"train": {"label_smoothing": 1.0}}, "train.label_smoothing"),
    ({"patches": {"window_spots": -1}}, "patches.window_spots"),
    ({"patches": {"patch_size": "abc"}}, "patches.patch_size"),
    ({"data": {"val": []}}, "data.val"),
    ({"data": {"train": "12"}}, "data.train"),
    ({"data": {"reader": "excel"}}, "data.name"),  # the older spelling, named as today
    ({"data": {"options": {"layuot": "hex"}}}, "data.kwargs.layuot"),
    ({"seed": True}, "seed"),
    ({"f": {"kwargz": {}}}, "f.kwargz"),
    ({"f": {"name": "resnet9000"}}, "f.name"),
    ({"g": {"name": "gcn", "kwargs": {"hidden_chanels": 8}}}, "g.kwargs.hidden_chanels"),
    ({"graph": {"builder": "knn", "kk": 8}}, "graph.kwargs.kk"),
    ({"train": 3}, "train"),
])
def test_bad_values_name_the_key(update, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        make_config(update)


def test_error_names_the_value_and_the_expectation():
    with pytest.raises(ConfigError) as err:
        make_config({}, ["patches.window_spots=-1"])
    text = str(err.value)
    assert "patches.window_spots" in text and "-1" in text and "greater than 0" in text


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_configs_load(path):
    cfg = load_config(path)
    assert Path(cfg.output).is_absolute() and Path(cfg.output).parent.name == "runs"
    if cfg.data.root is not None:
        assert Path(cfg.data.root).is_absolute()


def test_load_config_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_config(tmp_path / "missing.yaml")
    p = tmp_path / "list.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level"):
        load_config(p)
    p.write_text("train:\n  lr: 0.1\n  lr: 0.2\n")
    with pytest.raises(ConfigError, match=r"list.yaml: key 'lr' is given twice \(second time on line 3\)"):
        load_config(p)
    p.write_bytes(b"\xff\xfe\x00garbage\x9c")
    with pytest.raises(ConfigError, match="list.yaml: not a YAML text file"):
        load_config(p)
    p.write_text("train: {lr: .nan}\n")
    with pytest.raises(ConfigError, match="train.lr: Input should be a finite number"):
        load_config(p)


def test_paths_resolve_against_the_file_and_overrides_against_the_cwd(tmp_path, monkeypatch):
    folder = tmp_path / "cfgs"
    folder.mkdir()
    (folder / "run.yaml").write_text("output: out\ndata: {root: ../data}\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(folder / "run.yaml")
    assert cfg.output == str(folder / "out") and cfg.data.root == str(tmp_path / "data")
    cfg = load_config(folder / "run.yaml", ["output=elsewhere"])
    assert cfg.output == str(tmp_path / "elsewhere")


def test_overrides_merge_into_free_form_sections():
    cfg = make_config({"graph": {"builder": "knn", "k": 6},
                       "g": {"name": "gcn", "kwargs": {"hidden_channels": 64, "num_layers": 4}}},
                      ["graph.k=8", "g.kwargs.num_layers=2"])
    assert cfg.graph.kwargs == {"k": 8} and cfg.graph.name == "knn"
    assert cfg.g.kwargs == {"hidden_channels": 64, "num_layers": 2}


def test_window_override_replaces_the_files_window():
    cfg = make_config({"patches": {"window_spots": 2.0}}, ["patches.window_um=110"])
    assert cfg.patches.window() == {"window_spots": None, "window_px": None, "window_um": 110.0}


@pytest.mark.parametrize("override, key", [
    ("train.amp=bf16", "train.amp"),
    ("train.device=gpu", "train.device"),
    ("graph.buider=knn", "graph.kwargs.buider"),
    ("train.init_from=x.pt", "init_from"),
    ("graph.builder=delaunay", "graph.name"),
])
def test_more_bad_overrides(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        make_config({}, [override])


def test_paths_in_a_file_are_relative_to_it(tmp_path, monkeypatch):
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "run.yaml").write_text(
        "output: out\n"
        "data: {reader: synthetic, root: data}\n"
        "f: {name: expression, kwargs: {counts: 'counts/{section}.tsv'}}\n"
        "train: {embedding_cache: emb}\n")
    (folder / "fused.yaml").write_text(
        "output: out\n"
        "f: {name: fusion, kwargs: {branches: {image: {name: gridnet_simple},"
        " expression: {name: expression, kwargs: {counts: c.tsv}}}}}\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(folder / "run.yaml", overrides=["output=elsewhere"])
    assert cfg.f.kwargs["counts"] == str(folder / "counts" / "{section}.tsv")
    assert cfg.train.embedding_cache == str(folder / "emb") and cfg.data.root == str(folder / "data")
    assert cfg.output == str(tmp_path / "elsewhere")  # --set values: relative to the working directory
    fused = load_config(folder / "fused.yaml")
    assert fused.f.kwargs["branches"]["expression"]["kwargs"]["counts"] == str(folder / "c.tsv")


def test_one_spelling_for_every_registry_section_and_the_older_ones_still_load():
    new = make_config({"data": {"name": "synthetic", "kwargs": {"layout": "irregular"}},
                       "graph": {"name": "knn", "kwargs": {"k": 6}}})
    old = make_config({"data": {"reader": "synthetic", "options": {"layout": "irregular"}},
                       "graph": {"builder": "knn", "k": 6}})
    assert new == old and new.to_dict()["graph"] == {"name": "knn", "kwargs": {"k": 6}}
    assert new.to_dict()["data"]["name"] == "synthetic" and "reader" not in new.to_dict()["data"]
    # --set in either spelling
    assert make_config({}, ["data.reader=nuclei"]).data.name == "nuclei"
    assert make_config({}, ["graph.builder=knn", "graph.k=3"]).graph.kwargs == {"k": 3}
    with pytest.raises(ConfigError, match="data: both 'reader' .* and 'name' are given"):
        make_config({"data": {"reader": "nuclei", "name": "synthetic"}})


def test_a_newly_registered_graph_builder_is_taken_by_the_config():
    import numpy as np

    from gridgraph.graph import GRAPH_BUILDERS, GraphSpec, knn_graph

    GRAPH_BUILDERS.register("ring_for_test", lambda pos, k=2: knn_graph(np.asarray(pos), k=k))
    try:
        cfg = make_config({"graph": {"name": "ring_for_test", "kwargs": {"k": 3}}})
        spec = GraphSpec.parse(cfg.graph.model_dump())
        assert spec.rule == "ring_for_test" and not spec.needs_array
        assert spec.build(np.random.default_rng(0).random((10, 2))).num_nodes == 10
    finally:
        GRAPH_BUILDERS._entries.pop("ring_for_test", None)
