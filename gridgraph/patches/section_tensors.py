"""A section ready for f and g: its node patches (uint8), graph and labels."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..graph.spot_graph import SpotGraph
from ..io.images.image import LazyImage
from ..io.section import Section
from .plan import SectionPatchPlan
from .window import Window

__all__ = ["SectionTensors", "prepare_section"]


@dataclass
class SectionTensors:
    """What training and inference need of one section.

    ``patches`` ``(N, 3, P, P)`` uint8 in node order, ``graph`` the section's
    :class:`SpotGraph`, ``labels`` ``(N,)`` long (``-1``: unlabeled), optionally the
    :class:`Section` it came from (for figures) and, for a continuous target (gene expression),
    ``targets`` ``(N, G)`` float32 (a row of NaN: a node without counts).
    """

    name: str
    patches: torch.Tensor
    graph: SpotGraph
    labels: torch.Tensor
    section: Optional[Section] = None
    targets: Optional[torch.Tensor] = None

    @property
    def num_nodes(self) -> int:
        return self.graph.num_nodes

    def __repr__(self) -> str:
        return (
            f"SectionTensors({self.name!r}, num_nodes={self.num_nodes}, "
            f"patches={getattr(self.patches, 'shape', None) and tuple(self.patches.shape) or self.patches!r}, "
            f"labeled={int((self.labels >= 0).sum())})"
        )


def prepare_section(section: Section, patch_size: int, window_spots: Optional[float] = None,
                    window_px: Optional[float] = None, window_um: Optional[float] = None,
                    standardize: bool = False, keep_section: bool = True,
                    window: Optional[Window] = None) -> SectionTensors:
    """Cut the section's node patches (uint8) and pair them with its graph and labels.

    Give exactly one window: one of the three units (see
    :meth:`~gridgraph.patches.window.Window.pixels`) or a
    :class:`~gridgraph.patches.window.Window` (an automatic one takes the section's platform
    default). ``standardize`` applies one linear colour map to the whole section
    (:class:`~gridgraph.patches.plan.SectionPatchPlan`: the same map a streamed prediction of the
    section uses).
    """
    if section.graph.num_nodes == 0:
        raise ValueError(f"section {section.name}: has no nodes (no spots or nuclei were read)")
    if window is None:
        window = Window.from_fields(window_px, window_um, window_spots)
    elif any(v is not None for v in (window_px, window_um, window_spots)):
        raise ValueError("give one window: window, or one of window_px, window_um, window_spots")
    patches = SectionPatchPlan(section, patch_size, window, standardize).all()
    if isinstance(section.image, LazyImage):
        section.image.release()
    return SectionTensors(name=section.name, patches=patches, graph=section.graph,
                          labels=section.labels, section=section if keep_section else None)
