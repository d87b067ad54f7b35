"""Visium HD cells: the cell segmentation of Space Ranger 4's ``outs/segmented_outputs``.

Layout: ``segmented_outputs/cell_segmentations.geojson`` (a FeatureCollection of cell polygons in
full-resolution pixels, ``properties.cell_id`` an integer; the cell's barcode is
``cellid_{cell_id:09d}-1``, as in ``filtered_feature_cell_matrix.h5``) and
``segmented_outputs/spatial/`` (``scalefactors_json.json`` with ``microns_per_pixel``; the
``tissue_hires_image.png`` / ``tissue_lowres_image.png`` images), else the ``outs/spatial/`` ones.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from ...graph.spec import GraphSpec, GraphSpecLike
from ..images.image import image_size
from ..images.open import image_source
from ..section import Section
from ..tables import PathLike, RowNames, check_inside, is_positive_number, require_file
from .bundle_files import microscope_image
from .spaceranger import _check_label_match, _label_mapping, _select_image
from .xenium import CELL_DIAMETER_UM
from ..labels import map_labels

__all__ = ["read_visium_hd_cells", "cell_levels", "segmented_folder"]

_CELLS = "cell_segmentations.geojson"


def segmented_folder(path: PathLike) -> Path:
    """The ``segmented_outputs`` folder, given it or the ``outs`` folder above it."""
    path = Path(path)
    for candidate in (path, path / "segmented_outputs"):
        if (candidate / _CELLS).is_file():
            return candidate
    if not path.exists():
        raise FileNotFoundError(f"Visium HD folder not found: {path}")
    raise FileNotFoundError(f"{path}: no Visium HD cell segmentation; looked for {_CELLS} and "
                            f"segmented_outputs/{_CELLS} (Space Ranger 4)")


def _spatial(folder: Path) -> Path:
    for spatial in (folder / "spatial", folder.parent / "spatial"):
        if (spatial / "scalefactors_json.json").is_file():
            return spatial
    raise FileNotFoundError(f"{folder}: no scale factors; looked for spatial/scalefactors_json.json and "
                            "../spatial/scalefactors_json.json")


def cell_levels(path: PathLike, options: Optional[Mapping] = None) -> list:
    """The image levels of a segmented folder: ``hires``, ``lowres`` (PNGs), ``fullres`` (one microscope image)."""
    folder = segmented_folder(path)
    spatial = _spatial(folder)
    levels = [lvl for lvl in ("hires", "lowres") if (spatial / f"tissue_{lvl}_image.png").is_file()]
    try:
        full = microscope_image(folder.parent, required=False)
    except ValueError:
        full = None
    return levels + (["fullres"] if full is not None else [])


def _centroids(path: Path) -> tuple[list, np.ndarray]:
    """``(barcodes, (N, 2) full-resolution (x, y))``: the area centroid of each cell's outer ring."""
    try:
        features = json.loads(path.read_text(encoding="utf-8"))["features"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
        raise ValueError(f"{path}: expected a GeoJSON FeatureCollection of cell polygons") from None
    if not features:
        raise ValueError(f"{path}: no cells; expected one polygon feature per cell")
    ids, centres = [], np.empty((len(features), 2))
    for i, feature in enumerate(features):
        try:
            cell = int(feature["properties"]["cell_id"])
            ring = np.asarray(feature["geometry"]["coordinates"][0], dtype=np.float64)[:, :2]
        except (KeyError, TypeError, ValueError, IndexError):
            raise ValueError(f"{path}: feature {i}: expected properties.cell_id (an integer) and a Polygon "
                             "geometry") from None
        x, y = ring[:, 0], ring[:, 1]
        cross = x * np.roll(y, -1) - np.roll(x, -1) * y
        area = cross.sum() / 2
        if abs(area) < 1e-12:
            centres[i] = ring.mean(0)
        else:
            centres[i] = [((x + np.roll(x, -1)) * cross).sum() / (6 * area),
                          ((y + np.roll(y, -1)) * cross).sum() / (6 * area)]
        ids.append(f"cellid_{cell:09d}-1")
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: properties.cell_id repeats; expected one feature per cell")
    if not np.isfinite(centres).all():
        raise ValueError(f"{path}: a cell polygon has coordinates that are not finite numbers")
    return ids, centres


def read_visium_hd_cells(path: PathLike, image: Union[str, PathLike, None] = "auto",
                         labels: Union[None, PathLike, Mapping] = None, classes: Optional[Sequence[str]] = None,
                         graph: GraphSpecLike = "knn", name: Optional[str] = None) -> Section:
    """Read the segmented cells of a Visium HD run (Space Ranger 4) as a :class:`Section`.

    Args:
        path: the ``outs`` folder or its ``segmented_outputs``.
        image: ``"auto"`` (hires, else lowres, else the microscope image, else none), ``"hires"``,
            ``"lowres"``, ``"fullres"`` (``outs/microscope_image/``), a full-resolution image path, or ``None``.
        labels: ``None``, a mapping barcode (``cellid_000000001-1``) -> class, or a Loupe CSV.
        graph: a :class:`~gridgraph.graph.GraphSpec`-like (default ``"knn"``).
        name: section name (default the folder above ``outs``, else the ``outs`` folder's).

    Returns:
        A :class:`Section` over the cells in file order, at their polygons' centroids in the chosen
        image's pixels; ``spot_diameter_um`` a nominal cell (10 µm).
    """
    folder = segmented_folder(path)
    spatial = _spatial(folder)
    sf_path = spatial / "scalefactors_json.json"
    factors = json.loads(require_file(sf_path, "Visium HD scale factors").read_text())
    if not isinstance(factors, dict) or not is_positive_number(factors.get("microns_per_pixel")):
        raise ValueError(f"{sf_path}: field 'microns_per_pixel' must be a finite positive number (µm per "
                         "full-resolution pixel)")
    pngs = [lvl for lvl in ("hires", "lowres") if (spatial / f"tissue_{lvl}_image.png").is_file()]
    word = image if isinstance(image, str) else None  # else a path or an array
    if word == "fullres" or (word == "auto" and not pngs and microscope_image(folder.parent, False) is not None):
        image = microscope_image(folder.parent)
    choice = image if image in ("auto", "hires", "lowres", None) else "fullres"
    img, scale, kind = _select_image(spatial, choice, None if choice != "fullres" else image, factors, sf_path)
    cells = folder / _CELLS
    barcodes, fullres = _centroids(cells)
    pos = fullres * scale
    if img is not None:
        check_inside(pos, image_size(img), f"{cells} (in {image_source(img)})", RowNames(cells, np.arange(len(pos))),
                     kind="cells")
    mapping, source = _label_mapping(labels, name or "cells")
    codes, class_names = map_labels(barcodes, mapping, classes, source)
    if labels is not None:
        _check_label_match(mapping, codes, set(barcodes), source, name or "cells", cells)
    outs = folder.parent if folder.name == "segmented_outputs" else folder
    section_graph = (GraphSpec.parse(graph) or GraphSpec("knn")).build(pos, where=str(cells))
    mpp = float(factors["microns_per_pixel"]) / scale
    return Section(graph=section_graph, labels=codes, classes=class_names, barcodes=barcodes, image=img,
                   spot_diameter_px=CELL_DIAMETER_UM / mpp, spot_diameter_um=CELL_DIAMETER_UM,
                   name=name or (outs.parent.name if outs.name == "outs" else outs.name),
                   meta={"source": str(folder), "cells": str(cells), "image_kind": kind, "scale": scale,
                         "scalefactors": factors})
