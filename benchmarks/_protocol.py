"""The GridNet paper's protocol inside a benchmark fold: ``gridgraph tune`` on the fold's training
and validation sections (the search never sees the test sections), then the test sections
predicted by the ensemble of the K best trials and by each member alone.

Shared by ``dlpfc_cv.py``, ``her2st.py`` and ``crchisto.py`` (``--trials N --ensemble K``).
"""
from __future__ import annotations

import time

import numpy as np

from gridgraph.config.space import load_space
from gridgraph.workflows import evaluate_checkpoints
from gridgraph.workflows.tune import run_study

METRICS = ("accuracy", "weighted_f1", "macro_auroc")


def add_protocol_args(ap) -> None:
    g = ap.add_argument_group("the paper's protocol (gridgraph tune per fold)")
    g.add_argument("--trials", type=int, default=0,
                   help="trials of the hyperparameter search per fold (0: one run with the fixed settings)")
    g.add_argument("--ensemble", type=int, default=5, help="the K best trials form the fold's ensemble (paper: 5)")
    g.add_argument("--ensemble-method", choices=("mean", "vote"), default="mean")
    g.add_argument("--space", help="search space YAML (default: the paper's lr, and alpha for at_once)")
    g.add_argument("--no-prune", action="store_true", help="run every trial to its end")


def run_protocol(cfg, args, log=print) -> dict:
    """Tune ``cfg`` (its ``output`` holds the study) and score its ensemble on the test split.

    Returns ``{"seconds", "trials", "members": trial numbers, "ensemble": {head: metrics},
    "vote": {head: metrics}, "member_mean": {head: {metric: mean}}, "member_sd": ...}``.
    """
    t0 = time.perf_counter()
    study = run_study(cfg, args.trials, ensemble=args.ensemble, space=load_space(args.space, cfg.to_dict()),
                      prune=not args.no_prune, method=args.ensemble_method, log=log, figures=False)
    ev = evaluate_checkpoints([study["ensemble"]], split="test", log=lambda line: None)
    members = list(ev["models"].values())
    out = {"seconds": time.perf_counter() - t0, "trials": len(study["trials"]), "members": study["members"],
           "ensemble": {}, "vote": {}, "member_mean": {}, "member_sd": {}}
    for head in ("f", "f+g"):
        single = {m: members[0][head][m] for m in METRICS}
        out["ensemble"][head] = {m: ev[f"ensemble_{args.ensemble_method}_{head}"][m] for m in METRICS} \
            if len(members) > 1 else single
        out["vote"][head] = {m: ev[f"ensemble_vote_{head}"][m] for m in METRICS} if len(members) > 1 else single
        values = {m: np.array([r[head][m] for r in members]) for m in METRICS}
        out["member_mean"][head] = {m: float(v.mean()) for m, v in values.items()}
        out["member_sd"][head] = {m: float(v.std(ddof=1)) if len(v) > 1 else 0.0 for m, v in values.items()}
    return out


def protocol_rows(folds: list) -> list:
    """Table rows: per fold and head, the ensemble's and the members' mean (SD) accuracy and AUROC."""
    rows = []
    for fold in folds:
        r = fold["protocol"]
        for head in ("f", "f+g"):
            e, mm, sd = r["ensemble"][head], r["member_mean"][head], r["member_sd"][head]
            rows.append([fold["name"], head, f"{e['accuracy']:.3f}", f"{e['macro_auroc']:.3f}",
                         f"{mm['accuracy']:.3f} ({sd['accuracy']:.3f})", f"{mm['macro_auroc']:.3f} "
                         f"({sd['macro_auroc']:.3f})", f"{e['weighted_f1']:.3f}", len(r["members"]),
                         f"{r['seconds'] / 60:.1f}"])
    return rows


PROTOCOL_HEADER = ["fold", "head", "ensemble acc", "ensemble AUROC", "members acc, mean (SD)",
                   "members AUROC, mean (SD)", "ensemble weighted F1", "K", "min"]


def protocol_summary(folds: list) -> list:
    """Mean ± SD over folds of the ensembles' scores and of the members' mean scores."""
    rows = []
    for head in ("f", "f+g"):
        cells = []
        for which in ("ensemble", "member_mean"):
            for m in ("accuracy", "macro_auroc"):
                v = np.array([f["protocol"][which][head][m] for f in folds])
                cells.append(f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.3f}")
        rows.append([head, *cells])
    return rows


SUMMARY_HEADER = ["head", "ensemble acc", "ensemble AUROC", "members acc", "members AUROC"]
