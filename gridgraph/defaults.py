"""Every default of a model in one place, as plain data: the YAML config, :func:`~gridgraph.build_model`
and :class:`~gridgraph.GridGraphNet` all read them here, so a model built from Python with
defaults equals the one the same YAML config builds.

They are the measured-best settings (``benchmarks/README.md``): g chosen by the training
sections' layout (``"auto"``): a U-Net on grid layouts (Visium hex, ST and HD square bins),
where it sees most of a section at once; a residual GCN on irregular graphs (cells, nuclei, kNN
or radius graphs). Both correct f's log-probabilities from a zero start (``g_residual``,
``g_zero_init``), so f + g begins exactly at f; three g's are averaged (``g_ensemble``).
"""
from __future__ import annotations

from typing import Sequence

from .names import GInput, Layout

__all__ = ["ENCODER", "CORRECTOR", "AUTO", "GRID_CORRECTOR", "GRAPH_CORRECTOR", "G_INPUT", "G_RESIDUAL",
           "G_ZERO_INIT", "G_ENSEMBLE", "CHUNK_SIZE", "EVAL_CHUNK_SIZE", "corrector_for"]

#: ``g`` chosen from the training sections' layout (:func:`corrector_for`).
AUTO = "auto"
ENCODER = "gridnet_simple"
CORRECTOR = AUTO
GRID_CORRECTOR = {"name": "unet", "kwargs": {"base_channels": 16, "depth": 3, "dropout": 0.2}}
GRAPH_CORRECTOR = {"name": "gcn", "kwargs": {"hidden_channels": 64, "num_layers": 3, "residual": True,
                                             "dropout": 0.1}}
G_INPUT = GInput.SOFTMAX.value
G_RESIDUAL = True
G_ZERO_INIT = True
G_ENSEMBLE = 3
#: patches per checkpointed chunk of f in training, and per chunk at inference
CHUNK_SIZE = 32
EVAL_CHUNK_SIZE = 256


def corrector_for(layouts: Sequence[str]) -> dict:
    """The default g (``{"name", "kwargs"}``) for sections of these graph layouts (grid only:
    U-Net; else GCN). A fresh copy: callers may change it."""
    grid = {str(Layout.HEX), str(Layout.CARTESIAN)}
    chosen = GRID_CORRECTOR if layouts and all(str(v) in grid for v in layouts) else GRAPH_CORRECTOR
    return {"name": chosen["name"], "kwargs": dict(chosen["kwargs"])}
