"""Visium HD: square bins of a Space Ranger ``binned_outputs/square_XXXum`` folder.

Layout (Space Ranger 3.x): ``square_008um/spatial/tissue_positions.parquet`` (columns
``barcode, in_tissue, array_row, array_col, pxl_row_in_fullres, pxl_col_in_fullres``),
``spatial/scalefactors_json.json`` (``microns_per_pixel``, ``bin_size_um``,
``tissue_hires_scalef``, ``tissue_lowres_scalef``, ``spot_diameter_fullres``) and the
``tissue_hires_image.png`` / ``tissue_lowres_image.png`` images. Bins are the nodes of a
Cartesian graph on their array indices.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from ..graph.spec import GraphSpec, GraphSpecLike
from .frames import numeric_column, read_frame, text_column, where
from .section import Section
from .spaceranger import _label_mapping, _select_image
from .tables import PathLike, check_unique, encode_names, require_file

__all__ = ["read_visium_hd", "hd_bin_folder", "HD_CAPTURE_UM"]

#: Side of a Visium HD capture area, µm (bins beyond 1.25x of it are refused as corrupted).
HD_CAPTURE_UM = 6500.0
_COLUMNS = ["barcode", "in_tissue", "array_row", "array_col", "pxl_row_in_fullres", "pxl_col_in_fullres"]


def hd_bin_folder(path: PathLike, bin_size_um: int) -> Path:
    """The ``square_XXXum`` folder for ``bin_size_um`` given it, ``binned_outputs`` or ``outs``."""
    path = Path(path)
    name = f"square_{int(bin_size_um):03d}um"
    for candidate in (path, path / name, path / "binned_outputs" / name):
        if (candidate / "spatial").is_dir() and candidate.name.startswith("square_"):
            if candidate.name != name:
                raise ValueError(f"{candidate}: holds {candidate.name} bins, bin_size_um={bin_size_um} was asked")
            return candidate
    base = path / "binned_outputs" if (path / "binned_outputs").is_dir() else path
    found = sorted(p.name for p in base.glob("square_*um")) if base.is_dir() else []
    if not path.exists():
        raise FileNotFoundError(f"Visium HD folder not found: {path}")
    raise ValueError(f"{path}: no {name} folder for bin_size_um={bin_size_um}; found {found or 'none'}")


def _factors(spatial: Path, bin_size_um: int) -> dict:
    sf_path = require_file(spatial / "scalefactors_json.json", "Visium HD scale factors")
    try:
        factors = json.loads(sf_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{sf_path}: not a JSON file of scale factors") from None
    for key in ("microns_per_pixel", "bin_size_um"):
        value = factors.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
            raise ValueError(f"{sf_path}: {key} must be a finite positive number (µm)")
    if abs(float(factors["bin_size_um"]) - bin_size_um) > 1e-6:
        raise ValueError(f"{sf_path}: bin_size_um is {factors['bin_size_um']}, the folder holds {bin_size_um} µm bins")
    return factors


def _bins(pos_path: Path, bin_size_um: int):
    frame = read_frame(pos_path, _COLUMNS, "Visium HD positions table")
    keep = numeric_column(frame, "in_tissue", pos_path) == 1
    high = int(1.25 * HD_CAPTURE_UM / bin_size_um)
    arrays = []
    for column in ("array_row", "array_col"):
        values = numeric_column(frame, column, pos_path)
        bad = (values < 0) | (values > high) | (values != np.round(values))
        if bad.any():
            at = where(pos_path, int(np.flatnonzero(bad)[0]))
            raise ValueError(f"{pos_path}: column {column!r}, {at}: expected an integer array index in "
                             f"0..{high} ({bin_size_um} µm bins of a {HD_CAPTURE_UM:.0f} µm capture area)")
        arrays.append(values[keep].astype(np.int64))
    fullres = np.stack([numeric_column(frame, "pxl_col_in_fullres", pos_path),
                        numeric_column(frame, "pxl_row_in_fullres", pos_path)], axis=1)[keep]
    barcodes = [b for b, k in zip(text_column(frame, "barcode"), keep) if k]
    if not barcodes:
        raise ValueError(f"{pos_path}: column 'in_tissue': expected some bins with in_tissue == 1, found none")
    return barcodes, arrays[0], arrays[1], fullres


def read_visium_hd(path: PathLike, bin_size_um: int = 8, image: Union[str, PathLike, None] = "auto",
                   labels: Union[None, PathLike, Mapping] = None, classes: Optional[Sequence[str]] = None,
                   graph: GraphSpecLike = "cartesian", name: Optional[str] = None) -> Section:
    """Read the in-tissue bins of one bin size as a :class:`Section`.

    Args:
        path: the ``square_XXXum`` folder, its ``binned_outputs`` parent or the ``outs`` folder.
        bin_size_um: 2, 8 or 16 (the folder ``square_{bin:03d}um``).
        image: ``"auto"`` (hires, else lowres, else none), ``"hires"``, ``"lowres"``, a
            full-resolution image path, or ``None``.
        labels: barcode -> class mapping or a Loupe CSV path; ``classes`` fixes the order.
        graph: the bins' graph (default Cartesian, 4 neighbours, on the bin array).
        name: section name (default the folder above ``binned_outputs``, else the bin folder).

    Positions are in the chosen image's pixels; ``spot_diameter_um`` is the bin size and
    ``spot_diameter_px`` the bin side in those pixels, so windows in µm or in bins work.
    """
    folder = hd_bin_folder(path, bin_size_um)
    spatial = folder / "spatial"
    factors = _factors(spatial, bin_size_um)
    barcodes, array_row, array_col, fullres = _bins(
        require_file(spatial / "tissue_positions.parquet", "Visium HD positions table"), bin_size_um)
    check_unique(barcodes, f"{spatial / 'tissue_positions.parquet'}: column 'barcode'")
    fullres_image = None if image in ("auto", "hires", "lowres", None) else image
    img, scale, kind = _select_image(spatial, "fullres" if fullres_image is not None else image, fullres_image,
                                     factors, spatial / "scalefactors_json.json")
    mapping, source = _label_mapping(labels, name or folder.name)
    label_codes, class_names = encode_names([mapping.get(b) for b in barcodes], classes, source)
    spec = GraphSpec.parse(graph)
    pos = fullres * scale
    section_graph = spec.build(pos, array_row, array_col, where=str(folder))
    default_name = folder.parent.parent.name if folder.parent.name == "binned_outputs" else folder.name
    return Section(graph=section_graph, labels=label_codes, classes=class_names, barcodes=barcodes, image=img,
                   spot_diameter_px=bin_size_um / float(factors["microns_per_pixel"]) * scale,
                   spot_diameter_um=float(bin_size_um), array_row=array_row, array_col=array_col,
                   name=name or default_name,
                   meta={"source": str(folder), "image_kind": kind, "scale": scale, "scalefactors": factors})
