"""One trainer for every f, every g and the paper's three regimens.

A regimen is a list of stages (:mod:`.regimen`); each epoch runs a loop (:mod:`.loops`), is
validated through the one inference path (:mod:`gridgraph.inference`), is recorded in a
:class:`~.state.TrainingState` and saved by a :class:`~.checkpoint.CheckpointManager`. Each
epoch's randomness is a pure function of ``(seed, stage, epoch)`` drawn inside a forked RNG, so a
run resumed from ``last.pt`` ends with the same weights as an uninterrupted one (on CPU) and the
caller's global RNG is left alone. The best model is picked by ``train.metric`` on validation
over every g and joint epoch, each a candidate twice: f + g, and f alone (the model's ``use_g``
off), so g is never kept where it lowers f's score; the log says which was kept.

Several processes (``torchrun``, see :mod:`gridgraph.distributed`): when a process group is
initialised, every rank runs this same trainer. Sections (and in stage f, patch minibatches) are
split over ranks by :mod:`gridgraph.distributed.sampler`, gradients are all-reduced by DDP once
per optimizer step, validation sections are split over ranks and their predictions gathered in
section order before the metrics are computed once (so every rank selects the same best model,
the one a single process would select), and only rank 0 logs, shows progress bars and writes
files. Each rank reads ``last.pt`` to resume, so a run may resume on any number of ranks.
"""
from __future__ import annotations

import contextlib
import copy
import math
import sys
import time
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence, Union

import torch

from .. import distributed as dist
from ..config import RunConfig, TrainConfig
from ..graph.symmetry import RandomLatticeSymmetry
from ..inference import autocast, evaluate_probs, f_outputs, flat_metrics, predict_probs, score, truth
from ..names import Stage
from ..patches import SectionTensors
from .checkpoint import MODEL_SECTIONS, CheckpointManager, load_checkpoint
from .cross_fit import cross_fit_groups, cross_fitted_outputs
from .f_cache import FOutputCache
from .loops import PatchAugment, patch_epoch, section_epoch
from .objective import objective_for, score_key
from .pretrain import pretrain_f
from .regimen import StagePlan, make_optimizer, plan_stages
from .state import TrainingState

__all__ = ["Trainer", "pick_device"]


def pick_device(name="auto", setting: str = "train.device") -> torch.device:
    """The device of a device setting: ``auto`` (a GPU when there is one), ``cpu``, ``cuda``,
    ``cuda:N`` (under torchrun: this rank's GPU, ``cuda:LOCAL_RANK``); one unavailable is a
    :class:`ValueError` naming ``setting`` (:func:`~gridgraph.distributed.device_for`)."""
    return dist.device_for(name, setting)


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[torch.Generator]:
    """A generator seeded with ``seed`` and the global RNGs seeded alike, restored on exit."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=device.type if devices else "cuda"):
        torch.manual_seed(seed)
        yield torch.Generator().manual_seed(seed)


@contextlib.contextmanager
def _frozen(module: torch.nn.Module) -> Iterator[None]:
    """Turn off gradients of ``module``'s parameters, restoring each one's own flag on exit."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


