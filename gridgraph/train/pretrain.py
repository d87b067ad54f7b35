"""Self-supervised pretraining of f (SimCLR-style) on the patches of the training sections.

Labels are not used: each patch is seen as two random views (crop and resize, flip and turn,
colour change) and f's embedding, through a small projection head, is trained so that the two
views of one patch are closer to each other than to any other patch of the batch (NT-Xent).
The head is dropped afterwards; f's classifier is untouched.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..encoders import Encoder, encode
from ..patches import IMAGE, NodeInputs
from ..patches.transforms import random_color_jitter, random_dihedral

__all__ = ["random_crop_resize", "simclr_view", "nt_xent", "pretrain_f"]


def random_crop_resize(patches: Tensor, min_scale: float = 0.6, generator: Optional[torch.Generator] = None) -> Tensor:
    """``(B, 3, P, P)`` uint8 -> same shape: one random square crop per patch, of side
    ``s`` drawn once per batch in ``[ceil(min_scale * P), P]``, resized back to ``P`` (bilinear)."""
    if not 0 < min_scale <= 1:
        raise ValueError(f"min_scale must be in (0, 1], got {min_scale}")
    b, _, p, _ = patches.shape
    side = int(torch.randint(math.ceil(min_scale * p), p + 1, (1,), generator=generator))
    if side == p:
        return patches.clone()
    rows = torch.randint(0, p - side + 1, (b, 1), generator=generator) + torch.arange(side)
    cols = torch.randint(0, p - side + 1, (b, 1), generator=generator) + torch.arange(side)
    crops = patches[torch.arange(b)[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # (B, s, s, 3)
    crops = crops.permute(0, 3, 1, 2).float()
    return F.interpolate(crops, size=(p, p), mode="bilinear", align_corners=False).round_().clamp_(0, 255).to(torch.uint8)


def simclr_view(patches: Tensor, generator: Optional[torch.Generator] = None, jitter: float = 0.4,
                min_scale: float = 0.6) -> Tensor:
    """One random view of each uint8 patch: crop and resize, flip and turn, colour jitter."""
    view = random_dihedral(random_crop_resize(patches, min_scale, generator), generator)
    return random_color_jitter(view, jitter, generator)


def nt_xent(z1: Tensor, z2: Tensor, temperature: float = 0.2) -> Tensor:
    """Contrastive loss of two ``(B, E)`` projections of the same ``B`` patches: each of the
    ``2B`` vectors must pick its partner among the other ``2B - 1`` by cosine similarity over
    ``temperature`` (cross-entropy, averaged)."""
    if z1.shape != z2.shape or z1.shape[0] < 2:
        raise ValueError(f"nt_xent() needs two (B, E) batches with B >= 2, got {tuple(z1.shape)}, {tuple(z2.shape)}")
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = (z @ z.t() / temperature).fill_diagonal_(float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, partner)


def _images(sections: Sequence) -> list:
    out = []
    for st in sections:
        patches = st.patches
        if isinstance(patches, NodeInputs):
            if IMAGE not in patches:
                raise ValueError(f"section {st.name}: has no image patches to pretrain f on")
            patches = patches[IMAGE]
        out.append(patches)
    return out


def pretrain_f(model: nn.Module, sections: Sequence, epochs: int, batch_size: int = 256, lr: float = 1e-3,
               temperature: float = 0.2, generator: Optional[torch.Generator] = None,
               log: Callable[[str], None] = print, progress: bool = True) -> list:
    """Train ``model.f``'s embedding for ``epochs`` passes over every patch of ``sections``
    (:class:`~gridgraph.patches.SectionTensors`; labels unused) with :func:`nt_xent` on two
    :func:`simclr_view` views, through ``model.transform`` and ``model.chunk_size`` chunks (f is
    checkpointed like in training). Returns the mean loss of each epoch."""
    f = model.f
    if not isinstance(f, Encoder):
        raise ValueError(f"pretraining f needs an f with embed() (gridgraph.encoders.Encoder), got {type(f).__name__}")
    if epochs < 1 or batch_size < 2:
        raise ValueError(f"epochs must be >= 1 and batch_size >= 2, got {epochs}, {batch_size}")
    images = _images(sections)
    sizes = torch.tensor([len(p) for p in images])
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), sizes.cumsum(0)])
    total = int(offsets[-1])
    device = next(f.parameters()).device
    dim = f.embedding_dim
    head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 64)).to(device)
    optimizer = torch.optim.AdamW(list(f.parameters()) + list(head.parameters()), lr=lr, weight_decay=1e-4)
    was_training = f.training
    f.train()
    losses = []
    for epoch in range(epochs):
        order = torch.randperm(total, generator=generator)
        batches = [order[i: i + batch_size] for i in range(0, total, batch_size)]
        batches = [b for b in batches if len(b) >= 2]
        running = 0.0
        for batch in tqdm(batches, desc=f"pretrain f {epoch + 1}/{epochs}", disable=not progress, leave=False):
            which = torch.searchsorted(offsets, batch, right=True) - 1
            patches = torch.cat([images[s][batch[which == s] - offsets[s]] for s in which.unique().tolist()])
            views = [simclr_view(patches, generator) for _ in range(2)]
            z1, z2 = (head(encode(f.embed, v, model.chunk_size, model.checkpoint, model.transform, device))
                      for v in views)
            loss = nt_xent(z1, z2, temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running += float(loss.detach()) * len(batch)
        losses.append(running / sum(len(b) for b in batches))
        log(f"pretrain f epoch {epoch + 1}/{epochs}: contrastive loss {losses[-1]:.4f} over {total} patches")
    f.train(was_training)
    return losses
