"""What a run has done so far: history, best models, where it stopped; saved in ``last.pt``."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Optional

import torch

from ..encoders import BackboneEncoder
from ..names import Stage

__all__ = ["TrainingState", "snapshot"]


def _frozen_prefixes(module: torch.nn.Module) -> tuple:
    """State-dict prefixes of the frozen backbones inside ``module`` (never trained in any stage)."""
    return tuple(f"{name}.backbone." if name else "backbone." for name, m in module.named_modules()
                 if isinstance(m, BackboneEncoder) and m.frozen)


def snapshot(module: torch.nn.Module) -> dict:
    """A copy of ``module``'s state dict that later training cannot change. A frozen backbone's
    tensors are not copied but shared with the module (they never change), so ``last.pt``, which
    holds the model and its best states, stores each frozen backbone once, not three times."""
    frozen = _frozen_prefixes(module)
    return {k: v if frozen and k.startswith(frozen) else v.detach().clone()
            for k, v in module.state_dict().items()}


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
                self.best_f = {**entry, "state": snapshot(model.f)}
                return True
        elif self.best is None or score > self.best["metric"]:
            state = snapshot(model)
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

    def share_frozen(self, model: torch.nn.Module) -> "TrainingState":
        """After resuming: the best states' frozen-backbone tensors are the live model's again
        (equal values, read from ``last.pt``), so the next ``last.pt`` stores them once."""
        for best, module in ((self.best, model), (self.best_f, getattr(model, "f", None))):
            frozen = _frozen_prefixes(module) if best is not None and module is not None else ()
            if frozen:
                live = module.state_dict()
                best["state"].update({k: live[k] for k in best["state"] if k.startswith(frozen) and k in live})
        return self

    def to_dict(self) -> dict:
        """The fields as a plain dict for ``last.pt``: not copied (``dataclasses.asdict`` would
        deep-copy the best states' tensors and undo :func:`snapshot`'s sharing)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> "TrainingState":
        return cls(history=list(ckpt["history"]), best=ckpt.get("best"), best_f=ckpt.get("best_f"),
                   g_optimizer=ckpt.get("g_optimizer"), stage_index=ckpt["stage_index"],
                   epoch=ckpt["epoch"])
