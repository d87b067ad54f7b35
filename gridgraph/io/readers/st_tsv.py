"""Classic Spatial Transcriptomics (ST) annotations: a one-hot class x spot table (Maniatis ALS style).

The table is tab-separated; each row is a class (its name in the first column) and each other
column a spot named ``"x_y"`` (1-based array column ``x`` and row ``y``; aligned coordinates such
as ``32.06_2.04`` are rounded). A 1 marks the spot's class; an all-zero column is an unlabeled spot.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ...graph import cartesian_graph
from ..images.image import ImageLike, image_size
from ..section import Section
from ..tables import PathLike, check_inside, check_unique, read_table
from ..images.open import image_source, open_image

ST_SPOT_UM = 100.0  # classic ST spot diameter
ST_PITCH_UM = 200.0  # centre-to-centre distance of neighbouring spots
ST_SPACING_PX_AT_6200 = 194.0  # px per array step in an image 6200 px wide (Maniatis et al.)
# Largest ST array coordinate accepted. Classic ST arrays hold 1,007 spots numbered about
# 1..33 x 1..35 (which axis is 33 or 35 varies between array versions, and aligned coordinates
# stray a spot or so beyond); 100, about three arrays wide, accepts every such variation while a
# corrupted coordinate (1e12) is refused before a dense grid of that size is allocated.
ST_MAX_INDEX = 100
ST_RANGE = f"classic ST arrays are about 33 x 35 spots; coordinates up to {ST_MAX_INDEX} are accepted"


def default_st_spacing(width: int) -> float:
    """Pixels per array step for an ST image ``width`` px wide: ``194 * width / 6200``."""
    return ST_SPACING_PX_AT_6200 * width / 6200.0


def _parse_spot(name: str, path) -> tuple[int, int]:
    parts = name.split("_")
    try:
        x, y = (float(p) for p in parts)
    except ValueError:
        raise ValueError(
            f"{path}: spot column {name!r}: expected coordinates 'x_y' (e.g. '12_7' or '32.06_2.04')"
        ) from None
    if not (np.isfinite(x) and np.isfinite(y)):
        raise ValueError(f"{path}: spot column {name!r}: expected finite coordinates 'x_y'")
    x, y = int(round(x)), int(round(y))
    if x < 1 or y < 1:
        raise ValueError(f"{path}: spot column {name!r}: expected 1-based coordinates x >= 1, y >= 1")
    if x > ST_MAX_INDEX or y > ST_MAX_INDEX:
        raise ValueError(
            f"{path}: spot column {name!r}: expected coordinates x, y <= {ST_MAX_INDEX} ({ST_RANGE})"
        )
    return x, y


def read_st_tsv(
    annotation_tsv: PathLike,
    image: Optional[ImageLike],
    spot_spacing_px: Optional[float] = None,
    classes: Optional[Sequence[str]] = None,
    connectivity: int = 4,
    name: Optional[str] = None,
) -> Section:
    """Read classic ST one-hot annotations and their image.

    Args:
        annotation_tsv: class x spot table (see the module docstring).
        image: path, array or :class:`~gridgraph.io.images.image.LazyImage` of the H&E image, cropped so
            that spot ``(1, 1)`` lies at pixel ``(0, 0)``. ``None`` needs ``spot_spacing_px``.
        spot_spacing_px: pixels per array step; default ``194 * width / 6200``.
        classes: class order; default the file's row order. Names must match the rows.
        connectivity: 4 or 8 neighbours on the Cartesian grid.
        name: section name; default the file name without extension.

    Returns:
        A :class:`Section` with a ``"cartesian"`` graph; ``array_row = y - 1``,
        ``array_col = x - 1`` (0-based), ``pos = (array_col, array_row) * spacing`` px, barcodes
        the column names, ``spot_diameter_um = 100`` and ``spot_diameter_px = spacing / 2``
        (100 µm spots at a 200 µm pitch).
    """
    table = read_table(
        annotation_tsv, header=True, delimiter="\t", what="ST annotation table", row_names=True
    )
    path = table.path
    if len(table.columns) < 2 or len(table) == 0:
        raise ValueError(f"{path}: expected class rows and at least one 'x_y' spot column")
    row_classes = table.text(0)
    check_unique(row_classes, f"{path}: class names (first column)", table.lines)
    spots = table.columns[1:]
    check_unique(spots, f"{path}: spot columns")
    xy = np.array([_parse_spot(s, path) for s in spots], dtype=np.int64).reshape(-1, 2)
    first: dict = {}
    for k, (x, y) in enumerate(xy.tolist()):
        if (x, y) in first:
            raise ValueError(
                f"{path}: spot columns {spots[first[x, y]]!r} and {spots[k]!r} round to the "
                f"same array position {x}_{y}; expected one column per spot"
            )
        first[x, y] = k
    onehot = np.stack([table.numeric(j + 1) for j in range(len(spots))], axis=1)  # (K, N)
    table.warn_if_cut()
    if not np.isin(onehot, (0, 1)).all():
        r, c = np.argwhere(~np.isin(onehot, (0, 1)))[0]
        raise ValueError(
            f"{path}: spot column {spots[c]!r}, class {row_classes[r]!r}: expected 0 or 1 "
            f"(one-hot), got {onehot[r, c]:g}"
        )
    many = onehot.sum(axis=0) > 1
    if many.any():
        c = int(np.flatnonzero(many)[0])
        raise ValueError(
            f"{path}: spot column {spots[c]!r} marks {int(onehot[:, c].sum())} classes; "
            f"expected one-hot (at most one 1 per spot)"
        )
    if classes is None:
        classes = row_classes
    classes = [str(c) for c in classes]
    unknown = [c for c in row_classes if c not in classes]
    if unknown:
        raise ValueError(f"{path}: class rows {unknown} are not among classes {classes}")
    order = np.array([classes.index(c) for c in row_classes], dtype=np.int64)
    labels = np.where(onehot.any(axis=0), order[onehot.argmax(axis=0)], -1)

    img = open_image(image, "ST image")
    if spot_spacing_px is None:
        if img is None:
            raise ValueError(f"{path}: without an image, spot_spacing_px must be given")
        spot_spacing_px = default_st_spacing(image_size(img)[0])
    if not spot_spacing_px > 0:
        raise ValueError(f"spot_spacing_px must be positive, got {spot_spacing_px}")
    array_col, array_row = xy[:, 0] - 1, xy[:, 1] - 1
    pos = np.stack([array_col, array_row], axis=1) * float(spot_spacing_px)
    if img is not None:
        check_inside(pos, image_size(img), f"{path} (in {image_source(img)})", spots)
    graph = cartesian_graph(array_row, array_col, connectivity=connectivity, pos=pos)
    return Section(
        graph=graph,
        labels=labels,
        classes=classes,
        barcodes=spots,
        image=img,
        spot_diameter_px=float(spot_spacing_px) * ST_SPOT_UM / ST_PITCH_UM,
        spot_diameter_um=ST_SPOT_UM,
        array_row=array_row,
        array_col=array_col,
        name=name or path.stem,
        meta={"source": str(path), "spot_spacing_px": float(spot_spacing_px)},
    )
