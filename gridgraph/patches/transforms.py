"""Batch-time patch transforms: normalisation and dihedral augmentation."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(
    patches: Tensor,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """uint8 ``(B, 3, P, P)`` in 0..255 -> float ``(B, 3, P, P)``, ``(x / 255 - mean) / std``."""
    if patches.dim() != 4 or patches.shape[1] != 3:
        raise ValueError(f"patches must have shape (B, 3, P, P), got {tuple(patches.shape)}")
    m = torch.as_tensor(mean, dtype=dtype, device=patches.device).view(1, 3, 1, 1)
    s = torch.as_tensor(std, dtype=dtype, device=patches.device).view(1, 3, 1, 1)
    x = patches.to(dtype)
    if patches.dtype == torch.uint8:
        x = x / 255.0
    return (x - m) / s


class Normalize:
    """Module form of :func:`normalize` (ImageNet mean and std by default).

    Input ``(B, 3, P, P)`` uint8 (or float in 0..1); output float32 of the same shape.
    """

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(self, patches: Tensor) -> Tensor:
        return normalize(patches, self.mean, self.std)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


def dihedral(patches: Tensor, k: int, flip: bool) -> Tensor:
    """Rotate ``(..., P, P)`` by ``k`` quarter turns (counter-clockwise), after a horizontal flip."""
    if flip:
        patches = patches.flip(-1)
    return torch.rot90(patches, k % 4, dims=(-2, -1))


def random_dihedral(patches: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
    """Each patch of ``(B, C, P, P)`` gets its own random flip and quarter turn (8 outcomes)."""
    codes = torch.randint(0, 8, (patches.shape[0],), generator=generator)
    out = torch.empty_like(patches)
    for code in codes.unique().tolist():
        sel = (codes == code).nonzero().squeeze(1).to(patches.device)
        out[sel] = dihedral(patches[sel], code % 4, code >= 4)
    return out


class RandomDihedral:
    """Random flips and 90 degree rotations of each patch, ``(B, C, P, P)`` -> same shape.

    Args:
        generator: optional :class:`torch.Generator` for reproducible draws.
    """

    def __init__(self, generator: Optional[torch.Generator] = None):
        self.generator = generator

    def __call__(self, patches: Tensor) -> Tensor:
        return random_dihedral(patches, self.generator)

    def __repr__(self) -> str:
        return "RandomDihedral()"


def standardize_stain(
    patches: Tensor, mean: Sequence[float] = (160.0, 110.0, 160.0), std: Sequence[float] = (40.0, 40.0, 30.0)
) -> Tensor:
    """Map one section's uint8 patches so each channel has the given mean and SD over the section.

    A per-section linear colour map: it removes stain and scanner differences between sections
    (and donors) that f would otherwise learn as if they were tissue classes. ``(N, 3, P, P)``
    uint8 -> same shape uint8 (clipped). A constant channel is only shifted.
    """
    if patches.dim() != 4 or patches.shape[1] != 3:
        raise ValueError(f"patches must have shape (N, 3, P, P), got {tuple(patches.shape)}")
    x = patches.float()
    m = x.mean(dim=(0, 2, 3), keepdim=True)
    s = x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    target_m = torch.as_tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    target_s = torch.as_tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    scale = torch.where(s > 1e-3, target_s / s, torch.ones_like(s))
    return ((x - m) * scale + target_m).round_().clamp_(0, 255).to(torch.uint8)