class Trainer:
    """Train a :class:`~gridgraph.model.GridGraphNet` on prepared sections.

    Args:
        model: the f + g model.
        train: the ``train`` settings (a :class:`~gridgraph.config.TrainConfig`), or a whole
            :class:`~gridgraph.config.RunConfig` (its ``train`` section, its ``seed``, and the
            config stored in checkpoints).
        classes: class names (label ``i`` = ``classes[i]``).
        out_dir: where ``last.pt``, ``best.pt`` and ``metrics.jsonl`` go (``None``: nothing written).
        seed: seed of every epoch's randomness (default: the run config's, else 0).
        log: called with one line of text per epoch (on rank 0 only when distributed).
        meta: plain data stored in every checkpoint (e.g. ``{"scale": ...}``, the physical scale
            the model was trained at, which ``predict`` applies).
        on_epoch: called after every recorded (and saved) epoch with ``(step, score)``: the
            number of epochs recorded so far over all stages and the validation score that epoch
            is selected on (``train.metric``); an exception it raises (e.g. a search pruning a
            hopeless run) stops training, with ``last.pt`` and ``best.pt`` as written so far.
    """

    def __init__(self, model, train: Union[TrainConfig, RunConfig, None] = None,
                 classes: Sequence[str] = (), out_dir=None, seed: Optional[int] = None,
                 log: Callable[[str], None] = print, meta: Optional[dict] = None,
                 on_epoch: Optional[Callable[[int, float], None]] = None):
        run = train if isinstance(train, RunConfig) else None
        self.t: TrainConfig = run.train if run is not None else (train or TrainConfig())
        self.seed = int(seed if seed is not None else (run.seed if run is not None else 0))
        self.model = model
        self.classes = list(classes)
        self.rank, self.world = dist.rank(), dist.world_size()
        self.main = self.rank == 0
        self.log = log if self.main else (lambda line: None)
        self.device = pick_device(self.t.device)
        self.model.to(self.device)
        if self.t.channels_last:
            self.model.f.to(memory_format=torch.channels_last)
        if self.t.compile_f:
            self.model.f.compile()  # in place: parameter names (and checkpoints) are unchanged
        self.plans = plan_stages(self.t)
        self._f_init = copy.deepcopy(model.f.state_dict()) if self.t.cross_fit else None
        self.state = TrainingState()
        self.steps_taken = 0
        progress = self.t.progress if self.t.progress is not None else sys.stderr.isatty()
        self.progress = progress and self.main
        self.pin_memory = self.t.pin_memory and self.device.type == "cuda"
        self.augment = PatchAugment(self.t.augment, self.t.color_jitter)
        self.objective = objective_for(model, run.target.loss if run is not None else "mse", self.t.label_smoothing)
        config = run.to_dict() if run is not None else None
        self.files = CheckpointManager(out_dir, config, self.classes, meta) if out_dir is not None else None
        self.on_epoch = on_epoch

    @property
    def history(self) -> list:
        return self.state.history

    @property
    def stages(self) -> list:
        return [p.stage for p in self.plans]

    # ----------------------------------------------------------------- validation
    def validate(self, sections: Sequence[SectionTensors], use_g: bool = True,
                 f_cache: Optional[Sequence] = None) -> dict:
        """Metrics of f alone (``f_*``) and, with ``use_g``, of f + g over all sections pooled.

        Distributed: each rank predicts its share of the sections; the predictions are gathered
        in section order and every rank computes the same metrics from all of them.
        """
        if not use_g:
            mine = dist.shard_positions(len(sections), self.rank, self.world)
            local = {k: f_outputs(self.model, sections[k], self.t.amp)[0] for k in mine}
            f_probs = torch.cat(dist.gather_indexed(local, len(sections)))
            y = torch.cat([truth(self.model, st) for st in sections])
            return {f"f_{k}": v for k, v in score(y, f_probs).items()}
        probs = self.predict(sections, f_cache=f_cache)
        return flat_metrics(evaluate_probs([truth(self.model, st) for st in sections], probs))

    def predict(self, sections: Sequence[SectionTensors], f_cache: Optional[Sequence] = None,
                amp: Optional[bool] = None) -> list:
        """:func:`~gridgraph.inference.predict_probs` of the current model, split over the ranks
        and gathered on every rank: ``[(f_probs (N, K), g_probs (N, K)), ...]`` CPU, in section
        order. ``amp``: bf16 autocast on CUDA (default: ``train.amp``)."""
        mine = dist.shard_positions(len(sections), self.rank, self.world)
        cache = [f_cache[k] for k in mine] if f_cache is not None else None
        amp = self.t.amp if amp is None else amp
        probs = predict_probs(self.model, [sections[k] for k in mine], f_cache=cache, amp=amp)
        return dist.gather_indexed(dict(zip(mine, probs)), len(sections))

    # ----------------------------------------------------------------- one stage
    def _g_forward(self, plan: StagePlan, cache):
        """``(m, k, section, gen) -> node logits`` for the section-level stages, ``m`` the model
        (as DDP calls it); with ``augment_sections`` each training section is seen under a random
        lattice symmetry drawn from the section's own generator."""

        def forward(m, k, st, gen):
            symmetry = RandomLatticeSymmetry(gen) if self.t.augment_sections else (lambda g: g)
            if plan.uses_f_cache:
                g_in = cache[k][1]
            else:
                patches = self.augment(st.patches, gen)
                if self.pin_memory:
                    patches = patches.pin_memory()
                with autocast(self.device, self.t.amp):
                    g_in = m.f_outputs(patches)[1].float()
            return m.g_member_logits(g_in, symmetry(st.graph).to(self.device))

        return forward

    def _epoch(self, plan, train, val, optimizer, gen, caches) -> tuple[float, dict, float]:
        """Train one epoch and validate: ``(train loss, validation metrics, training seconds)``."""
        replica = dist.Replica(self.model)
        t0 = time.perf_counter()
        if plan.stage == Stage.F:
            loss = patch_epoch(self.model, train, optimizer, gen, batch_size=self.t.batch_size,
                               augment=self.augment, amp=self.t.amp, progress=self.progress,
                               replica=replica, pin_memory=self.pin_memory,
                               label_smoothing=self.t.label_smoothing, objective=self.objective)
        else:
            loss, steps = section_epoch(self.model, train, optimizer, gen, self._g_forward(plan, caches[0]),
                                        accumulate=self.t.accumulate, progress=self.progress,
                                        replica=replica, label_smoothing=self.t.label_smoothing,
                                        objective=self.objective)
            self.steps_taken += steps
        dist.average_buffers(self.model)  # batch-norm statistics: the same model on every rank
        seconds = time.perf_counter() - t0
        val_metrics = self.validate(val, use_g=False) if plan.stage == Stage.F else \
            self.validate(val, f_cache=caches[1])
        return loss, val_metrics, seconds

    @staticmethod
    def _throughput(plan: StagePlan, train: Sequence[SectionTensors], seconds: float) -> str:
        """``"<patches>/s, <sections>/s"`` of an epoch's training (all ranks together): the
        patches f trained on (labeled ones in stage f, every node in the joint stage, none in
        stage g, where f's outputs are cached)."""
        seconds = max(seconds, 1e-9)
        sections = f"{len(train) / seconds:.2f} sections/s"
        if plan.stage == Stage.G:
            return f"f cached, {sections}"
        if plan.stage == Stage.F:
            patches = sum(int((st.labels >= 0).sum()) for st in train)
        else:
            patches = sum(st.num_nodes for st in train)
        return f"{patches / seconds:.1f} patches/s, {sections}"

    @property
    def score_key(self) -> str:
        return score_key(self.t.metric, self.objective.regression)

    def _record(self, idx: int, plan: StagePlan, epoch: int, loss: float, val: dict, seconds: float,
                speed: str = "") -> float:
        """Log and keep the epoch; returns the score it is a candidate with (f + g, or f alone)."""
        key = self.score_key
        score = val[f"f_{key}"] if plan.stage == Stage.F else val[key]
        self.state.history.append({"stage": str(plan.stage), "epoch": epoch + 1, "train_loss": loss,
                                   "seconds": seconds, **val})
        shown = f"val {key} f={val[f'f_{key}']:.3f}" + ("" if plan.stage == Stage.F else f" f+g={val[key]:.3f}")
        ranks = f" on {self.world} ranks" if self.world > 1 else ""
        self.log(f"[{plan.stage} {epoch + 1}/{plan.epochs}] loss {loss:.4f}  {shown}"
                 + (f"  | {speed}{ranks}" if speed else ""))
        if math.isnan(score):
            raise ValueError(f"validation {key} is undefined (NaN): the validation sections need "
                             "labeled nodes, and for AUROC more than one class")
        # g is kept only where it does not lower f's validation score; else this epoch's
        # candidate is f alone (g switched off)
        use_g = plan.stage == Stage.F or not val[f"f_{key}"] > score
        candidate = score if use_g else val[f"f_{key}"]
        self.state.record(plan.stage, idx, epoch, candidate, val, self.model, use_g=use_g)
        return candidate

    def _save(self, idx: int, epoch: int, optimizer) -> None:
        if self.files is None or not self.main:
            return
        self.files.write_metrics(self.state.history)
        if self.state.is_best(idx, epoch):
            self.files.save_best(self.state.best["state"], self.state.best["metrics"], self.state.history)
        self.files.save_last(self.model.state_dict(), self.state.to_dict(), optimizer, self.stages)

    def _run_stage(self, idx: int, plan: StagePlan, train, val, first: int, optimizer) -> None:
        # What a stage does not train is frozen, so DDP (built per epoch) sees only trained
        # parameters, each used in every backward (see gridgraph.distributed.ddp).
        frozen = {Stage.F: self.model.g, Stage.G: self.model.f}.get(plan.stage)
        # before f is frozen: the cross-fitting f's are copies of it, trained as it was
        crossed = self._cross_fitted(train, val) if plan.uses_f_cache and first < plan.epochs \
            and self.t.cross_fit else None
        with contextlib.ExitStack() as stack:
            if frozen is not None:
                stack.enter_context(_frozen(frozen))
            caches = (None, None)
            if plan.uses_f_cache and first < plan.epochs:
                caches = tuple(crossed if s is train and crossed is not None else
                               stack.enter_context(FOutputCache(self.model, s, self.t.cache_dir, self.t.amp,
                                                                self.progress)) for s in (train, val))
            for epoch in range(first, plan.epochs):
                t0 = time.perf_counter()
                with _seeded(self.seed * 1_000_003 + idx * 10_007 + epoch, self.device) as gen:
                    loss, metrics, train_seconds = self._epoch(plan, train, val, optimizer, gen, caches)
                if plan.stage == Stage.G:
                    self.state.g_optimizer = optimizer.state_dict()
                score = self._record(idx, plan, epoch, loss, metrics, time.perf_counter() - t0,
                                     self._throughput(plan, train, train_seconds))
                self._save(idx, epoch, optimizer)
                if self.on_epoch is not None:
                    self.on_epoch(len(self.state.history), score)
        if plan.stage == Stage.F and self.state.best_f is not None:
            self.model.f.load_state_dict(self.state.best_f["state"])

    def _cross_fitted(self, train, val) -> list:
        """Stage g's training inputs from f's trained without each section's group
        (``train.cross_fit``); see :mod:`.cross_fit`."""
        groups = cross_fit_groups(len(train), self.t.cross_fit, self.t.cross_fit_block)
        only_f = self.t.model_copy(update={"regimen": "two_stage", "epochs_g": 0, "cross_fit": 0,
                                           "pretrain_epochs": 0})  # they start from the pretrained f

        def fit_f(model, sections, val_sections, group):
            extra = Trainer(model, only_f, self.classes, seed=self.seed + 7919 * (group + 1),
                            log=lambda line: self.log(f"  cross-fit {group + 1}: {line}"))
            extra.objective = self.objective  # the run's loss (only_f is a TrainConfig, without the target)
            extra.fit(sections, val_sections)

        return cross_fitted_outputs(self.model, self._f_init, train, val, groups, fit_f, self.t.amp, self.log)

    # ----------------------------------------------------------------- the run
    def _start(self, resume: bool) -> tuple[int, int, Optional[dict]]:
        """Where to start: ``(stage index, epoch, optimizer state)``, from ``last.pt`` or ``init_from``."""
        ckpt = self.files.load_resume(self.stages, self.device) if resume and self.files else None
        if ckpt is not None:
            self.model.load_state_dict(ckpt["model"])
            self.state = TrainingState.from_checkpoint(ckpt).share_frozen(self.model)
            idx, epoch = self.state.stage_index, self.state.epoch + 1
            self.log(f"resuming from {self.files.last} after {self.stages[idx]} epoch {epoch}")
            return idx, epoch, ckpt["optimizer"] if epoch > 0 else None
        if self.t.init_from and self.plans[0].carry_g_state:
            self._init_from(self.t.init_from)
        return 0, 0, None

    def _init_from(self, path) -> None:
        """fine_tune from a two-stage checkpoint: its weights and its g optimizer state."""
        ckpt = load_checkpoint(path, map_location=self.device)
        if self.files is not None:
            self.files.check_compatible(ckpt, path, MODEL_SECTIONS)
        elif list(ckpt["classes"]) != self.classes:
            raise ValueError(f"{path}: written for classes {ckpt['classes']}, this run has {self.classes}")
        self.model.load_state_dict(ckpt["model"])
        self.state.g_optimizer = ckpt.get("g_optimizer")
        if self.state.g_optimizer is None:
            raise ValueError(f"{path}: has no g optimizer state (field 'g_optimizer'); "
                             "fine_tune needs a last.pt written by a two_stage run")

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
        self._check_same_data(train, val)
        if self.files is not None and self.main:
            self.files.out_dir.mkdir(parents=True, exist_ok=True)
        start, first, opt_state = self._start(resume)
        if (start, first) == (0, 0) and self.t.pretrain_epochs:
            self._pretrain(train)
        if isinstance(getattr(self.model, "use_g", None), torch.Tensor):
            self.model.use_g.fill_(True)  # g trains, whatever a loaded checkpoint had kept
        for idx in range(start, len(self.plans)):
            plan = self.plans[idx]
            optimizer = make_optimizer(plan, self.model, self.t, self.state.g_optimizer)
            if idx == start and opt_state is not None:
                optimizer.load_state_dict(opt_state)
            self._run_stage(idx, plan, train, val, first if idx == start else 0, optimizer)
        if self.state.best is not None:
            self.model.load_state_dict(self.state.best["state"])
            self._log_choice()
        if self.files is not None and self.main:
            self.files.save_best(*self._best_model(), self.state.history)
        dist.barrier()  # best.pt is written before any rank goes on
        return self

    def _pretrain(self, train) -> None:
        """Self-supervised epochs of f on the training sections' patches (``train.pretrain_epochs``);
        every rank runs them alike (the first DDP epoch starts from rank 0's weights)."""
        with _seeded(self.seed * 1_000_003 - 1, self.device) as gen:
            pretrain_f(self.model, train, self.t.pretrain_epochs, self.t.pretrain_batch_size, lr=self.t.lr,
                       generator=gen, log=self.log, progress=self.progress)
        if self._f_init is not None:
            self._f_init = copy.deepcopy(self.model.f.state_dict())

    def _log_choice(self) -> None:
        """Say which model was kept: f + g, or f alone when g lowered the validation score."""
        best, key = self.state.best, self.score_key
        m = best["metrics"]
        g_score = m.get("g_off", m)[key]
        which = "f + g" if best.get("use_g", True) else "f alone (g switched off: it lowered the score)"
        self.log(f"kept {which}, from {best['stage']} epoch {best['epoch'] + 1}: validation {key} "
                 f"f {m[f'f_{key}']:.3f}, f+g {g_score:.3f}")

    def _check_same_data(self, train, val) -> None:
        """Distributed: refuse ranks that read different sections (they would train different models)."""
        if self.world == 1:
            return
        mine = [[(st.name, st.num_nodes) for st in split] for split in (train, val)]
        for r, theirs in enumerate(dist.all_gather_objects(mine)):
            if theirs != mine:
                raise ValueError(f"rank {r} read other training/validation sections than rank {self.rank} "
                                 "(every rank must read the same data; is the data folder shared?)")

    def _best_model(self) -> tuple[dict, dict]:
        """The best weights and their validation metrics (the current model before any epoch)."""
        best = self.state.best or {"state": self.model.state_dict(), "metrics": {}}
        return best["state"], best.get("metrics", {})

    def save_best(self, path) -> Path:
        """Write the best model (weights, config, classes, validation metrics) to ``path``
        (on rank 0 only when distributed; every rank returns the path)."""
        if not self.main:
            return Path(path)
        files = self.files or CheckpointManager(Path(path).parent, None, self.classes)
        return files.save_best(*self._best_model(), self.state.history, path=path)
