"""Which kind of tissue map a model was trained on, and whether a new section is of that kind.

A checkpoint records the graph layouts (hex, cartesian, irregular) and node kinds of its
training sections (:func:`platform_record`): spots when neighbouring nodes are at least
:data:`~gridgraph.patches.window.SPOT_PITCH_UM` apart (Visium, classic ST), cells or bins below
(Xenium, nuclei, Visium HD). :func:`platform_mismatch` says, in one line, when a section to
predict is of another kind (a cell model applied to Visium spots): ``gridgraph predict`` warns,
and with ``--strict`` refuses.
"""
from __future__ import annotations

from typing import Optional, Sequence

from ..checkpoint import Checkpoint
from ..patches.window import SPOT_PITCH_UM, node_pitch_px

__all__ = ["IMAGE_LEVELS", "node_kind", "platform_record", "platform_mismatch"]

SPOTS, CELLS = "spots", "cells or bins"
#: The image levels of Space Ranger outputs (Visium, Visium HD), as the readers' ``meta["image_kind"]``.
IMAGE_LEVELS = ("lowres", "hires", "fullres")
_LAYOUT_WORDS = {"hex": "hex-grid", "cartesian": "square-grid", "irregular": "irregular"}


def node_kind(section) -> Optional[str]:
    """``"spots"`` when the section's nodes are at least 50 µm apart (median edge), ``"cells or
    bins"`` below; ``None`` when its µm per pixel or its edges are unknown."""
    mpp = getattr(section, "microns_per_px", None)
    pitch = node_pitch_px(section.graph)
    if mpp is None or pitch is None:
        return None
    return SPOTS if pitch * mpp >= SPOT_PITCH_UM else CELLS


def platform_record(sections: Sequence) -> dict:
    """What a checkpoint records of its training sections (:class:`~gridgraph.patches.SectionTensors`
    that keep their section, or :class:`~gridgraph.io.Section` s): ``{"layouts": [...], "nodes":
    [...]}``, the graph layouts as the model saw them and the node kinds that are known, and
    ``"image_levels"``, the image levels read (``hires``, ``lowres``, ``fullres``) where the readers say."""
    sections = [getattr(s, "section", s) for s in sections]
    sections = [s for s in sections if s is not None]
    if not sections:
        return {}
    kinds = {node_kind(s) for s in sections} - {None}
    levels = {(s.meta or {}).get("image_kind") for s in sections} & set(IMAGE_LEVELS)
    record = {"layouts": sorted({str(s.graph.layout) for s in sections}), "nodes": sorted(kinds)}
    return {**record, "image_levels": sorted(levels)} if levels else record


def _describe(layouts: Sequence[str], nodes: Sequence[str]) -> str:
    layout = " or ".join(_LAYOUT_WORDS.get(x, x) for x in layouts)
    return f"{layout} {' or '.join(nodes) or 'nodes'}".strip()


def platform_mismatch(ckpt: Checkpoint, section) -> Optional[str]:
    """One line saying how ``section`` (as read, before predict rebuilds its graph) differs from the
    checkpoint's training sections in graph layout or node kind; ``None`` when it does not, or when
    the checkpoint recorded nothing (older files). Layouts are compared only when the model keeps
    the readers' graphs (no ``graph.name``), since a rebuilt graph has the builder's layout."""
    record = ckpt.platform or {}
    if not record:
        return None
    trained_layouts, trained_nodes = list(record.get("layouts") or []), list(record.get("nodes") or [])
    layout, kind = str(section.graph.layout), node_kind(section)
    compare_layout = ckpt.config.graph.name is None and trained_layouts
    other_layout = compare_layout and layout not in trained_layouts
    other_kind = kind is not None and trained_nodes and kind not in trained_nodes
    if not (other_layout or other_kind):
        return None
    name = f"{ckpt.path.parent.name}/{ckpt.path.name}" if ckpt.path is not None else "the model"
    theirs = _describe([layout] if compare_layout else [], [kind] if kind else [])
    return (f"{name} was trained on {_describe(trained_layouts if compare_layout else [], trained_nodes)}, "
            f"but section {section.name} has {theirs}: its predictions may not carry over")
