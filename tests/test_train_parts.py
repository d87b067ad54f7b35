"""The pieces of gridgraph.train: stages, state, run folder files, the f-output cache."""
import pytest
import torch

from gridgraph.config import TrainConfig
from gridgraph.files.output_set import OutputSet
from gridgraph.names import Stage
from gridgraph.train import CheckpointManager, FOutputCache, TrainingState, plan_stages
from gridgraph.train.run_folder import prepare_run_folder


@pytest.mark.parametrize("train, expected", [
    ({"regimen": "two_stage", "epochs_f": 2, "epochs_g": 3}, [("f", 2, False), ("g", 3, False)]),
    ({"regimen": "at_once", "epochs_joint": 4}, [("joint", 4, False)]),
    ({"regimen": "fine_tune", "epochs_f": 1, "epochs_g": 2, "epochs_joint": 3},
     [("f", 1, False), ("g", 2, False), ("joint", 3, True)]),
    ({"regimen": "fine_tune", "epochs_joint": 3, "init_from": "x.pt"}, [("joint", 3, True)]),
])
def test_plan_stages(train, expected):
    plans = plan_stages(TrainConfig(**train))
    assert [(str(p.stage), p.epochs, p.carry_g_state) for p in plans] == expected
    assert [p.uses_f_cache for p in plans] == [p.stage == Stage.G for p in plans]


def test_training_state_keeps_the_best_and_round_trips():
    model = torch.nn.Module()
    model.f = torch.nn.Linear(2, 2)
    state = TrainingState()
    assert state.record(Stage.F, 0, 0, 0.5, {"a": 1}, model)
    assert not state.record(Stage.F, 0, 1, 0.4, {"a": 2}, model)
    assert state.best is None and state.best_f["epoch"] == 0
    assert state.record(Stage.G, 1, 0, 0.1, {}, model) and state.is_best(1, 0)
    assert not state.record(Stage.G, 1, 1, 0.1, {}, model) and not state.is_best(1, 1)  # ties keep the first
    back = TrainingState.from_checkpoint(state.to_dict())
    assert back.to_dict().keys() == state.to_dict().keys() and (back.stage_index, back.epoch) == (1, 1)


def test_checkpoint_manager_names_the_changed_setting(tmp_path):
    config = {"seed": 0, "g": {"name": "gcn", "kwargs": {"hidden_channels": 8}}, "train": {"lr": 0.1, "epochs_g": 2}}
    old = CheckpointManager(tmp_path, config, ["a", "b"])
    old.save_last({}, TrainingState().to_dict(), None, ["f", "g"])
    grown = {**config, "train": {"lr": 0.1, "epochs_g": 5}}  # more epochs: allowed
    assert CheckpointManager(tmp_path, grown, ["a", "b"]).load_resume(["f", "g"]) is not None
    other = {**config, "train": {"lr": 0.05, "epochs_g": 2}}
    with pytest.raises(ValueError, match=r"last.pt: written with train.lr=0.1, this run has train.lr=0.05"):
        CheckpointManager(tmp_path, other, ["a", "b"]).load_resume(["f", "g"])
    wider = {**config, "g": {"name": "gcn", "kwargs": {"hidden_channels": 16}}}
    with pytest.raises(ValueError, match=r"g.kwargs.hidden_channels=8"):
        CheckpointManager(tmp_path, wider, ["a", "b"]).load_resume(["f", "g"])
    with pytest.raises(ValueError, match="classes"):
        CheckpointManager(tmp_path, config, ["a"]).load_resume(["f", "g"])
    with pytest.raises(ValueError, match="stages"):
        CheckpointManager(tmp_path, config, ["a", "b"]).load_resume(["joint"])


class _Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def f_outputs(self, patches):
        x = patches.float().mean((1, 2, 3))[:, None] * self.w
        return torch.cat([x, -x], 1), x * 2


class _Section:
    def __init__(self, n):
        self.patches = torch.arange(n * 3 * 2 * 2, dtype=torch.uint8).reshape(n, 3, 2, 2)


