"""The choices a config leaves to gridgraph (``g: {name: auto}``), made from the sections.

g by the training sections' layout: a U-Net on grid layouts (Visium hex, ST and HD square
bins), where it sees most of a section at once; a residual GCN on irregular graphs (cells,
nuclei, kNN or radius graphs). Both correct f's log-probabilities from a zero start
(``model.g_residual``, ``model.g_zero_init``), so f + g begins exactly at f.
"""
from __future__ import annotations

from typing import Sequence

from .config import RunConfig
from .config.schema import AUTO, ModuleConfig
from .names import Layout

__all__ = ["GRID_CORRECTOR", "GRAPH_CORRECTOR", "corrector_for", "resolve_config"]

GRID_CORRECTOR = ModuleConfig(name="unet", kwargs={"base_channels": 16, "depth": 3, "dropout": 0.2})
GRAPH_CORRECTOR = ModuleConfig(name="gcn", kwargs={"hidden_channels": 64, "num_layers": 3, "residual": True,
                                                   "dropout": 0.1})


def corrector_for(layouts: Sequence[str]) -> ModuleConfig:
    """The default g for sections of these graph layouts (grid only: U-Net; else GCN)."""
    grid = {str(Layout.HEX), str(Layout.CARTESIAN)}
    return GRID_CORRECTOR if layouts and all(str(v) in grid for v in layouts) else GRAPH_CORRECTOR


def resolve_config(cfg: RunConfig, sections: Sequence) -> RunConfig:
    """``cfg`` with ``g: auto`` replaced by the corrector :func:`corrector_for` picks for the
    layouts of ``sections`` (the training sections: :class:`~gridgraph.io.Section` s or
    :class:`~gridgraph.patches.SectionTensors`); other configs are returned unchanged."""
    if cfg.g.name != AUTO:
        return cfg
    if not sections:
        raise ValueError("g: 'auto' is chosen from the training sections' layout, but none were given")
    return cfg.model_copy(update={"g": corrector_for([st.graph.layout for st in sections])})
