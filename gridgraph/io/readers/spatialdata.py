"""SpatialData (``.zarr``) to :class:`Section`; needs the optional ``spatialdata`` extra.

A SpatialData object holds the elements spatialdata-io writes for Visium (a shapes element of
spot circles named after the dataset, ``<id>_hires_image`` / ``<id>_lowres_image``), Visium HD
(``<id>_square_008um`` bins, one table per bin size) and Xenium (``cell_circles`` /
``cell_boundaries`` in µm, ``morphology_focus``): a table whose ``spatialdata_attrs`` say which
element it annotates (``region``), in which ``obs`` column (``region_key``) and by which
instance ids (``instance_key``), and per element its transformations into coordinate systems.
The nodes are the table's rows, placed at their shapes' centres and mapped through the shapes'
and the image's transformations into the image's pixels.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ...graph.spec import GraphSpec, GraphSpecLike
from ..images.image import image_size, to_rgb_uint8
from ..labels import labels_from_obs
from ..section import Section
from ..tables import check_inside, check_unique, is_positive_number
from .spaceranger import VISIUM_SPOT_UM, visium_graph
from .xenium import CELL_DIAMETER_UM

__all__ = ["read_spatialdata", "load_spatialdata"]

_BIN = re.compile(r"square_(\d{3})um")


def _import_spatialdata():
    try:
        import spatialdata
    except ImportError as err:
        raise ImportError("read_spatialdata needs the optional 'spatialdata' package: "
                          "pip install gridgraph[spatialdata]") from err
    return spatialdata


def load_spatialdata(sdata):
    """``(SpatialData, source name)`` from a SpatialData object or the path of a ``.zarr`` store,
    with errors that name the path."""
    spatialdata = _import_spatialdata()
    if isinstance(sdata, spatialdata.SpatialData):
        return sdata, str(sdata.path) if getattr(sdata, "path", None) else "sdata"
    if not isinstance(sdata, (str, os.PathLike)):
        raise TypeError(f"expected a SpatialData object or the path of a .zarr store, got {type(sdata).__name__}")
    path = Path(sdata)
    if not path.exists():
        raise FileNotFoundError(f"SpatialData store not found: {path}")
    try:
        return spatialdata.read_zarr(path), str(path)
    except Exception as err:  # zarr/ome-zarr errors do not name the store
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise ValueError(f"{path}: cannot read as a SpatialData zarr store: {reason}") from err


def _pick(names: Sequence[str], wanted: Optional[str], what: str, source: str, param: str) -> str:
    names = list(names)
    if wanted is not None:
        if wanted not in names:
            raise ValueError(f"{source}: no {what} {wanted!r}; found {names}")
        return wanted
    if not names:
        raise ValueError(f"{source}: holds no {what}; expected one" + (" annotating the spots or cells (obs: one row "
                         "per node)" if what == "table" else ""))
    if len(names) != 1:
        raise ValueError(f"{source}: {len(names)} {what}s {names}; pass {param}=")
    return names[0]


def _input_tables(sdata) -> list:
    """The tables to read when none is named: all but gridgraph's own predictions (a table whose
    ``uns["gridgraph"]`` holds the classes, as :func:`~gridgraph.io.writers.spatialdata.predictions_table`
    writes it), unless those are all there is."""
    names = list(sdata.tables)
    theirs = [n for n in names if not (hasattr(sdata.tables[n].uns.get("gridgraph"), "get")
                                       and "classes" in sdata.tables[n].uns["gridgraph"])]
    return theirs or names


def _table_keys(tbl, name: str, source: str) -> tuple:
    from spatialdata.models import TableModel

    attrs = tbl.uns.get(TableModel.ATTRS_KEY) if hasattr(tbl.uns, "get") else None
    if not attrs or attrs.get("instance_key") is None:
        raise ValueError(f"{source}: table {name!r} lacks uns[{TableModel.ATTRS_KEY!r}] (region, region_key, "
                         "instance_key): it annotates no element")
    region = attrs.get("region")
    regions = [region] if isinstance(region, str) else [str(r) for r in (region or [])]
    return regions, attrs.get("region_key"), attrs["instance_key"]


def _element(sdata, regions: list, shapes: Optional[str], table: str, instance_key: str, source: str):
    """``(name, "shapes" or "points", element, region of the rows)``: the element whose
    instances become nodes. A table annotating a labels element (spatialdata-io's Xenium:
    ``cell_labels``) is placed on shapes of the same instances (``cell_circles``, else
    ``cell_boundaries``, else shapes indexed by ``instance_key``)."""
    region = shapes if shapes in regions else (regions[0] if len(regions) == 1 else None)
    if shapes is None:
        if region is None:
            raise ValueError(f"{source}: table {table!r} annotates {regions}; pass shapes=")
        shapes = region
        if region in sdata.labels:
            same = [n for n in ("cell_circles", "cell_boundaries") if n in sdata.shapes]
            same += [n for n in sdata.shapes if sdata.shapes[n].index.name == instance_key]
            if not same:
                raise ValueError(f"{source}: table {table!r} annotates the labels element {region!r}; pass "
                                 f"shapes= naming shapes of the same instances (found {list(sdata.shapes)})")
            shapes = same[0]
    if shapes in sdata.shapes:
        return shapes, "shapes", sdata.shapes[shapes], region
    if shapes in sdata.points:
        return shapes, "points", sdata.points[shapes], region
    if shapes in sdata.labels:
        raise ValueError(f"{source}: {shapes!r} is a labels element; pass shapes= naming shapes of the same "
                         f"instances (found shapes {list(sdata.shapes)})")
    raise ValueError(f"{source}: no shapes or points element {shapes!r}; found shapes {list(sdata.shapes)}, "
                     f"points {list(sdata.points)}")


def _centres(kind: str, element, ids, where: str) -> tuple[np.ndarray, Optional[float]]:
    """``(N, 2)`` centres ``(x, y)`` in the element's units of the instances ``ids`` and their
    median diameter (circles: 2 r; square bins: the side; polygons: of a disc of equal area)."""
    import pandas as pd

    frame = element.compute() if kind == "points" else element
    index = pd.Index(frame.index)
    rows = index.get_indexer(pd.Index(ids)) if index.is_unique else np.full(len(ids), -1)
    if (rows < 0).any():
        if not index.is_unique:
            raise ValueError(f"{where}: its index repeats instance ids; expected one row per instance")
        raise ValueError(f"{where}: no instance {ids[int(np.flatnonzero(rows < 0)[0])]!r} of the table")
    frame = frame.iloc[rows]
    if kind == "points":
        return frame[["x", "y"]].to_numpy(dtype=np.float64), None
    geometry = frame.geometry
    types = set(geometry.geom_type)
    if types <= {"Point"}:
        xy = np.stack([geometry.x.to_numpy(), geometry.y.to_numpy()], axis=1)
        radius = frame["radius"].to_numpy(dtype=np.float64) if "radius" in frame else None
        if radius is not None and not (np.isfinite(radius) & (radius > 0)).all():
            i = int(np.flatnonzero(~(np.isfinite(radius) & (radius > 0)))[0])
            raise ValueError(f"{where}, instance {ids[i]!r}: column 'radius' is {radius[i]}; expected a finite "
                             "positive circle radius")
        return xy, None if radius is None or not len(radius) else 2.0 * float(np.median(radius))
    if not types <= {"Polygon", "MultiPolygon"}:
        raise ValueError(f"{where}: geometries {sorted(types)}; expected circles (points with a radius) or polygons")
    centroid = geometry.centroid
    xy = np.stack([centroid.x.to_numpy(), centroid.y.to_numpy()], axis=1)
    area = geometry.area.to_numpy()
    box = geometry.envelope.area.to_numpy()
    if not len(area):
        return xy, None
    square = np.median(area / np.maximum(box, 1e-300)) > 0.98
    return xy, float(np.median(np.sqrt(area) if square else 2.0 * np.sqrt(area / np.pi)))


def _affine(element, cs: str) -> np.ndarray:
    """``(3, 3)`` affine from the element's ``(x, y)`` into coordinate system ``cs``."""
    from spatialdata.transformations import get_transformation

    t = get_transformation(element, to_coordinate_system=cs)
    return np.asarray(t.to_affine_matrix(input_axes=("x", "y"), output_axes=("x", "y")), dtype=np.float64)


