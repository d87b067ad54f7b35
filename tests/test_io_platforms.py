"""Visium HD bins and Xenium cells in their documented layouts (parquet, CSV, gz)."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

from gridgraph.io import read_visium_hd, read_xenium  # noqa: E402
from gridgraph.io.readers.visium_hd import hd_bin_folder  # noqa: E402

MPP = 0.25  # µm per full-resolution pixel


def write_hd(outs, rows=10, cols=12, bin_um=8, hires=0.1, drop=((0, 0), (9, 11)), **frame_edits):
    spatial = outs / "binned_outputs" / f"square_{bin_um:03d}um" / "spatial"
    spatial.mkdir(parents=True)
    r, c = np.divmod(np.arange(rows * cols), cols)
    step = bin_um / MPP
    frame = pd.DataFrame({
        "barcode": [f"s_{bin_um:03d}um_{i:05d}_{j:05d}-1" for i, j in zip(r, c)],
        "in_tissue": [0 if (i, j) in drop else 1 for i, j in zip(r, c)],
        "array_row": r, "array_col": c,
        "pxl_row_in_fullres": 100 + r * step, "pxl_col_in_fullres": 200 + c * step})
    for column, (row, value) in frame_edits.items():
        frame[column] = frame[column].astype(str if isinstance(value, str) else float)
        frame.loc[row, column] = value
    frame.to_parquet(spatial / "tissue_positions.parquet")
    (spatial / "scalefactors_json.json").write_text(json.dumps({
        "microns_per_pixel": MPP, "bin_size_um": bin_um, "tissue_hires_scalef": hires,
        "tissue_lowres_scalef": hires / 4, "spot_diameter_fullres": step}))
    size = (int((200 + cols * step) * hires) + 10, int((100 + rows * step) * hires) + 10)
    Image.new("RGB", size, (200, 120, 160)).save(spatial / "tissue_hires_image.png")
    return outs


def test_visium_hd_bins(tmp_path):
    outs = write_hd(tmp_path / "outs")
    s = read_visium_hd(outs, bin_size_um=8)
    assert s.num_nodes == 118 and s.name == "outs" and s.graph.layout == "cartesian"
    assert s.barcodes[0] == "s_008um_00000_00001-1"  # in_tissue == 0 bins are not nodes
    first = s.graph.pos[0].numpy()
    np.testing.assert_allclose(first, [(200 + 1 * 32) * 0.1, 100 * 0.1])  # fullres px x hires scale
    assert s.spot_diameter_um == 8 and s.spot_diameter_px == pytest.approx(8 / MPP * 0.1)
    assert s.microns_per_px == pytest.approx(MPP / 0.1)
    degree = torch.bincount(s.graph.edge_index[0], minlength=s.num_nodes)
    interior = (s.array_row > 0) & (s.array_row < 9) & (s.array_col > 0) & (s.array_col < 11)
    assert (degree[torch.as_tensor(interior)] == 4).all()
    same = read_visium_hd(outs / "binned_outputs" / "square_008um", bin_size_um=8)
    assert same.barcodes == s.barcodes
    labels = {s.barcodes[0]: "tumour", s.barcodes[5]: "stroma"}
    labelled = read_visium_hd(outs, labels=labels, image=None)
    assert labelled.classes == ["stroma", "tumour"] and int((labelled.labels >= 0).sum()) == 2
    assert labelled.image is None


@pytest.mark.parametrize("edit, fragments", [
    ({"array_row": (3, 1e9)}, ["'array_row'", "row 4", "0..1015"]),
    ({"pxl_row_in_fullres": (2, float("nan"))}, ["'pxl_row_in_fullres'", "row 3", "finite number"]),
    ({"in_tissue": (1, "yes")}, ["'in_tissue'", "row 2"]),
])
def test_visium_hd_bad_positions(tmp_path, edit, fragments):
    outs = write_hd(tmp_path / "outs", **edit)
    with pytest.raises(ValueError) as err:
        read_visium_hd(outs)
    assert "tissue_positions.parquet" in str(err.value)
    for frag in fragments:
        assert frag in str(err.value), str(err.value)


def test_visium_hd_folder_and_scale_errors(tmp_path):
    outs = write_hd(tmp_path / "outs")
    with pytest.raises(ValueError, match=r"no square_016um folder for bin_size_um=16; found \['square_008um'\]"):
        hd_bin_folder(outs, 16)
    with pytest.raises(FileNotFoundError, match="Visium HD folder not found"):
        read_visium_hd(tmp_path / "nowhere")
    spatial = outs / "binned_outputs" / "square_008um" / "spatial"
    factors = json.loads((spatial / "scalefactors_json.json").read_text())
    (spatial / "scalefactors_json.json").write_text(json.dumps({**factors, "bin_size_um": 16}))
    with pytest.raises(ValueError, match="bin_size_um is 16, the folder holds 8"):
        read_visium_hd(outs)
    (spatial / "scalefactors_json.json").write_text(json.dumps({**factors, "microns_per_pixel": 0}))
    with pytest.raises(ValueError, match="scalefactors_json.json: microns_per_pixel must be a finite positive"):
        read_visium_hd(outs)
    (spatial / "scalefactors_json.json").write_text(json.dumps(factors))
    (spatial / "tissue_positions.parquet").write_text("barcode,in_tissue\n")
    with pytest.raises(ValueError, match="tissue_positions.parquet: not a parquet file"):
        read_visium_hd(outs)
    pd.DataFrame({"barcode": ["a"], "in_tissue": [1]}).to_parquet(spatial / "tissue_positions.parquet")
    with pytest.raises(ValueError, match=r"lacks columns \['array_row'"):
        read_visium_hd(outs)


def write_xenium(folder, n=60, fmt="parquet", pixel_size=0.2125, **edits):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"cell_id": [f"cell{i:04d}" for i in range(n)],
                          "x_centroid": rng.uniform(10, 90, n), "y_centroid": rng.uniform(10, 60, n)})
    for column, (row, value) in edits.items():
        if isinstance(value, str):
            frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
    if fmt == "parquet":
        frame.to_parquet(folder / "cells.parquet")
    else:
        frame.to_csv(folder / "cells.csv.gz", index=False)
    (folder / "experiment.xenium").write_text(json.dumps({"pixel_size": pixel_size}))
    return folder, frame


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_xenium_cells(tmp_path, fmt):
    folder, frame = write_xenium(tmp_path / "xen", fmt=fmt)
    s = read_xenium(folder)
    assert s.num_nodes == 60 and s.barcodes == list(frame["cell_id"]) and s.graph.layout == "irregular"
    np.testing.assert_allclose(s.graph.pos.numpy(), frame[["x_centroid", "y_centroid"]].to_numpy() / 0.2125)
    assert (torch.bincount(s.graph.edge_index[0], minlength=60) >= 6).all()
    assert s.microns_per_px == pytest.approx(0.2125)


def test_xenium_on_an_aligned_he_image(tmp_path):
    folder, frame = write_xenium(tmp_path / "xen")
    affine = np.array([[2.0, 0.0, 30.0], [0.0, 2.0, 10.0], [0.0, 0.0, 1.0]])  # H&E px -> Xenium px
    np.savetxt(tmp_path / "alignment.csv", affine, delimiter=",")
    Image.new("RGB", (300, 200), (230, 180, 200)).save(tmp_path / "he.png")
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"cell_id": ["cell0001", "cell0002"], "label": ["T", "S"]}).to_csv(labels, index=False)
    s = read_xenium(folder, image=tmp_path / "he.png", alignment=tmp_path / "alignment.csv", labels=labels)
    xen_px = frame[["x_centroid", "y_centroid"]].to_numpy() / 0.2125
    np.testing.assert_allclose(s.graph.pos.numpy(), (xen_px - [30.0, 10.0]) / 2.0)
    assert s.microns_per_px == pytest.approx(0.2125 * 2.0)  # one H&E pixel = 2 Xenium pixels
    assert s.classes == ["S", "T"] and s.labels[1] == 1 and s.labels[2] == 0 and (s.labels[3:] == -1).all()


def test_xenium_errors(tmp_path):
    folder, _ = write_xenium(tmp_path / "a", x_centroid=(4, float("nan")))
    with pytest.raises(ValueError, match=r"cells.parquet: column 'x_centroid', row 5: expected a finite number"):
        read_xenium(folder)
    folder, _ = write_xenium(tmp_path / "b", fmt="csv", y_centroid=(2, "oops"))
    with pytest.raises(ValueError, match=r"cells.csv.gz: column 'y_centroid', line 4"):
        read_xenium(folder)
    (tmp_path / "c").mkdir()
    with pytest.raises(FileNotFoundError, match="no cells.parquet or cells.csv.gz"):
        read_xenium(tmp_path / "c")
    folder, _ = write_xenium(tmp_path / "d")
    (folder / "experiment.xenium").unlink()
    with pytest.raises(FileNotFoundError, match="or give pixel_size_um"):
        read_xenium(folder)
    assert read_xenium(folder, pixel_size_um=0.5).microns_per_px == 0.5
    (tmp_path / "bad.csv").write_text("1,2\n3,4\n")
    with pytest.raises(ValueError, match="bad.csv: expected an invertible 3 x 3 affine matrix"):
        read_xenium(folder, pixel_size_um=0.5, alignment=tmp_path / "bad.csv")


def test_platform_readers_in_a_config(tmp_path):
    from gridgraph.config import make_config
    from gridgraph.workflows import load_section

    write_hd(tmp_path / "hd1")
    cfg = make_config({"data": {"reader": "visium_hd", "root": str(tmp_path), "options": {"bin_size_um": 8},
                                "train": ["hd1"], "val": ["hd1"]}})
    assert load_section(cfg.data, "hd1").num_nodes == 118
    write_xenium(tmp_path / "x1")
    cfg = make_config({"data": {"reader": "xenium", "root": str(tmp_path), "train": ["x1"], "val": ["x1"]},
                       "graph": {"builder": "knn", "k": 4}})
    s = load_section(cfg.data, "x1", cfg.graph)
    assert s.num_nodes == 60 and (torch.bincount(s.graph.edge_index[0]) >= 4).all()
