"""The epoch loops: f alone on shuffled patch minibatches, and whole sections with accumulation.

Both loops run on one process or on every rank of a torchrun job alike (see
:mod:`gridgraph.distributed.sampler`): the epoch's order of items is drawn once from the epoch's
generator, cut into optimizer steps of ``per_rank * world`` items, and each rank trains on its
part of every step. Each item's randomness (augmentation, dropout) comes from its own seed,
drawn from the epoch's generator by its position in the order, so it does not depend on which
rank takes the item: N ranks with ``per_rank`` items per step train exactly as one process with
``N * per_rank`` items per step (up to float rounding; batch-norm in stage f aside, whose batch
statistics are per rank's part of a minibatch).
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Sequence

import torch
from tqdm.auto import tqdm

from ..distributed import Replica, step_plan, sum_over_ranks
from ..encoders import encode
from ..encoders.encode import preserve_batchnorm_stats
from ..inference import autocast
from ..patches import SectionTensors, random_color_jitter, random_dihedral
from .objective import Objective, masked_cross_entropy

__all__ = ["masked_cross_entropy", "PatchAugment", "patch_epoch", "section_epoch", "item_seeds", "seeded_item"]


class PatchAugment:
    """f's training patches: random dihedral turns (``dihedral``) then colour jitter of
    ``color_jitter`` strength (0: off). ``(B, 3, P, P)`` uint8 -> the same shape and dtype."""

    def __init__(self, dihedral: bool = True, color_jitter: float = 0.0):
        self.dihedral, self.color_jitter = bool(dihedral), float(color_jitter)

    def __call__(self, patches: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if self.dihedral:
            patches = random_dihedral(patches, gen)
        return random_color_jitter(patches, self.color_jitter, gen)

    def __repr__(self) -> str:
        return f"PatchAugment(dihedral={self.dihedral}, color_jitter={self.color_jitter})"


def item_seeds(n: int, gen: torch.Generator) -> list:
    """``n`` seeds drawn from the epoch's generator, one per position in the epoch's order."""
    return torch.randint(0, 2**62, (n,), generator=gen).tolist()


@contextlib.contextmanager
def seeded_item(seed: int) -> Iterator[torch.Generator]:
    """Seed the global RNGs (dropout) with ``seed`` and yield a generator seeded alike.

    Called inside the trainer's forked RNG of the epoch, so the caller's RNG state is untouched.
    """
    torch.manual_seed(seed)
    yield torch.Generator().manual_seed(seed)


def _labeled_nodes(sections: Sequence[SectionTensors], objective: Objective) -> tuple[torch.Tensor, torch.Tensor]:
    """``(section index, node index)`` of every labeled node (with a target), sections in order."""
    labeled = [torch.nonzero(objective.known(objective.truth(st)))[:, 0] for st in sections]
    sec = torch.cat([torch.full((len(n),), i) for i, n in enumerate(labeled)])
    return sec, torch.cat(labeled)


def _batch(sections, sec: torch.Tensor, node: torch.Tensor, objective: Objective) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``(patches, labels)`` (or targets) of the picked nodes, grouped by section (in section order)."""
    parts = [(sections[i].patches[node[sec == i]], objective.truth(sections[i])[node[sec == i]])
             for i in sec.unique().tolist()]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _pin(x: torch.Tensor, device: torch.device, pin: bool) -> torch.Tensor:
    return x.pin_memory() if pin and device.type == "cuda" else x


