"""One trainer for every f, every g and the paper's three regimens.

Regimens, as a list of stages:

- ``two_stage``: ``f`` (patch minibatches, f alone) then ``g`` (f frozen, its outputs cached once);
- ``at_once``: ``joint`` (f and g together, g at ``lr``, f at ``alpha * lr``);
- ``fine_tune``: ``f``, ``g``, then ``joint`` where g keeps its optimizer state from stage ``g``
  and f gets fresh state at ``alpha * lr`` (or ``joint`` alone from a two-stage checkpoint).

Every epoch ends with validation; the f stage keeps f's best epoch, and the best model by the
chosen metric over the g and joint stages is what the run returns. Each epoch's randomness is a
pure function of ``(seed, stage, epoch)``, so a run resumed from ``last.pt`` ends with the same
weights as an uninterrupted one (on CPU).
"""
from __future__ import annotations

import copy
import json
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..datasets import SectionTensors
from ..evaluate.metrics import compute_metrics
from ..graph.symmetry import RandomLatticeSymmetry
from ..io.atomic import atomic_write
from ..patches import random_color_jitter, random_dihedral
from .checkpoint import load_checkpoint, save_checkpoint
from .optim import joint_optimizer, make_adam

STAGES = {
    "two_stage": ("f", "g"),
    "at_once": ("joint",),
    "fine_tune": ("f", "g", "joint"),
}
EPOCH_KEYS = {"f": "epochs_f", "g": "epochs_g", "joint": "epochs_joint"}
METRIC_KEYS = {"accuracy": "accuracy", "auroc": "macro_auroc"}
MODEL_SECTIONS = ("f", "g", "model", "patches", "graph")
RESUME_SECTIONS = MODEL_SECTIONS + ("data", "seed")


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def masked_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over labeled nodes (label ``-1`` ignored); 0 if none is labeled."""
    if not (labels >= 0).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), labels, ignore_index=-1)


class Trainer:
    """Train a :class:`~gridgraph.model.GridGraphNet` on prepared sections.

    Args:
        model: the f + g model.
        config: a full run config (:func:`gridgraph.config.make_config`); ``train`` holds the
            regimen and its settings, the rest is stored in checkpoints.
        classes: class names (label ``i`` = ``classes[i]``).
        out_dir: where ``last.pt``, ``best.pt`` and ``metrics.jsonl`` go (``None``: nothing written).
        log: called with one line of text per epoch.
    """

    def __init__(self, model, config: dict, classes: Sequence[str], out_dir=None,
                 log: Callable[[str], None] = print):
        self.model = model
        self.cfg = config
        self.t = config["train"]
        self.classes = list(classes)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.log = log
        self.device = pick_device(self.t["device"])
        self.model.to(self.device)
        self.history: list = []
        self.best: Optional[dict] = None  # {"metric", "stage", "epoch", "state"}
        self.best_f: Optional[dict] = None
        self.g_optimizer_state: Optional[dict] = None
        self.f_calls = 0  # f forward passes over chunks or batches, for tests and benchmarks
        self.steps_taken = 0  # optimizer steps of the section-level stages

    # ----------------------------------------------------------------- plumbing
    def _count_f_call(self, *_) -> None:
        self.f_calls += 1

    def _seed(self, stage_idx: int, epoch: int) -> torch.Generator:
        seed = int(self.cfg["seed"]) * 1_000_003 + stage_idx * 10_007 + epoch
        torch.manual_seed(seed)
        return torch.Generator().manual_seed(seed)

    def _autocast(self):
        enabled = bool(self.t["amp"]) and self.device.type == "cuda"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def stages(self) -> list:
        stages = list(STAGES[self.t["regimen"]])
        if self.t["regimen"] == "fine_tune" and self.t.get("init_from"):
            stages = ["joint"]
        return stages

    def _write_log(self, row: dict) -> None:
        self.history.append(row)
        if self.out_dir is None:
            return
        with atomic_write(self.out_dir / "metrics.jsonl") as fh:
            fh.write("".join(json.dumps(r) + "\n" for r in self.history))

    # ----------------------------------------------------------------- forward passes
    def _augment(self, patches: torch.Tensor, gen) -> torch.Tensor:
        """f's training patches: random dihedral turns and colour jitter, as configured."""
        if self.t["augment"]:
            patches = random_dihedral(patches, gen)
        return random_color_jitter(patches, float(self.t["color_jitter"]), gen)

    def _f_outputs(self, st: SectionTensors, train: bool, gen=None):
        patches = self._augment(st.patches, gen) if train else st.patches
        with self._autocast():
            f_logits, g_in = self.model.f_outputs(patches)
        return f_logits.float(), g_in.float()  # g runs in full precision

    @torch.no_grad()
    def f_cache(self, sections: Sequence[SectionTensors]) -> list:
        """Per section f's probabilities ``(N, K)`` (CPU) and g's input, f in eval mode."""
        self.model.eval()
        out = []
        for st in sections:
            f_logits, g_in = self._f_outputs(st, train=False)
            out.append((f_logits.softmax(-1).cpu(), g_in))
        return out

    @torch.no_grad()
    def validate(self, sections: Sequence[SectionTensors], use_g: bool = True,
                 f_cache: Optional[list] = None) -> dict:
        """Metrics of f alone (``f_*``) and, with ``use_g``, of f + g over all sections pooled.

        ``f_cache`` (from :meth:`f_cache`) reuses f's outputs while f is frozen (stage g).
        """
        cache = f_cache if f_cache is not None else self.f_cache(sections)
        self.model.eval()
        y = torch.cat([st.labels for st in sections])
        res = {f"f_{k}": v for k, v in compute_metrics(y, torch.cat([c[0] for c in cache])).items()}
        if use_g:
            g_prob = torch.cat([
                self.model.g_outputs(g_in, st.graph.to(self.device)).softmax(-1).cpu()
                for (_, g_in), st in zip(cache, sections)
            ])
            res.update(compute_metrics(y, g_prob))
        return res

    # ----------------------------------------------------------------- epochs
    def _epoch_f(self, train, optimizer, gen) -> float:
        """One epoch of f alone over shuffled minibatches of labeled patches."""
        self.model.train()
        labeled = [torch.nonzero(st.labels >= 0)[:, 0] for st in train]
        sec = torch.cat([torch.full((len(n),), i) for i, n in enumerate(labeled)])
        node = torch.cat(labeled)
        order = torch.randperm(len(node), generator=gen)
        bs = self.t["batch_size"]
        total, count = 0.0, 0
        for start in tqdm(range(0, len(order), bs), desc="f", leave=False, disable=not self.t["progress"]):
            pick = order[start : start + bs]
            s, n = sec[pick], node[pick]
            parts = [(train[i].patches[n[s == i]], train[i].labels[n[s == i]]) for i in s.unique().tolist()]
            x = torch.cat([p[0] for p in parts])
            y = torch.cat([p[1] for p in parts]).to(self.device)
            x = self._augment(x, gen)
            with self._autocast():
                x = x.to(self.device)
                transform = self.model.transform
                logits = self.model.f(transform(x) if transform is not None else x.float())
            loss = masked_cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(pick)
            count += len(pick)
        return total / max(count, 1)

    def _epoch_sections(self, train, optimizer, gen, forward) -> float:
        """One epoch over whole sections, stepping every ``accumulate`` sections and at the end."""
        self.model.train()
        accum = self.t["accumulate"]
        order = torch.randperm(len(train), generator=gen).tolist()
        optimizer.zero_grad(set_to_none=True)
        total, pending = 0.0, 0
        for k in tqdm(order, desc="sections", leave=False, disable=not self.t["progress"]):
            st = train[k]
            loss = masked_cross_entropy(forward(k, st), st.labels.to(self.device))
            (loss / accum).backward()
            total += loss.item()
            pending += 1
            if pending == accum:
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                self.steps_taken += 1
                pending = 0
        if pending:
            # The last group is smaller: rescale so its step averages its own sections.
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.grad.mul_(accum / pending)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            self.steps_taken += 1
        return total / max(len(order), 1)

    @torch.no_grad()
    def cache_f_outputs(self, sections: Sequence[SectionTensors]) -> list:
        """g's input for every section, computed once with f frozen (memory or ``cache_dir``)."""
        self.model.eval()
        cache_dir = self.t.get("cache_dir")
        if cache_dir:
            Path(cache_dir).mkdir(parents=True, exist_ok=True)
            cache_dir = self._cache_tmp = tempfile.mkdtemp(prefix="f-outputs-", dir=cache_dir)
        out = []
        for st in tqdm(sections, desc="cache f", leave=False, disable=not self.t["progress"]):
            g_in = self._f_outputs(st, train=False)[1].float()
            if cache_dir:
                path = Path(cache_dir) / f"{len(out):05d}.pt"
                torch.save(g_in.cpu(), path)
                out.append(path)
            else:
                out.append(g_in)
        return out

    def _cached(self, item) -> torch.Tensor:
        if isinstance(item, Path):
            return torch.load(item, map_location=self.device)
        return item

    # ----------------------------------------------------------------- checkpoints
    def _state(self, stage_idx: int, epoch: int, optimizer) -> dict:
        return {
            "config": self.cfg,
            "classes": self.classes,
            "model": self.model.state_dict(),
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "g_optimizer": self.g_optimizer_state,
            "stage_index": stage_idx,
            "stages": self.stages(),
            "epoch": epoch,
            "history": self.history,
            "best": self.best,
            "best_f": self.best_f,
        }

    def _save(self, stage_idx: int, epoch: int, optimizer) -> None:
        if self.out_dir is None:
            return
        if self.best is not None and self.best["stage_index"] == stage_idx and self.best["epoch"] == epoch:
            self.save_best(self.out_dir / "best.pt")
        save_checkpoint(self.out_dir / "last.pt", self._state(stage_idx, epoch, optimizer))

    def save_best(self, path) -> Path:
        """Write the best model (weights, config, classes, validation metrics) to ``path``."""
        best = self.best or {"state": self.model.state_dict(), "metrics": {}}
        return save_checkpoint(path, {
            "config": self.cfg,
            "classes": self.classes,
            "model": best["state"],
            "metrics": best.get("metrics", {}),
            "history": self.history,
        })

    def _load_resume(self) -> Optional[dict]:
        if self.out_dir is None or not (self.out_dir / "last.pt").is_file():
            return None
        path = self.out_dir / "last.pt"
        ckpt = load_checkpoint(path, map_location=self.device)
        if ckpt.get("stages") != self.stages():
            raise ValueError(f"{path}: written for stages {ckpt.get('stages')}, this run has "
                             f"{self.stages()}; use another output folder or --no-resume")
        self._check_compatible(ckpt, path, sections=RESUME_SECTIONS)
        self.model.load_state_dict(ckpt["model"])
        self.history = list(ckpt["history"])
        self.best, self.best_f = ckpt["best"], ckpt["best_f"]
        self.g_optimizer_state = ckpt["g_optimizer"]
        return ckpt

    def _init_from(self) -> None:
        """fine_tune from a two-stage checkpoint: its weights and its g optimizer state."""
        ckpt = load_checkpoint(self.t["init_from"], map_location=self.device)
        self._check_compatible(ckpt, self.t["init_from"], sections=MODEL_SECTIONS)
        self.model.load_state_dict(ckpt["model"])
        self.g_optimizer_state = ckpt.get("g_optimizer")
        if self.g_optimizer_state is None:
            raise ValueError(f"{self.t['init_from']}: has no g optimizer state (field 'g_optimizer'); "
                             "fine_tune needs a last.pt written by a two_stage run")

    def _check_compatible(self, ckpt: dict, path, sections: Sequence[str]) -> None:
        """Refuse a checkpoint whose classes or model-defining config differ from this run's."""
        if list(ckpt["classes"]) != self.classes:
            raise ValueError(f"{path}: written for classes {ckpt['classes']}, this run has {self.classes}")
        for name in sections:
            old, new = ckpt["config"].get(name), self.cfg.get(name)
            if old != new:
                raise ValueError(f"{path}: written with {name}={old}, this run has {name}={new}; "
                                 "use another output folder or --no-resume")

    # ----------------------------------------------------------------- main loop
    def _optimizer(self, stage: str):
        lr, alpha, wd = float(self.t["lr"]), float(self.t["alpha"]), float(self.t["weight_decay"])
        if stage == "f":
            return make_adam(self.model.f.parameters(), lr, wd)
        if stage == "g":
            return make_adam(self.model.g.parameters(), lr, wd)
        carry = self.g_optimizer_state if self.t["regimen"] == "fine_tune" else None
        return joint_optimizer(self.model.f, self.model.g, lr, alpha, wd, g_state=carry)

    def _record(self, stage_idx, stage, epoch, loss, val, elapsed) -> None:
        key = METRIC_KEYS[self.t["metric"]]
        score = val[f"f_{key}"] if stage == "f" else val[key]
        row = {"stage": stage, "epoch": epoch + 1, "train_loss": loss, "seconds": elapsed, **val}
        self._write_log(row)
        shown = f"val {key} f={val[f'f_{key}']:.3f}" + ("" if stage == "f" else f" f+g={val[key]:.3f}")
        self.log(f"[{stage} {epoch + 1}/{self.t[EPOCH_KEYS[stage]]}] loss {loss:.4f}  {shown}")
        if math.isnan(score):
            raise ValueError(f"validation {key} is undefined (NaN): the validation sections need "
                             "labeled nodes, and for AUROC more than one class")
        entry = {"metric": score, "stage": stage, "stage_index": stage_idx, "epoch": epoch, "metrics": val}
        if stage == "f":
            if self.best_f is None or score > self.best_f["metric"]:
                self.best_f = {**entry, "state": copy.deepcopy(self.model.f.state_dict())}
        elif self.best is None or score > self.best["metric"]:
            self.best = {**entry, "state": copy.deepcopy(self.model.state_dict())}

    def _stage_loss(self, stage, cache, gen):
        """A closure ``(k, section) -> node logits`` for the section-level stages.

        With ``augment_sections`` each training section is seen under a random lattice symmetry
        (rotation / mirror of the whole section; nodes and labels keep their order).
        """
        symmetry = RandomLatticeSymmetry(gen) if self.t["augment_sections"] else (lambda g: g)

        def forward(k, st):
            g_in = self._cached(cache[k]) if stage == "g" else self._f_outputs(st, True, gen)[1]
            return self.model.g_outputs(g_in, symmetry(st.graph).to(self.device))

        return forward

    def fit(self, train: Sequence[SectionTensors], val: Sequence[SectionTensors], resume: bool = True):
        """Run every stage of the regimen; returns ``self`` with the best weights loaded.

        With ``resume`` and an ``out_dir`` holding ``last.pt``, training continues after the last
        finished epoch.
        """
        if not train or not val:
            raise ValueError("fit() needs at least one training and one validation section")
        check = getattr(self.model.g, "check_graph", None)
        for st in list(train) + list(val) if check is not None else []:
            check(st.graph)  # a corrector that cannot take these graphs fails before stage f
        hook = self.model.f.register_forward_hook(self._count_f_call)
        self._cache_tmp = None
        try:
            self._fit(train, val, resume)
        finally:
            hook.remove()
            for p in self.model.parameters():
                p.requires_grad_(True)
            if self._cache_tmp:
                shutil.rmtree(self._cache_tmp, ignore_errors=True)
        if self.best is not None:
            self.model.load_state_dict(self.best["state"])
        if self.out_dir is not None:
            self.save_best(self.out_dir / "best.pt")
        return self

    def _fit(self, train, val, resume: bool) -> None:
        stages = self.stages()
        ckpt = self._load_resume() if resume else None
        start_stage, start_epoch = 0, 0
        if ckpt is not None:
            start_stage, start_epoch = ckpt["stage_index"], ckpt["epoch"] + 1
            self.log(f"resuming from {self.out_dir / 'last.pt'} after {stages[start_stage]} "
                     f"epoch {start_epoch}")
        elif stages == ["joint"] and self.t["regimen"] == "fine_tune":
            self._init_from()
        for stage_idx in range(start_stage, len(stages)):
            stage = stages[stage_idx]
            epochs = self.t[EPOCH_KEYS[stage]]
            first = start_epoch if stage_idx == start_stage else 0
            optimizer = self._optimizer(stage)
            if ckpt is not None and stage_idx == start_stage and first > 0:
                optimizer.load_state_dict(ckpt["optimizer"])
            for p in self.model.f.parameters():
                p.requires_grad_(stage != "g")
            for p in self.model.g.parameters():
                p.requires_grad_(stage != "f")
            cache = val_cache = None
            if stage == "g" and first < epochs:
                cache = self.cache_f_outputs(train)
                val_cache = self.f_cache(val)
            for epoch in range(first, epochs):
                gen = self._seed(stage_idx, epoch)
                t0 = time.perf_counter()
                if stage == "f":
                    loss = self._epoch_f(train, optimizer, gen)
                    val_metrics = self.validate(val, use_g=False)
                else:
                    loss = self._epoch_sections(train, optimizer, gen, self._stage_loss(stage, cache, gen))
                    val_metrics = self.validate(val, f_cache=val_cache)
                if stage == "g":
                    self.g_optimizer_state = optimizer.state_dict()
                self._record(stage_idx, stage, epoch, loss, val_metrics, time.perf_counter() - t0)
                self._save(stage_idx, epoch, optimizer)
            if stage == "f" and self.best_f is not None:
                self.model.f.load_state_dict(self.best_f["state"])
