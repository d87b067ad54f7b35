import copy

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from gridgraph.correctors import build_corrector
from gridgraph.workflows import load_splits
from gridgraph.workflows import model_from_config
from gridgraph.train import Trainer, joint_optimizer, load_checkpoint, masked_cross_entropy
from gridgraph.train import regimen as regimen_module

from helpers import changed, state_equal, tiny_config


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    cfg = tiny_config(tmp_path_factory.mktemp("data"))
    return load_splits(cfg)


def make_trainer(tmp_path, data, out=True, **train):
    cfg = tiny_config(tmp_path, **train)
    torch.manual_seed(0)
    model = model_from_config(cfg, len(data[1]))
    return Trainer(model, cfg, data[1], out_dir=tmp_path / "run" if out else None, log=lambda s: None)


def test_masked_cross_entropy_ignores_unlabeled():
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0], [5.0, -5.0]])
    labels = torch.tensor([0, -1, 1])
    expect = (torch.log1p(torch.exp(torch.tensor(-2.0))) + torch.log1p(torch.exp(torch.tensor(10.0)))) / 2
    torch.testing.assert_close(masked_cross_entropy(logits, labels), expect)
    assert masked_cross_entropy(logits, torch.full((3,), -1)).item() == 0.0


@pytest.mark.parametrize("regimen", ["two_stage", "at_once", "fine_tune"])
def test_each_regimen_runs_and_lowers_training_loss(tmp_path, data, regimen):
    epochs = {"epochs_f": 3, "epochs_g": 6, "epochs_joint": 4}
    tr = make_trainer(tmp_path, data, regimen=regimen, **epochs)
    tr.fit(data[0]["train"], data[0]["val"])
    stages = {"two_stage": ["f", "g"], "at_once": ["joint"], "fine_tune": ["f", "g", "joint"]}[regimen]
    assert [r["stage"] for r in tr.history] == [s for s in stages for _ in range(epochs[f"epochs_{s}"])]
    for stage in set(stages) - {"joint"} | ({"joint"} if regimen == "at_once" else set()):
        losses = [r["train_loss"] for r in tr.history if r["stage"] == stage]
        assert losses[-1] < losses[0], f"{stage} loss did not fall: {losses}"
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert best["classes"] == data[1] and state_equal(best["model"], tr.model.state_dict())
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len(tr.history)


def count_f_passes(trainer) -> list:
    calls = []
    trainer.model.f.register_forward_hook(lambda *a: calls.append(1))
    return calls


def test_two_stage_g_epochs_never_run_f(tmp_path, data):
    tr = make_trainer(tmp_path, data, out=False, epochs_f=1, epochs_g=1)
    train, val = data[0]["train"], data[0]["val"]
    calls_one = count_f_passes(tr)
    tr.fit(train, val)
    tr2 = make_trainer(tmp_path, data, out=False, epochs_f=1, epochs_g=5)
    calls_five = count_f_passes(tr2)
    tr2.fit(train, val)
    # Extra g epochs cost no f call: f runs once per section to fill the caches, then never.
    assert len(calls_five) == len(calls_one) > 0


def test_accumulation_steps_every_n_sections_and_flushes(tmp_path, data):
    seen = []
    tr = make_trainer(tmp_path, data, out=False, regimen="at_once", epochs_joint=2, accumulate=2)
    g_calls = []
    tr.model.g.register_forward_hook(lambda *a: g_calls.append(tr.model.g.training))
    handle = register_optimizer_step_post_hook(lambda opt, *a: seen.append(sum(g_calls)))
    try:
        tr.fit(data[0]["train"], data[0]["val"])
    finally:
        handle.remove()
    # 3 training sections, accumulate 2: steps after sections 2 and 3 of each epoch.
    assert seen == [2, 3, 5, 6]
    assert tr.steps_taken == 4


