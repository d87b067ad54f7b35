"""The default patch window of a section, sized for its platform from its node spacing in µm."""
from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ["SPOT_WINDOW_UM", "CELL_WINDOW_UM", "SPOT_PITCH_UM", "UNSCALED_WINDOW_PX", "node_pitch_px",
           "auto_window"]

#: Spot arrays: 200 µm, two Visium pitches (100 µm) or one classic-ST pitch (200 µm).
SPOT_WINDOW_UM = 200.0
#: Cells, nuclei and µm-scale bins (Xenium, Visium HD): a cell and its immediate surroundings.
CELL_WINDOW_UM = 32.0
#: Node spacing from which a layout counts as a spot array (Visium's is 100 µm, HD bins' 2-16 µm).
SPOT_PITCH_UM = 50.0
#: Sections whose µm per pixel is unknown: a fixed window in image pixels.
UNSCALED_WINDOW_PX = 32.0

_SAMPLE_EDGES = 20_000


def node_pitch_px(graph) -> Optional[float]:
    """Median length, in pixels, of the graph's edges (the spot pitch of a grid graph, the typical
    neighbour distance of a kNN graph); ``None`` without edges. At most 20,000 evenly spaced edges
    are measured, so this is cheap at 10^6 nodes."""
    edges = graph.edge_index
    if edges.shape[1] == 0:
        return None
    step = max(1, edges.shape[1] // _SAMPLE_EDGES)
    src, dst = edges[0, ::step].numpy(), edges[1, ::step].numpy()
    pos = graph.pos.numpy()
    lengths = np.hypot(*(pos[src] - pos[dst]).T)
    lengths = lengths[lengths > 0]
    return float(np.median(lengths)) if lengths.size else None


def auto_window(section) -> dict:
    """Window keyword arguments of :func:`~gridgraph.patches.section_patches` for ``section``
    when the config names none.

    With the section's µm per pixel known: :data:`SPOT_WINDOW_UM` (200 µm) when its nodes are
    at least :data:`SPOT_PITCH_UM` (50 µm) apart (Visium, classic ST), else
    :data:`CELL_WINDOW_UM` (32 µm; cells, nuclei, HD bins). Unknown scale: ``window_px`` of
    :data:`UNSCALED_WINDOW_PX` (32 px).
    """
    mpp = section.microns_per_px
    if mpp is None:
        return {"window_px": UNSCALED_WINDOW_PX}
    pitch = node_pitch_px(section.graph)
    spots = pitch is not None and pitch * mpp >= SPOT_PITCH_UM
    return {"window_um": SPOT_WINDOW_UM if spots else CELL_WINDOW_UM}
