"""Classic ST: one-hot annotation TSV (synthetic) and per-spot tables (real her2st)."""
import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gridgraph.io import read_class_names, read_spot_table, read_st_tsv


def write_st_tsv(path: Path, classes, spots, r_style: bool = False) -> Path:
    """Write a class x spot one-hot table; ``spots`` maps ``"x_y"`` -> class name or ``None``."""
    names = list(spots)
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh, delimiter="\t", lineterminator="\n")
        out.writerow(names if r_style else [""] + names)
        for c in classes:
            out.writerow([c] + [1 if spots[s] == c else 0 for s in names])
    return path


@pytest.fixture
def st_files(tmp_path):
    classes = ["GM", "WM", "Vent"]
    spots = {
        "1_1": "GM",
        "2_1": "GM",
        "3.04_0.96": "WM",  # aligned coordinates round to (3, 1)
        "1_2": None,  # all-zero column: unlabeled
        "2_2": "WM",
        "3_2": "Vent",
        "31.94_3.02": "GM",  # rounds to (32, 3)
    }
    tsv = write_st_tsv(tmp_path / "ann.tsv", classes, spots)
    Image.fromarray(np.full((700, 3100, 3), 200, dtype=np.uint8)).save(tmp_path / "he.png")
    return tsv, tmp_path / "he.png", classes, spots


def test_st_tsv_labels_coordinates_and_spacing(st_files):
    tsv, image, classes, spots = st_files
    s = read_st_tsv(tsv, image)
    assert s.num_nodes == 7
    assert s.barcodes == list(spots)
    assert s.classes == classes
    assert s.label_names() == list(spots.values())
    assert int((s.labels == -1).sum()) == 1
    np.testing.assert_array_equal(s.array_col, [0, 1, 2, 0, 1, 2, 31])
    np.testing.assert_array_equal(s.array_row, [0, 0, 0, 1, 1, 1, 2])
    spacing = 194 * 3100 / 6200
    assert s.meta["spot_spacing_px"] == pytest.approx(spacing)
    np.testing.assert_allclose(s.pixel_pos[0].numpy(), [0.0, 0.0])  # spot (1,1) at pixel (0,0)
    np.testing.assert_allclose(
        s.pixel_pos.numpy(), np.stack([s.array_col, s.array_row], 1) * spacing, rtol=1e-6
    )
    assert s.spot_diameter_um == 100 and s.spot_diameter_px == pytest.approx(spacing / 2)
    assert s.graph.layout == "cartesian"
    # 2x3 block: 7 undirected 4-neighbour pairs; the far spot (32,3) is isolated
    assert s.graph.num_edges == 2 * 7
    degree = torch.bincount(s.graph.edge_index[0], minlength=s.num_nodes)
    assert degree.tolist() == [2, 3, 2, 2, 3, 2, 0]
    assert s.name == "ann"


def test_st_tsv_spacing_override_classes_and_r_header(st_files, tmp_path):
    tsv, image, classes, spots = st_files
    s = read_st_tsv(tsv, image, spot_spacing_px=10.0)
    np.testing.assert_allclose(s.pixel_pos[-1].numpy(), [310.0, 20.0])
    assert s.spot_diameter_px == pytest.approx(5.0)
    s = read_st_tsv(tsv, image, classes=["Vent", "WM", "GM", "other"])
    assert s.classes == ["Vent", "WM", "GM", "other"]
    assert s.label_names() == list(spots.values())
    r_tsv = write_st_tsv(tmp_path / "r.tsv", classes, spots, r_style=True)
    r = read_st_tsv(r_tsv, image)
    assert torch.equal(r.labels, read_st_tsv(tsv, image).labels)
    assert read_st_tsv(tsv, np.zeros((700, 3100), dtype=np.uint8)).meta[
        "spot_spacing_px"
    ] == pytest.approx(97.0)
    eight = read_st_tsv(tsv, image, connectivity=8)
    assert eight.graph.num_edges == 2 * 11


# --------------------------------------------------------------------------- her2st C2 spot table
@pytest.fixture(scope="module")
def c2_raw(her2st_dir):
    with open(her2st_dir / "C2_spots.tsv", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    header, body = rows[0], [r for r in rows[1:] if r]
    with open(her2st_dir / "cluster_names.tsv", newline="") as fh:
        names = [r for r in csv.reader(fh, delimiter="\t") if r][1:]
    return header, body, dict(names)


@pytest.mark.realdata
def test_her2st_c2_spot_table(her2st_dir, c2_raw):
    header, body, names = c2_raw
    s = read_spot_table(her2st_dir / "C2_spots.tsv", image=her2st_dir / "C2_HE.jpg")
    assert s.num_nodes == len(body) == 185
    assert s.name == "C2"
    assert s.barcodes == [r[0] for r in body]
    col = {h: i for i, h in enumerate(header)}
    assert s.classes == list(names.values())  # cluster_names.tsv order: label 0..6
    assert s.label_names() == [names[r[col["label"]]] for r in body]
    counts = [sum(1 for r in body if names[r[col["label"]]] == c) for c in s.classes]
    assert s.class_counts().tolist() == counts
    assert int((s.labels == -1).sum()) == 0
    np.testing.assert_array_equal(s.array_col, [int(r[col["x"]]) for r in body])
    np.testing.assert_array_equal(s.array_row, [int(r[col["y"]]) for r in body])
    expect = np.array([[float(r[col["pixel_x"]]), float(r[col["pixel_y"]])] for r in body])
    np.testing.assert_allclose(s.pixel_pos.numpy(), expect, rtol=1e-6)
    assert s.image.size == (9274, 9911)  # read from the header only
    assert s.image._array is None
    assert s.graph.layout == "cartesian"
    cells = {(int(r[col["y"]]), int(r[col["x"]])) for r in body}
    pairs = sum((y, x + 1) in cells for y, x in cells) + sum((y + 1, x) in cells for y, x in cells)
    assert s.graph.num_edges == 2 * pairs
    # about 255-290 px between neighbouring spots (README), 100 um spots at a 200 um pitch
    assert 120 < s.spot_diameter_px < 150


@pytest.mark.realdata
def test_her2st_spot_table_without_names(her2st_dir, c2_raw):
    header, body, names = c2_raw
    s = read_spot_table(her2st_dir / "C2_spots.tsv", label_names=None)
    col = header.index("label")
    assert s.classes == sorted({r[col] for r in body}, key=int)
    assert s.label_names() == [r[col] for r in body]
    assert s.image is None
    assert read_class_names(her2st_dir / "cluster_names.tsv") == names
