"""10x Visium: read a Space Ranger ``spatial/`` folder (1.x or 2.x) into a :class:`Section`."""
from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from ...graph import hex_graph
from ...graph.hex_layout import VISIUM_COLS, VISIUM_ROWS, VISIUM_GRID_SHAPE
from ..images.image import ImageLike, image_size
from ..section import Section
from ..tables import PathLike, check_array_index, check_inside, is_positive_number, read_table, require_file
from ..images.open import image_source, open_image
from ..labels import encode_labels
from ..writers.tables import read_loupe_csv

POSITION_COLUMNS = [
    "barcode", "in_tissue", "array_row", "array_col", "pxl_row_in_fullres", "pxl_col_in_fullres",
]
POSITION_FILES = ("tissue_positions.csv", "tissue_positions_list.csv")  # 2.x (header), 1.x
VISIUM_SPOT_UM = 55.0
# Largest Visium array indices accepted: a 6.5 mm capture area has array_row 0..77 and array_col
# 0..127; an 11 mm (CytAssist) area 0..127 and 0..223 (14,336 spots). Anything beyond is a corrupted
# coordinate, refused before the dense grid (rows x cols cells) is allocated.
VISIUM_MAX_ROW = 127
VISIUM_MAX_COL = 223
VISIUM_RANGE = (
    "Visium arrays: rows 0..77 and columns 0..127 on 6.5 mm capture areas, 0..127 and 0..223 on 11 mm"
)


def _spatial_dir(path: PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Space Ranger folder not found: {path}")
    if (path / "spatial").is_dir():
        return path / "spatial"
    if path.is_dir():
        return path
    raise FileNotFoundError(f"expected a Space Ranger 'spatial/' folder or its parent, got the file {path}")


def _positions_file(spatial: Path) -> Path:
    for name in POSITION_FILES:
        if (spatial / name).is_file():
            return spatial / name
    raise FileNotFoundError(
        f"no spot positions in {spatial}: expected {POSITION_FILES[0]} (Space Ranger 2.x) "
        f"or {POSITION_FILES[1]} (1.x)"
    )


def image_levels(path: PathLike, options: Optional[Mapping] = None) -> list:
    """The image levels (``hires``, ``lowres``) whose PNG the Space Ranger folder ``path`` holds."""
    spatial = _spatial_dir(path)
    return [level for level in ("hires", "lowres") if (spatial / f"tissue_{level}_image.png").is_file()]


def visium_graph(array_row: np.ndarray, array_col: np.ndarray, pos: np.ndarray):
    """:func:`~gridgraph.graph.hex_graph` on the full-slide dense shape when the spots fit it,
    so that every section of a standard 6.5 mm slide shares one ``grid_shape``."""
    fits = array_row.max() < VISIUM_ROWS and array_col.max() < VISIUM_COLS
    return hex_graph(array_row, array_col, pos=pos, grid_shape=VISIUM_GRID_SHAPE if fits else None)


def read_scalefactors(path: PathLike) -> dict:
    """Read ``scalefactors_json.json``: ``spot_diameter_fullres``, ``tissue_hires_scalef``, ..."""
    path = require_file(path, "Space Ranger scale factors (scalefactors_json.json)")
    try:
        factors = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file; expected a JSON object of scale factors") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: expected a JSON object of scale factors ({err})") from None
    if not isinstance(factors, dict):
        raise ValueError(f"{path}: expected a JSON object of scale factors, got {type(factors).__name__}")
    for key, value in factors.items():
        if key.endswith(("_scalef", "_fullres")) and not is_positive_number(value):
            raise ValueError(f"{path}: field {key!r}: expected a finite positive number")
    return factors


def _scale_factor(factors: dict, key: str, path: Path) -> float:
    if key not in factors:
        raise ValueError(f"{path}: field {key!r} is missing; expected a finite positive number")
    return float(factors[key])


def _select_image(spatial: Path, image, fullres_image, factors: Optional[dict], sf_path: Path):
    """``(image or None, scale from full-res pixels to that image, kind)``."""
    if image is not None and not isinstance(image, str) or (
        isinstance(image, str) and image not in ("auto", "fullres", "hires", "lowres")
    ):
        fullres_image, image = image, "fullres"
    if image == "fullres" and fullres_image is None:
        raise ValueError("read_spaceranger: image='fullres' needs fullres_image=<path or array>")
    if image == "auto":
        if fullres_image is not None:
            image = "fullres"
        elif (spatial / "tissue_hires_image.png").is_file():
            image = "hires"
        elif (spatial / "tissue_lowres_image.png").is_file():
            image = "lowres"
        else:
            return None, 1.0, None
    if image is None:
        return None, 1.0, None
    if image == "fullres":
        return open_image(fullres_image, "full-resolution image"), 1.0, "fullres"
    picked = open_image(spatial / f"tissue_{image}_image.png", f"Space Ranger {image} image")
    if factors is None:
        require_file(sf_path, "Space Ranger scale factors (scalefactors_json.json)")
    return picked, _scale_factor(factors, f"tissue_{image}_scalef", sf_path), image


