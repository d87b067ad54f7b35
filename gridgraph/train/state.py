"""What a run has done so far: history, best models, where it stopped; saved in ``last.pt``."""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Optional

import torch

from ..names import Stage

__all__ = ["TrainingState"]


@dataclass
class TrainingState:
    """Progress of a run.

    ``history``: one row per finished epoch (as in ``metrics.jsonl``); ``best``/``best_f``: the
    best model over the g and joint stages / of stage f, as ``{"metric", "stage",
    "stage_index", "epoch", "metrics", "use_g", "state"}`` (``use_g``: f + g, or f alone where
    g lowered the validation score; then ``metrics`` are f's, and ``metrics["g_off"]`` holds the
    f + g scores that lost); ``g_optimizer``: g's Adam state after stage g;
    ``stage_index``/``epoch``: the last finished epoch (``epoch = -1``: none yet).
    """

    history: list = field(default_factory=list)
    best: Optional[dict] = None
    best_f: Optional[dict] = None
    g_optimizer: Optional[dict] = None
    stage_index: int = 0
    epoch: int = -1

    def record(self, stage: Stage, stage_index: int, epoch: int, score: float, metrics: dict,
               model, use_g: bool = True) -> bool:
        """Note a validated epoch; keep a copy of the weights if it is the best so far
        (``use_g=False``: the candidate is f alone, stored with the model's ``use_g`` off)."""
        self.stage_index, self.epoch = stage_index, epoch
        entry = {"metric": score, "stage": str(stage), "stage_index": stage_index, "epoch": epoch,
                 "metrics": metrics, "use_g": bool(use_g)}
        if stage == Stage.F:
            if self.best_f is None or score > self.best_f["metric"]:
                self.best_f = {**entry, "state": copy.deepcopy(model.f.state_dict())}
                return True
        elif self.best is None or score > self.best["metric"]:
            state = copy.deepcopy(model.state_dict())
            if "use_g" in state:
                state["use_g"] = torch.tensor(bool(use_g))
            if not use_g:  # the kept model's "f + g" is f: its metrics are f's
                entry["metrics"] = {**metrics, **{k[2:]: v for k, v in metrics.items() if k.startswith("f_")},
                                    "g_off": {k: v for k, v in metrics.items() if not k.startswith("f_")}}
            self.best = {**entry, "state": state}
            return True
        return False

    def is_best(self, stage_index: int, epoch: int) -> bool:
        return self.best is not None and (self.best["stage_index"], self.best["epoch"]) == (stage_index, epoch)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> "TrainingState":
        return cls(history=list(ckpt["history"]), best=ckpt.get("best"), best_f=ckpt.get("best_f"),
                   g_optimizer=ckpt.get("g_optimizer"), stage_index=ckpt["stage_index"],
                   epoch=ckpt["epoch"])
