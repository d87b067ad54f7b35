"""Bad SpatialData input: missing tables, elements and coordinate systems, wrong argument types,
NaN/Inf and huge values, damaged stores; each one ValueError naming the store and the field."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from test_io_errors import expect_error

spatialdata = pytest.importorskip("spatialdata", reason="spatialdata is not installed (pip install gridgraph[spatialdata])")
pytest.importorskip("geopandas")
from shapely.geometry import Point  # noqa: E402

from gridgraph.io.readers.spatialdata import read_spatialdata  # noqa: E402
from test_io_spatialdata import xenium_sdata  # noqa: E402


def _edited_circles(edit):
    sdata, _, _ = xenium_sdata()
    circles = sdata.shapes["cell_circles"].copy()
    edit(circles)
    sdata.shapes["cell_circles"] = circles
    return sdata


def _no_attrs():
    sdata, _, _ = xenium_sdata()
    table = sdata.tables["table"].copy()
    del table.uns["spatialdata_attrs"]
    return spatialdata.SpatialData(shapes=dict(sdata.shapes), tables={"table": table})


def _point(i, x, y):
    def edit(circles):
        circles.loc[circles.index[i], "geometry"] = Point(x, y)
    return edit


def _radius(value):
    def edit(circles):
        circles["radius"] = value
    return edit


def _out_of_tissue():
    sdata, _, _ = xenium_sdata()
    sdata.tables["table"].obs["in_tissue"] = 0
    return sdata


def _drop(kind):
    sdata, _, _ = xenium_sdata()
    parts = {k: dict(getattr(sdata, k)) for k in ("images", "shapes", "tables")}
    parts[kind] = {}
    return spatialdata.SpatialData(**parts)


CASES = {
    "no_table": (lambda: _drop("tables"), {}, ["holds no table", "annotating the spots or cells"]),
    "no_element": (lambda: _drop("shapes"), {}, ["no shapes or points element 'cell_circles'", "found shapes []"]),
    "no_table_attrs": (_no_attrs, {}, ["table 'table' lacks uns['spatialdata_attrs']", "annotates no element"]),
    "unknown_table": (None, {"table": "cells"}, ["no table 'cells'; found ['table']"]),
    "table_number": (None, {"table": 3}, ["no table 3"]),
    "shapes_number": (None, {"shapes": 3}, ["no shapes or points element 3"]),
    "image_number": (None, {"image": 3}, ["no image 3; found ['morphology_focus']"]),
    "coordinate_system": (None, {"coordinate_system": "aligned"},
                          ["coordinate system 'aligned' is not shared by the elements; found ['global']"]),
    "level_text": (None, {"image": "morphology_focus", "image_level": "1"}, ["image_level must be an integer >= 0"]),
    "level_fraction": (None, {"image": "morphology_focus", "image_level": 1.5}, ["image_level", "got 1.5"]),
    "level_negative": (None, {"image": "morphology_focus", "image_level": -1}, ["image_level", "got -1"]),
    "level_too_high": (None, {"image": "morphology_focus", "image_level": 5}, ["image_level 5 outside 0..1"]),
    "label_key": (None, {"label_key": "layer"}, ["obs has no column 'layer'"]),
    "unknown_classes": (None, {"label_key": "cluster", "classes": ["tumour"]},
                        ["obs['cluster']", "unknown label names", "expected one of ['tumour']"]),
    "spot_diameter_nan": (None, {"spot_diameter_um": float("nan")}, ["spot_diameter_um must be a finite positive"]),
    "spot_diameter_negative": (None, {"spot_diameter_um": -3}, ["spot_diameter_um", "got -3"]),
    "spot_diameter_text": (None, {"spot_diameter_um": "ten"}, ["spot_diameter_um", "got 'ten'"]),
    "microns_inf": (None, {"microns_per_unit": float("inf")}, ["microns_per_unit must be a finite positive"]),
    "graph_unknown": (None, {"graph": "hexx"}, ["graph rule must be one of", "'hexx'"]),
    "graph_without_grid": (None, {"graph": "hex"}, ["graph 'hex' needs obs['array_row'] and obs['array_col']"]),
    "centre_nan": (lambda: _edited_circles(_point(3, np.nan, np.nan)), {},
                   ["shapes 'cell_circles', instance 'cell003-1': no finite centre"]),
    "centre_huge": (lambda: _edited_circles(_point(3, 1e300, 1e300)), {"image": "morphology_focus"},
                    ["1 spots lie outside the image (300x320 px)", "(x=4.70588e+300, y=4.70588e+300)"]),
    "radius_nan": (lambda: _edited_circles(_radius(np.nan)), {},
                   ["instance 'cell000-1': column 'radius' is nan; expected a finite positive circle radius"]),
    "no_rows_in_tissue": (_out_of_tissue, {}, ["no rows of region 'cell_circles' left (in_tissue == 1)"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_spatialdata_objects(case):
    make, kwargs, needles = CASES[case]
    sdata = make() if make else xenium_sdata()[0]
    message = expect_error(ValueError, lambda: read_spatialdata(sdata, **kwargs), *needles)
    assert message.startswith(("sdata: ", "read_spatialdata: ")), message  # the store, or the argument


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("sd") / "x.zarr"
    xenium_sdata()[0].write(path)
    return path


def _damage_chunks(root):
    for p in (root / "images").rglob("*"):
        if p.is_file() and "json" not in p.name and not p.name.startswith("."):
            p.write_bytes(p.read_bytes()[:7])


def _damage_shapes(root):
    for p in (root / "shapes").rglob("*.parquet"):
        p.write_bytes(p.read_bytes()[:50])


def _damage_meta(root):
    for p in (root / "tables").rglob("zarr.json"):
        p.write_bytes(b"{garbage")


@pytest.mark.parametrize("damage, kwargs, needles", [
    (_damage_chunks, {"image": "morphology_focus"},
     ["image 'morphology_focus': its pixels cannot be decoded", "is the store damaged?"]),
    (_damage_shapes, {}, ["cannot read as a SpatialData zarr store", "Parquet"]),
    (_damage_meta, {}, ["cannot read as a SpatialData zarr store"]),
    (lambda root: shutil.rmtree(root / "images"), {"image": "morphology_focus"},
     ["cannot read as a SpatialData zarr store"]),
])
def test_damaged_stores(store, tmp_path, damage, kwargs, needles):
    copy = tmp_path / "x.zarr"
    shutil.copytree(store, copy)
    damage(copy)
    expect_error(ValueError, lambda: read_spatialdata(copy, **kwargs), str(copy), *needles)


def test_a_file_named_like_a_store(tmp_path):
    path = tmp_path / "x.zarr"
    path.write_bytes(b"\x00\x01garbage")
    expect_error(ValueError, lambda: read_spatialdata(path), str(path), "cannot read as a SpatialData zarr store")
