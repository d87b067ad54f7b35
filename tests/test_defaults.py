"""The accuracy defaults: a residual g that starts at f, g ensembles, keeping f alone when g is
worse on validation, automatic windows and correctors."""
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gridgraph import build_model
from gridgraph.config import make_config
from gridgraph.correctors import CorrectorEnsemble, build_corrector, combine_members, zero_output_layer
from gridgraph.workflows import load_splits
from gridgraph.defaults import GRAPH_CORRECTOR, GRID_CORRECTOR, corrector_for
from gridgraph.workflows import resolve_config
from gridgraph.graph import hex_graph, knn_graph
from gridgraph.patches.window import Window, node_pitch_px
from gridgraph.workflows import load_model, model_from_config, run_training
from gridgraph.io.readers.synthetic import make_section
from gridgraph.train import Trainer, load_checkpoint, masked_cross_entropy

from helpers import tiny_config

TINY_F = {"stage_channels": (4, 4, 4, 4), "stem_channels": 4}


def hex_section_graph(rows=6, cols=8):
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    keep = (r + c) % 2 == 0
    return hex_graph(r[keep], c[keep])


@pytest.mark.parametrize("corrector, graph_kind", [("unet", "hex"), ("conv2d", "cart"), ("hexconv", "hex"),
                                                   ("gcn", "knn"), ("sage", "knn"), ("gat", "knn")])
def test_zero_initialised_residual_g_starts_exactly_at_f(corrector, graph_kind):
    from gridgraph.graph import cartesian_graph

    if graph_kind == "hex":
        graph = hex_section_graph()
    elif graph_kind == "cart":
        r, c = np.meshgrid(np.arange(5), np.arange(6), indexing="ij")
        graph = cartesian_graph(r.ravel(), c.ravel())
    else:
        graph = knn_graph(torch.rand(30, 2).numpy() * 100, k=4)
    n = graph.num_nodes
    torch.manual_seed(0)
    model = build_model(3, corrector=corrector, g_residual=True, encoder_kwargs=TINY_F).eval()
    patches = torch.randint(0, 256, (n, 3, 16, 16), dtype=torch.uint8)
    with torch.no_grad():
        out = model(patches, graph, return_f=True)
    torch.testing.assert_close(out.g_logits, F.log_softmax(out.f_logits, -1), rtol=1e-5, atol=1e-5)
    # the correction's output layer is zero, the layers before it are not: training moves it
    layer = model.g.output_layer()
    assert all(p.abs().sum() == 0 for p in layer.parameters())
    assert any(p.abs().sum() > 0 for p in model.g.parameters())


def test_zero_init_is_off_without_residual_and_when_asked():
    torch.manual_seed(0)
    plain = build_model(3, corrector="gcn", g_residual=False, g_ensemble=1, encoder_kwargs=TINY_F)
    assert all(p.abs().sum() > 0 for p in plain.g.output_layer().parameters() if p.dim() > 1)
    kept = build_model(3, corrector="gcn", g_residual=True, g_zero_init=False, g_ensemble=1, encoder_kwargs=TINY_F)
    assert kept.g.output_layer().lin.weight.abs().sum() > 0


def test_residual_g_without_an_output_layer_warns():
    from gridgraph.correctors import register_corrector
    from gridgraph.correctors.registry import CORRECTORS

    class Bare(torch.nn.Module):
        def __init__(self, num_classes, in_channels=None):
            super().__init__()
            self.lin = torch.nn.Linear(in_channels or num_classes, num_classes)

        def forward(self, x, graph):
            return self.lin(x)

    register_corrector("bare_for_test", Bare)
    try:
        with pytest.warns(UserWarning, match="does not name its output layer"):
            build_model(3, corrector="bare_for_test", g_residual=True, g_ensemble=1, encoder_kwargs=TINY_F)
        assert not zero_output_layer(Bare(3))
    finally:
        CORRECTORS._entries.pop("bare_for_test", None)


