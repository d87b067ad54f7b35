"""Space Ranger reader on the real DLPFC section 151673 and on small synthetic folders."""
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gridgraph.io import LazyImage, read_spaceranger
from gridgraph.io.readers.spaceranger import POSITION_COLUMNS

DLPFC_LAYERS = ["L1", "L2", "L3", "L4", "L5", "L6", "WM"]


# --------------------------------------------------------------------------- synthetic folders
def write_visium(
    root: Path,
    rows: int = 6,
    cols: int = 12,
    header: bool = False,
    hires: bool = True,
    lowres: bool = True,
    out_of_tissue=((0, 0),),
) -> Path:
    """Write a tiny Space Ranger folder ``root/spatial`` and return ``root``.

    Spots sit at every Visium position of a ``rows x cols`` array; full-resolution pixels are
    ``pxl_row = 200 + 100 * array_row``, ``pxl_col = 300 + 50 * array_col``. The full-resolution
    image would be 1000 x 1000 px; hires (scale 0.2) and lowres (scale 0.05) images are written.
    """
    spatial = root / "spatial"
    spatial.mkdir(parents=True)
    lines = []
    for r in range(rows):
        for c in range(r % 2, cols, 2):
            tissue = 0 if (r, c) in out_of_tissue else 1
            lines.append([f"BC{r:02d}{c:03d}-1", tissue, r, c, 200 + 100 * r, 300 + 50 * c])
    name = "tissue_positions.csv" if header else "tissue_positions_list.csv"
    with open(spatial / name, "w", newline="") as fh:
        out = csv.writer(fh)
        if header:
            out.writerow(POSITION_COLUMNS)
        out.writerows(lines)
    factors = {
        "spot_diameter_fullres": 40.0,
        "tissue_hires_scalef": 0.2,
        "tissue_lowres_scalef": 0.05,
        "fiducial_diameter_fullres": 60.0,
    }
    (spatial / "scalefactors_json.json").write_text(json.dumps(factors))
    rng = np.random.default_rng(0)
    if hires:
        Image.fromarray(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(
            spatial / "tissue_hires_image.png"
        )
    if lowres:
        Image.fromarray(rng.integers(0, 255, (50, 50, 3), dtype=np.uint8)).save(
            spatial / "tissue_lowres_image.png"
        )
    return root


def raw_positions(path: Path) -> list:
    """Rows of a 1.x positions file, read with plain csv (independent of the reader)."""
    with open(path, newline="") as fh:
        return [row for row in csv.reader(fh) if row]


def test_synthetic_image_choice_and_scaling(tmp_path):
    root = write_visium(tmp_path / "sec1")
    auto = read_spaceranger(root)
    assert auto.name == "sec1"
    assert auto.meta["image_kind"] == "hires"
    assert isinstance(auto.image, LazyImage) and auto.image.size == (200, 200)
    raw = [r for r in raw_positions(root / "spatial" / "tissue_positions_list.csv") if r[1] == "1"]
    assert auto.num_nodes == len(raw) == 35
    expect = np.array([[float(r[5]) * 0.2, float(r[4]) * 0.2] for r in raw])
    np.testing.assert_allclose(auto.pixel_pos.numpy(), expect)
    assert auto.barcodes == [r[0] for r in raw]
    assert auto.spot_diameter_px == pytest.approx(40.0 * 0.2)
    assert auto.spot_diameter_um == 55
    np.testing.assert_array_equal(auto.array_row, [int(r[2]) for r in raw])
    assert auto.graph.layout == "hex"
    assert (auto.labels == -1).all() and auto.classes == []

    low = read_spaceranger(root / "spatial", image="lowres")
    assert low.name == "sec1" and low.image.size == (50, 50)
    np.testing.assert_allclose(low.pixel_pos.numpy(), expect / 4)
    assert low.spot_diameter_px == pytest.approx(2.0)
    assert torch.equal(low.graph.edge_index, auto.graph.edge_index)

    none = read_spaceranger(root, image=None)
    assert none.image is None
    np.testing.assert_allclose(none.pixel_pos.numpy(), expect * 5)
    assert none.spot_diameter_px == pytest.approx(40.0)

    full = np.zeros((1000, 1000, 3), dtype=np.uint8)
    for kwargs in ({"fullres_image": full}, {"image": full}):
        s = read_spaceranger(root, **kwargs)
        assert s.meta["image_kind"] == "fullres"
        np.testing.assert_allclose(s.pixel_pos.numpy(), expect * 5)


def test_synthetic_fullres_path_and_lowres_fallback(tmp_path):
    root = write_visium(tmp_path / "s", hires=False)
    assert read_spaceranger(root).meta["image_kind"] == "lowres"
    Image.fromarray(np.zeros((1000, 1000, 3), dtype=np.uint8)).save(tmp_path / "full.png")
    s = read_spaceranger(root, image=str(tmp_path / "full.png"))
    assert isinstance(s.image, LazyImage) and s.image.size == (1000, 1000)
    assert s.spot_diameter_px == pytest.approx(40.0)


def test_synthetic_labels_mapping_and_classes(tmp_path):
    root = write_visium(tmp_path / "s")
    s0 = read_spaceranger(root)
    names = {b: ("b" if i % 3 else "a") for i, b in enumerate(s0.barcodes) if i % 5}
    s = read_spaceranger(root, labels=names)
    assert s.classes == ["a", "b"]
    assert s.label_names() == [names.get(b) for b in s0.barcodes]
    s = read_spaceranger(root, labels=names, classes=["b", "a", "c"])
    assert s.classes == ["b", "a", "c"]
    assert s.label_names() == [names.get(b) for b in s0.barcodes]


# --------------------------------------------------------------------------- real DLPFC data
@pytest.fixture(scope="module")
def layer_map(dlpfc_dir):
    """``{barcode: layer}`` of section 151673, read from the raw tsv with plain csv."""
    with open(dlpfc_dir / "barcode_level_layer_map.tsv", newline="") as fh:
        return {r[0]: r[2] for r in csv.reader(fh, delimiter="\t") if r and r[1] == "151673"}


@pytest.fixture(scope="module")
def section_151673(dlpfc_dir):
    return read_spaceranger(
        dlpfc_dir / "151673", labels=dlpfc_dir / "barcode_level_layer_map.tsv"
    )


@pytest.mark.realdata
def test_dlpfc_151673_counts(dlpfc_dir, section_151673, layer_map):
    s = section_151673
    raw = [r for r in raw_positions(dlpfc_dir / "151673/spatial/tissue_positions_list.csv") if r[1] == "1"]
    assert s.num_nodes == len(raw) == 3639
    assert s.name == "151673"
    assert s.classes == DLPFC_LAYERS
    expected = {c: sum(1 for r in raw if layer_map.get(r[0]) == c) for c in DLPFC_LAYERS}
    assert dict(zip(s.classes, s.class_counts().tolist())) == expected
    assert expected == {"L1": 273, "L2": 253, "L3": 989, "L4": 218, "L5": 673, "L6": 692, "WM": 513}
    unlabeled = sum(1 for r in raw if r[0] not in layer_map)
    assert int((s.labels == -1).sum()) == unlabeled == 28
    assert s.label_names() == [layer_map.get(r[0]) for r in raw]


@pytest.mark.realdata
def test_dlpfc_151673_geometry(dlpfc_dir, section_151673):
    s = section_151673
    factors = json.loads((dlpfc_dir / "151673/spatial/scalefactors_json.json").read_text())
    raw = [r for r in raw_positions(dlpfc_dir / "151673/spatial/tissue_positions_list.csv") if r[1] == "1"]
    scale = factors["tissue_lowres_scalef"]  # no hires image in this folder
    expect = np.array([[float(r[5]) * scale, float(r[4]) * scale] for r in raw])
    np.testing.assert_allclose(s.pixel_pos.numpy(), expect, rtol=1e-6)  # float32 pos
    assert s.image.size == (600, 600)
    assert s.spot_diameter_px == pytest.approx(factors["spot_diameter_fullres"] * scale)
    assert s.graph.layout == "hex" and s.graph.grid_shape == (64, 78)
    degree = torch.bincount(s.graph.edge_index[0], minlength=s.num_nodes)
    assert int(degree.max()) == 6
    # every spot whose six Visium neighbours are all in tissue has degree 6
    cells = {(int(r[2]), int(r[3])) for r in raw}
    steps = [(0, -2), (0, 2), (-1, -1), (-1, 1), (1, -1), (1, 1)]
    full = [all((int(r[2]) + a, int(r[3]) + b) in cells for a, b in steps) for r in raw]
    assert (degree[torch.tensor(full)] == 6).all()
    assert (degree[~torch.tensor(full)] < 6).all()
    img = s.load_image()
    assert img.shape == (600, 600, 3) and img.dtype == np.uint8


@pytest.mark.realdata
def test_dlpfc_2x_header_gives_identical_section(dlpfc_dir, section_151673, tmp_path):
    src = dlpfc_dir / "151673" / "spatial"
    spatial = tmp_path / "151673" / "spatial"
    spatial.mkdir(parents=True)
    with open(spatial / "tissue_positions.csv", "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(POSITION_COLUMNS)
        out.writerows(raw_positions(src / "tissue_positions_list.csv"))
    for name in ("scalefactors_json.json", "tissue_lowres_image.png"):
        shutil.copy(src / name, spatial / name)
    s2 = read_spaceranger(spatial, labels=dlpfc_dir / "barcode_level_layer_map.tsv")
    s1 = section_151673
    assert s2.meta["positions"].endswith("tissue_positions.csv")
    assert s2.name == s1.name == "151673"
    assert s2.barcodes == s1.barcodes
    assert s2.classes == s1.classes
    assert torch.equal(s2.labels, s1.labels)
    assert torch.equal(s2.graph.pos, s1.graph.pos)
    assert torch.equal(s2.graph.edge_index, s1.graph.edge_index)
    assert torch.equal(s2.graph.grid_index, s1.graph.grid_index)
    np.testing.assert_array_equal(s2.array_row, s1.array_row)
    np.testing.assert_array_equal(s2.array_col, s1.array_col)
    assert s2.spot_diameter_px == s1.spot_diameter_px
    assert s2.image.size == s1.image.size


@pytest.mark.realdata
def test_dlpfc_section_override_and_mapping(dlpfc_dir, section_151673, layer_map):
    # the spatial/ folder itself, an explicit section id, and a plain mapping agree
    s = read_spaceranger(
        dlpfc_dir / "151673" / "spatial",
        labels=str(dlpfc_dir / "barcode_level_layer_map.tsv"),
        section="151673",
        classes=DLPFC_LAYERS,
    )
    assert torch.equal(s.labels, section_151673.labels)
    m = read_spaceranger(dlpfc_dir / "151673", labels=layer_map, classes=DLPFC_LAYERS)
    assert torch.equal(m.labels, section_151673.labels)


@pytest.mark.realdata
def test_dlpfc_sections_without_upper_layers_keep_class_order(dlpfc_dir):
    # 151669 has no L1/L2 spots: explicit classes keep label ids comparable across sections
    s = read_spaceranger(
        dlpfc_dir / "151669", labels=dlpfc_dir / "barcode_level_layer_map.tsv", classes=DLPFC_LAYERS
    )
    with open(dlpfc_dir / "barcode_level_layer_map.tsv", newline="") as fh:
        layers = [r[2] for r in csv.reader(fh, delimiter="\t") if r and r[1] == "151669"]
    assert s.classes == DLPFC_LAYERS
    assert s.class_counts().tolist() == [layers.count(c) for c in DLPFC_LAYERS]
    assert s.class_counts()[:2].tolist() == [0, 0]