def read_barcode_labels(path: PathLike, section: Optional[str] = None) -> dict:
    """Read ``{barcode: name}`` from a Loupe CSV or a ``barcode, section, label`` table.

    A Loupe CSV has two columns and a ``Barcode,<Category>`` header. A three-column table (with or
    without header; e.g. spatialLIBD's ``barcode_level_layer_map.tsv``) holds barcodes of several
    sections: only rows whose second column equals ``section`` are kept.
    """
    table = read_table(path, header=False, what="label table")
    header = table.row(0)[0].lower() == "barcode"
    if len(table.columns) == 2:
        if not header:
            raise ValueError(
                f"{table.path}: a two-column label table must be a Loupe CSV with header "
                f"'Barcode,<Category>', got first row {table.row(0)}"
            )
        return read_loupe_csv(path)
    if len(table.columns) != 3:
        raise ValueError(
            f"{table.path}: expected a Loupe CSV (Barcode,<Category>) or a table of "
            f"barcode, section, label; found {len(table.columns)} columns"
        )
    if section is None:
        raise ValueError(f"{table.path}: a barcode/section/label table needs section=")
    table.columns = ["barcode", "section", "label"]
    sections = table.text(1)
    keep = np.array([s == str(section) for s in sections], dtype=bool)
    keep[0] &= not header
    if not keep.any():
        known = sorted(set(sections))
        raise ValueError(
            f"{table.path}: column 'section' has no rows for section {str(section)!r} "
            f"({len(known)} other sections)"
        )
    rows = table.take(keep)
    barcodes = rows.unique_text(0)
    table.warn_if_cut()
    return {b: n for b, n in zip(barcodes, rows.text(2)) if n}


def _label_mapping(labels, section: str) -> tuple[dict, str]:
    if labels is None:
        return {}, "labels"
    if isinstance(labels, (str, Path)):
        return read_barcode_labels(labels, section), str(labels)
    if isinstance(labels, Mapping):
        return {str(k): v for k, v in labels.items()}, "labels mapping"
    if hasattr(labels, "items"):  # pandas.Series
        return {str(k): v for k, v in labels.items()}, "labels series"
    raise TypeError(
        f"labels must be a mapping barcode -> name or the path of a label table, got {type(labels).__name__}"
    )


def _check_label_match(mapping: dict, codes, all_barcodes: set, source: str, name: str, pos_path) -> None:
    """Refuse labels that label no in-tissue spot; warn when most of their barcodes are unknown.

    Zero labelled spots means the labels belong to another section or spell barcodes otherwise
    (another suffix than ``-1``, a section prefix). When some spots are labelled but more than
    half of the label barcodes are absent from the positions file (in or out of tissue), a
    ``UserWarning`` says so: a partial annotation is legitimate, a mostly foreign one is not.
    """
    labelled = int((np.asarray(codes) >= 0).sum())
    if labelled == 0:
        raise ValueError(
            f"{source}: none of its {len(mapping)} labelled barcodes is an in-tissue spot of "
            f"section {name!r} ({pos_path}); expected barcodes spelled as in the positions file's "
            f"'barcode' column (same suffix, no section prefix)"
        )
    foreign = sum(1 for b in mapping if b not in all_barcodes)
    if foreign * 2 > len(mapping):
        warnings.warn(
            f"{source}: {foreign} of its {len(mapping)} barcodes are not in {pos_path} "
            f"(section {name!r}); only {labelled} of {len(codes)} in-tissue spots got a label. "
            f"Are these the labels of another section?",
            stacklevel=3,
        )


def _read_positions(pos_path: Path):
    """``(barcodes, array_row, array_col, fullres (x, y), all barcodes)`` of the in-tissue spots;
    array indices are checked against the largest Visium array before any grid is built."""
    table = read_table(pos_path, names=POSITION_COLUMNS, what="Space Ranger tissue positions")
    in_tissue = table.numeric("in_tissue", integer=True)
    if not np.isin(in_tissue, (0, 1)).all():
        bad = int(np.flatnonzero(~np.isin(in_tissue, (0, 1)))[0])
        raise ValueError(
            f"{pos_path}: column 'in_tissue', line {table.lines[bad]}: expected 0 or 1, "
            f"got {in_tissue[bad]}"
        )
    all_barcodes = set(table.text("barcode"))
    table = table.take(in_tissue == 1)
    if len(table) == 0:
        raise ValueError(f"{pos_path}: column 'in_tissue': expected some spots with in_tissue == 1, found none")
    barcodes = table.unique_text("barcode")
    array_row = table.numeric("array_row", integer=True)
    array_col = table.numeric("array_col", integer=True)
    at = [f"line {n}" for n in table.lines]
    check_array_index(array_row, VISIUM_MAX_ROW, f"{pos_path}: column 'array_row'", at, VISIUM_RANGE)
    check_array_index(array_col, VISIUM_MAX_COL, f"{pos_path}: column 'array_col'", at, VISIUM_RANGE)
    fullres = np.stack(
        [table.numeric("pxl_col_in_fullres"), table.numeric("pxl_row_in_fullres")], axis=1
    )
    table.warn_if_cut()
    return barcodes, array_row, array_col, fullres, all_barcodes


