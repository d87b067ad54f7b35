"""read_visium_hd on Space Ranger ``binned_outputs/square_XXXum`` folders written here."""
import json
import time

import numpy as np
import pytest
import torch
from PIL import Image

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

from gridgraph.io import read_visium_hd  # noqa: E402
from gridgraph.io.readers.registry import READERS  # noqa: E402
from gridgraph.io.readers.visium_hd import hd_bin_folder  # noqa: E402
from gridgraph.patches.extract import section_window_px  # noqa: E402

MPP = 0.5     # µm per full-resolution pixel
HIRES = 0.2   # hires pixels per full-resolution pixel
LOWRES = 0.05


def positions(rows, cols, bin_um, out=()):
    """A positions frame of a rows x cols bin array; bins in ``out`` are outside the tissue."""
    r, c = np.divmod(np.arange(rows * cols), cols)
    step = bin_um / MPP
    return pd.DataFrame({
        "barcode": [f"s_{bin_um:03d}um_{i:05d}_{j:05d}-1" for i, j in zip(r, c)],
        "in_tissue": [0 if (i, j) in out else 1 for i, j in zip(r, c)],
        "array_row": r, "array_col": c,
        "pxl_row_in_fullres": 40 + r * step, "pxl_col_in_fullres": 60 + c * step})


def write_bins(outs, bin_um=8, rows=6, cols=7, out=((0, 0), (2, 3), (5, 6)), frame=None, factors=None,
               images=("hires", "lowres")):
    """``outs/binned_outputs/square_XXXum`` with positions, scale factors and images."""
    spatial = outs / "binned_outputs" / f"square_{bin_um:03d}um" / "spatial"
    spatial.mkdir(parents=True)
    (positions(rows, cols, bin_um, out) if frame is None else frame).to_parquet(
        spatial / "tissue_positions.parquet")
    sf = {"microns_per_pixel": MPP, "bin_size_um": bin_um, "tissue_hires_scalef": HIRES,
          "tissue_lowres_scalef": LOWRES, "spot_diameter_fullres": bin_um / MPP}
    (spatial / "scalefactors_json.json").write_text(json.dumps({**sf, **(factors or {})}))
    extent = (60 + cols * bin_um / MPP + 50, 40 + rows * bin_um / MPP + 50)  # full-res (W, H)
    for kind in images:
        scale = HIRES if kind == "hires" else LOWRES
        Image.new("RGB", (int(extent[0] * scale), int(extent[1] * scale)), (200, 100, 150)).save(
            spatial / f"tissue_{kind}_image.png")
    return spatial


def test_in_tissue_bins_ids_and_pixels(tmp_path):
    write_bins(tmp_path / "outs")
    s = read_visium_hd(tmp_path / "outs")
    frame = positions(6, 7, 8, ((0, 0), (2, 3), (5, 6)))
    inside = frame[frame.in_tissue == 1]
    assert s.num_nodes == 6 * 7 - 3 == len(s.barcodes)
    assert s.barcodes == inside.barcode.tolist()  # node ids in file order
    expected = inside[["pxl_col_in_fullres", "pxl_row_in_fullres"]].to_numpy() * HIRES
    np.testing.assert_allclose(s.graph.pos.numpy(), expected, rtol=1e-6)
    assert s.meta["image_kind"] == "hires" and s.image.size == (int((60 + 7 * 16 + 50) * HIRES),
                                                                 int((40 + 6 * 16 + 50) * HIRES))
    np.testing.assert_array_equal(s.array_row, inside.array_row.to_numpy())


def test_um_to_pixels_and_windows(tmp_path):
    write_bins(tmp_path / "outs")
    for image, scale in (("hires", HIRES), ("lowres", LOWRES), (None, 1.0)):
        s = read_visium_hd(tmp_path / "outs", image=image)
        assert s.spot_diameter_um == 8.0
        assert s.spot_diameter_px == pytest.approx(8 / MPP * scale)  # one bin side in the image's px
        assert s.microns_per_px == pytest.approx(MPP / scale)
        assert section_window_px(s, window_um=32) == pytest.approx(32 / MPP * scale)
        assert section_window_px(s, window_spots=3) == pytest.approx(3 * 8 / MPP * scale)
    fullres = tmp_path / "fullres.png"
    Image.new("RGB", (400, 300)).save(fullres)
    s = read_visium_hd(tmp_path / "outs", image=fullres)
    assert s.meta["image_kind"] == "fullres" and s.spot_diameter_px == pytest.approx(16.0)


