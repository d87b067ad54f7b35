"""gridgraph tune: search spaces, studies of tiny runs (resume, interruption, two workers), ensemble.pt."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from gridgraph.checkpoint import EnsembleFile, load_checkpoint, load_trained
from gridgraph.cli import main
from gridgraph.config import ConfigError
from gridgraph.config.space import Choice, IntUniform, LogUniform, SearchSpace, Uniform, load_space, \
    parse_distribution
from gridgraph.workflows.tune import run_study

from helpers import tiny_config

optuna = pytest.importorskip("optuna")
QUIET = dict(log=lambda line: None, figures=False)


def _epochs(folder: Path) -> list:
    return [(r["stage"], r["epoch"]) for r in map(json.loads, (folder / "metrics.jsonl").read_text().splitlines())]


def _study(out: Path):
    return optuna.load_study(study_name="gridgraph", storage=f"sqlite:///{out / 'study.db'}")


# --- search spaces ---------------------------------------------------------------------------------

def test_distributions_parse_exactly():
    assert parse_distribution("log_uniform(1e-4, 1e-3)") == LogUniform(1e-4, 1e-3)
    assert parse_distribution(" uniform( 0 , 0.1 ) ") == Uniform(0.0, 0.1)
    assert parse_distribution("int(1, 4)") == IntUniform(1, 4)
    assert parse_distribution(["unet", "gcn"]) == Choice(("unet", "gcn"))
    assert str(LogUniform(1e-4, 1e-3)) == "log_uniform(0.0001, 0.001)"


@pytest.mark.parametrize("spec, message", [
    ("normal(0, 1)", "unknown distribution 'normal'"),
    ("uniform(0.1, 0.1)", "needs finite low < high"),
    ("log_uniform(0, 1e-3)", "needs 0 < low"),
    ("uniform(0, x)", "'x' is not a number"),
    ("int(1.5, 4)", "int bounds must be integers"),
    ("uniform(1)", "takes (low, high)"),
    (["unet"], "at least two options"),
    (3, "is not a distribution"),
])
def test_bad_distributions_are_named(spec, message):
    with pytest.raises(ConfigError) as err:
        SearchSpace.from_mapping({"train.lr": spec})
    assert message in str(err.value) and "train.lr" in str(err.value)


def test_space_keys_and_values_are_checked_against_the_config():
    with pytest.raises(ConfigError, match="unknown key 'train.lrr'"):
        SearchSpace.from_mapping({"train.lrr": "uniform(0, 1)"})
    with pytest.raises(ConfigError, match="train.alpha"):  # alpha must lie in [0, 1]
        SearchSpace.from_mapping({"train.alpha": "uniform(0, 2)"})
    with pytest.raises(ConfigError, match="unknown corrector 'nope'"):
        SearchSpace.from_mapping({"g.name": ["unet", "nope"]})
    space = SearchSpace.from_mapping({"g.name": ["unet", "gcn"], "train.epochs_g": "int(1, 3)"})
    cfg = space.config({}, {"g.name": "gcn", "train.epochs_g": 2})
    assert (cfg.g.name, cfg.train.epochs_g) == ("gcn", 2)


def test_the_default_space_is_the_papers_and_alpha_only_where_used():
    assert load_space(None, {}).params == {"train.lr": LogUniform(1e-4, 1e-3)}  # two_stage: no alpha
    at_once = load_space(None, {"train": {"regimen": "at_once"}}).params
    assert at_once == {"train.lr": LogUniform(1e-4, 1e-3), "train.alpha": Uniform(0.0, 0.1)}


def test_a_bad_space_file_runs_nothing(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"output": str(tmp_path / "study")}))
    space = tmp_path / "space.yaml"
    space.write_text("train.lr: log_uniform(1e-3, 1e-4)\n")
    assert main(["tune", str(cfg), "--trials", "2", "--space", str(space)]) == 2
    err = capsys.readouterr().err
    assert f"{space}: train.lr: log_uniform(0.001, 0.0001): needs finite low < high" in err
    assert not (tmp_path / "study").exists()


# --- studies ---------------------------------------------------------------------------------------

def test_a_study_runs_resumes_and_ensembles(tmp_path):
    cfg = tiny_config(tmp_path)
    out = Path(cfg.output)
    res = run_study(cfg, trials=3, ensemble=2, **QUIET)
    trials = _study(out).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    for t in trials:  # each trial is a normal run folder with its drawn lr
        folder = out / "trials" / f"trial_{t.number:04d}"
        assert (folder / "best.pt").is_file() and (folder / "last.pt").is_file()
        assert load_checkpoint(folder / "best.pt")["config"]["train"]["lr"] == t.params["train.lr"]
        assert _epochs(folder) == [("f", 1), ("g", 1), ("g", 2)]
    lrs = sorted(t.params["train.lr"] for t in trials)
    assert len(set(lrs)) == 3 and 1e-4 <= lrs[0] and lrs[-1] <= 1e-3
    best = sorted(trials, key=lambda t: (-t.value, t.number))[:2]
    assert res["members"] == [t.number for t in best]
    ens = load_trained(out / "ensemble.pt")
    assert isinstance(ens, EnsembleFile) and ens.method == "mean"
    assert ens.sources == [f"trials/trial_{t.number:04d}/best.pt" for t in best]
    assert [m.config.train.lr for m in ens.members] == [t.params["train.lr"] for t in best]
    rows = (out / "trials.csv").read_text().splitlines()
    assert rows[0] == "trial,state,value,train.lr,seconds,folder,ensemble" and len(rows) == 4
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("trials/*/last.pt")}
    run_study(cfg, trials=3, ensemble=2, **QUIET)  # done: nothing runs again
    assert len(_study(out).trials) == 3 and {p: p.stat().st_mtime_ns for p in stamps} == stamps
    run_study(cfg, trials=4, ensemble=2, **QUIET)  # one more
    assert [t.state.name for t in _study(out).trials] == ["COMPLETE"] * 4
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_a_study_refuses_another_config_in_its_storage(tmp_path):
    cfg = tiny_config(tmp_path)
    run_study(cfg, trials=1, ensemble=0, **QUIET)
    other = cfg.model_copy(update={"seed": 5})
    with pytest.raises(ValueError, match="started with another config"):
        run_study(other, trials=2, ensemble=0, **QUIET)


def test_an_interrupted_trial_resumes_in_its_own_folder(tmp_path):
    cfg = tiny_config(tmp_path)
    out = Path(cfg.output)
    seen = []

    def interrupt(line):
        seen.append(line)
        if line.startswith("  [1] [g 1/2]"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_study(cfg, trials=3, ensemble=0, log=interrupt, figures=False)
    assert [t.state.name for t in _study(out).trials] == ["COMPLETE", "FAIL"]
    lines = []
    run_study(cfg, trials=3, ensemble=0, log=lines.append, figures=False)
    trials = _study(out).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert trials[2].user_attrs == {"folder": 1, "resumes": 1} and trials[2].params == trials[1].params
    assert any("[2] resuming from" in line for line in lines)
    assert _epochs(out / "trials" / "trial_0001") == [("f", 1), ("g", 1), ("g", 2)]  # each epoch once
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["trial_0000", "trial_0001", "trial_0003"]


def test_a_killed_trial_is_taken_up_after_its_heartbeat_stops(tmp_path):
    cfg = tiny_config(tmp_path)
    out = Path(cfg.output)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg.to_dict()))
    script = textwrap.dedent(f"""
        import json, os, signal
        from gridgraph.config import make_config
        from gridgraph.workflows.tune import run_study
        def log(line):
            if line.startswith("  [0] [g 1/2]"):
                os.kill(os.getpid(), signal.SIGKILL)
        run_study(make_config(json.load(open({str(tmp_path / 'cfg.json')!r}))), trials=1, ensemble=0,
                  log=log, heartbeat=(1, 2), figures=False)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parent, capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert [t.state.name for t in _study(out).trials] == ["RUNNING"]
    import time

    time.sleep(3)  # past the grace period
    lines = []
    run_study(cfg, trials=1, ensemble=1, log=lines.append, heartbeat=(1, 2), figures=False)
    trials = _study(out).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert trials[1].user_attrs["folder"] == 0 and any("[1] resuming from" in line for line in lines)
    assert _epochs(out / "trials" / "trial_0000") == [("f", 1), ("g", 1), ("g", 2)]