def test_ensemble_members_differ_and_combine_to_the_mean_probability():
    torch.manual_seed(0)
    graph = knn_graph(torch.rand(12, 2).numpy(), k=3)
    ens = CorrectorEnsemble(lambda: build_corrector("gcn", 4, hidden_channels=8), size=3)
    assert len(ens) == 3 and ens.num_classes == 4 and ens.in_channels == 4
    first = [m.convs[0].lin.weight for m in ens.members]
    assert not torch.equal(first[0], first[1]) and not torch.equal(first[1], first[2])
    x = torch.rand(12, 4)
    out = ens(x, graph)
    assert out.shape == (3, 12, 4)
    combined = combine_members(out)
    torch.testing.assert_close(combined.softmax(-1), out.softmax(-1).mean(0))
    torch.testing.assert_close(combine_members(out[:1]), out[0].log_softmax(-1))
    with pytest.raises(ValueError, match="at least one member"):
        CorrectorEnsemble(lambda: build_corrector("gcn", 4), size=0)


def test_ensemble_loss_gives_each_member_its_own_gradient():
    """The sum of the members' losses: member i's gradient is exactly its own loss's."""
    torch.manual_seed(0)
    graph = knn_graph(torch.rand(10, 2).numpy(), k=3)
    ens = CorrectorEnsemble(lambda: build_corrector("gcn", 3, hidden_channels=8), size=2)
    x, y = torch.rand(10, 3), torch.tensor([0, 1, 2, 0, 1, 2, -1, 0, 1, 2])
    masked_cross_entropy(ens(x, graph), y).backward()
    together = [p.grad.clone() for p in ens.members[1].parameters()]
    ens.zero_grad()
    masked_cross_entropy(ens.members[1](x, graph), y).backward()
    for a, b in zip(together, ens.members[1].parameters()):
        torch.testing.assert_close(a, b.grad)


def test_masked_cross_entropy_of_members_and_label_smoothing():
    logits = torch.randn(3, 5, 4)
    y = torch.tensor([0, 1, -1, 3, 2])
    expect = sum(F.cross_entropy(m, y, ignore_index=-1) for m in logits)
    torch.testing.assert_close(masked_cross_entropy(logits, y), expect)
    smooth = F.cross_entropy(logits[0], y, ignore_index=-1, label_smoothing=0.2)
    torch.testing.assert_close(masked_cross_entropy(logits[0], y, 0.2), smooth)


def test_model_with_an_ensemble_g_averages_member_probabilities():
    torch.manual_seed(0)
    graph = hex_section_graph()
    model = build_model(3, corrector="unet", g_residual=True, g_zero_init=False, g_ensemble=2,
                        corrector_kwargs={"base_channels": 4, "depth": 1}, encoder_kwargs=TINY_F).eval()
    patches = torch.randint(0, 256, (graph.num_nodes, 3, 16, 16), dtype=torch.uint8)
    with torch.no_grad():
        f_logits, g_in = model.f_outputs(patches)
        members = model.g_member_logits(g_in, graph)
        out = model.g_outputs(g_in, graph)
    assert members.shape == (2, graph.num_nodes, 3)
    raw = model.g(g_in, graph)
    torch.testing.assert_close(members, raw + torch.log(g_in.clamp_min(1e-8))[None])
    torch.testing.assert_close(out.softmax(-1), members.softmax(-1).mean(0))


def test_use_g_off_gives_f_and_old_checkpoints_load_with_g_on():
    torch.manual_seed(0)
    graph = knn_graph(torch.rand(9, 2).numpy(), k=3)
    patches = torch.randint(0, 256, (9, 3, 16, 16), dtype=torch.uint8)
    for residual in (False, True):
        model = build_model(3, corrector="gcn", g_residual=residual, g_zero_init=False,
                            encoder_kwargs=TINY_F).eval()
        old = {k: v for k, v in model.state_dict().items() if k != "use_g"}
        model.use_g.fill_(False)
        model.load_state_dict(old)  # strict: a missing use_g is filled in
        assert bool(model.use_g)
        model.use_g.fill_(False)
        with torch.no_grad():
            out = model(patches, graph, return_f=True)
        torch.testing.assert_close(out.g_logits.softmax(-1), out.f_logits.softmax(-1))