def test_cartesian_degrees_and_graph_override(tmp_path):
    write_bins(tmp_path / "outs", out=())
    s = read_visium_hd(tmp_path / "outs", graph=None)
    degree = torch.bincount(s.graph.edge_index[0], minlength=s.num_nodes).numpy()
    interior = (s.array_row > 0) & (s.array_row < 5) & (s.array_col > 0) & (s.array_col < 6)
    assert s.graph.layout == "cartesian" and (degree[interior] == 4).all()
    assert (degree[(s.array_row == 0) & (s.array_col == 0)] == 2).all()
    eight = read_visium_hd(tmp_path / "outs", graph={"builder": "cartesian", "connectivity": 8})
    assert (torch.bincount(eight.graph.edge_index[0]).numpy()[interior] == 8).all()
    knn = read_visium_hd(tmp_path / "outs", graph={"builder": "knn", "k": 3})
    assert (torch.bincount(knn.graph.edge_index[0]) >= 3).all()


def test_folder_forms_and_bin_choice(tmp_path):
    outs = tmp_path / "sample1" / "outs"
    write_bins(outs, bin_um=8)
    write_bins(outs, bin_um=16, rows=3, cols=4, out=())
    assert read_visium_hd(outs, bin_size_um=16).num_nodes == 12
    assert read_visium_hd(outs / "binned_outputs", bin_size_um=16).num_nodes == 12
    s = read_visium_hd(outs / "binned_outputs" / "square_008um")
    assert s.num_nodes == 39 and s.name == "outs"
    assert read_visium_hd(outs, name="hd-A").name == "hd-A"
    with pytest.raises(ValueError, match=r"square_016um: holds square_016um bins; bin_size_um=8"):
        read_visium_hd(outs / "binned_outputs" / "square_016um")


def test_labels_mapping_and_loupe_csv(tmp_path):
    write_bins(tmp_path / "outs")
    s = read_visium_hd(tmp_path / "outs", image=None)
    mapping = {s.barcodes[0]: "tumour", s.barcodes[4]: "stroma", s.barcodes[5]: "tumour"}
    a = read_visium_hd(tmp_path / "outs", labels=mapping)
    assert a.classes == ["stroma", "tumour"] and a.labels[:6].tolist() == [1, -1, -1, -1, 0, 1]
    loupe = tmp_path / "labels.csv"
    loupe.write_text("Barcode,Region\n" + "".join(f"{b},{v}\n" for b, v in mapping.items()))
    b = read_visium_hd(tmp_path / "outs", labels=loupe, classes=["tumour", "stroma"])
    assert b.classes == ["tumour", "stroma"] and b.labels[:6].tolist() == [0, -1, -1, -1, 1, 0]
    with pytest.raises(ValueError, match="none of its 1 labelled barcodes is an in-tissue spot"):
        read_visium_hd(tmp_path / "outs", labels={"AAAC-1": "x"})


def test_unknown_bin_size_lists_the_available_ones(tmp_path):
    outs = tmp_path / "outs"
    write_bins(outs, bin_um=8)
    write_bins(outs, bin_um=16, rows=3, cols=4)
    with pytest.raises(ValueError, match=r"no square_002um folder for bin_size_um=2; found "
                                         r"\['square_008um', 'square_016um'\]"):
        read_visium_hd(outs, bin_size_um=2)
    with pytest.raises(ValueError, match="bin_size_um must be a positive whole number"):
        hd_bin_folder(outs, 7.5)
    with pytest.raises(FileNotFoundError, match="Visium HD folder not found"):
        read_visium_hd(tmp_path / "absent")


@pytest.mark.parametrize("factors, fragments", [
    ({"bin_size_um": 16}, ["bin_size_um is 16, the folder holds 8"]),
    ({"microns_per_pixel": 500.0}, ["'microns_per_pixel'", "'spot_diameter_fullres' is 16", "µm per"]),
    ({"microns_per_pixel": "0.5"}, ["microns_per_pixel must be a finite positive number"]),
    ({"bin_size_um": None}, ["bin_size_um must be a finite positive number"]),
    ({"tissue_hires_scalef": None, "bin_size_um": 8}, []),
])
def test_bad_scale_factors(tmp_path, factors, fragments):
    spatial = write_bins(tmp_path / "outs", factors=factors)
    if not fragments:  # a missing hires factor only matters when the hires image is used
        sf = json.loads((spatial / "scalefactors_json.json").read_text())
        del sf["tissue_hires_scalef"]
        (spatial / "scalefactors_json.json").write_text(json.dumps(sf))
        assert read_visium_hd(tmp_path / "outs", image="lowres").num_nodes == 39
        fragments = ["field 'tissue_hires_scalef' is missing"]
    with pytest.raises(ValueError) as err:
        read_visium_hd(tmp_path / "outs")
    assert "scalefactors_json.json" in str(err.value)
    for fragment in fragments:
        assert fragment in str(err.value), str(err.value)