def test_joint_optimizer_carries_g_state_and_scales_f_lr(tmp_path, data):
    cfg = tiny_config(tmp_path)
    model = model_from_config(cfg, 3)
    g_opt = torch.optim.Adam(model.g.parameters(), lr=0.01)
    x = torch.rand(5, 3)
    graph = data[0]["train"][0].graph.subgraph(torch.arange(data[0]["train"][0].num_nodes) < 5)
    for _ in range(3):
        g_opt.zero_grad()
        model.g(x, graph).sum().backward()
        g_opt.step()
    joint = joint_optimizer(model.f, model.g, lr=0.01, alpha=0.05, g_state=g_opt.state_dict())
    assert [grp["lr"] for grp in joint.param_groups] == [0.01, 0.01 * 0.05]
    for p in model.g.parameters():
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(joint.state[p][key], g_opt.state[p][key])
    assert all(p not in joint.state for p in model.f.parameters())


def test_fine_tune_from_two_stage_checkpoint_keeps_g_state(tmp_path, data, monkeypatch):
    two = make_trainer(tmp_path / "two", data, regimen="two_stage")
    two.fit(data[0]["train"], data[0]["val"])
    last = load_checkpoint(tmp_path / "two" / "run" / "last.pt")
    created = []
    real = regimen_module.joint_optimizer

    def spy(*args, **kwargs):
        opt = real(*args, **kwargs)
        created.append({p: copy.deepcopy(s) for p, s in opt.state.items()})
        return opt

    monkeypatch.setattr(regimen_module, "joint_optimizer", spy)
    ft = make_trainer(tmp_path / "ft", data, regimen="fine_tune",
                      init_from=str(tmp_path / "two" / "run" / "last.pt"))
    ft.fit(data[0]["train"], data[0]["val"])
    assert [r["stage"] for r in ft.history] == ["joint"]
    saved = last["g_optimizer"]["state"]
    start = created[0]
    g_params = list(ft.model.g.parameters())
    assert len(start) == len(g_params) == len(saved)
    for i, p in enumerate(g_params):
        assert torch.equal(start[p]["exp_avg"], saved[i]["exp_avg"])
        assert torch.equal(start[p]["step"], saved[i]["step"])


class Stop(Exception):
    pass


@pytest.mark.parametrize("stop_after", [2, 4])  # inside stage f, inside stage g
def test_resume_reproduces_uninterrupted_run(tmp_path, data, stop_after):
    kw = {"regimen": "fine_tune", "epochs_f": 2, "epochs_g": 3, "epochs_joint": 1}
    full = make_trainer(tmp_path / "full", data, **kw)
    full.fit(data[0]["train"], data[0]["val"])

    part = make_trainer(tmp_path / "part", data, **kw)
    calls = []

    def stop(_line):
        calls.append(1)
        if len(calls) == stop_after:
            raise Stop

    part.log = stop
    with pytest.raises(Stop):
        part.fit(data[0]["train"], data[0]["val"])
    resumed = make_trainer(tmp_path / "part", data, **kw)
    resumed.fit(data[0]["train"], data[0]["val"])
    assert len(resumed.history) == len(full.history) == 6
    assert state_equal(resumed.model.state_dict(), full.model.state_dict())
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in full.history]


def test_fit_needs_sections(tmp_path, data):
    tr = make_trainer(tmp_path, data, out=False)
    with pytest.raises(ValueError, match="at least one"):
        tr.fit([], data[0]["val"])


def test_dense_corrector_on_knn_graph_fails_before_training_f(tmp_path, data):
    from gridgraph.graph import knn_graph

    cfg = changed(tiny_config(tmp_path), g={"name": "conv2d", "kwargs": {}})
    tr = Trainer(model_from_config(cfg, 3), cfg, data[1], out_dir=None, log=lambda s: None)
    f_calls = []
    tr.model.f.register_forward_hook(lambda *a: f_calls.append(1))
    sections = [copy.copy(st) for st in data[0]["train"]]
    sections[0].graph = knn_graph(sections[0].graph.pos.numpy(), k=4)
    with pytest.raises(ValueError, match="irregular"):
        tr.fit(sections, data[0]["val"])
    assert tr.history == [] and not f_calls


def test_undefined_validation_metric_is_an_error(tmp_path, data):
    tr = make_trainer(tmp_path, data, out=False, metric="auroc")
    val = [copy.copy(data[0]["val"][0])]
    val[0].labels = torch.where(val[0].labels >= 0, 0, -1)  # one class only: AUROC undefined
    with pytest.raises(ValueError, match="undefined"):
        tr.fit(data[0]["train"], val)


