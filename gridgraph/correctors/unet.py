"""A U-Net corrector: a receptive field as large as the section, for layer order from context.

The paper's correctors see a few spots around each node (hexconv: 5 rings). Cortical layers are
bands whose identity depends on where a spot lies between the pial surface and the white matter,
tens of spots away. :class:`UNetCorrector` downsamples the dense grid of a grid-layout graph three
times (by default), which lets a spot see about 40 cells in every direction (most of a Visium
slide), and it is given the foreground mask as an extra channel, so the tissue edge is visible.
Unlike :class:`~.dense.GridLayer` stacks, background cells carry features between layers:
context flows across gaps in the tissue.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..graph.dense import foreground_mask, from_dense, to_dense
from .dense import GridCorrector
from .registry import register_corrector

__all__ = ["UNetCorrector"]


def _block(c_in: int, c_out: int) -> nn.Sequential:
    groups = next(g for g in (8, 4, 2, 1) if c_out % g == 0)
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(groups, c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1), nn.GroupNorm(groups, c_out), nn.ReLU(inplace=True),
    )


class UNetCorrector(GridCorrector):
    """U-Net over the dense grid of a ``"cartesian"`` or ``"hex"`` graph.

    Per level: two 3x3 convolutions with GroupNorm and ReLU; 2x2 max-pooling down, a 2x2
    transposed convolution up, skip connections by concatenation; a 1x1 head gives K logits per
    cell, gathered at the nodes. On hex graphs the 3x3 kernels run on HexagDLy's offset array
    (learned, not hexagonally symmetric); whole-section augmentation with
    :class:`~gridgraph.graph.symmetry.RandomLatticeSymmetry` teaches it the lattice's symmetries.

    Args:
        num_classes: K, output channels.
        in_channels: input node-feature width (default K).
        base_channels: channels of the first level, doubled at each level down (default 16).
        depth: number of 2x downsamplings (default 3: the bottleneck sees 8x8 cells per unit).
        mask_channel: append the foreground mask as an input channel (default ``True``).
        dropout: channel dropout before the head (default 0).

    The grid is zero-padded at the bottom and right to a multiple of ``2 ** depth`` and cropped
    back. GroupNorm statistics cover the whole grid, so a section's output is the same alone or
    in a batch of sections with its grid shape, and can differ slightly when a batch pads it.

    Shapes: ``x`` ``(N, in_channels)``, ``graph`` a SpotGraph (or a collated batch) -> ``(N, K)``.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: Optional[int] = None,
        base_channels: int = 16,
        depth: int = 3,
        mask_channel: bool = True,
        dropout: float = 0.0,
    ):
        super().__init__(num_classes, in_channels)
        if depth < 0 or base_channels < 1:
            raise ValueError(f"depth must be >= 0 and base_channels >= 1, got {depth}, {base_channels}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.base_channels, self.depth = int(base_channels), int(depth)
        self.mask_channel = bool(mask_channel)
        widths = [self.base_channels * 2 ** i for i in range(self.depth + 1)]
        c_in = self.in_channels + int(self.mask_channel)
        self.down = nn.ModuleList(
            [_block(c_in, widths[0])] + [_block(widths[i], widths[i + 1]) for i in range(self.depth)]
        )
        self.up = nn.ModuleList(
            [nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in range(self.depth)]
        )
        self.merge = nn.ModuleList([_block(2 * widths[i], widths[i]) for i in range(self.depth)])
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Conv2d(widths[0], self.num_classes, 1)

    def forward_grid(self, h: Tensor) -> Tensor:
        """``(B, C_in, H, W)`` -> ``(B, K, H, W)`` logits; H and W divisible by ``2 ** depth``."""
        skips = []
        for level, block in enumerate(self.down):
            h = block(F.max_pool2d(h, 2) if level else h)
            skips.append(h)
        for level in reversed(range(self.depth)):
            h = self.merge[level](torch.cat([self.up[level](h), skips[level]], dim=1))
        return self.head(self.dropout(h))

    def forward(self, x: Tensor, graph) -> Tensor:
        """``(N, in_channels)`` node features -> ``(N, num_classes)`` node logits."""
        self.check_graph(graph)
        self._check_features(x, graph.num_nodes)
        h = to_dense(x, graph)
        if self.mask_channel:
            h = torch.cat([h, foreground_mask(graph).to(h.device, h.dtype)], dim=1)
        step = 2 ** self.depth
        height, width = h.shape[-2:]
        pad_h, pad_w = -height % step, -width % step
        out = self.forward_grid(F.pad(h, (0, pad_w, 0, pad_h)))
        return from_dense(out[..., :height, :width], graph)

    def output_layer(self) -> nn.Module:
        return self.head

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, base_channels={self.base_channels}, depth={self.depth}, "
                f"mask_channel={self.mask_channel}")


register_corrector("unet", UNetCorrector)