def _bad_g_run(tmp_path, data, **train):
    """A paper-style g (predicts logits outright, no zero start) with a huge learning rate: on
    validation it ends worse than the f it reads."""
    cfg = make_config({**tiny_config(tmp_path).to_dict(), "model": {"g_residual": False, "g_ensemble": 1},
                       "train": {**tiny_config(tmp_path).train.model_dump(mode="json"), "epochs_f": 3,
                                 "epochs_g": 2, "metric": "accuracy", **train}})
    torch.manual_seed(0)
    return cfg, model_from_config(cfg, len(data[1]))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return load_splits(tiny_config(tmp_path_factory.mktemp("data")))


def test_selection_keeps_f_alone_when_g_is_worse_and_says_so(tmp_path, data, monkeypatch):
    cfg, model = _bad_g_run(tmp_path, data)
    lines = []
    tr = Trainer(model, cfg, data[1], out_dir=tmp_path / "run", log=lines.append)
    # g that only ever predicts class 0: worse than f on every epoch
    monkeypatch.setattr(type(model.g), "forward",
                        lambda self, x, graph: torch.zeros(x.shape[0], 3).index_fill(1, torch.tensor([0]), 9.0)
                        + 0 * sum(p.sum() for p in self.parameters()))
    tr.fit(data[0]["train"], data[0]["val"])
    g_rows = [r for r in tr.history if r["stage"] == "g"]
    assert all(r["f_accuracy"] > r["accuracy"] for r in g_rows)
    assert not bool(tr.model.use_g)
    assert any(line.startswith("kept f alone") for line in lines), lines
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert not bool(best["model"]["use_g"])
    f_probs, g_probs = tr.predict(data[0]["val"])[0]
    torch.testing.assert_close(g_probs, f_probs)
    assert tr.validate(data[0]["val"])["accuracy"] == g_rows[0]["f_accuracy"]


def test_selection_keeps_g_when_it_helps(tmp_path, data):
    cfg = tiny_config(tmp_path, epochs_f=1, epochs_g=8, metric="accuracy")
    torch.manual_seed(0)
    lines = []
    tr = Trainer(model_from_config(cfg, len(data[1])), cfg, data[1], log=lines.append)
    tr.fit(data[0]["train"], data[0]["val"])
    best = tr.state.best
    assert best["use_g"] and "g_off" not in best["metrics"]
    assert best["metrics"]["accuracy"] > best["metrics"]["f_accuracy"]
    assert bool(tr.model.use_g) and lines[-1].startswith("kept f + g")


def test_kept_f_alone_records_f_metrics_and_retraining_turns_g_back_on(tmp_path, data, monkeypatch):
    cfg, model = _bad_g_run(tmp_path, data)
    bad = lambda self, x, graph: torch.zeros(x.shape[0], 3).index_fill(1, torch.tensor([0]), 9.0) \
        + 0 * sum(p.sum() for p in self.parameters())  # noqa: E731
    with monkeypatch.context() as m:
        m.setattr(type(model.g), "forward", bad)
        tr = Trainer(model, cfg, data[1], log=lambda line: None).fit(data[0]["train"], data[0]["val"])
    metrics = tr.state.best["metrics"]
    assert metrics["accuracy"] == metrics["f_accuracy"] > metrics["g_off"]["accuracy"]
    assert not bool(model.use_g)
    again = Trainer(model, cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs_f": 0})}),
                    data[1], log=lambda line: None)
    before = [p.clone() for p in model.g.parameters()]
    again.fit(data[0]["train"], data[0]["val"])  # a model that had kept f alone: its g trains again
    assert any(not torch.equal(a, b) for a, b in zip(before, model.g.parameters()))


def test_auto_window_by_platform_spacing():
    hexa = make_section(layout="hex", shape=(6, 8), spacing_px=10)
    assert node_pitch_px(hexa.graph) == pytest.approx(10.0, rel=0.02)
    assert hexa.microns_per_px == pytest.approx(10.0)  # 100 µm spots, 10 px apart
    assert Window().resolve(hexa) == Window(200.0, "um")
    cells = hexa.__class__(**{**hexa.__dict__, "spot_diameter_um": 1.0})  # 1 µm per 10 px: 1 µm pitch
    assert Window().resolve(cells) == Window(32.0, "um")
    unscaled = hexa.__class__(**{**hexa.__dict__, "spot_diameter_um": None})
    assert Window().resolve(unscaled) == Window(32.0, "px")