def test_resume_refuses_a_checkpoint_of_another_model(tmp_path, data):
    make_trainer(tmp_path, data, epochs_f=1, epochs_g=1).fit(data[0]["train"], data[0]["val"])
    cfg = tiny_config(tmp_path, epochs_f=1, epochs_g=1)
    cfg = changed(cfg, g={"name": "gcn", "kwargs": {**cfg.g.kwargs, "hidden_channels": 16}})
    tr = Trainer(model_from_config(cfg, 3), cfg, data[1], out_dir=tmp_path / "run", log=lambda s: None)
    with pytest.raises(ValueError, match="last.pt.*hidden_channels"):
        tr.fit(data[0]["train"], data[0]["val"])


def test_augment_sections_shows_g_rotated_sections(tmp_path, data, monkeypatch):
    """g sees each training section under a seeded random lattice symmetry."""
    seen = []

    def make(aug, folder):
        tr = make_trainer(tmp_path / folder, data, out=False, augment_sections=aug, epochs_f=1, epochs_g=3,
                          regimen="two_stage")
        tr.model.g = build_corrector("unet", len(data[1]), base_channels=4, depth=1)
        original = tr.model.g.forward

        def spy(x, graph):
            seen.append((folder, graph.grid_shape, graph.grid_index.clone()))
            return original(x, graph)

        monkeypatch.setattr(tr.model.g, "forward", spy)
        return tr

    runs = {}
    for aug, folder in [(True, "a"), (True, "b"), (False, "c")]:
        tr = make(aug, folder)
        tr.fit(data[0]["train"], data[0]["val"], resume=False)
        runs[folder] = tr.model.g.state_dict()
    train_shapes = {g.graph.grid_shape for g in data[0]["train"]}
    by_run = {f: [(s, i) for r, s, i in seen if r == f] for f in "abc"}
    assert {s for s, _ in by_run["c"]} == train_shapes | {g.graph.grid_shape for g in data[0]["val"]}
    assert {s for s, _ in by_run["a"]} - train_shapes  # rotated sections have other grid shapes
    assert all(torch.equal(x[1], y[1]) for x, y in zip(by_run["a"], by_run["b"]))  # seeded
    assert state_equal(runs["a"], runs["b"]) and not state_equal(runs["a"], runs["c"])


def test_color_jitter_changes_f_training_reproducibly(tmp_path, data, monkeypatch):
    """f's training batches are colour-jittered when train.color_jitter > 0, with seeded draws."""
    import gridgraph.train.loops as loops_module

    strengths = []
    real = loops_module.random_color_jitter
    monkeypatch.setattr(loops_module, "random_color_jitter",
                        lambda x, s, gen: strengths.append(s) or real(x, s, gen))
    states = {}
    for name, strength in [("a", 0.3), ("b", 0.3), ("c", 0.0)]:
        tr = make_trainer(tmp_path / name, data, out=False, color_jitter=strength, epochs_f=1, epochs_g=1)
        tr.fit(data[0]["train"], data[0]["val"], resume=False)
        states[name] = tr.model.f.state_dict()
    assert set(strengths) == {0.3, 0.0}
    assert state_equal(states["a"], states["b"]) and not state_equal(states["a"], states["c"])


def test_fit_keeps_the_users_own_freezing_and_the_global_rng(tmp_path, data):
    tr = make_trainer(tmp_path, data, out=False, regimen="fine_tune", epochs_f=1, epochs_g=1, epochs_joint=1)
    frozen = next(tr.model.f.parameters())
    frozen.requires_grad_(False)  # e.g. a user freezing f's first layer
    before = frozen.detach().clone()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    tr.fit(data[0]["train"], data[0]["val"])
    assert torch.equal(torch.rand(3), expected), "fit() must not move the caller's RNG"
    assert not frozen.requires_grad and torch.equal(frozen.detach(), before)
    assert all(p.requires_grad for p in tr.model.g.parameters())
