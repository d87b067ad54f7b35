"""The epoch loops: f alone on shuffled patch minibatches, and whole sections with accumulation."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..encoders import encode
from ..inference import autocast
from ..patches import SectionTensors, random_color_jitter, random_dihedral

__all__ = ["masked_cross_entropy", "PatchAugment", "patch_epoch", "section_epoch"]


def masked_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over labeled nodes (label ``-1`` ignored); 0 if none is labeled."""
    if not (labels >= 0).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), labels, ignore_index=-1)


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


def _minibatches(sections: Sequence[SectionTensors], batch_size: int, gen: torch.Generator):
    """Shuffled ``(patches, labels)`` minibatches over the labeled nodes of all sections."""
    labeled = [torch.nonzero(st.labels >= 0)[:, 0] for st in sections]
    sec = torch.cat([torch.full((len(n),), i) for i, n in enumerate(labeled)])
    node = torch.cat(labeled)
    order = torch.randperm(len(node), generator=gen)
    for start in range(0, len(order), batch_size):
        pick = order[start: start + batch_size]
        s, n = sec[pick], node[pick]
        parts = [(sections[i].patches[n[s == i]], sections[i].labels[n[s == i]]) for i in s.unique().tolist()]
        yield torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def patch_epoch(model, sections: Sequence[SectionTensors], optimizer, gen: torch.Generator, *,
                batch_size: int, augment: PatchAugment, amp: bool = False, progress: bool = False) -> float:
    """One epoch of f alone over shuffled minibatches of labeled patches; the mean loss."""
    model.train()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    num_batches = -(-sum(int((st.labels >= 0).sum()) for st in sections) // batch_size)
    for x, y in tqdm(_minibatches(sections, batch_size, gen), total=num_batches, desc="f",
                     leave=False, disable=not progress):
        x = augment(x, gen)
        with autocast(device, amp):
            logits = encode(model.f, x, chunk_size=None, checkpoint=False, transform=model.transform,
                            device=device)
        loss = masked_cross_entropy(logits, y.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(y)
        count += len(y)
    return total / max(count, 1)


def section_epoch(model, sections: Sequence[SectionTensors], optimizer, gen: torch.Generator,
                  forward: Callable[[int, SectionTensors], torch.Tensor], *, accumulate: int = 1,
                  progress: bool = False) -> tuple[float, int]:
    """One epoch over whole sections in random order, stepping every ``accumulate`` sections and
    at the end; ``forward(k, section)`` gives the section's node logits. Returns
    ``(mean loss, optimizer steps)``."""
    model.train()
    device = next(model.parameters()).device
    order = torch.randperm(len(sections), generator=gen).tolist()
    optimizer.zero_grad(set_to_none=True)
    total, pending, steps = 0.0, 0, 0
    for k in tqdm(order, desc="sections", leave=False, disable=not progress):
        st = sections[k]
        loss = masked_cross_entropy(forward(k, st), st.labels.to(device))
        (loss / accumulate).backward()
        total += loss.item()
        pending += 1
        if pending == accumulate:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            pending, steps = 0, steps + 1
    if pending:
        # The last group is smaller: rescale so its step averages its own sections.
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad.mul_(accumulate / pending)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        steps += 1
    return total / max(len(order), 1), steps
