"""``gridgraph tune``: the GridNet paper's protocol as one command, on Optuna.

Trials draw config values from a search space (default the paper's: ``log10(lr) ~ U(-4, -3)``,
``alpha ~ U(0, 0.1)``), each trains a normal run folder (``trials/trial_NNNN``: resumable, the
files of ``gridgraph train``) and scores its kept model on the validation split by
``train.metric`` (what the run itself selects on); hopeless trials are pruned from their epoch
scores (Optuna's median pruner). When the study has its trials, ``ensemble.pt`` holds the K best.

The study lives in a storage (default ``<output>/study.db``, SQLite): rerunning the command
resumes it (finished trials are kept, an interrupted trial continues from its ``last.pt``), and
several processes, or machines sharing the output folder, each started with the same command
share it and run the trials between them, none twice.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

from .. import distributed as dist
from ..config import RunConfig
from ..config.space import Choice, IntUniform, LogUniform, SearchSpace, load_space
from ..names import EnsembleMethod
from ..train import score_key
from .study import (format_trials, quiet_optuna, open_storage, shown_storage, study_lock, trial_folder, trial_rows,
                    write_study_ensemble, write_trials_csv)
from .train import run_training

__all__ = ["run_study", "SAMPLERS"]

SAMPLERS = ("random", "tpe")


def _suggest(trial, key: str, dist):
    if isinstance(dist, Choice):
        return trial.suggest_categorical(key, list(dist.options))
    if isinstance(dist, IntUniform):
        return trial.suggest_int(key, dist.low, dist.high)
    return trial.suggest_float(key, dist.low, dist.high, log=isinstance(dist, LogUniform))


def _trial_seed(seed: int, number: int) -> int:
    """A seed for trial ``number`` of a study seeded ``seed``, mixed (consecutive seeds of
    Mersenne Twister give close first draws)."""
    import numpy as np

    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(number)]).generate_state(1)[0])


def _sampler(name: str, seed: int):
    import optuna

    if name == "random":  # the paper's random search
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {name!r}")


def _load_study(cfg: RunConfig, space: SearchSpace, storage, name: str, prune: bool):
    import optuna

    pruner = optuna.pruners.MedianPruner(n_warmup_steps=1) if prune else optuna.pruners.NopPruner()
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize", pruner=pruner,
                                load_if_exists=True)
    base = {k: v for k, v in cfg.to_dict().items() if k != "output"}
    searched = {k: str(d) for k, d in space.params.items()}
    stored = study.user_attrs.get("config")
    if stored is None:
        study.set_user_attr("config", base)
        study.set_user_attr("space", searched)
    elif stored != base or study.user_attrs.get("space") != searched:
        what = "search space" if stored == base else "config"
        raise ValueError(f"study {name!r} in this storage was started with another {what}; use another "
                         "output folder (or --study-name) for a new study")
    return study


def _plan(study, trials: int, heartbeats: bool):
    """Under the lock: retry interrupted trials, then ``"run"`` (start or take up a trial),
    ``"busy"`` (the rest are running elsewhere) or ``"done"``."""
    import optuna
    from optuna.trial import TrialState

    if heartbeats:
        with quiet_optuna():
            optuna.storages.fail_stale_trials(study)
    all_trials = study.get_trials(deepcopy=False)
    live = {t.user_attrs.get("folder", t.number) for t in all_trials if t.state != TrialState.FAIL}
    for t in all_trials:  # a trial interrupted or killed (not one that raised an error) is taken up again
        folder = t.user_attrs.get("folder", t.number)
        if t.state == TrialState.FAIL and "error" not in t.user_attrs and folder not in live:
            study.enqueue_trial(dict(t.params), user_attrs={"folder": folder, "resumes": t.number})
            live.add(folder)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    finished = sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states)
    waiting, running = states.count(TrialState.WAITING), states.count(TrialState.RUNNING)
    if waiting or finished + running < trials:
        return "run", len(states)
    return ("done" if finished >= trials and not running else "busy"), len(states)


def run_study(cfg: RunConfig, trials: int, ensemble: int = 5, space: Optional[SearchSpace] = None,
              storage: Optional[str] = None, study_name: str = "gridgraph", prune: bool = True,
              sampler: str = "random", method: str = "mean", log: Callable[[str], None] = print,
              heartbeat: tuple = (20, 60), figures: bool = True) -> dict:
    """Run (or resume, or join) the study of ``cfg`` until it has ``trials`` finished trials.

    Args:
        cfg: the base config; its ``output`` is the study's folder.
        trials: trials the study runs (complete or pruned) in all, over every worker.
        ensemble: ``K``, the best complete trials ``ensemble.pt`` holds (the paper: 5; 0: none).
        space: default :data:`~gridgraph.config.space.PAPER_SPACE`.
        storage: an Optuna storage URL (see :func:`~gridgraph.workflows.study.open_storage`).
        prune: stop trials whose epoch scores fall below the median of earlier trials'.
        sampler: ``random`` (the paper's search; trial ``n`` draws from seed ``cfg.seed`` and ``n``
            only) or ``tpe``.
        method: how ``ensemble.pt`` combines its members (``mean`` or ``vote``).
        heartbeat: ``(interval, grace)`` seconds after which a database-stored trial whose process
            died is taken up by the next worker.
        figures: each trial's folder gets the figures ``gridgraph train`` draws.

    Returns ``{"trials": rows, "ensemble": path or None, "members": trial numbers, "storage": url}``;
    the ensemble and the table are written when the study is done (by its last worker).
    """
    import optuna

    if dist.world_size() > 1:
        raise ValueError("gridgraph tune runs one process per worker: start the same command several times "
                         "(one per GPU or machine) to share the study, not under torchrun")
    if int(trials) < 1:
        raise ValueError(f"--trials must be at least 1, got {trials}")
    if int(ensemble) < 0:
        raise ValueError(f"--ensemble must be 0 or more, got {ensemble}")
    if method not in EnsembleMethod.values():
        raise ValueError(f"ensemble method must be one of {', '.join(EnsembleMethod.values())}, got {method!r}")
    _sampler(sampler, 0)
    out = Path(cfg.output)
    space = space or load_space(None, cfg.to_dict())
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # gridgraph logs each trial itself
    try:
        return _run(cfg, trials, ensemble, space, storage, study_name, prune, sampler, method, log, heartbeat, out,
                    figures)
    finally:
        optuna.logging.set_verbosity(verbosity)


def _run(cfg, trials, ensemble, space, storage, study_name, prune, sampler, method, log, heartbeat, out,
         figures) -> dict:
    import optuna

    base = cfg.to_dict()
    key = score_key(cfg.train.metric, cfg.target.expression)
    if storage is None:  # the default SQLite file lives in the output folder
        out.mkdir(parents=True, exist_ok=True)
    opened, url = open_storage(storage, out, heartbeat)  # a bad --storage leaves no folder behind
    out.mkdir(parents=True, exist_ok=True)
    lock = study_lock(out)
    with lock:
        study = _load_study(cfg, space, opened, study_name, prune)
    log(f"study {study_name!r} in {shown_storage(url)}: {trials} trials of {space}, "
        f"selected on validation {key}" + ("" if prune else ", no pruning"))

    def objective(trial) -> float:
        lock.release()  # the trial exists: other workers may decide now
        folder = trial.user_attrs.get("folder", trial.number)
        trial.set_user_attr("folder", folder)
        values = {k: _suggest(trial, k, d) for k, d in space.params.items()}
        run_cfg = space.config({**base, "output": str(trial_folder(out, folder))}, values)
        shown = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
        finished = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,
                                                                optuna.trial.TrialState.PRUNED)))
        log(f"trial {trial.number} [{finished}/{trials} finished] ({trial_folder(out, folder).relative_to(out)}): {shown}"
            + (f" (resuming trial {trial.user_attrs['resumes']})" if "resumes" in trial.user_attrs else ""))

        def on_epoch(step: int, score: float) -> None:
            trial.report(score, step)
            if prune and trial.should_prune():
                raise optuna.TrialPruned(f"epoch {step}: validation {key} {score:.4f} is below the median "
                                         "of earlier trials' at that epoch")

        t0 = time.perf_counter()
        try:
            result = run_training(run_cfg, resume=True, figures=figures, log=lambda line: log(f"  [{trial.number}] {line}"),
                                  on_epoch=on_epoch)
        except optuna.TrialPruned as err:
            log(f"trial {trial.number} pruned: {err}")
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)
            raise
        except Exception as err:
            trial.set_user_attr("error", f"{type(err).__name__}: {err}"[:500])
            raise
        value = float(result["val"]["f+g"][key])
        log(f"trial {trial.number}: validation {key} {value:.4f} ({time.perf_counter() - t0:.1f} s)")
        return value

    while True:
        lock.acquire()
        try:
            decision, number = _plan(study, trials, isinstance(opened, optuna.storages.RDBStorage))
            if decision != "run":
                break
            study.sampler = _sampler(sampler, _trial_seed(cfg.seed, number))
            study.optimize(objective, n_trials=1, catch=())
        finally:
            lock.release()
    return _finish(study, out, url, key, ensemble, method, decision, space, log)


def _finish(study, out: Path, url: str, key: str, k: int, method: str, decision: str, space, log) -> dict:
    all_trials = study.get_trials(deepcopy=False)
    members, path = [], None
    if decision == "done" and k:
        with study_lock(out):
            path, members = write_study_ensemble(out, all_trials, k, method,
                                                 {"study": study.study_name, "storage": shown_storage(url),
                                                  "metric": key, "method": method})
    rows = trial_rows(all_trials, list(space.params), members)
    write_trials_csv(out / "trials.csv", rows)
    log("\n" + format_trials(rows, key))
    if decision == "busy":
        log("\nthe remaining trials are running in other processes; the last to finish writes ensemble.pt "
            "(or rerun this command when they have)")
    elif path is not None:
        log(f"\nensemble.pt: trials {', '.join(map(str, members))} ({method}); predict with "
            f"gridgraph predict {path} ...")
    return {"trials": rows, "ensemble": path, "members": members, "storage": shown_storage(url)}