def test_patch_config_window_is_automatic_per_section():
    cfg = make_config({"patches": {"patch_size": 16}})
    section = make_section(layout="hex", shape=(6, 8), spacing_px=10)
    assert cfg.patches.auto_window
    assert cfg.patches.window(section) == {"window_spots": None, "window_px": None, "window_um": 200.0}
    with pytest.raises(ValueError, match="automatic"):
        cfg.patches.window()
    assert make_config({"patches": {"window_px": 8}}).patches.window() == \
        {"window_spots": None, "window_px": 8.0, "window_um": None}


def test_auto_corrector_follows_the_layout():
    assert corrector_for(["hex", "hex"]) == GRID_CORRECTOR
    assert corrector_for(["cartesian"])["name"] == "unet"
    assert corrector_for(["hex", "irregular"]) == GRAPH_CORRECTOR
    cfg = make_config({})
    sections = [make_section(layout="hex", shape=(6, 8))]
    assert resolve_config(cfg, sections).g.model_dump() == GRID_CORRECTOR
    named = make_config({"g": {"name": "gcn"}})
    assert resolve_config(named, sections) is named
    with pytest.raises(ValueError, match="resolve it first"):
        model_from_config(cfg, 3)


def test_run_with_default_g_stores_the_chosen_corrector_and_resumes(tmp_path):
    cfg = make_config({**tiny_config(tmp_path).to_dict(), "g": {"name": "auto"},
                       "model": {"g_ensemble": 2}})
    run_training(cfg, figures=False, log=lambda line: None)
    model, ckpt = load_model(tmp_path / "run" / "best.pt")
    assert ckpt.config.g.model_dump() == GRID_CORRECTOR and isinstance(model.g, CorrectorEnsemble)
    assert "name: unet" in (tmp_path / "run" / "config.yaml").read_text()
    # the same config (g still 'auto') resumes the finished run instead of refusing it
    again = run_training(cfg, figures=False, log=lambda line: None)
    assert again["classes"] == ckpt.classes
    # a folder trained with another g is refused before anything is written
    before = (tmp_path / "run" / "config.yaml").read_text()
    other = make_config({**cfg.to_dict(), "output": str(tmp_path / "other"), "g": {"name": "gcn"}})
    run_training(other, figures=False, log=lambda line: None)
    moved = make_config({**cfg.to_dict(), "output": str(tmp_path / "other")})
    written = (tmp_path / "other" / "config.yaml").read_text()
    with pytest.raises(ValueError, match=r"last.pt: written with g=\{'name': 'gcn'"):
        run_training(moved, figures=False, log=lambda line: None)
    assert (tmp_path / "other" / "config.yaml").read_text() == written
    assert (tmp_path / "run" / "config.yaml").read_text() == before


def test_checkpoint_from_before_ensembles_loads_resumes_and_inits(tmp_path):
    from gridgraph.config import legacy_config
    from gridgraph.train import CheckpointManager

    cfg = make_config({**tiny_config(tmp_path).to_dict(), "model": {"g_ensemble": 1, "g_zero_init": False}})
    run_training(cfg, figures=False, log=lambda line: None)
    for name in ("best.pt", "last.pt"):  # as written before these settings existed
        path = tmp_path / "run" / name
        ckpt = torch.load(path, weights_only=True)
        for section, key in (("model", "g_ensemble"), ("model", "g_zero_init"), ("model", "f_tta"),
                             ("train", "label_smoothing"), ("train", "cross_fit"), ("train", "cross_fit_block")):
            del ckpt["config"][section][key]
        del ckpt["model"]["use_g"]
        torch.save(ckpt, path)
    model, loaded = load_model(tmp_path / "run" / "best.pt")
    assert loaded.config.model.g_ensemble == 1 and bool(model.use_g)
    old = load_checkpoint(tmp_path / "run" / "last.pt")
    assert legacy_config(old["config"])["model"]["g_ensemble"] == 1
    # the same settings resume it; today's defaults (3 g's) are refused, naming the key
    CheckpointManager(tmp_path / "run", cfg.to_dict(), []).check_resumable()
    with pytest.raises(ValueError, match="model.g_ensemble"):
        CheckpointManager(tmp_path / "run", tiny_config(tmp_path).to_dict(), []).check_resumable()
    again = run_training(cfg, figures=False, log=lambda line: None)  # resumes the finished run
    assert again["classes"] == loaded.classes


