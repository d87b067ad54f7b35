"""torch.distributed training and sharded prediction, on the CPU (gloo, loopback).

Two processes are spawned once per module (``torch.multiprocessing``) and run every two-rank
scenario in one process group; their results are compared here with one-process runs of the
same global batch: 1 process with ``batch_size=32, accumulate=2`` against 2 processes with
``batch_size=16, accumulate=1`` (per rank). The tiny config's f (GridNetSimple) and g (GCN) have
no batch-norm: in stage f a rank sees half of each patch minibatch, and batch-norm's batch
statistics over a half differ from those over the whole minibatch, so exact equality needs an
f without it (whole sections, as in stages g and joint, are never split).
"""
from __future__ import annotations

import datetime
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from gridgraph import distributed as dist
from gridgraph.cli import main
from gridgraph.config import make_config
from gridgraph.workflows import load_splits
from gridgraph.workflows import model_from_config, run_training
from gridgraph.io.readers.synthetic import make_section
from gridgraph.train import Trainer

from helpers import state_equal, tiny_config, write_spaceranger

ROOT = Path(__file__).resolve().parents[1]
REGIMENS = {
    "two_stage": dict(epochs_f=1, epochs_g=2),
    "at_once": dict(epochs_joint=2, augment_sections=True),
    "fine_tune": dict(epochs_f=1, epochs_g=1, epochs_joint=1),
}
GLOBAL_BATCH, GLOBAL_ACCUMULATE = 32, 2


