"""build_run, one source of defaults, predict flags from the reader registry."""
import numpy as np
import pytest
import torch
from PIL import Image

from gridgraph import build_model
from gridgraph.cli import build_parser, main
from gridgraph.config import make_config
from gridgraph.defaults import GRAPH_CORRECTOR, GRID_CORRECTOR
from gridgraph.io.readers.registry import READERS, predict_flags
from gridgraph.io.readers.synthetic import make_section
from gridgraph.workflows import build_run, model_from_config, resolve_config
from helpers import tiny_config


def test_python_defaults_build_the_model_the_default_config_builds():
    section = make_section("hex", seed=1, shape=(6, 8), n_classes=3)
    cfg = resolve_config(make_config({}), [section])
    torch.manual_seed(0)
    from_yaml = model_from_config(cfg, 3)
    torch.manual_seed(0)
    from_python = build_model(3, layout=section.graph.layout)
    a, b = from_yaml.state_dict(), from_python.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert repr(from_yaml) == repr(from_python)
    patches = torch.randint(0, 256, (section.num_nodes, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(from_yaml.eval()(patches, section.graph), from_python.eval()(patches, section.graph),
                                   rtol=0, atol=0)
    assert cfg.g.model_dump() == GRID_CORRECTOR and from_python.g_residual and len(from_python.g.members) == 3


def test_auto_corrector_needs_a_layout_and_picks_by_it():
    with pytest.raises(ValueError, match="corrector='auto' picks g from the sections' layout: pass layout="):
        build_model(3)
    gcn = build_model(3, layout="irregular", g_ensemble=1)
    assert type(gcn.g).__name__.lower().startswith("gcn")
    assert gcn.g.hidden_channels == GRAPH_CORRECTOR["kwargs"]["hidden_channels"]


def test_build_run_settles_auto_once_and_reuses_sections(tmp_path):
    cfg = make_config({**tiny_config(tmp_path).to_dict(), "g": {"name": "auto"}})
    run = build_run(cfg, log=lambda line: None)
    assert run.cfg.g.name == "unet" and run.classes == ["band0", "band1", "band2"]
    assert run.scale["window_um"] > 0 and run.meta == {"scale": run.scale, "features": run.features,
                                                       "platform": {"layouts": ["hex"], "nodes": ["spots"]}}
    again = build_run(cfg.model_copy(update={"seed": 1}), log=lambda line: None, sections_of=run)
    assert again.splits["train"][0] is run.splits["train"][0]
    assert not torch.equal(next(again.model.parameters()), next(run.model.parameters()))  # its own seed
    other = cfg.model_copy(update={"patches": cfg.patches.model_copy(update={"patch_size": 8})})
    with pytest.raises(ValueError, match=r"differs in \['patches'\]"):
        build_run(other, sections_of=run)


def test_training_writes_config_yaml_once_with_g_settled(tmp_path, monkeypatch):
    import gridgraph.workflows.train as train

    writes = []
    real = train.atomic_write
    monkeypatch.setattr(train, "atomic_write", lambda path, *a, **k: writes.append(path.name) or real(path, *a, **k))
    cfg = make_config({**tiny_config(tmp_path, epochs_g=1).to_dict(), "g": {"name": "auto"}})
    train.run_training(cfg, figures=False, log=lambda line: None)
    assert writes.count("config.yaml") == 1
    assert "name: unet" in (tmp_path / "run" / "config.yaml").read_text()


def test_every_reader_has_a_predict_flag():
    flags = predict_flags()
    assert set(flags.values()) == set(READERS.names())
    assert flags["h5ad"] == "anndata" and flags["st-tsv"] == "st_tsv"
    text = build_parser()._subparsers._group_actions[0].choices["predict"].format_help()
    for flag in flags:
        assert f"--{flag}" in text


def _st_section(tmp_path):
    from test_io_st import write_st_tsv

    rows, cols, classes = 4, 6, ["GM", "WM"]
    spots = {f"{c + 1}_{r + 1}": classes[int(c >= cols // 2)] for r in range(rows) for c in range(cols)}
    tsv = write_st_tsv(tmp_path / "s1_annotations.tsv", classes, spots)
    image = np.random.default_rng(0).integers(0, 255, (rows * 40 + 80, cols * 40 + 80, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "s1.jpg")
    return tsv, tmp_path / "s1.jpg"


def test_predict_st_tsv_with_a_model_trained_on_it(tmp_path, capsys):
    tsv, image = _st_section(tmp_path)
    cfg = tiny_config(tmp_path, epochs_f=1, epochs_g=1).to_dict()
    cfg["data"] = {"reader": "st_tsv", "root": str(tmp_path), "train": ["s1"], "val": ["s1"], "test": []}
    cfg["patches"] = {"patch_size": 16, "window_px": 32}
    path = tmp_path / "st.yaml"
    import yaml
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(path)]) == 0
    best = tmp_path / "run" / "best.pt"
    out = tmp_path / "pred"
    assert main(["predict", str(best), "--st-tsv", str(tsv), "--image", str(image), "--out", str(out),
                 "--no-figure"]) == 0
    rows = (out / "predictions.csv").read_text().splitlines()
    assert len(rows) == 1 + 24 and rows[0].startswith("id,label,")
    capsys.readouterr()
    assert main(["predict", str(best), "--st-tsv", str(tsv), "--out", str(out)]) == 2
    assert "--st-tsv needs --image" in capsys.readouterr().err
    assert main(["predict", str(best), "--st-tsv", str(tsv), "--image", str(image), "--alignment", "a.csv",
                 "--out", str(out)]) == 2
    assert "--alignment goes with --xenium, not --st-tsv" in capsys.readouterr().err


def test_evaluate_unknown_split_is_a_usage_error(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "best.pt"), "--split", "foo"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'foo'" in err and "'train', 'val', 'test'" in err


@pytest.fixture
def demo_checkpoint(tiny_checkpoint):
    return tiny_checkpoint


def test_an_output_that_is_a_file_is_refused_and_kept(demo_checkpoint, tmp_path, capsys):
    blocker = tmp_path / "iamafile"
    blocker.write_text("mine")
    assert main(["predict", str(demo_checkpoint), "--synthetic", "5", "--out", str(blocker)]) == 2
    assert "--out" in capsys.readouterr().err and blocker.read_text() == "mine"
    cfg = tiny_config(tmp_path).to_dict()
    cfg["output"] = str(blocker)
    import yaml
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(tmp_path / "c.yaml")]) == 2
    assert str(blocker) in capsys.readouterr().err and blocker.read_text() == "mine"


def test_several_inputs_stay_inside_out_with_safe_distinct_names(demo_checkpoint, tmp_path):
    from helpers import write_spaceranger

    base = tmp_path / "fx" / "sr_base"
    write_spaceranger(make_section("hex", seed=2, shape=(6, 8), n_classes=3), base)
    other = tmp_path / "other" / "sr_base"
    write_spaceranger(make_section("hex", seed=3, shape=(6, 8), n_classes=3), other)
    out = tmp_path / "out" / "preds"
    assert main(["predict", str(demo_checkpoint), "--spaceranger", str(base / "spatial" / ".."), str(other),
                 "--out", str(out), "--no-figure"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["sr_base", "sr_base-2"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["preds"]  # nothing beside --out


def test_predict_writes_viewer_exports_for_cells(demo_checkpoint, tmp_path):
    import json

    from gridgraph.io.readers.synthetic import make_section as make
    from gridgraph.workflows import load_model, predict_section

    model, ckpt = load_model(demo_checkpoint)
    cells = make("irregular", seed=4, n_classes=3)
    paths = predict_section(model, ckpt, cells, tmp_path / "cells", figures=False, qupath=True)
    assert "qupath" not in predict_section(model, ckpt, cells, tmp_path / "plain", figures=False)
    groups = paths["xenium_groups"].read_text().splitlines()
    assert groups[0] == "cell_id,group" and len(groups) == 1 + cells.num_nodes
    table = paths["table"].read_text().splitlines()
    assert [row.split(",")[1] for row in table[1:]] == [row.split(",")[1] for row in groups[1:]]
    shapes = json.loads(paths["qupath"].read_text())
    assert shapes["type"] == "FeatureCollection" and len(shapes["features"]) == cells.num_nodes
    first = shapes["features"][0]["properties"]
    assert first["classification"]["name"] == table[1].split(",")[1]


def test_provenance_says_what_was_used(demo_checkpoint):
    from gridgraph import __version__
    from gridgraph.workflows import load_model, provenance

    model, ckpt = load_model(demo_checkpoint)
    both = provenance(model, ckpt)
    assert both["checkpoint"] == str(demo_checkpoint.resolve()) and both["used"] == "f+g" and both["g"] == "gcn"
    assert both["trained_with"]["gridgraph"] == __version__ == both["gridgraph_version"]
    model.use_g.fill_(False)
    alone = provenance(model, ckpt)
    assert (alone["used"], alone["g"], alone["f"]) == ("f", "none", "gridnet_simple")
