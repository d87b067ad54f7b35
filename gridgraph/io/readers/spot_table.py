"""A per-spot table (one row per spot: id, array x/y, pixel x/y, label), e.g. her2st's ``C2_spots.tsv``."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Optional, Sequence, Union

import numpy as np

from ...graph import cartesian_graph
from ..images.image import ImageLike, image_size
from ..section import Section
from .st_tsv import ST_MAX_INDEX, ST_PITCH_UM, ST_RANGE, ST_SPOT_UM
from ..tables import PathLike, check_array_index, check_inside, read_table
from ..images.open import image_source, open_image
from ..labels import encode_labels

CLASS_NAMES_FILE = "cluster_names.tsv"


def read_class_names(path: PathLike) -> dict:
    """Read a ``label -> name`` table (header ``label, name``; e.g. her2st's ``cluster_names.tsv``).

    Returns ``{label: name}`` in file order, which is then the class order.
    """
    table = read_table(path, names=["label", "name"], header="auto", what="class-name table")
    if len(table.columns) != 2:
        raise ValueError(f"{table.path}: expected two columns (label, name); found {len(table.columns)}")
    names = dict(zip(table.unique_text(0), table.text(1)))
    table.warn_if_cut()
    return names


def _spot_diameter_px(graph, spot_diameter_um: float, pitch_um: float) -> Optional[float]:
    """Spot diameter in px from the median pixel distance between grid neighbours."""
    if graph.num_edges == 0:
        return None
    src, dst = graph.edge_index
    step = graph.grid_index[src] - graph.grid_index[dst]
    unit = (step.abs().sum(dim=1) == 1).numpy()  # one array step apart
    if not unit.any():
        return None
    d = (graph.pos[src] - graph.pos[dst]).norm(dim=1).numpy()[unit]
    return float(np.median(d)) * spot_diameter_um / pitch_um


def read_spot_table(
    path: PathLike,
    image: Optional[ImageLike] = None,
    label_column: Optional[str] = "label",
    x_column: str = "x",
    y_column: str = "y",
    pixel_x_column: Optional[str] = "pixel_x",
    pixel_y_column: Optional[str] = "pixel_y",
    id_column: Union[int, str] = 0,
    classes: Optional[Sequence[str]] = None,
    label_names: Union[str, PathLike, Mapping, None] = "auto",
    connectivity: int = 4,
    spot_diameter_um: float = ST_SPOT_UM,
    spot_pitch_um: float = ST_PITCH_UM,
    name: Optional[str] = None,
) -> Section:
    """Read a table with one row per spot of a Cartesian (classic ST) array.

    Args:
        path: CSV or TSV with a header (tab-separated when the first line holds a tab).
        image: the H&E image (path, array or :class:`~gridgraph.io.images.image.LazyImage`) in whose
            pixels ``pixel_x``/``pixel_y`` are given, or ``None``.
        label_column: column of labels; empty cells are unlabeled (``-1``); ``None`` for none.
        x_column, y_column: integer array column / row of each spot (kept as in the file;
            ``0..ST_MAX_INDEX`` = 100, tolerant of every classic ST array, else ``ValueError``).
        pixel_x_column, pixel_y_column: pixel ``x`` (column) and ``y`` (row) of each spot;
            ``None`` to place spots at their array coordinates.
        id_column: column (name or position) of spot ids; position 0 by default.
        classes: class order (``label i = classes[i]``); default the order of ``label_names``
            when used, else the label names in natural order.
        label_names: label value -> class name: a mapping, a ``label, name`` table path, or
            ``"auto"`` (default) to use ``cluster_names.tsv`` when it sits beside ``path``;
            ``None`` keeps the label values as names.
        connectivity: 4 or 8 neighbours on the grid.
        spot_diameter_um, spot_pitch_um: physical spot diameter and centre distance (classic
            ST: 100 and 200 µm); ``spot_diameter_px`` is derived from the median pixel distance
            of neighbouring spots.
        name: section name; default the file name without extension and a ``_spots`` suffix.

    Returns:
        A :class:`Section` with a ``"cartesian"`` graph over ``(array_row, array_col) = (y, x)``.
    """
    table = read_table(path, header=True, what="spot table", row_names=True)
    path = table.path
    if len(table) == 0:
        raise ValueError(f"{path}: no spots; expected a header and one row per spot")
    ids = table.unique_text(id_column)
    array_col = table.numeric(x_column, integer=True)
    array_row = table.numeric(y_column, integer=True)
    at = [f"line {n}" for n in table.lines]
    for col, values in ((x_column, array_col), (y_column, array_row)):
        check_array_index(values, ST_MAX_INDEX, f"{path}: column {col!r}", at, ST_RANGE)
    if pixel_x_column is None or pixel_y_column is None:
        pos = np.stack([array_col, array_row], axis=1).astype(np.float64)
    else:
        pos = np.stack([table.numeric(pixel_x_column), table.numeric(pixel_y_column)], axis=1)
    table.warn_if_cut()

    if label_names == "auto":
        beside = path.parent / CLASS_NAMES_FILE
        label_names = beside if beside.is_file() else None
    source = str(path)
    if label_column is None:
        values = [None] * len(ids)
    else:
        values = [v or None for v in table.text(label_column)]
    if label_names is not None:
        if not isinstance(label_names, Mapping):
            source = f"{path} (names from {label_names})"
            label_names = read_class_names(label_names)
        label_names = {str(k): str(v) for k, v in label_names.items()}
        unknown = sorted({v for v in values if v is not None and v not in label_names})
        if unknown:
            raise ValueError(
                f"{source}: column {label_column!r}: labels {unknown[:5]} have no class name; "
                f"expected one of {list(label_names)}"
            )
        values = [None if v is None else label_names[v] for v in values]
        if classes is None:
            classes = list(dict.fromkeys(label_names.values()))
    labels, classes = encode_labels(values, classes, source)

    img = open_image(image, "spot-table image")
    if img is not None:
        check_inside(pos, image_size(img), f"{path} (in {image_source(img)})", ids)
    try:
        graph = cartesian_graph(array_row, array_col, connectivity=connectivity, pos=pos)
    except ValueError as err:
        raise ValueError(f"{path}: columns {y_column!r}/{x_column!r}: {err}") from None
    if name is None:
        name = path.stem[: -len("_spots")] if path.stem.endswith("_spots") else path.stem
    return Section(
        graph=graph,
        labels=labels,
        classes=classes,
        barcodes=ids,
        image=img,
        spot_diameter_px=_spot_diameter_px(graph, spot_diameter_um, spot_pitch_um),
        spot_diameter_um=spot_diameter_um,
        array_row=array_row,
        array_col=array_col,
        name=name,
        meta={"source": str(path)},
    )