def config(tmp: Path, world: int, output: str = "run", **train):
    """The tiny run with 2 validation sections (so that validation is split too) and the
    global batch of :data:`GLOBAL_BATCH` patches / :data:`GLOBAL_ACCUMULATE` sections."""
    cfg = tiny_config(tmp, batch_size=GLOBAL_BATCH // world, accumulate=GLOBAL_ACCUMULATE // world, **train)
    data = {**cfg.data.model_dump(mode="json"), "val": [3, 4], "test": [5]}
    return make_config({**cfg.to_dict(), "data": data, "output": str(tmp / output)})


_DATA: dict = {}


def sections(cfg):
    key = json.dumps(cfg.data.model_dump(mode="json"), sort_keys=True)
    if key not in _DATA:
        _DATA[key] = load_splits(cfg)
    return _DATA[key]


def trainer(tmp: Path, world: int, regimen: str, out=None, trainer_class=Trainer, log=None, f=None, **train):
    cfg = config(tmp, world, regimen=regimen, **{**REGIMENS[regimen], **train})
    if f is not None:
        cfg = make_config({**cfg.to_dict(), "f": f})
    data, classes = sections(cfg)
    torch.manual_seed(0)
    model = model_from_config(cfg, len(classes))
    return trainer_class(model, cfg, classes, out_dir=out, log=log or (lambda line: None)), data


def rel_diff(a: dict, b: dict) -> float:
    """Largest ``|a - b| / |b|`` (norms) over the tensors of two state dicts with the same keys."""
    assert a.keys() == b.keys()
    worst = 0.0
    for k in a:
        x, y = a[k].double(), b[k].double()
        worst = max(worst, float((x - y).norm() / y.norm().clamp_min(1e-12)))
    return worst


# --------------------------------------------------------------------------- the two ranks
class Killed(Exception):
    pass


class KilledAfter(Trainer):
    """Dies (on every rank) right after saving the ``after``-th epoch, as a killed job would."""

    after = 2

    def _save(self, idx, epoch, optimizer):
        super()._save(idx, epoch, optimizer)
        if len(self.history) == self.after:
            raise Killed


def _regimens(rank: int, tmp: Path) -> None:
    for regimen in REGIMENS:
        tr, data = trainer(tmp, 2, regimen)
        tr.fit(data["train"], data["val"])
        if rank == 0:
            torch.save({"state": tr.model.state_dict(), "history": tr.history,
                        "best": (tr.state.best["stage"], tr.state.best["epoch"])}, tmp / f"two_{regimen}.pt")


def _validate(rank: int, tmp: Path) -> None:
    """The one-process reference weights validated on two ranks."""
    ref = torch.load(tmp / "one_two_stage.pt", weights_only=True)
    tr, data = trainer(tmp, 2, "two_stage")
    tr.model.load_state_dict(ref["state"])
    metrics = {"f+g": tr.validate(data["val"]), "f": tr.validate(data["val"], use_g=False)}
    if rank == 0:
        torch.save(metrics, tmp / "two_validate.pt")


def _resume(rank: int, tmp: Path) -> None:
    logs = []
    full, data = trainer(tmp, 2, "fine_tune", out=tmp / "full", epochs_g=2)
    full.fit(data["train"], data["val"])
    part, _ = trainer(tmp, 2, "fine_tune", out=tmp / "part", trainer_class=KilledAfter, log=logs.append,
                      epochs_g=2)
    with pytest.raises(Killed):
        part.fit(data["train"], data["val"])
    dist.barrier()
    if rank == 0:  # a copy of the killed run, resumed on one process by the test
        shutil.copytree(tmp / "part", tmp / "part_one")
    dist.barrier()
    resumed, _ = trainer(tmp, 2, "fine_tune", out=tmp / "part", epochs_g=2)
    resumed.fit(data["train"], data["val"])
    torch.save({"full": full.model.state_dict(), "resumed": resumed.model.state_dict(),
                "full_history": full.history, "resumed_history": resumed.history, "logs": logs},
               tmp / f"resume_rank{rank}.pt")


def _pipeline(rank: int, tmp: Path) -> None:
    logs = []
    result = run_training(config(tmp, 2, output="pipe_two", regimen="two_stage", **REGIMENS["two_stage"]),
                          log=logs.append, figures=False)
    (tmp / f"pipe_rank{rank}.json").write_text(json.dumps({"result": result, "logs": logs}))


DENSENET_TINY = {"name": "densenet_tiny", "kwargs": {}}  # batch-norm in f


def _batchnorm(rank: int, tmp: Path) -> None:
    """A chunked, checkpointed f with batch-norm, trained jointly on whole sections per rank."""
    tr, data = trainer(tmp, 2, "at_once", f=DENSENET_TINY, epochs_joint=1)
    tr.fit(data["train"], data["val"])
    torch.save(tr.model.state_dict(), tmp / f"bn_rank{rank}.pt")


SCENARIOS = {"batchnorm": _batchnorm, "regimens": _regimens, "validate": _validate, "resume": _resume, "pipeline": _pipeline}


def _worker(rank: int, world: int, port: int, tmp: str, scenarios: list) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world,
                                         timeout=datetime.timedelta(seconds=120))
    try:
        for name in scenarios:
            SCENARIOS[name](rank, Path(tmp))
    finally:
        torch.distributed.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One-process references here, then every two-rank scenario in one spawned job."""
    tmp = tmp_path_factory.mktemp("dist")
    for regimen in REGIMENS:
        tr, data = trainer(tmp, 1, regimen)
        tr.fit(data["train"], data["val"])
        torch.save({"state": tr.model.state_dict(), "history": tr.history,
                    "best": (tr.state.best["stage"], tr.state.best["epoch"])}, tmp / f"one_{regimen}.pt")
    mp.spawn(_worker, args=(2, free_port(), str(tmp), list(SCENARIOS)), nprocs=2, join=True)
    return tmp


# --------------------------------------------------------------------------- tests
@pytest.mark.parametrize("regimen", list(REGIMENS))
def test_two_ranks_train_as_one_process_with_the_same_global_batch(runs, regimen):
    one = torch.load(runs / f"one_{regimen}.pt", weights_only=True)
    two = torch.load(runs / f"two_{regimen}.pt", weights_only=True)
    before = model_from_config(config(runs, 1, regimen=regimen), 3)
    assert rel_diff(before.state_dict(), one["state"]) > 1e-3  # training moved the weights
    assert rel_diff(two["state"], one["state"]) < 1e-6
    assert [r["stage"] for r in two["history"]] == [r["stage"] for r in one["history"]]
    for a, b in zip(two["history"], one["history"]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
        assert a.keys() == b.keys() and "f_accuracy" in b
        for key in b:
            if "accuracy" in key or not isinstance(b[key], float):  # right answers, stage, epoch
                assert a[key] == b[key], key
            elif key != "seconds":
                assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-9), key
    assert two["best"] == one["best"]  # the same epoch is chosen as the best model


def test_validation_over_two_ranks_equals_one_process_exactly(runs):
    ref = torch.load(runs / "one_two_stage.pt", weights_only=True)
    tr, data = trainer(runs, 1, "two_stage")
    tr.model.load_state_dict(ref["state"])
    two = torch.load(runs / "two_validate.pt", weights_only=True)
    assert len(data["val"]) == 2  # each rank validated one section
    assert two["f+g"] == tr.validate(data["val"])
    assert two["f"] == tr.validate(data["val"], use_g=False)
    assert 0.0 < two["f+g"]["accuracy"] <= 1.0


def test_batchnorm_f_under_ddp_ends_identical_on_every_rank(runs):
    """Checkpointed chunks of a batch-norm f under DDP: every rank ends with the same weights and
    (averaged) running statistics, and the trained weights equal one process's -- a rank's
    sections are whole, so each chunk's batch statistics are the ones one process computes."""
    r0 = torch.load(runs / "bn_rank0.pt", weights_only=True)
    r1 = torch.load(runs / "bn_rank1.pt", weights_only=True)
    assert state_equal(r0, r1)
    running = [k for k in r0 if k.endswith("running_mean")]
    assert running and all(r0[k].abs().sum() > 0 for k in running)
    one, data = trainer(runs, 1, "at_once", f=DENSENET_TINY, epochs_joint=1)
    one.fit(data["train"], data["val"])
    ref = one.model.state_dict()
    # which model is kept (use_g) follows validation, which sees the (different) running statistics
    params = [k for k in ref if "running" not in k and "num_batches" not in k and k != "use_g"]
    assert rel_diff({k: r0[k] for k in params}, {k: ref[k] for k in params}) < 1e-6
    assert rel_diff({k: r0[k] for k in running}, {k: ref[k] for k in running}) < 0.5  # averaged, not equal


