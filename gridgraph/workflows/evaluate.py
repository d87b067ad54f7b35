"""``gridgraph evaluate``: checkpoints on a split, each alone and as mean / vote ensembles."""
from __future__ import annotations

import json
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..checkpoint import Checkpoint
from ..config import DataConfig
from ..evaluate import accuracy, compute_metrics, ensemble, mean_std
from ..evaluate.regression import regression_metrics
from ..inference import evaluate_probs, predict_probs, truth
from ..patches import SectionTensors
from .build import model_for
from .ensemble import member_checkpoints
from .sections import load_splits

__all__ = ["evaluate_checkpoints", "SPLITS"]

SPLITS = ("train", "val", "test")


def _sections_for(ckpt: Checkpoint, data: Optional[DataConfig], split: str, cache: dict) -> list:
    """Sections of ``split`` read as the checkpoint was trained (its graph and patches), from
    ``data`` or the checkpoint's own data settings; shared between checkpoints that agree."""
    cfg = ckpt.config
    if data is not None:
        cfg = cfg.model_copy(update={"data": data})
    key = json.dumps([cfg.data.model_dump(mode="json"), cfg.graph.model_dump(mode="json"),
                      cfg.patches.model_dump(mode="json"), cfg.f.model_dump(mode="json"), ckpt.classes,
                      ckpt.features], sort_keys=True)
    if key not in cache:
        classes = None if cfg.target.expression else ckpt.classes  # an expression model's "classes" are genes
        cache[key] = load_splits(cfg, splits=(split,), classes=classes, features=ckpt.features)[0][split]
    return cache[key]


def _same_nodes(sections: Sequence[SectionTensors], reference: Sequence[SectionTensors], path) -> None:
    if [(s.name, s.num_nodes) for s in sections] != [(s.name, s.num_nodes) for s in reference]:
        raise ValueError(f"{path}: its settings give other sections or nodes than the first checkpoint's "
                         "(an ensemble needs the same nodes)")


def evaluate_checkpoints(paths: Sequence, data: Optional[DataConfig] = None, split: str = "test",
                         log: Callable[[str], None] = print) -> dict:
    """Each checkpoint's metrics on ``split`` plus the mean-softmax and majority-vote ensembles
    (expression models: the regression metrics, and the ensemble of their mean values); an
    ``ensemble.pt`` among ``paths`` counts as its members.

    Each checkpoint reads the sections with its own graph and patch settings; ``data`` replaces
    the data settings of all of them (default: each checkpoint's own). ``split`` is one of
    :data:`SPLITS`.
    """
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of the config's splits: {', '.join(SPLITS)}")
    ckpts, names, ens = member_checkpoints(list(paths))
    loaded = [(model_for(c, n), c) for c, n in zip(ckpts, names)]
    classes = loaded[0][1].classes
    cache: dict = {}
    per_model, stacked, reference, y = {}, {"f": [], "f+g": []}, None, None
    for p, (model, ckpt) in zip(names, loaded):
        if ckpt.classes != classes:
            raise ValueError(f"{p}: classes {ckpt.classes} differ from {names[0]}'s {classes}")
        if data is None:
            log(f"{p}: reading the sections its config names (data.root {ckpt.config.data.root})")
        sections = _sections_for(ckpt, data, split, cache)
        if not sections:
            raise ValueError(f"data split {split!r} lists no sections")
        if reference is None:
            reference, y = sections, torch.cat([truth(model, st) for st in sections])
        _same_nodes(sections, reference, p)
        probs = predict_probs(model, sections)
        per_model[str(p)] = evaluate_probs([truth(model, st) for st in sections], probs)
        for head, i in (("f", 0), ("f+g", 1)):
            stacked[head].append(torch.cat([q[i] for q in probs]).numpy())
    result = {"classes": classes, "split": split, "models": per_model}
    if len(loaded) > 1:
        result.update(_ensembles(y, stacked, per_model, regression=bool(loaded[0][0].regression)))
    if ens is not None:
        result["predict_method"] = ens.method  # how predict combines this ensemble file
    return result


def _ensembles(y, stacked: dict, per_model: dict, regression: bool = False) -> dict:
    out = {}
    for head in ("f", "f+g"):
        if regression:  # expression: the mean of the models' values, no vote
            out[f"ensemble_mean_{head}"] = regression_metrics(y, np.stack(stacked[head]).mean(0))
            spread = mean_std([m[head]["mean_pearson"] for m in per_model.values()])
            out[f"mean_pearson_over_models_{head}"] = {"mean": spread.mean, "sd": spread.std}
            continue
        stack = np.stack(stacked[head])
        for method in ("mean", "vote"):
            labels, scores = ensemble(stack, method=method)
            metrics = compute_metrics(y, scores)
            metrics["accuracy"] = accuracy(y, labels)
            out[f"ensemble_{method}_{head}"] = metrics
        spread = mean_std([m[head]["accuracy"] for m in per_model.values()])
        out[f"accuracy_over_models_{head}"] = {"mean": spread.mean, "sd": spread.std}
    return out
