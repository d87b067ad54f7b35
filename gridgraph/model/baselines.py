"""Comparison models. ``resnet34_seg``: the GridNet paper's ResNet-34-Seg baseline.

Instead of classifying each patch, it segments the stitched image of all patches laid on the
grid: ``(B, 3, H*P, W*P)`` -> ResNet-34 trunk (filters cut by four, with batch-norm) ->
adaptive average pool to ``(H, W)`` -> 1x1 convolution to K classes -> ``(B, K, H, W)`` logits,
gathered at the nodes with :func:`~gridgraph.graph.dense.from_dense`.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple, Union

from torch import Tensor, nn

from ..encoders.gridnet_simple import make_stage
from ..graph.dense import from_dense
from ..graph.spot_graph import SpotGraph
from ..patches.transforms import normalize

__all__ = ["ResNetSeg", "resnet34_seg", "stitch_patches"]


def stitch_patches(
    patches: Tensor,
    graph: SpotGraph,
    transform: Optional[Callable[[Tensor], Tensor]] = normalize,
) -> Tensor:
    """Lay node patches on the grid: ``(N, 3, P, P)`` -> ``(B, 3, H*P, W*P)`` float.

    Patch of node ``i`` fills the block at ``grid_index[i]`` of its section; cells without a
    node are 0 after ``transform`` (i.e. the ImageNet mean colour by default). On the HexagDLy
    grid of a hex graph the half-cell shift of odd columns is ignored (a plain Cartesian tiling).
    """
    if graph.grid_index is None:
        raise ValueError(f"stitching needs a grid layout, got a graph of layout {graph.layout!r}")
    if patches.shape[0] != graph.num_nodes:
        raise ValueError(f"got {patches.shape[0]} patches for {graph.num_nodes} nodes")
    x = transform(patches) if transform is not None else patches.float()
    n, c, p, q = x.shape
    h, w = graph.grid_shape
    b = graph.num_graphs
    gi = graph.grid_index.to(x.device)
    flat = graph.node_batch().to(x.device) * (h * w) + gi[:, 0] * w + gi[:, 1]
    cells = x.new_zeros(b * h * w, c, p, q).index_copy(0, flat, x)
    # (B, H, W, C, P, Q) -> (B, C, H, P, W, Q) -> (B, C, H*P, W*Q)
    return cells.view(b, h, w, c, p, q).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h * p, w * q)


class ResNetSeg(nn.Module):
    """ResNet trunk + adaptive average pool to the grid + 1x1 convolution.

    Args:
        num_classes: K.
        grid_shape: ``(H, W)`` of the output grid (the pool's target size).
        blocks: basic blocks per stage (default ``(3, 4, 6, 3)``, ResNet-34).
        stage_channels: stage widths (default ``(16, 32, 64, 128)``, ResNet-34's cut by four).
        stem_channels: width of the 7x7/2 stem (default 64, as in GridNetSimple).

    ``forward(image)``: ``(B, 3, H*P, W*P)`` -> ``(B, K, H, W)``; ``forward(image, graph)``
    gathers the node logits ``(N, K)``. :meth:`forward_patches` stitches node patches first.
    """

    def __init__(
        self,
        num_classes: int,
        grid_shape: Tuple[int, int],
        blocks: Sequence[int] = (3, 4, 6, 3),
        stage_channels: Sequence[int] = (16, 32, 64, 128),
        stem_channels: int = 64,
    ):
        super().__init__()
        self.num_classes = int(num_classes)
        self.grid_shape = (int(grid_shape[0]), int(grid_shape[1]))
        layers: list = [
            nn.Conv2d(3, stem_channels, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(stem_channels),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        ]
        c = stem_channels
        for i, (width, n) in enumerate(zip(stage_channels, blocks)):
            layers.append(make_stage(c, width, n, 1 if i == 0 else 2, nn.BatchNorm2d))
            c = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(self.grid_shape)
        self.classifier = nn.Conv2d(c, self.num_classes, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, image: Tensor, graph: Optional[SpotGraph] = None) -> Tensor:
        dense = self.classifier(self.pool(self.features(image)))
        return dense if graph is None else from_dense(dense, graph)

    def forward_patches(self, patches: Tensor, graph: SpotGraph,
                        transform: Optional[Callable[[Tensor], Tensor]] = normalize) -> Tensor:
        """Node patches ``(N, 3, P, P)`` + graph -> node logits ``(N, K)``.

        The graph's ``grid_shape`` must equal this model's ``grid_shape``.
        """
        if tuple(graph.grid_shape or ()) != self.grid_shape:
            raise ValueError(f"graph grid_shape {graph.grid_shape} != model's {self.grid_shape}")
        return self(stitch_patches(patches, graph, transform), graph)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, grid_shape={self.grid_shape}"


def resnet34_seg(num_classes: int, grid_shape: Union[Tuple[int, int], Sequence[int]],
                 **kwargs) -> ResNetSeg:
    """The GridNet paper's ResNet-34-Seg baseline (see :class:`ResNetSeg`)."""
    return ResNetSeg(num_classes, tuple(grid_shape), **kwargs)
