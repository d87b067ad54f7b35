"""Visium HD: square bins of a Space Ranger ``binned_outputs/square_XXXum`` folder.

Layout (Space Ranger 3.x): ``square_008um/spatial/tissue_positions.parquet`` (columns
``barcode, in_tissue, array_row, array_col, pxl_row_in_fullres, pxl_col_in_fullres``, the names
of Space Ranger 2.x's ``tissue_positions.csv``), ``spatial/scalefactors_json.json``
(``microns_per_pixel``, ``bin_size_um``, ``tissue_hires_scalef``, ``tissue_lowres_scalef``,
``spot_diameter_fullres``) and the ``tissue_hires_image.png`` / ``tissue_lowres_image.png``
images. The in-tissue bins are the nodes, by default of a Cartesian graph on their array indices.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from ...graph.spec import GraphSpec, GraphSpecLike
from ..labels import map_labels
from ..tables import RowNames, numeric_column, read_frame, text_column, unique_column, where
from ..images.image import image_size
from ..section import Section
from .spaceranger import _check_label_match, _label_mapping, _select_image
from ..tables import PathLike, check_inside, is_positive_number, require_file
from ..images.open import image_source
from .bundle_files import microscope_image

__all__ = ["read_visium_hd", "hd_bin_folder", "image_levels", "HD_CAPTURE_UM"]

#: Side of a Visium HD capture area, µm (array indices beyond 1.25x of it are refused as corrupted).
HD_CAPTURE_UM = 6500.0
_COLUMNS = ["barcode", "in_tissue", "array_row", "array_col", "pxl_row_in_fullres", "pxl_col_in_fullres"]
_POSITIONS = "tissue_positions.parquet"


def hd_bin_folder(path: PathLike, bin_size_um: int) -> Path:
    """The ``square_{bin_size_um:03d}um`` folder, given it, ``binned_outputs`` or ``outs``.

    Raises ``FileNotFoundError`` when ``path`` does not exist and ``ValueError`` listing the
    bin folders present when the asked one is absent."""
    if isinstance(bin_size_um, bool) or not is_positive_number(bin_size_um) or bin_size_um != int(bin_size_um):
        raise ValueError(f"bin_size_um must be a positive whole number of µm (2, 8, 16), got {bin_size_um!r}")
    path = Path(path)
    name = f"square_{int(bin_size_um):03d}um"
    for candidate in (path, path / name, path / "binned_outputs" / name):
        if (candidate / "spatial").is_dir() and candidate.name.startswith("square_"):
            if candidate.name != name:
                raise ValueError(f"{candidate}: holds {candidate.name} bins; bin_size_um={bin_size_um} "
                                 f"asks for {name}")
            return candidate
    if not path.exists():
        raise FileNotFoundError(f"Visium HD folder not found: {path}")
    base = path / "binned_outputs" if (path / "binned_outputs").is_dir() else path
    found = sorted(p.name for p in base.glob("square_*um") if p.is_dir())
    raise ValueError(f"{path}: no {name} folder for bin_size_um={bin_size_um}; "
                     f"found {found or 'none'} (the bin sizes available)")


def image_levels(path: PathLike, options: Optional[Mapping] = None) -> list:
    """The image levels (``hires``, ``lowres``) whose PNG the bin folder of ``path`` holds, for the
    options' ``bin_size_um`` (default 8), and ``fullres`` when its ``outs`` has one microscope image."""
    folder = hd_bin_folder(path, (options or {}).get("bin_size_um", 8))
    levels = _pngs(folder)
    try:
        full = microscope_image(_outs(folder), required=False)
    except ValueError:  # several: not a level one can pick without naming it
        full = None
    return levels + (["fullres"] if full is not None else [])


def _pngs(folder: Path) -> list:
    return [level for level in ("hires", "lowres") if (folder / "spatial" / f"tissue_{level}_image.png").is_file()]


def _outs(folder: Path) -> Optional[Path]:
    """The ``outs`` folder above a ``binned_outputs/square_XXXum`` folder (``None`` when it is not there)."""
    return folder.parent.parent if folder.parent.name == "binned_outputs" else None


