"""Exports for viewers: Xenium Explorer cell groups (read back by read_xenium) and QuPath GeoJSON
(points for cells, circles / squares for spots, full-resolution pixels); bad input named."""
import csv
import json

import numpy as np
import pytest

from gridgraph.io import read_spaceranger, read_xenium
from gridgraph.io.writers.exports import (section_cell_groups, section_geojson, write_qupath_geojson,
                                          write_xenium_cell_groups)
from gridgraph.io.writers.predictions import class_hex_colors
from test_io_errors import expect_error
from test_io_spaceranger import write_visium
from test_io_xenium import write_bundle

pd = pytest.importorskip("pandas")
CLASSES = ["tumour", "stroma", "immune"]


def test_cell_groups_format_and_round_trip(tmp_path):
    folder, frame = write_bundle(tmp_path / "run")
    ids = frame.cell_id.tolist()
    codes = np.arange(len(ids)) % 4 - 1  # -1 (no group), 0, 1, 2, ...
    path = write_xenium_cell_groups(tmp_path / "groups.csv", ids, codes, CLASSES)
    lines = path.read_text().splitlines()
    assert lines[0] == "cell_id,group" and lines[1] == f"{ids[1]},tumour"
    assert len(lines) - 1 == int((codes >= 0).sum())
    section = read_xenium(folder, labels=path, classes=CLASSES)
    assert section.labels.tolist() == codes.tolist()
    natural = read_xenium(folder, labels=path)
    assert natural.classes == sorted(CLASSES) and natural.label_names() == section.label_names()
    coloured = write_xenium_cell_groups(tmp_path / "c.csv", ids, [CLASSES[c] if c >= 0 else None for c in codes],
                                        CLASSES, color=True)
    with open(coloured, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["cell_id", "group", "color"] and rows[1] == [ids[1], "tumour", class_hex_colors(CLASSES)[0]]
    assert read_xenium(folder, labels=coloured, classes=CLASSES).labels.tolist() == codes.tolist()
    assert section_cell_groups(tmp_path / "s.csv", section, section.labels, CLASSES).read_text() == path.read_text()


def test_cell_group_names_with_commas_are_quoted(tmp_path):
    folder, frame = write_bundle(tmp_path / "run")
    ids = frame.cell_id.tolist()[:3]
    path = write_xenium_cell_groups(tmp_path / "g.csv", ids, ["a, b", "c", None])
    assert path.read_text().splitlines()[1] == f'{ids[0]},"a, b"'
    assert read_xenium(folder, labels=path).classes == ["a, b", "c"]


@pytest.mark.parametrize("ids, labels, classes, needles", [
    ([], [], CLASSES, ["no nodes to write"]),
    (["a", "a"], [0, 1], CLASSES, ["field 'id'", "'a' appears twice"]),
    (["a", ""], [0, 1], CLASSES, ["field 'id', row 1", "non-empty"]),
    (["a", "b"], [0], CLASSES, ["2 ids but 1 labels"]),
    (["a", "b"], [0, 3], CLASSES, ["field 'label', row 1", "class index 3 outside -1..2"]),
    (["a", "b"], [0, 1], None, ["field 'label', row 0", "need classes="]),
    (["a", "b"], ["tumour", "bone"], CLASSES, ["field 'label', row 1", "unknown class 'bone'"]),
    (["a", "b"], [0.5, 1.0], CLASSES, ["field 'label', row 0", "expected a class index or name"]),
])
def test_cell_groups_bad_input(tmp_path, ids, labels, classes, needles):
    path = tmp_path / "g.csv"
    expect_error(ValueError, lambda: write_xenium_cell_groups(path, ids, labels, classes), str(path), *needles)
    assert not path.exists(), "nothing is written on an error"


def test_cell_groups_table_without_group_or_label(tmp_path):
    folder, frame = write_bundle(tmp_path / "run")
    pd.DataFrame({"cell_id": frame.cell_id[:2], "cluster": ["a", "b"]}).to_csv(tmp_path / "g.csv", index=False)
    expect_error(ValueError, lambda: read_xenium(folder, labels=tmp_path / "g.csv"), "g.csv", "lacks columns ['label']")


def test_geojson_points_for_cells(tmp_path):
    folder, frame = write_bundle(tmp_path / "run")
    section = read_xenium(folder)
    probs = np.random.default_rng(0).dirichlet(np.ones(3), section.num_nodes)
    codes = probs.argmax(1)
    codes[2] = -1
    path = section_geojson(tmp_path / "cells.geojson", section, codes, CLASSES, probs=probs)
    data = json.loads(path.read_text())
    assert data["type"] == "FeatureCollection" and len(data["features"]) == section.num_nodes
    first = data["features"][0]
    assert first["type"] == "Feature" and first["geometry"]["type"] == "Point"
    expected = frame[["x_centroid", "y_centroid"]].to_numpy() / 0.2125  # µm -> full-resolution pixels
    np.testing.assert_allclose(first["geometry"]["coordinates"], expected[0], atol=1e-3)
    props = first["properties"]
    assert props["name"] == section.barcodes[0] and props["objectType"] == "detection"
    colour = class_hex_colors(CLASSES)[codes[0]]
    assert props["classification"] == {"name": CLASSES[codes[0]],
                                       "color": [int(colour[i:i + 2], 16) for i in (1, 3, 5)]}
    m = props["measurements"]
    assert [m[f"gridgraph: p({c})"] for c in CLASSES] == pytest.approx(probs[0], abs=1e-6)
    assert m["gridgraph: confidence"] == pytest.approx(probs[0].max(), abs=1e-6)
    assert m["gridgraph: entropy"] == pytest.approx(-(probs[0] * np.log(probs[0])).sum(), abs=1e-5)
    assert "classification" not in data["features"][2]["properties"]


def test_geojson_spot_circles_in_full_resolution(tmp_path):
    root = write_visium(tmp_path / "v")
    section = read_spaceranger(root)  # hires image: positions x 0.2
    codes = np.arange(section.num_nodes) % 3
    path = section_geojson(tmp_path / "spots.geojson", section, codes, CLASSES, vertices=16)
    feature = json.loads(path.read_text())["features"][0]
    ring = np.array(feature["geometry"]["coordinates"][0])
    assert feature["geometry"]["type"] == "Polygon" and ring.shape == (17, 2)
    assert (ring[0] == ring[-1]).all(), "a closed ring"
    centre = section.pixel_pos.numpy()[0] / 0.2
    np.testing.assert_allclose(np.linalg.norm(ring - centre, axis=1), 20.0, atol=1e-2)  # diameter 40 px
    assert "measurements" not in feature["properties"]
    square = write_qupath_geojson(tmp_path / "sq.geojson", ["a"], [[10.0, 20.0]], [0], CLASSES, geometry="square",
                                  diameter_px=4.0)
    ring = np.array(json.loads(square.read_text())["features"][0]["geometry"]["coordinates"][0])
    assert ring.shape == (5, 2) and ring.min(0).tolist() == [8.0, 18.0] and ring.max(0).tolist() == [12.0, 22.0]


@pytest.mark.parametrize("kwargs, needles", [
    ({"positions": [[0.0, 0.0]]}, ["field 'positions'", "expected shape (2, 2)"]),
    ({"positions": [[0.0, 0.0], [np.nan, 1.0]]}, ["field 'positions' of node 'b'", "NaN"]),
    ({"probs": [[0.5, 0.5, 0.0], [np.nan, 0.5, 0.5]]}, ["field 'probs', row 1", "finite"]),
    ({"probs": [[0.5, 0.5], [0.5, 0.5]]}, ["field 'probs'", "expected shape (2, 3)"]),
    ({"geometry": "circle"}, ["field 'diameter_px'", "circle polygons need"]),
    ({"geometry": "circle", "diameter_px": float("nan")}, ["field 'diameter_px'"]),
    ({"geometry": "star"}, ["geometry must be one of"]),
    ({"ids": []}, ["no nodes to write"]),
    ({"labels": [0, 5]}, ["field 'label', row 1", "outside -1..2"]),
    ({"object_type": "cell"}, ["object_type must be"]),
])
def test_geojson_bad_input(tmp_path, kwargs, needles):
    path = tmp_path / "bad.geojson"
    args = {"ids": ["a", "b"], "positions": [[0.0, 0.0], [1.0, 1.0]], "labels": [0, 1], "classes": CLASSES, **kwargs}
    expect_error(ValueError, lambda: write_qupath_geojson(path, **args), str(path), *needles)
    assert not path.exists()