def test_f_output_cache_in_memory_and_on_disk(tmp_path):
    model, sections = _Model(), [_Section(3), _Section(5)]
    with FOutputCache(model, sections) as memory:
        with FOutputCache(model, sections, cache_dir=str(tmp_path)) as disk:
            assert len(list(tmp_path.iterdir())) == 1  # one private folder
            for k in range(2):
                assert torch.equal(memory[k][0], disk[k][0]) and torch.equal(memory[k][1], disk[k][1])
            assert memory[1][1].shape == (5, 1)
    assert list(tmp_path.iterdir()) == []


def test_f_output_cache_cleans_up_when_f_fails(tmp_path):
    model = _Model()
    with pytest.raises(AttributeError):
        with FOutputCache(model, [_Section(2), "not a section"], cache_dir=str(tmp_path)):
            pass
    assert list(tmp_path.iterdir()) == []


def test_run_folder_refuses_mixing_runs_and_guards_the_config(tmp_path):
    out = tmp_path / "run"
    prepare_run_folder(out, resume=False)
    (out / "last.pt").write_text("x")
    (out / "best.pt").write_text("stale")
    (out / ".last.pt.abc123xy.tmp").write_text("half")
    with pytest.raises(ValueError, match="holds another run.*--overwrite"):
        prepare_run_folder(out, resume=False)
    assert prepare_run_folder(out, resume=True) == out and (out / "last.pt").exists()
    assert not (out / ".last.pt.abc123xy.tmp").exists()
    prepare_run_folder(out, resume=False, overwrite=True)
    assert not (out / "best.pt").exists() and not (out / "last.pt").exists()
    (tmp_path / "config.yaml").write_text("# mine\n")
    with pytest.raises(ValueError, match="over the config file"):
        prepare_run_folder(tmp_path, config_file=tmp_path / "config.yaml")


def test_output_set_is_all_or_nothing(tmp_path):
    with OutputSet(tmp_path, ["a.csv", "b.png"]) as tmp:
        (tmp / "a.csv").write_text("1")
        (tmp / "b.png").write_text("2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.png"]
    with pytest.raises(KeyError):
        with OutputSet(tmp_path, ["a.csv", "b.png"]) as tmp:
            (tmp / "a.csv").write_text("new")
            raise KeyError("killed")
    assert (tmp_path / "a.csv").read_text() == "1"
    with pytest.raises(RuntimeError, match="lacks"):
        with OutputSet(tmp_path, ["a.csv", "b.png"]) as tmp:
            (tmp / "a.csv").write_text("new")
    assert (tmp_path / "a.csv").read_text() == "1" and len(list(tmp_path.iterdir())) == 2


def test_predict_stream_equals_predict_probs():
    from gridgraph.inference import predict_probs, predict_stream
    from gridgraph.model import build_model
    from gridgraph.patches import prepare_section
    from gridgraph.io.readers.synthetic import make_section

    torch.manual_seed(0)
    model = build_model(3, corrector="conv2d", encoder_kwargs={"stage_channels": [8, 8, 8, 8],
                                                               "stem_channels": 8, "blocks": [1, 1, 1, 1]})
    st = prepare_section(make_section("hex", seed=1, shape=(8, 12), n_classes=3), 16, window_spots=1.0)
    (f_ref, g_ref), = predict_probs(model, [st])
    chunks = (st.patches[i: i + 7] for i in range(0, st.num_nodes, 7))
    f, g = predict_stream(model, chunks, st.graph)
    torch.testing.assert_close(f, f_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="patches for 5 of the graph's"):
        predict_stream(model, [st.patches[:5]], st.graph)
    order = torch.randperm(st.num_nodes)
    pairs = [(order[i: i + 9], st.patches[order[i: i + 9]]) for i in range(0, st.num_nodes, 9)]
    f2, g2 = predict_stream(model, pairs, st.graph)  # (indices, patches) in any order
    torch.testing.assert_close(f2, f_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g2, g_ref, rtol=1e-5, atol=1e-6)