def _factors(sf_path: Path, bin_size_um: int) -> dict:
    """The scale factors, checked: positive µm values, the folder's bin size, consistent units."""
    require_file(sf_path, "Visium HD scale factors (scalefactors_json.json)")
    try:
        factors = json.loads(sf_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{sf_path}: not a JSON file of scale factors") from None
    if not isinstance(factors, dict):
        raise ValueError(f"{sf_path}: expected a JSON object of scale factors")
    for key in ("microns_per_pixel", "bin_size_um"):
        if not is_positive_number(factors.get(key)):
            raise ValueError(f"{sf_path}: {key} must be a finite positive number (µm)")
    if abs(float(factors["bin_size_um"]) - bin_size_um) > 1e-6:
        raise ValueError(f"{sf_path}: bin_size_um is {factors['bin_size_um']}, the folder holds "
                         f"{bin_size_um} µm bins; expected them to agree")
    side_px = bin_size_um / float(factors["microns_per_pixel"])
    diameter = factors.get("spot_diameter_fullres")
    if is_positive_number(diameter) and not 0.8 < side_px / float(diameter) < 1.25:
        raise ValueError(
            f"{sf_path}: field 'microns_per_pixel' gives {side_px:.4g} full-resolution pixels per "
            f"{bin_size_um} µm bin but 'spot_diameter_fullres' is {float(diameter):.4g}; expected "
            "microns_per_pixel in µm per full-resolution pixel (about 0.2-1)")
    return factors


def _bins(pos_path: Path, bin_size_um: int):
    """``(rows, barcodes, all_barcodes, array_row, array_col, fullres)`` of the in-tissue bins:
    ``rows`` their 0-based rows in the file, ``fullres`` ``(N, 2)`` full-resolution pixel
    ``(x, y)``; ``all_barcodes`` every bin's barcode (in tissue or not)."""
    frame = read_frame(pos_path, _COLUMNS, "Visium HD positions table", text=("barcode",))
    in_tissue = numeric_column(frame, "in_tissue", pos_path)
    bad = (in_tissue != 0) & (in_tissue != 1)
    if bad.any():
        raise ValueError(f"{pos_path}: column 'in_tissue', {where(pos_path, int(np.flatnonzero(bad)[0]))}: "
                         "expected 0 or 1")
    keep = in_tissue == 1
    if not keep.any():
        raise ValueError(f"{pos_path}: column 'in_tissue': expected some bins with in_tissue == 1, found none")
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
    all_barcodes = text_column(frame, "barcode", pos_path)
    unique_column(all_barcodes, "barcode", pos_path)
    return np.flatnonzero(keep), all_barcodes[keep], all_barcodes, arrays[0], arrays[1], fullres


def _labels(labels, barcodes, all_barcodes, classes, name: str, pos_path: Path):
    """``(codes, classes)`` of the in-tissue bins, as :func:`read_spaceranger` reads labels."""
    mapping, source = _label_mapping(labels, name)
    codes, class_names = map_labels(barcodes, mapping, classes, source)
    if labels is not None:
        _check_label_match(mapping, codes, set(all_barcodes), source, name, pos_path)
    return codes, class_names


def read_visium_hd(path: PathLike, bin_size_um: int = 8, image: Union[str, PathLike, None] = "auto",
                   labels: Union[None, PathLike, Mapping] = None, classes: Optional[Sequence[str]] = None,
                   graph: GraphSpecLike = "cartesian", name: Optional[str] = None) -> Section:
    """Read the in-tissue bins of one bin size as a :class:`Section`.

    Args:
        path: the ``square_XXXum`` folder, its ``binned_outputs`` parent or the ``outs`` folder.
        bin_size_um: 2, 8 or 16 (default 8): the folder ``square_{bin:03d}um``; its scale
            factors' ``bin_size_um`` must agree.
        image: ``"auto"`` (default: hires, else lowres, else the microscope image, else none),
            ``"hires"``, ``"lowres"``, ``"fullres"`` (the full-resolution microscope image of the
            ``outs`` folder: ``microscope_image/<file>`` of Space Ranger 4, else ``*tissue_image.*``),
            a full-resolution image path (positions stay in full-resolution pixels), or ``None``
            (no image; full-resolution pixels).
        labels: ``None``, a mapping barcode -> class name, or a Loupe CSV path (as
            :func:`~gridgraph.io.read_spaceranger` reads them); ``classes`` fixes the order.
        graph: a :class:`~gridgraph.graph.GraphSpec`-like (default ``"cartesian"``: 4 neighbours
            on the bin array; ``{"name": "cartesian", "kwargs": {"connectivity": 8}}``, ``"knn"``, ...);
            ``None`` is the default.
        name: section name (default the folder above ``binned_outputs``, else the bin folder).

    Returns:
        A :class:`Section` over the ``N`` bins with ``in_tissue == 1``, in file order: node ids
        their barcodes, ``pos`` ``(N, 2)`` pixel ``(x, y)`` in the chosen image
        (``pxl_col/row_in_fullres * tissue_{hires,lowres}_scalef``), ``spot_diameter_um`` the
        bin size and ``spot_diameter_px`` the bin side in those pixels
        (``bin_size_um / microns_per_pixel * scale``), so windows in µm or in bins work.
    """
    folder = hd_bin_folder(path, bin_size_um)
    spatial = folder / "spatial"
    factors = _factors(spatial / "scalefactors_json.json", int(bin_size_um))
    pos_path = require_file(spatial / _POSITIONS, "Visium HD positions table")
    word = image if isinstance(image, str) else None  # else a path or an array
    if word == "fullres" or (word == "auto" and not _pngs(folder)
                             and microscope_image(_outs(folder), required=False) is not None):
        image = microscope_image(_outs(folder))
    choice = image if image in ("auto", "hires", "lowres", None) else "fullres"
    img, scale, kind = _select_image(spatial, choice, None if choice != "fullres" else image, factors,
                                     spatial / "scalefactors_json.json")  # first: it may decode meanwhile
    rows, barcodes, all_barcodes, array_row, array_col, fullres = _bins(pos_path, int(bin_size_um))
    default_name = folder.parent.parent.name if folder.parent.name == "binned_outputs" else folder.name
    name = name or default_name
    pos = fullres * scale
    if img is not None:
        check_inside(pos, image_size(img), f"{pos_path} (in {image_source(img)})", RowNames(pos_path, rows),
                     kind="bins")
    codes, class_names = _labels(labels, barcodes, all_barcodes, classes, name, pos_path)
    section_graph = (GraphSpec.parse(graph) or GraphSpec("cartesian")).build(pos, array_row, array_col,
                                                                            where=str(pos_path))
    return Section(graph=section_graph, labels=codes, classes=class_names, barcodes=barcodes, image=img,
                   spot_diameter_px=int(bin_size_um) / float(factors["microns_per_pixel"]) * scale,
                   spot_diameter_um=float(bin_size_um), array_row=array_row, array_col=array_col,
                   name=name, meta={"source": str(folder), "positions": str(pos_path), "image_kind": kind,
                                    "scale": scale, "scalefactors": factors})
