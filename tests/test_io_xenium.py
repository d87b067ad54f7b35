"""read_xenium on Xenium bundles written here (parquet, CSV, gz), and the frames layer."""
import gzip
import json

import numpy as np
import pytest
import torch
from PIL import Image

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

from gridgraph.io import read_xenium  # noqa: E402
from gridgraph.io.tables.frames import read_frame  # noqa: E402
from gridgraph.io.readers.registry import READERS  # noqa: E402
from gridgraph.io.readers.xenium import CELL_DIAMETER_UM, read_alignment  # noqa: E402
from gridgraph.patches.extract import section_window_px  # noqa: E402

PX = 0.2125  # µm per Xenium pixel


def cells_frame(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"cell_id": [f"aaab{i:04d}-1" for i in range(n)],
                         "x_centroid": rng.uniform(20, 80, n), "y_centroid": rng.uniform(10, 50, n),
                         "transcript_counts": rng.integers(0, 100, n)})


def write_bundle(folder, frame=None, fmt="parquet", experiment=None):
    folder.mkdir(parents=True)
    frame = cells_frame() if frame is None else frame
    if fmt == "parquet":
        frame.to_parquet(folder / "cells.parquet")
    else:
        frame.to_csv(folder / f"cells.{fmt}", index=False)
    (folder / "experiment.xenium").write_text(json.dumps(
        {"pixel_size": PX, "run_name": "test"} if experiment is None else experiment))
    return folder, frame


@pytest.mark.parametrize("fmt", ["parquet", "csv.gz", "csv"])
def test_cells_ids_and_microns_to_pixels(tmp_path, fmt):
    folder, frame = write_bundle(tmp_path / "run1", fmt=fmt)
    s = read_xenium(folder)
    assert s.num_nodes == 40 and s.barcodes == frame.cell_id.tolist() and s.name == "run1"
    np.testing.assert_allclose(s.graph.pos.numpy(), frame[["x_centroid", "y_centroid"]].to_numpy() / PX,
                               rtol=1e-6)
    assert s.spot_diameter_um == CELL_DIAMETER_UM and s.spot_diameter_px == pytest.approx(10 / PX)
    assert s.microns_per_px == pytest.approx(PX)
    assert section_window_px(s, window_um=20) == pytest.approx(20 / PX)
    assert s.graph.layout == "irregular" and (torch.bincount(s.graph.edge_index[0]) >= 6).all()
    assert read_xenium(folder, pixel_size_um=0.5).graph.pos[0, 0] == pytest.approx(frame.x_centroid[0] / 0.5)


def test_integer_and_bytes_ids_stay_text(tmp_path):
    frame = cells_frame(12).assign(cell_id=[f"{i:03d}" for i in range(12)])
    folder, _ = write_bundle(tmp_path / "csv", frame=frame, fmt="csv.gz")
    assert read_xenium(folder).barcodes[:2] == ["000", "001"]  # read as text, zeros kept
    folder, _ = write_bundle(tmp_path / "pq", frame=frame.assign(cell_id=[b"c%d" % i for i in range(12)]))
    assert read_xenium(folder).barcodes[:2] == ["c0", "c1"]


def test_alignment_applied_exactly(tmp_path):
    folder, frame = write_bundle(tmp_path / "run")
    angle = np.deg2rad(30)
    linear = 1.5 * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    affine = np.eye(3)
    affine[:2, :2], affine[:2, 2] = linear, [0.0, -200.0]  # H&E px -> Xenium px
    np.savetxt(tmp_path / "he_imagealignment.csv", affine, delimiter=",")
    Image.new("RGB", (400, 300), (220, 170, 200)).save(tmp_path / "he.png")
    s = read_xenium(folder, image=tmp_path / "he.png", alignment=tmp_path / "he_imagealignment.csv")
    xen = frame[["x_centroid", "y_centroid"]].to_numpy() / PX
    he = s.graph.pos.numpy().astype(np.float64)
    np.testing.assert_allclose(he @ linear.T + [0.0, -200.0], xen, rtol=1e-5)  # maps back exactly
    assert s.microns_per_px == pytest.approx(1.5 * PX)  # one H&E pixel spans 1.5 Xenium pixels
    assert section_window_px(s, window_um=30) == pytest.approx(30 / (1.5 * PX))
    np.testing.assert_array_equal(read_alignment(tmp_path / "he_imagealignment.csv"), affine)


