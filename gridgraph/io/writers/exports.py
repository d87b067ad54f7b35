"""Predictions for viewers: Xenium Explorer cell groups (CSV) and QuPath objects (GeoJSON).

Both take node ids, one class per node (class indices, ``-1`` for none, or class names) and,
for GeoJSON, positions in full-resolution image pixels ``(x, y)``; the ``section_*`` variants
take a :class:`~gridgraph.io.Section` and convert its positions themselves. Every file is
written atomically and every error names the file and the field.
"""
from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import pyarrow as pa

from ...files.atomic import atomic_write
from .predictions import check_probabilities, class_hex_colors, confidence
from .tables import formula_safe

__all__ = ["write_xenium_cell_groups", "write_qupath_geojson", "section_cell_groups", "section_geojson"]

PathLike = Union[str, os.PathLike]
GEOMETRIES = ("point", "circle", "square")


def _ids(path, ids) -> list:
    ids = [str(i) for i in ids]
    if not ids:
        raise ValueError(f"{path}: no nodes to write; expected at least one id")
    for i, value in enumerate(ids):
        if not value.strip() or "\n" in value or "\r" in value:
            raise ValueError(f"{path}: field 'id', row {i}: expected a non-empty id on one line, got {value!r}")
    if len(set(ids)) != len(ids):
        seen = set()
        dup = next(v for v in ids if v in seen or seen.add(v))
        raise ValueError(f"{path}: field 'id': {dup!r} appears twice; expected one row per node")
    return ids


def _names(path, labels, classes: Optional[Sequence[str]], n: int) -> list:
    """Class name of each node (``None`` for no class) from indices or names."""
    values = labels.detach().cpu().numpy() if hasattr(labels, "detach") else labels
    if np.ndim(values) != 1:
        raise ValueError(f"{path}: field 'label': expected one label per node (1-D), got shape {np.shape(values)}")
    values = list(values.tolist() if hasattr(values, "tolist") else values)
    if len(values) != n:
        raise ValueError(f"{path}: {n} ids but {len(values)} labels")
    if classes is not None:
        _check_classes(path, classes)
    known = None if classes is None else {str(c) for c in classes}
    out = []
    for i, v in enumerate(values):
        if isinstance(v, (bool, np.bool_)):
            raise ValueError(f"{path}: field 'label', row {i}: expected a class index or name, got {v} (a boolean)")
        if isinstance(v, str) and ("\n" in v or "\r" in v):
            raise ValueError(f"{path}: field 'label', row {i}: expected a class name on one line, got {v!r}")
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out.append(None)
        elif isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            if classes is None:
                raise ValueError(f"{path}: field 'label', row {i}: class indices need classes=")
            if not -1 <= v < len(classes):
                raise ValueError(f"{path}: field 'label', row {i}: class index {v} outside -1..{len(classes) - 1}")
            out.append(None if v < 0 else str(classes[v]))
        elif isinstance(v, float):
            raise ValueError(f"{path}: field 'label', row {i}: expected a class index or name, got {v}")
        else:
            name = str(v).strip()
            if known is not None and name and name not in known:
                raise ValueError(f"{path}: field 'label', row {i}: unknown class {name!r}; expected one of "
                                 f"{[str(c) for c in classes]}")
            out.append(name or None)
    return out


def _check_classes(path, classes: Sequence[str]) -> None:
    names = [str(c) for c in classes]
    if not names:
        raise ValueError(f"{path}: field 'classes': expected at least one class name, got none")
    if len(set(names)) != len(names):
        dup = next(c for i, c in enumerate(names) if c in names[:i])
        raise ValueError(f"{path}: field 'classes': {dup!r} appears twice; expected distinct class names")


