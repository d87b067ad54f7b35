"""One section's patches, planned once: window -> colour table -> cut patches.

:class:`SectionPatchPlan` is the single place where a section's window becomes image pixels and
its colour table is fitted; training (:func:`~gridgraph.patches.prepare_section`, all patches at
once) and prediction (:func:`~gridgraph.workflows.predict_probabilities`, streamed chunks) both
cut through it, so a streamed section is cut and standardised exactly as the same section whole.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Iterator, Optional

import torch
from torch import Tensor

from . import stain
from .extract import iter_section_patches, section_patches
from .stain import apply_stain_table, channel_histograms, stain_sample, stain_table
from .window import Window

__all__ = ["SectionPatchPlan", "section_stain_table"]


def section_stain_table(section, patch_size: int, window_px: float, patches: Optional[Tensor] = None,
                        max_nodes: Optional[int] = None) -> Tensor:
    """The ``(3, 256)`` table that standardises ``section``'s patches, from
    :func:`~gridgraph.patches.stain.stain_sample`'s nodes (at most
    :data:`~gridgraph.patches.stain.SAMPLE_NODES`, or ``max_nodes``).

    Patches of at most :data:`~gridgraph.patches.stain.SAMPLE_PATCH` px are the sample
    themselves: taken from ``patches`` (all nodes, in order) when given, cut otherwise (the same
    pixels either way). Of larger patches only the centre is sampled, at the patches' own scale: a
    window of ``window_px * SAMPLE_PATCH / patch_size`` px resized to ``SAMPLE_PATCH`` px, cut in
    training and prediction alike, so the texture (and the SD) is that of the patches while a
    whole-slide image reads a fraction of their pixels.
    """
    sample_patch = stain.SAMPLE_PATCH  # read at call time: tests and benchmarks may change them
    idx = stain_sample(section.graph.num_nodes, stain.SAMPLE_NODES if max_nodes is None else max_nodes)
    if int(patch_size) > sample_patch:
        centre = float(window_px) * sample_patch / int(patch_size)
        patches = section_patches(section, sample_patch, window_px=centre, nodes=idx)
    elif patches is None:
        patches = section_patches(section, patch_size, window_px=window_px, nodes=idx)
    elif len(idx) < len(patches):
        patches = patches[idx]
    return stain_table(channel_histograms(patches))


@dataclass(frozen=True)
class SectionPatchPlan:
    """How one section's node patches are cut.

    Attributes:
        section: the :class:`~gridgraph.io.Section`.
        patch_size: side ``P`` of the patches.
        window: the :class:`~gridgraph.patches.window.Window` cut around each node (an automatic
            one takes the section's platform default).
        standardize: look the patches up in the section's colour table (:attr:`table`).
    """

    section: object
    patch_size: int
    window: Window
    standardize: bool = False

    def __repr__(self) -> str:
        return (f"SectionPatchPlan({getattr(self.section, 'name', self.section)!r}, patch_size={self.patch_size}, "
                f"window={self.window!r}, standardize={self.standardize})")

    @cached_property
    def window_px(self) -> float:
        """The window side in the section's image pixels."""
        return self.window.pixels(self.section)

    @cached_property
    def table(self) -> Optional[Tensor]:
        """The section's ``(3, 256)`` colour table (:func:`section_stain_table`), ``None``
        without ``standardize``."""
        if not self.standardize:
            return None
        return section_stain_table(self.section, self.patch_size, self.window_px)

    def all(self) -> Tensor:
        """``(N, 3, P, P)`` uint8 patches of every node, in node order, standardised when asked
        (the table then comes from these patches: no second cut)."""
        patches = section_patches(self.section, patch_size=self.patch_size, window_px=self.window_px)
        if not self.standardize:
            return patches
        if "table" not in self.__dict__:
            self.__dict__["table"] = section_stain_table(self.section, self.patch_size, self.window_px,
                                                         patches=patches)
        return apply_stain_table(patches, self.table)

    def chunks(self, chunk: int = 4096) -> Iterator[tuple[torch.Tensor, Tensor]]:
        """Yield ``(node indices, patches)`` chunks covering every node
        (:func:`~gridgraph.patches.extract.iter_section_patches`), each looked up in :attr:`table`
        as it is cut; equal to :meth:`all`'s rows, one chunk in memory at a time."""
        return iter_section_patches(self.section, self.patch_size, window_px=self.window_px, chunk=chunk,
                                    table=self.table)
