"""A regimen as a list of stages: what trains, for how long, and with which optimizer."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..config import TrainConfig
from ..names import Regimen, Stage
from .optim import joint_optimizer, make_adam

__all__ = ["StagePlan", "plan_stages", "make_optimizer"]

_STAGES = {
    Regimen.TWO_STAGE: (Stage.F, Stage.G),
    Regimen.AT_ONCE: (Stage.JOINT,),
    Regimen.FINE_TUNE: (Stage.F, Stage.G, Stage.JOINT),
}


@dataclass(frozen=True)
class StagePlan:
    """One stage: ``f`` (f alone on patch minibatches), ``g`` (g alone on f's cached outputs, f
    frozen) or ``joint`` (both on whole sections); ``epochs`` to run; ``carry_g_state``: the joint
    stage starts g's optimizer from stage g's state (fine-tune)."""

    stage: Stage
    epochs: int
    carry_g_state: bool = False

    @property
    def uses_f_cache(self) -> bool:
        return self.stage == Stage.G


def plan_stages(train: TrainConfig) -> list:
    """The stages of ``train.regimen``; fine-tune from ``init_from`` is the joint stage alone."""
    epochs = {Stage.F: train.epochs_f, Stage.G: train.epochs_g, Stage.JOINT: train.epochs_joint}
    stages = _STAGES[Regimen(train.regimen)]
    if train.regimen == Regimen.FINE_TUNE and train.init_from:
        stages = (Stage.JOINT,)
    carry = train.regimen == Regimen.FINE_TUNE
    return [StagePlan(s, epochs[s], carry_g_state=carry and s == Stage.JOINT) for s in stages]


def make_optimizer(plan: StagePlan, model, train: TrainConfig,
                   g_state: Optional[dict] = None) -> torch.optim.Optimizer:
    """Adam for the stage: f's or g's parameters at ``lr``, or both with f at ``alpha * lr``."""
    if plan.stage == Stage.F:
        return make_adam(model.f.parameters(), train.lr, train.weight_decay)
    if plan.stage == Stage.G:
        return make_adam(model.g.parameters(), train.lr, train.weight_decay)
    carry = g_state if plan.carry_g_state else None
    return joint_optimizer(model.f, model.g, train.lr, train.alpha, train.weight_decay, g_state=carry)