def write_xenium_cell_groups(path: PathLike, ids: Sequence[str], labels, classes: Optional[Sequence[str]] = None,
                             color: bool = False) -> Path:
    """Write a Xenium Explorer cell groups CSV: header ``cell_id,group`` and one line per cell
    with a class (cells without one are left out, as Explorer leaves them ungrouped).

    Args:
        path: the ``.csv`` file.
        ids: the cells' ``cell_id`` values, as in the Xenium bundle.
        labels: class index per cell (``-1``: none) or class name (``None``: none).
        classes: class names (needed for indices; names outside it are refused).
        color: also a ``color`` column (``#rrggbb``, gridgraph's class colours; Explorer's own
            exports carry one).

    Ids and names that a spreadsheet would run as a formula get a leading ``'``
    (:func:`~gridgraph.io.writers.tables.formula_safe`; Xenium's own cell ids never begin with
    one of those characters); read back by :func:`~gridgraph.io.read_xenium`
    (``labels=<this file>``), which removes it. Returns the path.
    """
    ids = _ids(path, ids)
    names = _names(path, labels, classes, len(ids))
    order = [str(c) for c in classes] if classes is not None else sorted({v for v in names if v})
    colors = dict(zip(order, class_hex_colors(order)))
    rows = [(cell, name) for cell, name in zip(ids, names) if name is not None]
    safe_ids = formula_safe(pa.array([r[0] for r in rows], type=pa.string())).to_pylist()  # CSV injection
    safe_names = formula_safe(pa.array([r[1] for r in rows], type=pa.string())).to_pylist()
    with atomic_write(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["cell_id", "group", "color"] if color else ["cell_id", "group"])
        for cell, name, (_, raw) in zip(safe_ids, safe_names, rows):
            writer.writerow([cell, name, colors[raw]] if color else [cell, name])
    return Path(path)


def _ring(x: float, y: float, radius: float, geometry: str, vertices: int) -> list:
    """A closed polygon ring (first point repeated) around ``(x, y)``: a circle of ``vertices``
    corners or an axis-aligned square of side ``2 * radius``."""
    if geometry == "square":
        pts = [(x - radius, y - radius), (x + radius, y - radius), (x + radius, y + radius),
               (x - radius, y + radius)]
    else:
        angles = np.linspace(0.0, 2.0 * np.pi, vertices, endpoint=False)
        pts = list(zip((x + radius * np.cos(angles)).tolist(), (y + radius * np.sin(angles)).tolist()))
    pts.append(pts[0])
    return [[round(float(a), 3), round(float(b), 3)] for a, b in pts]


