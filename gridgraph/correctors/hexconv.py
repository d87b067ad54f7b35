"""The GridNet paper's hexagonal corrector (GridNetHex's g) on HexagDLy convolutions.

Input graphs come from :func:`~gridgraph.graph.hex_graph`, whose ``grid_index`` is HexagDLy's
layout (:mod:`gridgraph.graph.hex_layout`): a ``kernel_size=1`` HexagDLy convolution then mixes
each spot with exactly its six Visium neighbours. HexagDLy's stride-1 path computes its padding
from each input's size, so grids of any (and varying) shape work; batches are padded at the
bottom and right only, which keeps every column's parity and hence the hexagonal neighbourhoods.
"""
from __future__ import annotations

from typing import Optional

import hexagdly
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..names import Layout
from .dense import DenseCorrector, GridLayer
from .registry import register_corrector

__all__ = ["HexConv2d", "HexConvCorrector"]


class HexConv2d(nn.Module):
    """Hexagonal convolution, stride 1: ``(B, C_in, H, W) -> (B, C_out, H, W)``.

    Wraps :class:`hexagdly.Conv2d` (weights initialised by HexagDLy, Kaiming normal) and keeps its
    own bias parameter, so the bias is an ordinary registered parameter (HexagDLy passes its bias
    through a plain dict, which parameter swapping or functional calls would not see).

    For ``kernel_size=1`` the forward pass is fused into two convolutions on the unpadded grid:
    HexagDLy's ``kernel0`` ``(C_out, C_in, 3, 1)`` over the cell's own column, and its ``kernel1``
    ``(C_out, C_in, 2, 2)`` over the two neighbouring columns (dilation 2), evaluated once for
    every row; odd columns, shifted half a cell down, read that side sum one row lower. Same
    weights and the same numbers as HexagDLy's forward (``fused=False``), with seven taps per
    cell and no column reordering.

    Args:
        in_channels, out_channels: channel counts.
        kernel_size: hexagonal rings covered (1: the cell and its 6 neighbours).
        bias: learnable bias (default ``True``, initialised to zero).
        fused: use the fused path when ``kernel_size=1`` (default ``True``).
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 1, bias: bool = True,
        fused: bool = True,
    ):
        super().__init__()
        self.hex = hexagdly.Conv2d(in_channels, out_channels, kernel_size=kernel_size, stride=1,
                                   bias=False)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.fused = bool(fused) and kernel_size == 1

    def _fused(self, x: Tensor) -> Tensor:
        own = F.conv2d(x, self.hex.kernel0, padding=(1, 0))
        # side[:, :, i, c]: the left and right neighbours in rows i - 1 and i, for i in 0..H
        side = F.conv2d(F.pad(x, (1, 1, 1, 1)), self.hex.kernel1, dilation=(1, 2))
        even_column = torch.arange(x.shape[-1], device=x.device) % 2 == 0
        return own + torch.where(even_column, side[..., :-1, :], side[..., 1:, :])

    def forward(self, x: Tensor) -> Tensor:
        out = self._fused(x) if self.fused else self.hex(x)
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)


class HexConvCorrector(DenseCorrector):
    """GridNetHex's corrector g for Visium-like hexagonal spot arrays.

    Layers (default, as the paper): HexConv K->32, HexConv 32->32, ReLU, HexConv 32->32,
    HexConv 32->32, ReLU, HexConv 32->K, each a HexagDLy ``Conv2d(kernel_size=1)``. Background
    cells are zeroed between layers (see :class:`~gridgraph.correctors.conv2d.GridLayer`).

    Args:
        num_classes: K, output channels.
        in_channels: input node-feature width (default K).
        hidden_channels: width of the hidden layers (default 32).
        num_layers: number of hexagonal convolutions (default 5).
        relu_every: a ReLU follows every ``relu_every``-th hidden layer (default 2, the paper's;
            1 puts one after every hidden layer).
        batch_norm: node-wise :class:`torch.nn.BatchNorm1d` after every hidden layer, with the
            right channel count (the original GridNetHex crashed with it switched on).
        kernel_size: HexagDLy kernel size of every layer (default 1).

    Only ``"hex"`` graphs are accepted: anything else raises :class:`ValueError`.

    Shapes: ``x`` ``(N, in_channels)``, ``graph`` a SpotGraph (or a collated batch) -> ``(N, K)``.
    """

    layouts = (Layout.HEX.value,)

    def __init__(
        self,
        num_classes: int,
        in_channels: Optional[int] = None,
        hidden_channels: int = 32,
        num_layers: int = 5,
        relu_every: int = 2,
        batch_norm: bool = False,
        kernel_size: int = 1,
    ):
        super().__init__(num_classes, in_channels)
        if num_layers < 1 or relu_every < 1 or kernel_size < 1:
            raise ValueError("num_layers, relu_every and kernel_size must be >= 1")
        self.hidden_channels = int(hidden_channels)
        self.batch_norm = bool(batch_norm)
        c_in = self.in_channels
        for i in range(num_layers):
            last = i == num_layers - 1
            c_out = self.num_classes if last else self.hidden_channels
            relu = not last and (i + 1) % relu_every == 0
            conv = HexConv2d(c_in, c_out, kernel_size)
            self.layers.append(GridLayer(conv, c_out, batch_norm and not last, relu=relu))
            c_in = c_out


register_corrector("hexconv", HexConvCorrector)
