"""The patch window: its size and unit, its platform default, its pixels and µm on a section,
and the physical scale a checkpoint records of it.

One :class:`Window` value holds what the config's ``patches.window_*`` fields say (a size in
``px``, ``um`` or ``spots``, or automatic: each section's platform default); everything that
turns it into image pixels or µm, or into and out of a checkpoint, is a method of it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional

import numpy as np

__all__ = ["SPOT_WINDOW_UM", "CELL_WINDOW_UM", "SPOT_PITCH_UM", "UNSCALED_WINDOW_PX", "PX", "UM", "SPOTS",
           "AUTO", "UNITS", "Window", "node_pitch_px"]

#: Spot arrays: 200 µm, two Visium pitches (100 µm) or one classic-ST pitch (200 µm).
SPOT_WINDOW_UM = 200.0
#: Cells, nuclei and µm-scale bins (Xenium, Visium HD): a cell and its immediate surroundings.
CELL_WINDOW_UM = 32.0
#: Node spacing from which a layout counts as a spot array (Visium's is 100 µm, HD bins' 2-16 µm).
SPOT_PITCH_UM = 50.0
#: Sections whose µm per pixel is unknown: a fixed window in image pixels.
UNSCALED_WINDOW_PX = 32.0

#: The units of a window: image pixels, micrometres, spot diameters; automatic (no size).
PX, UM, SPOTS, AUTO = "px", "um", "spots", "auto"
UNITS = (PX, UM, SPOTS, AUTO)
#: The config field of each unit, in the order the config lists them.
_FIELDS = {SPOTS: "window_spots", PX: "window_px", UM: "window_um"}

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


@dataclass(frozen=True)
class Window:
    """The side of the square cut around each node, in one unit.

    Attributes:
        size: the side, a positive number; ``None`` for an automatic window.
        unit: ``"px"`` (image pixels), ``"um"`` (micrometres), ``"spots"`` (spot diameters) or
            ``"auto"``: each section's platform default (:meth:`resolve`).
    """

    size: Optional[float] = None
    unit: str = AUTO

    def __post_init__(self):
        if self.unit not in UNITS:
            raise ValueError(f"window unit must be one of {UNITS}, got {self.unit!r}")
        if self.unit == AUTO:
            if self.size is not None:
                raise ValueError(f"an automatic window has no size, got {self.size}")
            return
        if isinstance(self.size, bool) or self.size is None or not (math.isfinite(float(self.size))
                                                                    and float(self.size) > 0):
            raise ValueError(f"a window in {self.unit} needs a positive, finite size, got {self.size!r}")
        object.__setattr__(self, "size", float(self.size))

    def __repr__(self) -> str:
        return "Window(auto)" if self.automatic else f"Window({self.size:g} {self.unit})"

    # ---- construction ------------------------------------------------------------------------

    @classmethod
    def from_fields(cls, window_px: Optional[float] = None, window_um: Optional[float] = None,
                    window_spots: Optional[float] = None, automatic: bool = False) -> "Window":
        """The window of the three unit fields: exactly one given, or none with ``automatic``
        (then the platform default); ``ValueError`` otherwise."""
        given = [(unit, v) for unit, v in ((PX, window_px), (UM, window_um), (SPOTS, window_spots))
                 if v is not None]
        if len(given) > 1 or (not given and not automatic):
            raise ValueError("give exactly one of window_px, window_um, window_spots")
        return cls(given[0][1], given[0][0]) if given else cls()

    @classmethod
    def from_config(cls, patches) -> "Window":
        """The window of a :class:`~gridgraph.config.PatchConfig` (automatic when it names none)."""
        return cls.from_fields(patches.window_px, patches.window_um, patches.window_spots, automatic=True)

    @classmethod
    def for_resolution(cls, section, patch_size: int, microns_per_pixel: float) -> "Window":
        """The window, in the section's image pixels, whose ``patch_size``-pixel patches have
        ``microns_per_pixel`` µm per pixel (e.g. the resolution a model was trained at):
        ``patch_size * microns_per_pixel / section.microns_per_px``. Cut with it, a whole slide
        reads the pyramid level closest above that resolution. ``ValueError`` when the section's
        pixel size is unknown."""
        if not (float(microns_per_pixel) > 0 and int(patch_size) >= 1):
            raise ValueError(f"microns_per_pixel must be > 0 and patch_size >= 1, got {microns_per_pixel}, "
                             f"{patch_size}")
        if section.microns_per_px is None:
            raise ValueError(f"section {section.name}: its µm per pixel is unknown (no spot diameter, "
                             "slide metadata or microns_per_pixel given)")
        return cls(int(patch_size) * float(microns_per_pixel) / section.microns_per_px, PX)

    @classmethod
    def from_record(cls, record: Mapping, fallback: "Window", section=None) -> "Window":
        """The window a checkpoint's ``record`` (:meth:`record`) asks of a new section.

        A record in µm gives that many µm around each node of any section whose µm per pixel is
        known (whatever image or magnification it comes with); with ``section`` given, one whose
        scale cannot be known is refused (``ValueError``). An automatic window recorded in pixels
        gives those pixels; an empty record (older checkpoints) gives ``fallback``, the settings
        as saved.
        """
        window_um = record.get("window_um")
        if window_um is None and record.get("window_px") is not None:  # an automatic window, in pixels
            return cls(record["window_px"], PX)
        if window_um is None:
            return fallback
        if section is not None and section.microns_per_px is None:
            raise ValueError(f"section {section.name}: its µm per pixel is unknown (no spot diameter or "
                             f"scale factors), but the model was trained on {window_um:.1f} µm windows; "
                             "give the section's scale (e.g. the Space Ranger scalefactors_json.json)")
        return cls(window_um, UM)

    # ---- what it is ---------------------------------------------------------------------------

    @property
    def automatic(self) -> bool:
        """No size given: each section gets its platform's default."""
        return self.unit == AUTO

    def fields(self) -> dict:
        """The config's three fields (``window_spots``, ``window_px``, ``window_um``), the one of
        this unit set; all ``None`` for an automatic window."""
        return {name: (self.size if unit == self.unit else None) for unit, name in _FIELDS.items()}

    # ---- on a section -------------------------------------------------------------------------

    def resolve(self, section=None) -> "Window":
        """A window with a size: this one, or for an automatic window ``section``'s platform
        default. With the section's µm per pixel known: :data:`SPOT_WINDOW_UM` (200 µm) when its
        nodes are at least :data:`SPOT_PITCH_UM` (50 µm) apart (Visium, classic ST), else
        :data:`CELL_WINDOW_UM` (32 µm; cells, nuclei, HD bins). Unknown scale:
        :data:`UNSCALED_WINDOW_PX` (32 px)."""
        if not self.automatic:
            return self
        if section is None:
            raise ValueError("patches: the window is automatic (no window_spots, window_px or "
                             "window_um): it depends on the section, pass it")
        mpp = section.microns_per_px
        if mpp is None:
            return Window(UNSCALED_WINDOW_PX, PX)
        pitch = node_pitch_px(section.graph)
        spots = pitch is not None and pitch * mpp >= SPOT_PITCH_UM
        return Window(SPOT_WINDOW_UM if spots else CELL_WINDOW_UM, UM)

    def pixels(self, section) -> float:
        """The window side in the section's image pixels. ``um`` converts micrometres with the
        section's µm per pixel (e.g. its known spot diameter; Visium: 55 µm), ``spots`` is a
        multiple of the spot diameter in pixels."""
        window = self.resolve(section)
        if window.unit == UM:
            if section.microns_per_px is None:
                raise ValueError(
                    f"section {section.name}: window_um needs its µm per pixel (spot_diameter_px and "
                    "spot_diameter_um, the slide's metadata or microns_per_pixel)"
                )
            return _bounded(window.size / section.microns_per_px, section, window,
                            f"its µm per pixel {section.microns_per_px:g}")
        if window.unit == SPOTS:
            if not section.spot_diameter_px:
                raise ValueError(f"section {section.name}: window_spots needs spot_diameter_px")
            return _bounded(window.size * section.spot_diameter_px, section, window,
                            f"its spot diameter of {section.spot_diameter_px:g} px (e.g. the scale factors' "
                            "spot_diameter_fullres)")
        return _bounded(float(window.size), section, window, "window_px")

    def microns(self, section) -> Optional[float]:
        """The physical side, in µm, of the window cut around each node of ``section`` (``None``
        when the section's µm per pixel is unknown and the window is not in µm)."""
        window = self.resolve(section)
        if window.unit == UM:
            return window.size
        if window.unit == SPOTS and section.spot_diameter_um:
            return window.size * section.spot_diameter_um
        mpp = section.microns_per_px
        return None if mpp is None or window.unit != PX else window.size * mpp

    def record(self, sections: Iterable, patch_size: int) -> dict:
        """What a checkpoint records of the physical scale it was trained at, on the raw training
        ``sections``: ``{"window_um", "patch_um_per_px"}``, the window in µm (median over the
        sections) and the patch's µm per pixel, when every section knows it; for an automatic
        window on sections of unknown scale, ``{"window_px"}``, the pixels it chose; else ``{}``.
        :meth:`from_record` reads it back."""
        sections = list(sections)
        sizes = [self.microns(section) for section in sections]
        if not sizes or any(v is None for v in sizes):
            if sections and self.automatic:  # an automatic window on unscaled images: its pixels
                pixels = [w.size for w in (self.resolve(s) for s in sections) if w.unit == PX]
                return {"window_px": float(np.median(pixels))}
            return {}
        window = float(np.median(sizes))
        return {"window_um": window, "patch_um_per_px": window / patch_size}


#: no window is cut wider than this many pixels, whatever the image
MAX_WINDOW_PX = 65536.0


def _bounded(px: float, section, window: "Window", cause: str) -> float:
    """``px``, refused before anything is allocated when it is not a usable window: not finite,
    wider than :data:`MAX_WINDOW_PX` or than eight times the section's image (at least 1024 px)."""
    image = getattr(section, "image", None)
    limit = MAX_WINDOW_PX
    if image is not None:
        from ..io.images.image import image_size

        limit = min(limit, max(8.0 * max(image_size(image)), 1024.0))
    if not (px == px and 0 < px <= limit):
        raise ValueError(f"section {section.name}: a {window!r} window is {px:g} px wide, from {cause}; "
                         f"windows may be at most {limit:g} px (eight times the image's side, at most "
                         f"{MAX_WINDOW_PX:g}); check the scale factors or the window")
    return px
