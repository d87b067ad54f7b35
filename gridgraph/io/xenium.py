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

from ..graph.spec import GraphSpec, GraphSpecLike
from .frames import numeric_column, read_frame, text_column
from .image import ImageLike, image_size
from .section import Section
from .tables import PathLike, check_inside, check_unique, encode_names, open_image, require_file

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
        if not np.isfinite(given) or given <= 0:
            raise ValueError(f"pixel_size_um must be a finite positive number, got {given}")
        return float(given)
    path = require_file(folder / "experiment.xenium", "Xenium experiment file (or give pixel_size_um)")
    try:
        value = json.loads(path.read_text()).get("pixel_size")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        raise ValueError(f"{path}: not a JSON object") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{path}: pixel_size must be a finite positive number (µm per pixel)")
    return float(value)


def read_alignment(path: PathLike) -> np.ndarray:
    """The ``(3, 3)`` affine matrix (image pixels -> Xenium pixels) of an alignment CSV."""
    path = require_file(path, "Xenium alignment CSV")
    try:
        rows = [line.replace(",", " ").split() for line in path.read_text().splitlines() if line.strip()]
        matrix = np.array([[float(v) for v in row] for row in rows], dtype=np.float64)
    except (UnicodeDecodeError, ValueError):
        raise ValueError(f"{path}: expected a 3 x 3 matrix of numbers (the alignment CSV)") from None
    if matrix.shape != (3, 3) or not np.isfinite(matrix).all() or abs(np.linalg.det(matrix[:2, :2])) < 1e-12:
        raise ValueError(f"{path}: expected an invertible 3 x 3 affine matrix, got shape {matrix.shape}")
    return matrix


def read_xenium(path: PathLike, image: Optional[ImageLike] = None, alignment: Optional[PathLike] = None,
                pixel_size_um: Optional[float] = None, labels: Union[None, PathLike, Mapping] = None,
                classes: Optional[Sequence[str]] = None, graph: GraphSpecLike = "knn",
                name: Optional[str] = None) -> Section:
    """Read a Xenium bundle's cells as a :class:`Section` (node ids = ``cell_id``).

    Args:
        path: the Xenium output folder.
        image: an image registered to the cells: with ``alignment`` an H&E image, without it the
            morphology image (Xenium pixels); ``None``: positions in Xenium pixels, no image.
        alignment: the alignment CSV of ``image`` (H&E pixels -> Xenium pixels).
        pixel_size_um: µm per Xenium pixel (default ``experiment.xenium``'s ``pixel_size``).
        labels: ``cell_id`` -> class mapping, or a CSV with columns ``cell_id``, ``label``.
        graph: the cell graph (default symmetric 6-nearest neighbours).
    """
    folder = Path(path)
    cells = _cells_file(folder)
    frame = read_frame(cells, ["cell_id", "x_centroid", "y_centroid"], "Xenium cell table")
    ids = text_column(frame, "cell_id")
    check_unique(ids, f"{cells}: column 'cell_id'")
    um = np.stack([numeric_column(frame, "x_centroid", cells), numeric_column(frame, "y_centroid", cells)], 1)
    if len(ids) == 0:
        raise ValueError(f"{cells}: no cells; expected one row per cell")
    mpp = _pixel_size(folder, pixel_size_um)
    pos = um / mpp
    if alignment is not None:
        inverse = np.linalg.inv(read_alignment(alignment))
        pos = pos @ inverse[:2, :2].T + inverse[:2, 2]
        mpp *= float(np.sqrt(abs(np.linalg.det(read_alignment(alignment)[:2, :2]))))
    img = open_image(image, "Xenium image")
    if img is not None:
        check_inside(pos, image_size(img), str(cells), ids, kind="cells")
    mapping = _labels(labels)
    label_codes, class_names = encode_names([mapping.get(i) for i in ids], classes, str(labels or "labels"))
    return Section(graph=GraphSpec.parse(graph).build(pos, where=str(cells)), labels=label_codes,
                   classes=class_names, barcodes=ids, image=img, spot_diameter_px=CELL_DIAMETER_UM / mpp,
                   spot_diameter_um=CELL_DIAMETER_UM, name=name or folder.name,
                   meta={"source": str(folder), "microns_per_pixel": mpp})


def _labels(labels) -> dict:
    if labels is None:
        return {}
    if isinstance(labels, Mapping):
        return {str(k): v for k, v in labels.items()}
    frame = read_frame(labels, ["cell_id", "label"], "cell label table")
    return {k: (None if v != v else str(v)) for k, v in zip(text_column(frame, "cell_id"), frame["label"].tolist())}