def read_spaceranger(
    path: PathLike,
    labels: Union[None, PathLike, Mapping] = None,
    image: Union[str, ImageLike, None] = "auto",
    section: Optional[str] = None,
    classes: Optional[Sequence[str]] = None,
    fullres_image: Optional[ImageLike] = None,
) -> Section:
    """Read a 10x Visium section from Space Ranger output.

    Args:
        path: the ``spatial/`` folder or its parent. Spot positions come from
            ``tissue_positions.csv`` (2.x, with header) or ``tissue_positions_list.csv`` (1.x, no
            header); only ``in_tissue == 1`` spots become nodes.
        labels: ``None``; a mapping (dict or pandas Series) barcode -> class name; or the path of
            a Loupe CSV (``Barcode,<Category>``) or of a headerless ``barcode, section, label``
            table such as ``dlpfc/barcode_level_layer_map.tsv``. Spots without a label get ``-1``.
        image: ``"auto"`` (default: ``fullres_image`` if given, else the hires image, else the
            lowres one), ``"fullres"``, ``"hires"``, ``"lowres"``, ``None`` (no image; positions
            in full-resolution pixels), or a full-resolution image path/array.
        section: section id; defaults to the name of the folder holding ``spatial/`` (e.g.
            ``"151673"``). It picks the rows of a ``barcode, section, label`` table.
        classes: class order (``label i = classes[i]``); by default the label names in natural
            order (``L1..L6, WM``). A name outside ``classes`` raises ``ValueError``.
        fullres_image: path or array of the full-resolution image.

    Array indices beyond the largest Visium array (rows 0..127, columns 0..223: an 11 mm
    capture area) raise ``ValueError`` naming the line; so do labels that label no in-tissue spot
    (a warning when most of their barcodes are not in the positions file).

    Returns:
        A :class:`Section` with a ``"hex"`` graph over ``(array_row, array_col)`` whose ``pos`` is
        the pixel ``(x, y) = (pxl_col, pxl_row) * scale`` in the chosen image, ``scale`` being
        ``tissue_hires_scalef``/``tissue_lowres_scalef`` (1 for full resolution);
        ``spot_diameter_px = spot_diameter_fullres * scale`` and ``spot_diameter_um = 55``.
    """
    spatial = _spatial_dir(path)
    name = str(section) if section is not None else (
        spatial.parent.name if spatial.name == "spatial" else spatial.name
    )
    pos_path = _positions_file(spatial)
    barcodes, array_row, array_col, fullres, all_barcodes = _read_positions(pos_path)

    sf_path = spatial / "scalefactors_json.json"
    factors = read_scalefactors(sf_path) if sf_path.is_file() else None
    img, scale, kind = _select_image(spatial, image, fullres_image, factors, sf_path)
    pos = fullres * scale
    if img is not None:
        check_inside(pos, image_size(img), f"{pos_path} (in {image_source(img)})", barcodes)

    mapping, source = _label_mapping(labels, name)
    codes, class_names = encode_labels([mapping.get(b) for b in barcodes], classes, source)
    if labels is not None:
        _check_label_match(mapping, codes, all_barcodes, source, name, pos_path)

    try:
        graph = visium_graph(array_row, array_col, pos)
    except ValueError as err:
        raise ValueError(f"{pos_path}: columns 'array_row'/'array_col': {err}") from None
    diameter = None
    if factors is not None and "spot_diameter_fullres" in factors:
        diameter = float(factors["spot_diameter_fullres"]) * scale
    in_barcodes = set(barcodes)
    return Section(
        graph=graph,
        labels=codes,
        classes=class_names,
        barcodes=barcodes,
        image=img,
        spot_diameter_px=diameter,
        spot_diameter_um=VISIUM_SPOT_UM,
        array_row=array_row,
        array_col=array_col,
        name=name,
        meta={
            "source": str(spatial),
            "positions": str(pos_path),
            "image_kind": kind,
            "scale": scale,
            "scalefactors": factors,
            "labels_not_in_tissue": sum(1 for b in mapping if b not in in_barcodes),
        },
    )