@pytest.mark.slow  # two processes: about 40 s on the 2-core CI machine
def test_two_workers_share_one_sqlite_study(tmp_path):
    cfg = tiny_config(tmp_path)
    out = Path(cfg.output)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]),
                                                         os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "gridgraph.cli", "tune", str(path), "--trials", "4", "--ensemble", "2", "--no-figures"]
    workers = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [w.communicate(timeout=600) for w in workers]
    for w, (_, err) in zip(workers, outputs):
        assert w.returncode == 0, err.decode()[-2000:]
    trials = _study(out).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    assert sorted(t.user_attrs["folder"] for t in trials) == [0, 1, 2, 3]
    for t in trials:
        assert _epochs(out / "trials" / f"trial_{t.number:04d}") == [("f", 1), ("g", 1), ("g", 2)]
    started = [line for o, _ in outputs for line in o.decode().splitlines() if line.startswith("trial ")
               and "): train.lr=" in line]
    assert sorted(int(line.split()[1]) for line in started) == [0, 1, 2, 3]
    assert len(started) == 4  # no trial started twice
    assert (out / "ensemble.pt").is_file()


def test_tune_refuses_bad_counts(tmp_path):
    cfg = tiny_config(tmp_path)
    with pytest.raises(ValueError, match="--trials must be at least 1"):
        run_study(cfg, trials=0, **QUIET)
    with pytest.raises(ValueError, match="--storage redis://x: expected a database URL"):
        run_study(cfg, trials=1, storage="redis://x", **QUIET)
    assert not Path(cfg.output).exists()  # nothing written


