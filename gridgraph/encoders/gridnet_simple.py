"""GridNetSimple: the GridNet paper's patch classifier f.

A ResNet-18 with every batch-norm removed and the filters of each residual stage cut by four
(Daly, Geras & Bonneau, 2020). Layout::

    stem    conv 7x7/2, 3 -> 64, ReLU, max-pool 3x3/2
    layer1  2 basic blocks, 16 channels, stride 1   (1x1 projection 64 -> 16 in the first block)
    layer2  2 basic blocks, 32 channels, stride 2
    layer3  2 basic blocks, 64 channels, stride 2
    layer4  2 basic blocks, 128 channels, stride 2
    global average pool -> (B, 128) embedding -> linear -> (B, K) logits

Convolutions have no bias; the classifier has one.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import Tensor, nn

__all__ = ["BasicBlock", "GridNetSimple", "gridnet_simple"]


def _conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(
        in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False
    )


class BasicBlock(nn.Module):
    """Residual block of two 3x3 convolutions, ``(B, C_in, H, W) -> (B, C_out, H/s, W/s)``.

    Args:
        in_channels, out_channels: channel counts.
        stride: stride of the first convolution (and of the projection).
        norm_layer: ``norm_layer(channels)`` after each convolution; ``None`` (default) for none,
            as in GridNetSimple; :class:`torch.nn.BatchNorm2d` gives torchvision's block.

    A 1x1 convolution projects the shortcut whenever the shape changes.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        norm_layer: Optional[Callable[[int], nn.Module]] = None,
    ):
        super().__init__()
        norm = norm_layer if norm_layer is not None else (lambda c: nn.Identity())
        self.conv1 = _conv(in_channels, out_channels, 3, stride)
        self.bn1 = norm(out_channels)
        self.conv2 = _conv(out_channels, out_channels, 3)
        self.bn2 = norm(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                _conv(in_channels, out_channels, 1, stride), norm(out_channels)
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


def make_stage(
    in_channels: int,
    out_channels: int,
    blocks: int,
    stride: int,
    norm_layer: Optional[Callable[[int], nn.Module]] = None,
) -> nn.Sequential:
    """``blocks`` :class:`BasicBlock` s, the first one with ``stride``."""
    layers = [BasicBlock(in_channels, out_channels, stride, norm_layer)]
    layers += [BasicBlock(out_channels, out_channels, 1, norm_layer) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class GridNetSimple(nn.Module):
    """Patch classifier ``(B, 3, P, P)`` float -> ``(B, num_classes)`` logits.

    Args:
        num_classes: K, the number of output classes.
        stage_channels: widths of the four residual stages (default ``(16, 32, 64, 128)``,
            ResNet-18's widths cut by four).
        stem_channels: width of the 7x7 stem (default 64).
        blocks: basic blocks per stage (default ``(2, 2, 2, 2)``).

    Attributes:
        features: the convolutional trunk, ``(B, 3, P, P) -> (B, D, P/32, P/32)``.
        classifier: :class:`torch.nn.Linear` ``D -> K``.
        embedding_dim: D, width of :meth:`embed` (the last stage's width, 128 by default).
        num_classes: K.
    """

    def __init__(
        self,
        num_classes: int,
        stage_channels: Sequence[int] = (16, 32, 64, 128),
        stem_channels: int = 64,
        blocks: Sequence[int] = (2, 2, 2, 2),
    ):
        super().__init__()
        if len(stage_channels) != len(blocks):
            raise ValueError("stage_channels and blocks must have the same length")
        self.num_classes = int(num_classes)
        layers: list[nn.Module] = [
            _conv(3, stem_channels, 7, stride=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        ]
        c = stem_channels
        for i, (width, n) in enumerate(zip(stage_channels, blocks)):
            layers.append(make_stage(c, width, n, stride=1 if i == 0 else 2))
            c = width
        self.features = nn.Sequential(*layers)
        self.embedding_dim = c
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, self.num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        # Without batch-norm, halve the residual branch's last conv so activations stay bounded.
        for m in self.modules():
            if isinstance(m, BasicBlock):
                with torch.no_grad():
                    m.conv2.weight.mul_(0.5)

    def embed(self, x: Tensor) -> Tensor:
        """``(B, 3, P, P)`` -> ``(B, embedding_dim)`` globally pooled features."""
        return torch.flatten(self.pool(self.features(x)), 1)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, 3, P, P)`` -> ``(B, num_classes)`` logits."""
        return self.classifier(self.embed(x))

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, embedding_dim={self.embedding_dim}"


def gridnet_simple(num_classes: int, **kwargs) -> GridNetSimple:
    """The GridNet paper's GridNetSimple patch classifier (see :class:`GridNetSimple`)."""
    return GridNetSimple(num_classes, **kwargs)