def edited(column, row, value):
    frame = positions(6, 7, 8)
    frame[column] = frame[column].astype(object)
    frame.loc[row, column] = value
    return frame


@pytest.mark.parametrize("frame, fragments", [
    (positions(6, 7, 8).drop(columns="array_col"), ["lacks columns ['array_col']", "'barcode'"]),
    (edited("in_tissue", 4, 2), ["column 'in_tissue', row 5: expected 0 or 1"]),
    (edited("pxl_col_in_fullres", 2, None), ["column 'pxl_col_in_fullres', row 3: expected a finite number"]),
    (edited("array_row", 1, 2.5), ["column 'array_row', row 2: expected an integer array index"]),
    (edited("barcode", 9, "s_008um_00000_00001-1"), ["column 'barcode', row 10 repeats the id of row 2"]),
    (edited("barcode", 3, None), ["column 'barcode', row 4: expected a non-empty id"]),
    (positions(6, 7, 8).assign(in_tissue=0), ["expected some bins with in_tissue == 1"]),
])
def test_bad_positions_name_file_and_column(tmp_path, frame, fragments):
    write_bins(tmp_path / "outs", frame=frame)
    with pytest.raises(ValueError) as err:
        read_visium_hd(tmp_path / "outs")
    message = str(err.value)
    assert "tissue_positions.parquet" in message and "s_008um_" not in message  # no content quoted
    for fragment in fragments:
        assert fragment in message, message


def test_not_parquet_and_outside_image(tmp_path):
    spatial = write_bins(tmp_path / "a")
    (spatial / "tissue_positions.parquet").write_text("barcode,in_tissue\nsecret-1,1\n")
    with pytest.raises(ValueError, match=r"tissue_positions.parquet: not a parquet file") as err:
        read_visium_hd(tmp_path / "a")
    assert "secret" not in str(err.value)
    (spatial / "tissue_positions.parquet").unlink()
    with pytest.raises(FileNotFoundError, match="Visium HD positions table not found"):
        read_visium_hd(tmp_path / "a")
    far = positions(6, 7, 8)
    far.loc[4, "pxl_col_in_fullres"] = 1e5
    write_bins(tmp_path / "b", frame=far)
    with pytest.raises(ValueError, match=r"1 bins lie outside the image .* e\.g\. the node at row 5"):
        read_visium_hd(tmp_path / "b")
    assert read_visium_hd(tmp_path / "b", image=None).num_nodes == 42


def test_registered_reader(tmp_path):
    write_bins(tmp_path / "hd1" / "outs")
    source = READERS.get("visium_hd")
    s = source(tmp_path, "hd1/outs", bin_size_um=8, image="lowres")
    assert s.num_nodes == 39 and s.meta["image_kind"] == "lowres"
    assert source.from_paths({"path": tmp_path / "hd1" / "outs"}, {"image": "hires"}).meta["image_kind"] == "hires"


def test_a_million_bins(tmp_path):
    side = 1000
    spatial = tmp_path / "outs" / "binned_outputs" / "square_002um" / "spatial"
    spatial.mkdir(parents=True)
    r, c = np.divmod(np.arange(side * side), side)
    ids = pd.Series(np.arange(side * side)).astype(str)
    pd.DataFrame({"barcode": "s_002um_" + ids + "-1", "in_tissue": (r % 10 != 0).astype(np.int32),
                  "array_row": r, "array_col": c, "pxl_row_in_fullres": r * 4.0,
                  "pxl_col_in_fullres": c * 4.0}).to_parquet(spatial / "tissue_positions.parquet")
    (spatial / "scalefactors_json.json").write_text(json.dumps({
        "microns_per_pixel": 0.5, "bin_size_um": 2, "tissue_hires_scalef": 0.1,
        "tissue_lowres_scalef": 0.01, "spot_diameter_fullres": 4.0}))
    start = time.perf_counter()
    s = read_visium_hd(tmp_path / "outs", bin_size_um=2, image=None)
    seconds = time.perf_counter() - start
    assert s.num_nodes == 900_000 and s.barcodes[0] == "s_002um_1000-1"
    assert s.graph.num_edges == 2 * (900 * 999 + 800 * 1000)  # rows 0, 10, ... are outside the tissue
    assert seconds < 15, f"{seconds:.1f} s for 10^6 bins"
