"""The model: f (patch encoder) followed by g (corrector) on the nodes' graph, and the paper's baseline.

:class:`GridGraphNet` (``net.py``), :func:`build_model` from registry names (``build.py``),
:func:`resnet34_seg`, the GridNet paper's ResNet-34-Seg comparison (``baselines.py``).
"""
from .baselines import ResNetSeg, resnet34_seg, stitch_patches
from .build import build_model
from .net import GridGraphNet, GridGraphOutput

__all__ = ["GridGraphNet", "GridGraphOutput", "build_model", "ResNetSeg", "resnet34_seg", "stitch_patches"]