def test_killed_two_rank_run_resumes_to_the_uninterrupted_weights(runs):
    r0 = torch.load(runs / "resume_rank0.pt", weights_only=False)
    r1 = torch.load(runs / "resume_rank1.pt", weights_only=False)
    assert len(r0["resumed_history"]) == len(r0["full_history"]) == 4  # f, g, g, joint
    assert state_equal(r0["resumed"], r0["full"])
    assert state_equal(r1["resumed"], r0["resumed"])  # every rank ends with the same weights
    assert [r["train_loss"] for r in r0["resumed_history"]] == [r["train_loss"] for r in r0["full_history"]]
    assert len(r0["logs"]) == 2 and r1["logs"] == []  # only rank 0 logs


def test_two_rank_checkpoint_resumes_on_one_process(runs):
    tr, data = trainer(runs, 2, "fine_tune", out=runs / "part_one", epochs_g=2)  # same per-rank settings
    before = torch.load(runs / "part_one" / "last.pt", weights_only=False)
    assert len(before["history"]) == 2
    tr.fit(data["train"], data["val"])
    assert [r["stage"] for r in tr.history] == ["f", "g", "g", "joint"]
    assert tr.history[:2] == before["history"]  # continued after the two epochs of the killed run


def test_run_training_on_two_ranks_writes_what_one_process_writes(runs):
    one = run_training(config(runs, 1, output="pipe_one", regimen="two_stage", **REGIMENS["two_stage"]),
                       log=lambda line: None, figures=False)
    r0 = json.loads((runs / "pipe_rank0.json").read_text())
    r1 = json.loads((runs / "pipe_rank1.json").read_text())
    assert r0["result"] == r1["result"]  # every rank returns the gathered test metrics
    for split in ("val", "test"):
        for head in ("f", "f+g"):
            assert r0["result"][split][head]["accuracy"] == one[split][head]["accuracy"]
    assert any("patches/s" in line and "on 2 ranks" in line for line in r0["logs"])
    assert r1["logs"] == []
    a = torch.load(runs / "pipe_two" / "best.pt", weights_only=True)["model"]
    b = torch.load(runs / "pipe_one" / "best.pt", weights_only=True)["model"]
    assert rel_diff(a, b) < 1e-6
    written = json.loads((runs / "pipe_two" / "test_metrics.json").read_text())
    assert written["test"]["f+g"]["accuracy"] == one["test"]["f+g"]["accuracy"]


