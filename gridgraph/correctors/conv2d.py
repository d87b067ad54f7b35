"""The GridNet paper's Cartesian corrector g: a stack of dense convolutions."""
from __future__ import annotations

from typing import Optional, Sequence

from torch import nn

from .dense import DenseCorrector, GridLayer
from .registry import register_corrector

__all__ = ["Conv2dCorrector"]


class Conv2dCorrector(DenseCorrector):
    """The GridNet paper's corrector g on a Cartesian (or any grid-layout) graph.

    Layers (default): Conv 3x3 -> ReLU -> Conv 5x5 -> ReLU -> Conv 5x5 -> ReLU -> Conv 3x3, all
    with "same" padding; optional node-wise batch-norm before each ReLU. Background cells are
    zeroed between layers (see :class:`GridLayer`).

    Args:
        num_classes: K, output channels.
        in_channels: input node-feature width (default K).
        hidden_channels: width of the hidden layers. Default ``None`` means K, as in the paper,
            whose corrector keeps K channels throughout.
        kernel_sizes: one odd kernel size per layer (default ``(3, 5, 5, 3)``).
        batch_norm: add :class:`torch.nn.BatchNorm1d` over nodes after every hidden layer.
        bias: convolution bias (default ``True``).

    Accepts ``"cartesian"`` graphs and, as a plain square-kernel convolution on the HexagDLy grid,
    ``"hex"`` graphs; irregular graphs raise :class:`ValueError`.

    Shapes: ``x`` ``(N, in_channels)``, ``graph`` a SpotGraph (or a collated batch) -> ``(N, K)``.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: Optional[int] = None,
        hidden_channels: Optional[int] = None,
        kernel_sizes: Sequence[int] = (3, 5, 5, 3),
        batch_norm: bool = False,
        bias: bool = True,
    ):
        super().__init__(num_classes, in_channels)
        if len(kernel_sizes) == 0 or any(k % 2 == 0 or k < 1 for k in kernel_sizes):
            raise ValueError(f"kernel_sizes must be odd positive integers, got {kernel_sizes}")
        self.hidden_channels = int(num_classes if hidden_channels is None else hidden_channels)
        self.batch_norm = bool(batch_norm)
        n = len(kernel_sizes)
        c_in = self.in_channels
        for i, k in enumerate(kernel_sizes):
            last = i == n - 1
            c_out = self.num_classes if last else self.hidden_channels
            conv = nn.Conv2d(c_in, c_out, int(k), padding=int(k) // 2, bias=bias)
            self.layers.append(GridLayer(conv, c_out, batch_norm and not last, relu=not last))
            c_in = c_out


register_corrector("conv2d", Conv2dCorrector)
