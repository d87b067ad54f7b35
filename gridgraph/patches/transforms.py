"""Batch-time patch transforms: normalisation, dihedral and colour augmentation."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from .node_inputs import NodeInputs, map_image

#: ImageNet's channel mean and SD (0..1 RGB): the normalisation of f's input and of pretrained
#: backbones (:mod:`gridgraph.encoders.backbone`); the one copy of these numbers.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(
    patches: Tensor,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """uint8 ``(B, 3, P, P)`` in 0..255 -> float ``(B, 3, P, P)``, ``(x / 255 - mean) / std``
    (of the image part of a :class:`~gridgraph.patches.NodeInputs`)."""
    if isinstance(patches, NodeInputs):
        return map_image(patches, lambda p: normalize(p, mean, std, dtype))
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
    """Each patch of ``(B, C, P, P)`` gets its own random flip and quarter turn (8 outcomes); of
    a :class:`~gridgraph.patches.NodeInputs`, each patch of its image part."""
    if isinstance(patches, NodeInputs):
        return map_image(patches, lambda p: random_dihedral(p, generator))
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


def adjust_color(
    patches: Tensor, brightness: Tensor, contrast: Tensor, saturation: Tensor, channel_gain: Tensor
) -> Tensor:
    """Per-patch colour changes of uint8 ``(B, 3, P, P)`` patches, in this order:

    saturation (``gray + (x - gray) * saturation``, gray = channel mean per pixel), contrast about
    the patch's mean (``(x - m) * contrast + m``), ``+ brightness`` (0..255 units), then
    ``* channel_gain`` per channel. ``brightness``, ``contrast``, ``saturation``: ``(B,)``;
    ``channel_gain``: ``(B, 3)``. Returns uint8 of the same shape, rounded and clipped to 0..255.
    """
    if patches.dim() != 4 or patches.shape[1] != 3 or patches.dtype != torch.uint8:
        raise ValueError(f"patches must be uint8 with shape (B, 3, P, P), got {patches.dtype} "
                         f"{tuple(patches.shape)}")
    b = patches.shape[0]
    x = patches.float()
    gray = x.mean(dim=1, keepdim=True)
    x = gray + (x - gray) * saturation.view(b, 1, 1, 1)
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - m) * contrast.view(b, 1, 1, 1) + m + brightness.view(b, 1, 1, 1)
    x = x * channel_gain.view(b, 3, 1, 1)
    return x.round_().clamp_(0, 255).to(torch.uint8)


def random_color_jitter(
    patches: Tensor, strength: float = 0.3, generator: Optional[torch.Generator] = None
) -> Tensor:
    """Random :func:`adjust_color` per patch, every factor drawn uniformly around "no change".

    With ``s = strength``: saturation and contrast in ``1 +- s``, brightness in ``+- 60 s``,
    each channel's gain in ``1 +- s / 2``. Mimics stain and scanner differences between
    sections. uint8 ``(B, 3, P, P)`` -> same shape; ``strength=0`` returns the patches unchanged.
    Of a :class:`~gridgraph.patches.NodeInputs`, its image part.
    """
    if isinstance(patches, NodeInputs):
        return map_image(patches, lambda p: random_color_jitter(p, strength, generator))
    if strength < 0:
        raise ValueError(f"strength must be >= 0, got {strength}")
    if strength == 0:
        return patches
    b = patches.shape[0]

    def draw(*shape):
        return (torch.rand(*shape, generator=generator) * 2 - 1).to(patches.device)

    return adjust_color(patches, brightness=60 * strength * draw(b), contrast=1 + strength * draw(b),
                        saturation=1 + strength * draw(b), channel_gain=1 + strength / 2 * draw(b, 3))


class RandomColorJitter:
    """Module form of :func:`random_color_jitter`, uint8 ``(B, 3, P, P)`` -> same shape.

    Args:
        strength: size of the random changes (default 0.3; 0 leaves patches unchanged).
        generator: optional :class:`torch.Generator` for reproducible draws.
    """

    def __init__(self, strength: float = 0.3, generator: Optional[torch.Generator] = None):
        if strength < 0:
            raise ValueError(f"strength must be >= 0, got {strength}")
        self.strength = float(strength)
        self.generator = generator

    def __call__(self, patches: Tensor) -> Tensor:
        return random_color_jitter(patches, self.strength, self.generator)

    def __repr__(self) -> str:
        return f"RandomColorJitter(strength={self.strength})"