def patch_epoch(model, sections: Sequence[SectionTensors], optimizer, gen: torch.Generator, *,
                batch_size: int, augment: PatchAugment, amp: bool = False, progress: bool = False,
                replica: Replica = None, pin_memory: bool = False, label_smoothing: float = 0.0,
                objective: Objective = None) -> float:
    """One epoch of f alone over shuffled minibatches of labeled patches; the mean loss (over
    all ranks' patches).

    ``batch_size`` patches per rank and step: each step takes ``batch_size * world`` patches of
    the epoch's order, augments them as one minibatch (every rank alike, from the step's seed)
    and each rank trains f on its contiguous part; the loss is scaled so that DDP's average is
    the mean over the whole minibatch. ``replica``: the model as :class:`~gridgraph.distributed.Replica`
    (default: ``model`` alone). ``pin_memory``: page-locked host patches for asynchronous copies
    to a GPU. ``label_smoothing``: of the cross-entropy. ``objective``: what is fitted (default
    the labels, cross-entropy with ``label_smoothing``; see :class:`~.objective.Objective`).
    """
    objective = objective or Objective(label_smoothing=label_smoothing)
    replica = replica or Replica(model)
    model.train()
    device = next(model.parameters()).device
    sec, node = _labeled_nodes(sections, objective)
    order = torch.randperm(len(node), generator=gen)
    steps = step_plan(len(node), batch_size, replica.rank, replica.world)
    seeds = item_seeds(len(steps), gen)
    total, count = 0.0, 0
    for step in tqdm(steps, desc="f", leave=False, disable=not progress):
        pick = order[step.start: step.start + step.size]
        x, y = _batch(sections, sec[pick], node[pick], objective)
        with seeded_item(seeds[step.index]) as item_gen:
            x = augment(x, item_gen)
        lo, hi = step.mine.start - step.start, step.mine.stop - step.start
        real = hi > lo
        if not real:  # fewer patches than ranks in the last step: a zero-weight pass keeps DDP in step
            lo, hi = 0, 1
        xs, ys = _pin(x[lo:hi], device, pin_memory), y[lo:hi].to(device, non_blocking=True)

        def run(m, xs=xs):
            f = getattr(m.f, "member_logits", m.f)  # an f ensemble: (M, B, K), each member its own loss
            with autocast(device, amp):
                return encode(f, xs, chunk_size=None, checkpoint=False, transform=m.transform, device=device)

        with contextlib.nullcontext() if real else preserve_batchnorm_stats(model):
            logits = replica(run)
            loss = objective(logits, ys)
        scale = (hi - lo) * replica.world / step.size if real else 0.0
        optimizer.zero_grad(set_to_none=True)
        (loss * scale if scale != 1.0 else loss).backward()
        optimizer.step()
        if real:
            total += loss.item() * (hi - lo) / (logits.shape[0] if logits.dim() == 3 else 1)  # per member
            count += hi - lo
    total, count = sum_over_ranks(total, count)
    return total / max(count, 1)


def section_epoch(model, sections: Sequence[SectionTensors], optimizer, gen: torch.Generator,
                  forward: Callable[..., torch.Tensor], *, accumulate: int = 1,
                  progress: bool = False, replica: Replica = None,
                  label_smoothing: float = 0.0, objective: Objective = None) -> tuple[float, int]:
    """One epoch over whole sections in random order, one optimizer step every ``accumulate``
    sections per rank (``accumulate * world`` sections per step) and at the end.

    ``forward(m, k, section, gen)`` gives section ``k``'s node logits (``(N, K)``, or ``(M, N, K)``
    for an ensemble's members) computed with the model
    ``m`` it is handed (the DDP-wrapped call when distributed) and the section's own generator.
    Each step averages the loss of its own sections (the last, shorter step too); gradients are
    all-reduced once per step (``no_sync`` before). Returns ``(mean loss over all sections,
    optimizer steps)``. ``objective``: as :func:`patch_epoch`'s.
    """
    objective = objective or Objective(label_smoothing=label_smoothing)
    replica = replica or Replica(model)
    model.train()
    device = next(model.parameters()).device
    order = torch.randperm(len(sections), generator=gen).tolist()
    seeds = item_seeds(len(sections), gen)
    optimizer.zero_grad(set_to_none=True)
    total, steps = 0.0, 0
    plan = step_plan(len(sections), accumulate, replica.rank, replica.world)
    bar = tqdm(total=len(sections), desc="sections", leave=False, disable=not progress)
    for step in plan:
        # A rank without a section in the last, short step makes a zero-weight pass so that
        # every rank joins the step's all-reduce.
        mine = list(step.mine) or [step.start]
        for j, pos in enumerate(mine):
            real = bool(step.mine)
            k = order[pos]
            st = sections[k]
            with replica.accumulating(last=j == len(mine) - 1):
                with seeded_item(seeds[pos]) as item_gen, \
                        contextlib.nullcontext() if real else preserve_batchnorm_stats(model):
                    logits = replica(lambda m: forward(m, k, st, item_gen))
                loss = objective(logits, objective.truth(st).to(device))
                (loss * (replica.world / step.size if real else 0.0)).backward()
            if real:
                total += loss.item() / (logits.shape[0] if logits.dim() == 3 else 1)  # per member
        bar.update(step.size)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        steps += 1
    bar.close()
    (total,) = sum_over_ranks(total)
    return total / max(len(sections), 1), steps