def test_f_tta_averages_the_eight_dihedral_views():
    from gridgraph.patches.transforms import dihedral, normalize

    torch.manual_seed(0)
    patches = torch.randint(0, 256, (7, 3, 16, 16), dtype=torch.uint8)
    for g_input in ("softmax", "logits", "features"):
        model = build_model(3, corrector="gcn", g_input=g_input, encoder_kwargs=TINY_F, f_tta=True,
                            chunk_size=3, eval_chunk_size=2).eval()
        turned = [normalize(dihedral(patches, k % 4, k >= 4)) for k in range(8)]
        with torch.no_grad():
            f_logits, g_in = model.f_outputs(patches)
            if g_input == "features":  # the mean embedding, and f's classifier of it
                expect = model.f.classifier(torch.stack([model.f.embed(t) for t in turned]).mean(0)).softmax(-1)
                torch.testing.assert_close(model.f.classifier(g_in), f_logits, rtol=1e-5, atol=1e-5)
            else:  # the mean probability
                expect = torch.stack([model.f(t).softmax(-1) for t in turned]).mean(0)
            torch.testing.assert_close(f_logits.softmax(-1), expect, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(model.forward_f(patches).softmax(-1), expect, rtol=1e-5, atol=1e-6)
            assert not torch.allclose(expect, model.f(turned[0]).softmax(-1))  # the views differ
        # with gradients (training), one plain pass
        model.train()
        plain = model.f_outputs(patches)[0]
        torch.testing.assert_close(plain, model.f(normalize(patches)), rtol=1e-5, atol=1e-6)


def test_cross_fit_groups_keep_blocks_together():
    from gridgraph.train.cross_fit import cross_fit_groups

    assert cross_fit_groups(8, 2, block=2) == [0, 0, 1, 1, 0, 0, 1, 1]
    assert cross_fit_groups(5, 3) == [0, 1, 2, 0, 1]
    with pytest.raises(ValueError, match="at least 4 training sections"):
        cross_fit_groups(2, 2, block=2)
    with pytest.raises(ValueError, match="folds >= 2"):
        cross_fit_groups(4, 1)


def test_cross_fitted_outputs_come_from_an_f_without_the_section(data):
    from gridgraph.inference import f_outputs
    from gridgraph.train.cross_fit import cross_fitted_outputs

    cfg = tiny_config(Path("unused"))
    torch.manual_seed(0)
    model = model_from_config(cfg, len(data[1]))
    f_init = {k: v.clone() for k, v in model.f.state_dict().items()}
    train, val = data[0]["train"], data[0]["val"]
    seen = {}

    def fit_f(fold, sections, val_sections, group):  # a known "training": f's weights scaled by group
        seen[group] = [st.name for st in sections]
        with torch.no_grad():
            for p in fold.f.parameters():
                p.mul_(1.0 + 0.5 * group)

    out = cross_fitted_outputs(model, f_init, train, val, [0, 1, 0], fit_f, log=lambda line: None)
    assert seen == {0: [train[1].name], 1: [train[0].name, train[2].name]}
    for k, group in enumerate([0, 1, 0]):
        reference = model_from_config(cfg, len(data[1]))
        reference.load_state_dict(model.state_dict())
        with torch.no_grad():
            for p in reference.f.parameters():
                p.mul_(1.0 + 0.5 * group)
        expect = f_outputs(reference, train[k])
        torch.testing.assert_close(out[k][0], expect[0])
        torch.testing.assert_close(out[k][1], expect[1])
    assert all(torch.equal(v, model.f.state_dict()[k]) for k, v in f_init.items())  # the model's own f is untouched


def test_trainer_cross_fit_trains_g_on_other_fs_outputs(tmp_path, data, monkeypatch):
    import gridgraph.train.trainer as trainer_module

    lines = []
    cfg = tiny_config(tmp_path, epochs_f=1, epochs_g=1, cross_fit=3)
    torch.manual_seed(0)
    model = model_from_config(cfg, len(data[1]))
    tr = Trainer(model, cfg, data[1], log=lines.append)
    crossed = {}
    real = trainer_module.cross_fitted_outputs

    def spy(*args, **kwargs):
        crossed["outputs"] = real(*args, **kwargs)
        return crossed["outputs"]

    monkeypatch.setattr(trainer_module, "cross_fitted_outputs", spy)
    seen = []
    model.g.register_forward_pre_hook(lambda mod, inputs: seen.append(inputs[0].detach().clone())
                                      if mod.training else None)
    tr.fit(data[0]["train"], data[0]["val"])
    assert [line for line in lines if line.startswith("cross-fit ")] == [
        f"cross-fit {g + 1}/3: f trained on 2 sections predicts {data[0]['train'][g].name}" for g in range(3)]
    assert [r["stage"] for r in tr.history] == ["f", "g"]  # the extra f's are not the run's history
    # every g input of the training epoch is a cross-fitted one, none is the run's own f's
    assert len(seen) == 3  # 3 training sections, 1 epoch
    for x in seen:
        assert any(torch.equal(x, out[1]) for out in crossed["outputs"])
    from gridgraph.inference import f_outputs

    mine = [f_outputs(model, st)[1] for st in data[0]["train"]]
    assert not any(torch.allclose(x, m) for x in seen for m in mine if x.shape == m.shape)
    with pytest.raises(Exception, match="cross_fit"):
        tiny_config(tmp_path, cross_fit=1)
    with pytest.raises(Exception, match="epochs_f"):
        tiny_config(tmp_path, cross_fit=2, epochs_f=0)


def test_automatic_pixel_window_is_recorded_and_used_for_prediction():
    from dataclasses import replace

    from gridgraph.workflows import prepare, training_scale
    from gridgraph.checkpoint import Checkpoint
    from gridgraph.workflows import trained_window

    cfg = make_config({"patches": {"patch_size": 8}})
    unscaled = replace(make_section(layout="hex", shape=(6, 8), spacing_px=10), spot_diameter_um=None)
    st = prepare(unscaled, cfg.patches)
    assert training_scale([st], cfg.patches) == {"window_px": 32.0}
    scaled = make_section(layout="hex", shape=(6, 8), spacing_px=10)  # a new section of known scale
    window = trained_window(Checkpoint(config=cfg, classes=[], model={}, scale={"window_px": 32.0}), scaled)
    assert window.window(scaled) == {"window_spots": None, "window_px": 32.0, "window_um": None}
    assert training_scale([prepare(scaled, cfg.patches)], cfg.patches)["window_um"] == 200.0


def test_g_tta_averages_the_lattice_symmetries_of_grid_sections():
    from gridgraph.graph.symmetry import lattice_symmetry

    torch.manual_seed(0)
    graph = hex_section_graph()
    kw = dict(corrector="unet", g_residual=True, g_zero_init=False, g_ensemble=2, encoder_kwargs=TINY_F,
              corrector_kwargs={"base_channels": 4, "depth": 1})
    model = build_model(3, g_tta=True, **kw).eval()
    g_in = torch.rand(graph.num_nodes, 3).softmax(-1)
    with torch.no_grad():
        views = [model._g_once(g_in, lattice_symmetry(graph, k, flip)).softmax(-1)
                 for k in range(6) for flip in (False, True)]
        expect = torch.stack(views).mean(0)
        torch.testing.assert_close(model.g_outputs(g_in, graph).softmax(-1), expect)
        assert not torch.allclose(views[0], views[1])  # the U-Net is not symmetric: the views differ
        knn = knn_graph(torch.rand(graph.num_nodes, 2).numpy(), k=3)
        gnn = build_model(3, corrector="gcn", g_tta=True, encoder_kwargs=TINY_F, g_zero_init=False).eval()
        torch.testing.assert_close(gnn.g_outputs(g_in, knn), gnn._g_once(g_in, knn))  # irregular: unchanged
    torch.testing.assert_close(model.g_outputs(g_in, graph), model._g_once(g_in, graph))  # with gradients: one pass