def write_qupath_geojson(path: PathLike, ids: Sequence[str], positions, labels, classes: Sequence[str],
                         probs=None, geometry: str = "point", diameter_px: Optional[float] = None,
                         vertices: int = 32, object_type: str = "detection") -> Path:
    """Write predictions as a GeoJSON ``FeatureCollection`` that QuPath imports as objects.

    Each node is a ``Feature`` with a ``Point`` (cells) or a ``Polygon`` (spots: a circle of
    ``vertices`` corners, or a square for bins, of ``diameter_px``) in full-resolution image
    pixels, and ``properties``: ``objectType``, ``name`` (the node id), ``classification``
    (``{"name", "color": [r, g, b]}``; absent for nodes without a class) and, with ``probs``,
    ``measurements`` (``{"gridgraph: p(<class>)": p, ..., "gridgraph: confidence",
    "gridgraph: entropy"}``).

    Args:
        path: the ``.geojson`` file.
        ids: ``N`` node ids.
        positions: ``(N, 2)`` full-resolution pixel ``(x, y)``.
        labels: class index per node (``-1``: none) or class name (``None``: none).
        classes: the ``K`` class names.
        probs: optional ``(N, K)`` probabilities.
        geometry: ``"point"``, ``"circle"`` or ``"square"``.
        diameter_px: spot diameter (square side) in full-resolution pixels; needed for polygons.
        object_type: QuPath's ``objectType`` (``"detection"`` or ``"annotation"``).

    Returns the path.
    """
    ids = _ids(path, ids)
    n, classes = len(ids), [str(c) for c in classes]
    names = _names(path, labels, classes, n)
    pos = np.asarray(positions.detach().cpu().numpy() if hasattr(positions, "detach") else positions, dtype=np.float64)
    if pos.shape != (n, 2):
        raise ValueError(f"{path}: field 'positions': expected shape ({n}, 2) (x, y per node), got {pos.shape}")
    bad = ~np.isfinite(pos).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{path}: field 'positions' of node {ids[i]!r}: expected finite pixel "
                         "coordinates, got NaN/inf")
    if geometry not in GEOMETRIES:
        raise ValueError(f"{path}: geometry must be one of {GEOMETRIES}, got {geometry!r}")
    if geometry != "point" and not (diameter_px is not None and np.isfinite(diameter_px) and diameter_px > 0):
        raise ValueError(f"{path}: field 'diameter_px': {geometry} polygons need a finite positive spot diameter "
                         f"in full-resolution pixels, got {diameter_px}")
    if object_type not in ("detection", "annotation"):
        raise ValueError(f"{path}: object_type must be 'detection' or 'annotation', got {object_type!r}")
    if probs is not None:
        probs = check_probabilities(probs, n, classes, f"{path}: field 'probs'")
        top, entropy = confidence(probs)
    rgb = {c: [int(h[i:i + 2], 16) for i in (1, 3, 5)] for c, h in zip(classes, class_hex_colors(classes))}
    features = []
    for i, (node, name) in enumerate(zip(ids, names)):
        x, y = float(pos[i, 0]), float(pos[i, 1])
        if geometry == "point":
            shape = {"type": "Point", "coordinates": [round(x, 3), round(y, 3)]}
        else:
            shape = {"type": "Polygon", "coordinates": [_ring(x, y, diameter_px / 2.0, geometry, vertices)]}
        props = {"objectType": object_type, "name": node}
        if name is not None:
            props["classification"] = {"name": name, "color": rgb.get(name, [128, 128, 128])}
        if probs is not None:
            props["measurements"] = {**{f"gridgraph: p({c})": round(float(p), 6) for c, p in zip(classes, probs[i])},
                                     "gridgraph: confidence": round(float(top[i]), 6),
                                     "gridgraph: entropy": round(float(entropy[i]), 6)}
        features.append({"type": "Feature", "geometry": shape, "properties": props})
    with atomic_write(path, "w", encoding="utf-8") as fh:
        json.dump({"type": "FeatureCollection", "features": features}, fh, separators=(",", ":"))
    return Path(path)


def _auto_geometry(section) -> str:
    layout = getattr(section.graph, "layout", "irregular")
    return {"hex": "circle", "cartesian": "square"}.get(str(layout), "point")


def section_geojson(path: PathLike, section, labels, classes: Sequence[str], probs=None,
                    geometry: str = "auto", **kwargs) -> Path:
    """:func:`write_qupath_geojson` of a section's nodes in full-resolution pixels (its image
    positions over the reader's scale); ``geometry="auto"``: circles for Visium spots (hex),
    squares for bins (cartesian), points for cells; the diameter is the section's spot diameter."""
    from .anndata import fullres_positions

    geometry = _auto_geometry(section) if geometry == "auto" else geometry
    diameter = None
    if section.spot_diameter_px:
        diameter = float(section.spot_diameter_px) / float((section.meta or {}).get("scale") or 1.0)
    return write_qupath_geojson(path, section.barcodes, fullres_positions(section), labels, classes, probs=probs,
                                geometry=geometry, diameter_px=kwargs.pop("diameter_px", diameter), **kwargs)


def section_cell_groups(path: PathLike, section, labels, classes: Sequence[str], color: bool = False) -> Path:
    """:func:`write_xenium_cell_groups` of a section's nodes (their ids are the cell ids)."""
    return write_xenium_cell_groups(path, section.barcodes, labels, classes, color=color)