def _systems(element) -> list:
    from spatialdata.transformations import get_transformation

    return list(get_transformation(element, get_all=True))


def _image_array(element, level: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    """``((H, W, 3) uint8, (3, 3) affine from this level's pixels to the level-0 pixels)``."""
    scale = np.eye(3)
    if type(element).__name__ == "DataTree":  # a multiscale image: levels scale0, scale1, ...
        levels = sorted(element.children, key=lambda k: int(re.sub(r"\D", "", k) or 0))
        if not 0 <= level < len(levels):
            raise ValueError(f"{where}: image_level {level} outside 0..{len(levels) - 1}")
        base = next(iter(element[levels[0]].data_vars.values()))
        array = next(iter(element[levels[level]].data_vars.values()))
        scale[0, 0] = base.sizes["x"] / array.sizes["x"]
        scale[1, 1] = base.sizes["y"] / array.sizes["y"]
    elif level != 0:
        raise ValueError(f"{where}: image_level {level}, but the image has one level (0)")
    else:
        array = element
    try:
        data = np.asarray(array.transpose("y", "x", "c").values)
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as err:  # noqa: BLE001 - zarr/numcodecs raise RuntimeError and others for damaged chunks
        raise ValueError(f"{where}: its pixels cannot be decoded ({type(err).__name__}: "
                         f"{str(err).splitlines()[0][:200] if str(err) else ''}); is the store damaged?") from None
    return to_rgb_uint8(data, where), scale


def _choose_image(sdata, image, systems: list, source: str) -> Optional[str]:
    if image is None:
        return None
    if image != "auto":
        return _pick(list(sdata.images), image, "image", source, "image")
    shared = [n for n in sdata.images if set(_systems(sdata.images[n])) & set(systems)]
    for suffix in ("hires_image", "lowres_image"):
        found = [n for n in shared if n.endswith(suffix)]
        if found:
            return found[0]
    return None


def _system(systems: list, other: Optional[list], given: Optional[str], element, where: str) -> str:
    common = [s for s in systems if other is None or s in other]
    if given is not None:
        if given not in common:
            raise ValueError(f"{where}: coordinate system {given!r} is not shared by the elements; found {common}")
        return given
    if not common:
        raise ValueError(f"{where}: the shapes and the image share no coordinate system ({systems} vs {other})")
    if "global" in common:
        return "global"
    identity = [s for s in common if np.allclose(_affine(element, s), np.eye(3))]
    return (identity or common)[0]


def _microns(reader, element_name: str, table: str, obs, diameter_units, spot_diameter_um, microns_per_unit):
    """``(spot diameter in µm or None, the diameter in the element's units it spans, layout)``."""
    binned = _BIN.search(element_name) or _BIN.search(table)
    grid = "array_row" in obs and "array_col" in obs
    layout = None
    if grid:
        layout = "cartesian" if reader == "visium_hd" or binned else "hex"
    if spot_diameter_um is not None:
        return float(spot_diameter_um), diameter_units, layout
    if reader == "xenium":  # its shapes are in µm: a nominal cell, as read_xenium has it
        return CELL_DIAMETER_UM, CELL_DIAMETER_UM / float(microns_per_unit or 1.0), None
    if microns_per_unit is not None:
        if diameter_units is None:  # points: a nominal cell
            return CELL_DIAMETER_UM, CELL_DIAMETER_UM / float(microns_per_unit), layout
        return diameter_units * float(microns_per_unit), diameter_units, layout
    if layout == "cartesian":
        return (float(binned.group(1)) if binned else None), diameter_units, layout
    if layout == "hex":
        return VISIUM_SPOT_UM, diameter_units, layout
    return None, diameter_units, None


def _grid(obs, keep: np.ndarray, where: str) -> tuple:
    out = []
    for column in ("array_row", "array_col"):
        values = np.asarray(obs[column].to_numpy()[keep], dtype=np.float64)
        bad = ~np.isfinite(values) | (values != np.round(values)) | (values < 0)
        if bad.any():
            raise ValueError(f"{where}: obs[{column!r}], row {int(np.flatnonzero(bad)[0])}: expected an integer "
                             "array index >= 0")
        out.append(values.astype(np.int64))
    return tuple(out)


def read_spatialdata(sdata, table: Optional[str] = None, image: Optional[str] = "auto",
                     shapes: Optional[str] = None, coordinate_system: Optional[str] = None,
                     label_key: Optional[str] = None, classes: Optional[Sequence[str]] = None,
                     graph: GraphSpecLike = "auto", spot_diameter_um: Optional[float] = None,
                     microns_per_unit: Optional[float] = None, image_level: int = 0,
                     name: Optional[str] = None) -> Section:
    """Read the rows of a SpatialData table as a :class:`Section`.

    Args:
        sdata: a ``SpatialData`` object or the path of its ``.zarr`` store.
        table: which table (required when there are several, e.g. ``"square_008um"`` of Visium HD).
        image: an image element, ``"auto"`` (``*_hires_image``, else ``*_lowres_image``, else
            none) or ``None``: positions then stay in the coordinate system's units (Visium:
            full-resolution pixels; Xenium ``"global"``: morphology pixels).
        shapes: the shapes (or points) element of the nodes; default the table's region (for a
            labels region, shapes of the same instances: ``cell_circles``, ``cell_boundaries``).
        coordinate_system: the one mapping shapes and image onto each other (default
            ``"global"``, else one where the shapes are untransformed, else the first shared).
        label_key, classes: an ``obs`` column of class names and the class order, as in
            :func:`~gridgraph.io.read_anndata`.
        graph: ``"auto"`` (hex for Visium spots, cartesian for Visium HD bins, both over
            ``obs['array_row'/'array_col']``, else kNN) or a GraphSpec-like.
        spot_diameter_um: physical spot diameter; by default Visium 55 µm, Visium HD the bin
            size (``square_XXXum``), Xenium a nominal 10 µm cell (its shapes are in µm).
        microns_per_unit: µm per unit of the shapes' own coordinates, for other data (the spot
            diameter is then the shapes' own; points get a nominal 10 µm cell).
        image_level: the level of a multiscale image (0: full resolution).
        name: section name (default the store's name, else the shapes element's).

    Rows with ``obs['in_tissue'] == 0`` are dropped. The section's ``meta`` records the
    elements (``spatialdata``: table, shapes, instance ids, coordinate system), the image kind
    and ``scale`` (image pixels per coordinate-system unit) and the scale factors, so that the
    predictions can be written back (:func:`~gridgraph.io.writers.spatialdata.write_spatialdata_predictions`)
    and into a scanpy-shaped AnnData.
    """
    for key, value in (("microns_per_unit", microns_per_unit), ("spot_diameter_um", spot_diameter_um)):
        if value is not None and not is_positive_number(value):
            raise ValueError(f"read_spatialdata: {key} must be a finite positive number, got {value!r}")
    if isinstance(image_level, bool) or not isinstance(image_level, (int, np.integer)) or image_level < 0:
        raise ValueError(f"read_spatialdata: image_level must be an integer >= 0 (0: full resolution), "
                         f"got {image_level!r}")
    sdata, source = load_spatialdata(sdata)
    table = _pick(list(sdata.tables) if table is not None else _input_tables(sdata), table, "table", source, "table")
    tbl = sdata.tables[table]
    regions, region_key, instance_key = _table_keys(tbl, table, source)
    element_name, kind, element, region = _element(sdata, regions, shapes, table, instance_key, source)
    where = f"{source}: table {table!r}"
    obs = tbl.obs
    keep = np.ones(tbl.n_obs, dtype=bool)
    if region_key in obs and region is not None:
        keep &= (obs[region_key].astype(str) == region).to_numpy()
    if "in_tissue" in obs:
        keep &= (obs["in_tissue"].to_numpy() == 1)
    if not keep.any():
        raise ValueError(f"{where}: no rows of region {region or element_name!r} left (in_tissue == 1)")
    if instance_key not in obs:
        raise ValueError(f"{where}: obs lacks the instance key column {instance_key!r}")
    instances = obs[instance_key].to_numpy()[keep]
    barcodes = [str(b) for b in tbl.obs_names[keep]]
    check_unique(barcodes, f"{where}: obs_names")
    xy, diameter_units = _centres(kind, element, instances, f"{source}: {kind} {element_name!r}")
    if not np.isfinite(xy).all():
        i = int(np.flatnonzero(~np.isfinite(xy).all(axis=1))[0])
        raise ValueError(f"{source}: {kind} {element_name!r}, instance {instances[i]!r}: no finite centre")

    systems = _systems(element)
    image_name = _choose_image(sdata, image, systems, source)
    img, to_image = None, np.eye(3)
    image_systems = _systems(sdata.images[image_name]) if image_name else None
    cs = _system(systems, image_systems, coordinate_system, element, source)
    if image_name:
        img, level = _image_array(sdata.images[image_name], image_level, f"{source}: image {image_name!r}")
        to_image = np.linalg.inv(_affine(sdata.images[image_name], cs) @ level)
    matrix = to_image @ _affine(element, cs)
    pos = xy @ matrix[:2, :2].T + matrix[:2, 2]
    if img is not None:
        check_inside(pos, image_size(img), f"{where} (in image {image_name!r})", barcodes)
    px_per_unit = float(np.sqrt(abs(np.linalg.det(matrix[:2, :2]))))
    scale = float(np.sqrt(abs(np.linalg.det(to_image[:2, :2]))))  # image pixels per cs unit

    reader = (getattr(sdata, "attrs", None) or {}).get("spatialdata_io_reader")
    um, span_units, layout = _microns(reader, element_name, table, obs, diameter_units, spot_diameter_um,
                                      microns_per_unit)

    labels, classes = labels_from_obs(obs, label_key, keep, classes, where, len(barcodes))

    has_grid = "array_row" in obs and "array_col" in obs
    try:
        spec = GraphSpec.parse((layout if has_grid and layout else "knn") if graph == "auto" else graph)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from None
    if spec is None:
        raise ValueError(f"{where}: graph must be 'auto' or a graph rule, got {graph!r}")
    array_row = array_col = None
    if has_grid:
        array_row, array_col = _grid(obs, keep, where)
    if spec.needs_array and not has_grid:
        raise ValueError(f"{where}: graph {spec.rule!r} needs obs['array_row'] and obs['array_col']")
    if spec == GraphSpec("hex"):
        g = visium_graph(array_row, array_col, pos)
    else:
        g = spec.build(pos, array_row, array_col, where=where)

    kind_name = next((k for k in ("hires", "lowres") if image_name and image_name.endswith(f"{k}_image")), None)
    factors = {}
    for other in sdata.images:
        for k in ("hires", "lowres"):
            if other.endswith(f"{k}_image") and cs in _systems(sdata.images[other]):
                to_cs = _affine(sdata.images[other], cs)[:2, :2]
                factors[f"tissue_{k}_scalef"] = float(1.0 / np.sqrt(abs(np.linalg.det(to_cs))))
    if span_units:
        factors["spot_diameter_fullres"] = span_units * px_per_unit / scale
    default_name = Path(source).stem if source != "sdata" else element_name
    return Section(
        graph=g, labels=labels, classes=classes, barcodes=barcodes, image=img,
        spot_diameter_px=None if span_units is None else span_units * px_per_unit,
        spot_diameter_um=um, array_row=array_row, array_col=array_col, name=name or default_name,
        meta={"source": source, "image_kind": kind_name or ("image" if img is not None else None), "scale": scale,
              "scalefactors": factors, "spatialdata": {
                  "table": table, "shapes": element_name, "element_type": kind, "instance_key": instance_key,
                  "instance_ids": instances, "coordinate_system": cs, "image": image_name, "reader": reader}},
    )