# --------------------------------------------------------------------------- prediction
def _tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_sharded_prediction_equals_one_process_byte_for_byte(runs, tmp_path):
    ckpt = runs / "pipe_one" / "best.pt"
    if not ckpt.is_file():
        run_training(config(runs, 1, output="pipe_one", regimen="two_stage", **REGIMENS["two_stage"]),
                     log=lambda line: None, figures=False)
    inputs = [str(write_spaceranger(make_section("hex", seed=seed, shape=(8, 16), n_classes=3),
                                    tmp_path / f"s{seed}" / "outs")) for seed in (11, 12, 13)]
    assert main(["predict", str(ckpt), "--spaceranger", *inputs, "--out", str(tmp_path / "one"),
                 "--device", "cpu"]) == 0
    listing = tmp_path / "inputs.txt"
    listing.write_text("\n".join(inputs) + "\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "gridgraph", "predict", str(ckpt), "--spaceranger", f"@{listing}",
                           "--out", str(tmp_path / "two"), "--device", "cpu"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    one, two = _tree(tmp_path / "one"), _tree(tmp_path / "two")
    assert sorted(one) == sorted(two) and len(one) == 9  # 3 inputs x (csv, loupe csv, png)
    assert {k.split("/")[0] for k in one} == {"s11", "s12", "s13"}
    for name in one:
        assert one[name] == two[name], name
    printed = json.loads(proc.stdout[proc.stdout.index("{"):])  # rank 0 prints every input's files
    assert list(printed) == inputs


# --------------------------------------------------------------------------- pieces, one process
def test_step_plan_splits_every_step_over_the_ranks():
    for n, per_rank, world in [(5, 1, 2), (37, 4, 3), (2, 3, 4)]:
        plans = [dist.step_plan(n, per_rank, r, world) for r in range(world)]
        assert all(len(p) == -(-n // (per_rank * world)) for p in plans)
        for steps in zip(*plans):
            mine = [list(s.mine) for s in steps]
            assert sum(mine, []) == list(steps[0].positions)  # contiguous parts, in rank order
            assert max(map(len, mine)) - min(map(len, mine)) <= 1  # balanced
    assert [list(s.mine) for s in dist.step_plan(5, 1, 0, 2)] == [[0], [2], []]
    assert [list(s.mine) for s in dist.step_plan(5, 1, 1, 2)] == [[1], [3], [4]]
    with pytest.raises(ValueError, match="outside"):
        dist.step_plan(5, 1, 2, 2)


def test_inputs_expand_lists_and_globs_and_get_distinct_names(tmp_path):
    for name in ("b", "a", "c"):
        (tmp_path / name / "outs").mkdir(parents=True)
    listing = tmp_path / "list.txt"
    listing.write_text("# sections\nc/outs\n\n")
    got = dist.expand_inputs([str(tmp_path / "[ab]" / "outs"), f"@{listing}"])
    assert got == [str(tmp_path / n / "outs") for n in "abc"]
    from gridgraph.files import output_folder_names

    assert output_folder_names(got) == ["a", "b", "c"]  # Space Ranger "outs" folders: their sample's name
    assert output_folder_names(["x/one", "y/two"]) == ["one", "two"]
    with pytest.raises(ValueError, match="no file"):
        dist.expand_inputs([str(tmp_path / "z*")])
    with pytest.raises(ValueError, match="twice"):
        dist.expand_inputs([str(tmp_path / "a" / "outs"), str(tmp_path / "a" / "outs")])


def test_one_process_never_touches_torch_distributed(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("torch.distributed used by a one-process run")

    for name in ("all_gather_object", "all_reduce", "broadcast", "barrier", "init_process_group",
                 "broadcast_object_list"):
        monkeypatch.setattr(torch.distributed, name, refuse)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    tr, data = trainer(tmp_path, 1, "fine_tune", out=tmp_path / "run")
    tr.fit(data["train"], data["val"])
    assert dist.world_size() == 1 and len(tr.history) == 3
    assert (tmp_path / "run" / "best.pt").is_file()


def test_channels_last_option_changes_f_layout_not_what_it_learns(tmp_path):
    last, data = trainer(tmp_path / "cl", 1, "at_once", channels_last=True, epochs_joint=1)
    conv = next(m for m in last.model.f.modules() if isinstance(m, torch.nn.Conv2d))  # the stem
    assert conv.weight.shape[1] == 3 and conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not conv.weight.is_contiguous()
    last.fit(data["train"], data["val"])
    plain, _ = trainer(tmp_path / "plain", 1, "at_once", epochs_joint=1)
    plain.fit(data["train"], data["val"])
    assert rel_diff(last.model.state_dict(), plain.model.state_dict()) < 1e-4


def test_compile_f_option_compiles_f_in_place(tmp_path):
    tr, _ = trainer(tmp_path, 1, "at_once", compile_f=True)
    plain, _ = trainer(tmp_path, 1, "at_once")
    assert getattr(tr.model.f, "_compiled_call_impl", None) is not None
    assert getattr(plain.model.f, "_compiled_call_impl", None) is None
    assert list(tr.model.state_dict()) == list(plain.model.state_dict())  # checkpoints unchanged


def test_predict_refuses_one_input_options_with_several_inputs(tmp_path, capsys):
    code = main(["predict", str(tmp_path / "x.pt"), "--spaceranger", "a", "b", "--fullres-image", "f.tif",
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "--fullres-image belongs to one input" in err


def test_joining_a_job_needs_torchrun_environment(monkeypatch):
    for key in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="lacks RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT.*torchrun"):
        dist.init_from_env("cpu")
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE='two' is not a number"):
        dist.launched()
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert dist.init_from_env("cpu") is False and not torch.distributed.is_initialized()
