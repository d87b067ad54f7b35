"""Xenium: segmented cells of an output bundle, optionally on a registered H&E image.

Layout: ``cells.parquet`` or ``cells.csv.gz`` (``cell_id``, ``x_centroid``, ``y_centroid`` in
µm), ``experiment.xenium`` (JSON; ``pixel_size``: µm per morphology-image pixel). An H&E image
registered in Xenium Explorer comes with an alignment CSV: a 3 x 3 affine matrix mapping H&E
pixels to Xenium (morphology) pixels; cells are placed on the H&E image with its inverse.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from ...graph.spec import GraphSpec, GraphSpecLike
from ..labels import map_labels
from ..tables import RowNames, numeric_column, read_frame, text_column, unique_column
from ..images.image import ImageLike, image_size
from ..section import Section
from ..tables import PathLike, check_inside, is_positive_number, require_file
from ..images.open import image_source, open_image
from .bundle_files import he_alignment, xenium_he_image, xenium_morphology_image

__all__ = ["read_xenium", "read_alignment", "CELL_DIAMETER_UM"]

#: Nominal cell diameter, µm: the unit of ``window_spots`` for cells.
CELL_DIAMETER_UM = 10.0


def _cells_file(folder: Path) -> Path:
    for name in ("cells.parquet", "cells.csv.gz", "cells.csv"):
        if (folder / name).is_file():
            return folder / name
    if not folder.exists():
        raise FileNotFoundError(f"Xenium folder not found: {folder}")
    raise FileNotFoundError(f"{folder}: no cells.parquet or cells.csv.gz (the Xenium cell table)")


def _pixel_size(folder: Path, given: Optional[float]) -> float:
    if given is not None:
        if not is_positive_number(given):
            raise ValueError(f"pixel_size_um must be a finite positive number, got {given}")
        return float(given)
    path = require_file(folder / "experiment.xenium", "Xenium experiment file (or give pixel_size_um)")
    try:
        value = json.loads(path.read_text()).get("pixel_size")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        raise ValueError(f"{path}: not a JSON object") from None
    if not is_positive_number(value):
        raise ValueError(f"{path}: field 'pixel_size' must be a finite positive number (µm per pixel)")
    return float(value)


def read_alignment(path: PathLike) -> np.ndarray:
    """The ``(3, 3)`` affine matrix of a Xenium Explorer alignment CSV (three lines of three
    numbers; image pixels -> Xenium pixels, last row ``0, 0, 1``)."""
    path = require_file(path, "Xenium alignment CSV")
    if path.stat().st_size > 4096:
        raise ValueError(f"{path}: too large for an alignment CSV; expected a 3 x 3 matrix of numbers")
    try:
        rows = [line.replace(",", " ").split() for line in path.read_text().splitlines() if line.strip()]
        matrix = np.array([[float(v) for v in row] for row in rows], dtype=np.float64)
    except (UnicodeDecodeError, ValueError):
        raise ValueError(f"{path}: expected a 3 x 3 matrix of numbers (the alignment CSV)") from None
    if matrix.shape != (3, 3) or not np.isfinite(matrix).all():
        raise ValueError(f"{path}: expected an invertible 3 x 3 affine matrix of finite numbers, got shape {matrix.shape}")
    if not np.allclose(matrix[2], [0.0, 0.0, 1.0]) or abs(np.linalg.det(matrix[:2, :2])) < 1e-12:
        raise ValueError(f"{path}: expected an invertible affine matrix (last row 0, 0, 1)")
    return matrix


def read_xenium(path: PathLike, image: Union[str, ImageLike, None] = "auto", alignment: Optional[PathLike] = None,
                pixel_size_um: Optional[float] = None, labels: Union[None, PathLike, Mapping] = None,
                classes: Optional[Sequence[str]] = None, graph: GraphSpecLike = "knn",
                name: Optional[str] = None) -> Section:
    """Read a Xenium bundle's cells as a :class:`Section`.

    Args:
        path: the Xenium output folder (``cells.parquet``, else ``cells.csv.gz`` / ``cells.csv``).
        image: an image registered to the cells: with ``alignment`` an H&E image, without it the
            morphology image (Xenium pixels); ``"he"``: the bundle's ``*he_image.ome.tif`` with its
            alignment CSV beside it; ``"morphology"``: the bundle's ``morphology_focus`` image;
            ``"auto"`` (default): the bundle's H&E image when it has one, else none; ``None``: no
            image, positions in Xenium pixels (:mod:`~gridgraph.io.readers.bundle_files` says what
            is looked for).
        alignment: the alignment CSV of ``image`` (H&E pixels -> Xenium pixels, as Xenium
            Explorer exports it); its inverse puts the cells into the image's pixels.
        pixel_size_um: µm per Xenium pixel (default ``experiment.xenium``'s ``pixel_size``,
            0.2125 on current instruments).
        labels: ``cell_id`` -> class mapping, or a CSV/TSV/parquet with columns ``cell_id``,
            ``label`` (or ``cell_id``, ``group``: a Xenium Explorer cell groups CSV, as
            :func:`~gridgraph.io.writers.exports.write_xenium_cell_groups` writes it);
            ``classes`` fixes the order. Cells without a label get ``-1``.
        graph: a :class:`~gridgraph.graph.GraphSpec`-like on the image pixels (default ``"knn"``,
            symmetric 6 nearest neighbours; ``{"name": "radius", "kwargs": {"r": <px>}}``); ``None`` is
            the default.
        name: section name (default the folder's name).

    Returns:
        A :class:`Section` over the ``N`` cells in file order: node ids the ``cell_id`` values,
        ``pos`` ``(N, 2)`` pixel ``(x, y)``; ``spot_diameter_um`` a nominal cell
        (:data:`CELL_DIAMETER_UM` = 10 µm) and ``spot_diameter_px`` its size in the image's
        pixels, so ``microns_per_px`` is the image's µm per pixel and windows in µm (or in
        cells) work.
    """
    folder = Path(path)
    cells = _cells_file(folder)
    image, alignment, kind = _bundle_image(folder, image, alignment)
    img = open_image(image, "Xenium image")  # first: it may decode while the table is read
    frame = read_frame(cells, ["cell_id", "x_centroid", "y_centroid"], "Xenium cell table", text=("cell_id",))
    if len(frame) == 0:
        raise ValueError(f"{cells}: no cells; expected one row per cell")
    ids = text_column(frame, "cell_id", cells)
    unique_column(ids, "cell_id", cells)
    um = np.stack([numeric_column(frame, "x_centroid", cells), numeric_column(frame, "y_centroid", cells)], 1)
    mpp = _pixel_size(folder, pixel_size_um)
    pos, mpp = _to_image_pixels(um, mpp, alignment)
    if img is not None:
        check_inside(pos, image_size(img), f"{cells} (in {image_source(img)})", RowNames(cells, np.arange(len(ids))),
                     kind="cells")
    codes, class_names = map_labels(ids, _labels(labels), classes, _label_source(labels))
    if labels is not None and not (codes >= 0).any():
        raise ValueError(f"{_label_source(labels)}: none of its cell ids is a cell of {cells}; expected "
                         "ids spelled as in the column 'cell_id'")
    section_graph = (GraphSpec.parse(graph) or GraphSpec("knn")).build(pos, where=str(cells))
    return Section(graph=section_graph, labels=codes, classes=class_names, barcodes=ids, image=img,
                   spot_diameter_px=CELL_DIAMETER_UM / mpp, spot_diameter_um=CELL_DIAMETER_UM,
                   name=name or folder.name, meta={"source": str(folder), "cells": str(cells),
                                                   "microns_per_pixel": mpp, "image_kind": kind,
                                                   "alignment": None if alignment is None else str(alignment)})


def _bundle_image(folder: Path, image, alignment) -> tuple:
    """``(image, alignment, kind)``: ``image``'s choice (``"auto"``, ``"he"``, ``"morphology"``) found
    in the bundle; ``kind`` ``"he"``, ``"morphology"``, ``"image"`` (given) or ``None``."""
    if isinstance(image, str) and image in ("auto", "he", "morphology"):
        if image == "morphology":
            return xenium_morphology_image(folder), alignment, "morphology"
        found = xenium_he_image(folder, required=image == "he")
        if found is None:
            return None, alignment, None
        return found, alignment if alignment is not None else he_alignment(found), "he"
    return image, alignment, None if image is None else "image"


def _to_image_pixels(um: np.ndarray, mpp: float, alignment: Optional[PathLike]) -> tuple[np.ndarray, float]:
    """``(pos, µm per image pixel)``: ``(N, 2)`` µm -> Xenium pixels -> (with ``alignment``)
    image pixels through the inverse affine; one image pixel spans ``sqrt|det A|`` Xenium pixels."""
    pos = um / mpp
    if alignment is None:
        return pos, mpp
    matrix = read_alignment(alignment)
    inverse = np.linalg.inv(matrix)
    pos = pos @ inverse[:2, :2].T + inverse[:2, 2]
    return pos, mpp * float(np.sqrt(abs(np.linalg.det(matrix[:2, :2]))))


def _label_source(labels) -> str:
    return str(labels) if isinstance(labels, (str, Path)) else "labels mapping"


def _labels(labels) -> dict:
    """``{cell_id: name}`` from ``None``, a mapping (or pandas Series) or a label table."""
    if labels is None:
        return {}
    if isinstance(labels, Mapping) or hasattr(labels, "items"):
        return {str(k): v for k, v in labels.items()}
    if not isinstance(labels, (str, Path)):
        raise TypeError(f"labels must be a mapping cell_id -> name or a table path, got {type(labels).__name__}")
    from ..tables import is_parquet, read_table, separator
    from ..writers.tables import formula_unsafe

    column = _label_column(labels)
    if not is_parquet(labels):  # text: every line's fields counted, a cut last line named
        table = read_table(labels, names=["cell_id", column], header=True, delimiter=separator(labels),
                           what="cell label table")
        if not len(table):
            raise ValueError(f"{labels}: the cell label table has a header but no rows; expected one row "
                             f"per labelled cell (cell_id,{column})")
        ids, names = table.unique_text("cell_id"), table.text(column)
        table.warn_if_cut()
        ids, names = formula_unsafe(ids), formula_unsafe(names)  # as write_xenium_cell_groups escaped them
        return {i: n or None for i, n in zip(ids, names)}
    frame = read_frame(labels, ["cell_id", column], "cell label table", text=("cell_id", column))
    ids = text_column(frame, "cell_id", labels)
    unique_column(ids, "cell_id", labels)
    return dict(zip(ids, frame[column].where(frame[column].notna(), None).tolist()))


def _label_column(path) -> str:
    """``"label"``, or ``"group"`` for a Xenium Explorer cell groups CSV (``cell_id,group``,
    optionally ``color``) that has no ``label`` column."""
    import pandas as pd

    from ..tables import is_parquet, separator

    try:
        if is_parquet(path):
            import pyarrow.parquet as pq

            names = pq.read_schema(path).names
        else:
            names = pd.read_csv(path, sep=separator(path), nrows=0).columns.tolist()
    except Exception:  # noqa: BLE001 - read_frame names the file and the problem
        return "label"
    return "group" if "label" not in names and "group" in names else "label"