def test_graph_choice(tmp_path):
    folder, _ = write_bundle(tmp_path / "run")
    radius = read_xenium(folder, graph={"builder": "radius", "r": 60.0})
    pos = radius.graph.pos.numpy()
    src, dst = radius.graph.edge_index.numpy()
    assert (np.linalg.norm(pos[src] - pos[dst], axis=1) <= 60.0 + 1e-4).all()
    knn = read_xenium(folder, graph={"builder": "knn", "k": 3})
    assert (torch.bincount(knn.graph.edge_index[0]) >= 3).all()
    assert knn.graph.num_edges < read_xenium(folder, graph=None).graph.num_edges


def test_labels_from_mapping_and_table(tmp_path):
    folder, frame = write_bundle(tmp_path / "run")
    ids = frame.cell_id.tolist()
    s = read_xenium(folder, labels={ids[0]: "T", ids[3]: "S"})
    assert s.classes == ["S", "T"] and s.labels[:4].tolist() == [1, -1, -1, 0]
    table = tmp_path / "labels.tsv.gz"
    with gzip.open(table, "wt") as f:
        f.write("cell_id\tlabel\n" + f"{ids[1]}\tS\n{ids[2]}\t\n{ids[5]}\tT\n")
    t = read_xenium(folder, labels=table, classes=["T", "S"])
    assert t.labels[:6].tolist() == [-1, 1, -1, -1, -1, 0]
    with pytest.raises(ValueError, match="labels mapping: none of its cell ids") as err:
        read_xenium(folder, labels={"other-1": "T"})
    assert "other-1" not in str(err.value)
    pd.DataFrame({"cell": ids[:2], "label": ["T", "S"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match=r"bad.csv: the header lacks columns \['cell_id'\]"):
        read_xenium(folder, labels=tmp_path / "bad.csv")


def edited(column, row, value):
    frame = cells_frame()
    frame[column] = frame[column].astype(object)
    frame.loc[row, column] = value
    return frame


@pytest.mark.parametrize("frame, fmt, fragments", [
    (cells_frame().drop(columns="y_centroid"), "parquet", ["cells.parquet", "lacks columns ['y_centroid']"]),
    (cells_frame().drop(columns="cell_id"), "csv.gz", ["cells.csv.gz", "lacks columns ['cell_id']"]),
    (edited("x_centroid", 6, float("nan")), "parquet", ["column 'x_centroid', row 7: expected a finite number"]),
    (edited("y_centroid", 2, "n/a"), "csv.gz", ["column 'y_centroid', line 4: expected a finite number"]),
    (edited("cell_id", 8, "aaab0001-1"), "parquet", ["column 'cell_id', row 9 repeats the id of row 2"]),
    (edited("cell_id", 0, None), "csv", ["cells.csv: column 'cell_id', line 2: expected a non-empty id"]),
    (cells_frame(0), "parquet", ["cells.parquet: no cells"]),
])
def test_bad_cell_tables(tmp_path, frame, fmt, fragments):
    folder, _ = write_bundle(tmp_path / "run", frame=frame, fmt=fmt)
    with pytest.raises(ValueError) as err:
        read_xenium(folder)
    message = str(err.value)
    assert "aaab" not in message  # ids (file content) are never quoted
    for fragment in fragments:
        assert fragment in message, message


def test_bad_files(tmp_path):
    folder, _ = write_bundle(tmp_path / "a")
    (folder / "cells.parquet").write_bytes(b"cell_id,x_centroid\nzzz,1\n")
    with pytest.raises(ValueError, match=r"cells.parquet: not a parquet file; expected a Xenium cell table"):
        read_xenium(folder)
    folder = tmp_path / "b"
    folder.mkdir()
    (folder / "cells.csv.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match=r"cells.csv.gz: cannot read as a Xenium cell table"):
        read_xenium(folder, pixel_size_um=PX)
    (folder / "cells.csv.gz").unlink()
    (folder / "cells.csv").write_text("cell_id,x_centroid,y_centroid\nc1,1,2\nc2,3,4,5\n")
    with pytest.raises(ValueError, match=r"cells.csv: line 3: expected 3 fields, found 4"):
        read_xenium(folder, pixel_size_um=PX)
    (folder / "cells.csv").write_text("")
    with pytest.raises(ValueError, match=r"cells.csv: empty; expected a Xenium cell table"):
        read_xenium(folder, pixel_size_um=PX)


@pytest.mark.parametrize("experiment, match", [
    ({"pixel_size": -1}, "experiment.xenium: field 'pixel_size' must be a finite positive number"),
    ({"run_name": "x"}, "experiment.xenium: field 'pixel_size' must be a finite positive number"),
    ([1, 2], "experiment.xenium: not a JSON object"),
])
def test_bad_pixel_size(tmp_path, experiment, match):
    folder, _ = write_bundle(tmp_path / "run", experiment=experiment)
    with pytest.raises(ValueError, match=match):
        read_xenium(folder)
    assert read_xenium(folder, pixel_size_um=0.25).microns_per_px == 0.25
    with pytest.raises(ValueError, match="pixel_size_um must be a finite positive number"):
        read_xenium(folder, pixel_size_um=float("inf"))


def test_bad_alignment_and_image(tmp_path):
    folder, _ = write_bundle(tmp_path / "run")
    projective = tmp_path / "p.csv"
    projective.write_text("1,0,0\n0,1,0\n0.01,0,1\n")
    with pytest.raises(ValueError, match=r"p.csv: expected an invertible affine matrix \(last row 0, 0, 1\)"):
        read_xenium(folder, alignment=projective)
    (tmp_path / "t.csv").write_text("1,0,x\n0,1,0\n0,0,1\n")
    with pytest.raises(ValueError, match=r"t.csv: expected a 3 x 3 matrix of numbers"):
        read_xenium(folder, alignment=tmp_path / "t.csv")
    Image.new("RGB", (50, 50)).save(tmp_path / "small.png")
    with pytest.raises(ValueError, match=r"cells.parquet \(in .*small.png\): \d+ cells lie outside the image"):
        read_xenium(folder, image=tmp_path / "small.png")


def test_frames_tsv_gz_and_selected_columns(tmp_path):
    path = tmp_path / "t.tsv.gz"
    with gzip.open(path, "wt") as f:
        f.write("a\tb\tc\n007\t1.5\tx\n010\t2.5\ty\n")
    frame = read_frame(path, ["a", "b"], text=("a",))
    assert list(frame.columns) == ["a", "b"] and frame.a.tolist() == ["007", "010"]
    with pytest.raises(ValueError, match=r"t.tsv.gz: the table lacks columns \['d'\]; expected columns \['a', 'd'\]"):
        read_frame(path, ["a", "d"])


def test_registered_reader(tmp_path):
    write_bundle(tmp_path / "x1")
    Image.new("RGB", (500, 300)).save(tmp_path / "x1_he.png")
    np.savetxt(tmp_path / "x1_align.csv", np.diag([1.0, 1.0, 1.0]), delimiter=",")
    s = READERS.get("xenium")(tmp_path, "x1", image="x1_he.png", alignment="x1_align.csv")
    assert s.num_nodes == 40 and s.image is not None and s.name == "x1"