def test_tune_on_the_command_line(tmp_path, capsys):
    cfg = tiny_config(tmp_path)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    space = tmp_path / "space.yaml"
    space.write_text("train.lr: log_uniform(1e-4, 1e-3)\ng.name: [gcn, sage]\n")
    assert main(["tune", str(path), "--trials", "2", "--ensemble", "2", "--space", str(space),
                 "--ensemble-method", "vote", "--no-prune"]) == 0
    printed = capsys.readouterr().out
    assert "trial 0 [0/2 finished]" in printed and "trial 1 [1/2 finished]" in printed
    assert "ensemble.pt: trials" in printed and "(vote)" in printed
    out = Path(cfg.output)
    ens = load_trained(out / "ensemble.pt")
    assert ens.method == "vote" and len(ens.members) == 2
    assert {m.config.g.name for m in ens.members} <= {"gcn", "sage"}
    alone = tmp_path / "alone.yaml"
    alone.write_text(yaml.safe_dump({**cfg.to_dict(), "output": str(tmp_path / "alone")}))
    assert main(["train", str(alone)]) == 0
    assert sorted(p.name for p in (out / "trials" / "trial_0000").iterdir()) == \
        sorted(p.name for p in (tmp_path / "alone").iterdir())  # a trial is a normal run folder
    header = (out / "trials.csv").read_text().splitlines()[0]
    assert header == "trial,state,value,train.lr,g.name,seconds,folder,ensemble"


def test_a_study_of_an_expression_target_selects_on_mean_pearson_and_ensembles_values(tmp_path):
    from gridgraph.io.readers.synthetic import make_section
    from gridgraph.workflows import predict_probabilities
    from gridgraph.workflows.ensemble import load_predictor

    from test_expression_run import expression_config

    cfg = expression_config(tmp_path)
    res = run_study(cfg, trials=2, ensemble=2, **QUIET)
    trials = _study(Path(cfg.output)).trials
    for t in trials:  # each trial's value is its kept model's validation mean Pearson r
        best = load_checkpoint(Path(cfg.output) / "trials" / f"trial_{t.number:04d}" / "best.pt")
        assert t.value == pytest.approx(best["metrics"]["mean_pearson"], abs=1e-9)
    model, ckpt = load_predictor(res["ensemble"])
    assert model.regression and ckpt.classes == ["gene0", "gene1"]
    section = make_section(layout="hex", shape=(8, 16), n_classes=3, seed=7, expression_genes=2)
    _, f_values, g_values = predict_probabilities(model, ckpt, section)
    parts = [predict_probabilities(m, c, section)[2] for m, c in model.members]
    assert torch.allclose(g_values, (parts[0] + parts[1]) / 2, atol=1e-6)
    with pytest.raises(ValueError, match="method 'vote' is for classes"):
        load_predictor(res["ensemble"], method="vote")
