"""Bad input: every reader raises ValueError/FileNotFoundError naming the file, the field and what
was expected; unusual but valid images (RGBA, greyscale, 16-bit, palette) are converted."""
import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gridgraph.io import (
    read_barcode_labels,
    read_loupe_csv,
    read_nuclei_csv,
    read_spaceranger,
    read_spot_table,
    read_st_tsv,
)
from gridgraph.graph import cartesian_graph, hex_graph
from gridgraph.graph.builders import MAX_GRID_CELLS
from test_io_spaceranger import write_visium


def expect_error(exc, fn, *needles):
    """Call ``fn``; it must raise ``exc`` whose message holds every needle."""
    with pytest.raises(exc) as info:
        fn()
    message = str(info.value)
    for needle in needles:
        assert str(needle) in message, f"{needle!r} not in {message!r}"
    return message


def edit_csv(path: Path, edit, header: bool = False) -> None:
    """Rewrite a CSV through ``edit(rows) -> rows``."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(edit(rows))


# --------------------------------------------------------------------------- Space Ranger
@pytest.fixture
def visium(tmp_path):
    root = write_visium(tmp_path / "sec")
    return root, root / "spatial" / "tissue_positions_list.csv"


def set_field(row: int, col: int, value):
    def edit(rows):
        rows[row][col] = value
        return rows
    return edit


def test_spaceranger_missing_files(tmp_path, visium):
    root, positions = visium
    expect_error(FileNotFoundError, lambda: read_spaceranger(tmp_path / "nope"), tmp_path / "nope")
    empty = tmp_path / "empty" / "spatial"
    empty.mkdir(parents=True)
    expect_error(
        FileNotFoundError, lambda: read_spaceranger(empty.parent), empty,
        "tissue_positions.csv", "tissue_positions_list.csv",
    )
    expect_error(FileNotFoundError, lambda: read_spaceranger(positions), positions, "spatial")
    expect_error(
        FileNotFoundError, lambda: read_spaceranger(root, labels=tmp_path / "labels.csv"),
        tmp_path / "labels.csv",
    )
    expect_error(
        FileNotFoundError, lambda: read_spaceranger(root, image=str(tmp_path / "full.tif")),
        tmp_path / "full.tif",
    )
    (root / "spatial" / "scalefactors_json.json").unlink()
    expect_error(FileNotFoundError, lambda: read_spaceranger(root), "scalefactors_json.json")
    assert read_spaceranger(root, image=None).spot_diameter_px is None


@pytest.mark.parametrize(
    "value", ["0", "-0.2", "Infinity", "-Infinity", "NaN", "1e400", '"0.2"', "true", "null", "[0.2]"]
)
def test_spaceranger_scalefactor_must_be_finite_positive(visium, value):
    root, _ = visium
    sf = root / "spatial" / "scalefactors_json.json"
    sf.write_text(sf.read_text().replace('"tissue_hires_scalef": 0.2', f'"tissue_hires_scalef": {value}'))
    expect_error(ValueError, lambda: read_spaceranger(root), sf, "'tissue_hires_scalef'",
                 "finite positive number")


def test_spaceranger_bad_scalefactors(visium):
    root, _ = visium
    sf = root / "spatial" / "scalefactors_json.json"
    sf.write_text(json.dumps({"spot_diameter_fullres": 40.0, "tissue_lowres_scalef": 0.05}))
    expect_error(ValueError, lambda: read_spaceranger(root, image="hires"), sf, "tissue_hires_scalef")
    sf.write_text(json.dumps({"tissue_hires_scalef": "big"}))
    expect_error(ValueError, lambda: read_spaceranger(root), sf, "tissue_hires_scalef", "positive number")
    sf.write_text("{not json")
    expect_error(ValueError, lambda: read_spaceranger(root), sf, "JSON")
    sf.write_bytes(b"\x89PNG\r\n\x1a\n\xff\x00")
    expect_error(ValueError, lambda: read_spaceranger(root), sf, "not a text file", "JSON object")


@pytest.mark.parametrize(
    "edit, needles",
    [
        (lambda rows: rows[:3] + [rows[3][:5]] + rows[4:], ["line 4", "5 fields", "expected 6"]),
        (lambda rows: [r + ["extra"] for r in rows], ["7 fields", "expected 6", "pxl_col_in_fullres"]),
        (set_field(2, 2, "two"), ["'array_row'", "line 3", "expected an integer", "got text that is not one"]),
        (set_field(2, 3, "1.5"), ["'array_col'", "line 3", "expected an integer", "got a fraction"]),
        (set_field(2, 4, "abc"), ["'pxl_row_in_fullres'", "line 3", "expected a number", "got text that is not one"]),
        (set_field(4, 5, "NaN"), ["'pxl_col_in_fullres'", "line 5", "NaN"]),
        (set_field(4, 5, ""), ["'pxl_col_in_fullres'", "line 5", "empty"]),
        (set_field(5, 0, "BC00002-1"), ["'barcode'", "duplicated", "BC00002-1", "lines 2 and 6"]),
        (set_field(3, 1, "2"), ["'in_tissue'", "line 4", "expected 0 or 1"]),
        (set_field(3, 2, "-1"), ["'array_row'", "non-negative"]),
        (set_field(2, 2, "1e12"), ["'array_row'", "line 3", "no greater than 127", "Visium"]),
        (set_field(2, 2, "128"), ["'array_row'", "line 3", "no greater than 127"]),
        (set_field(2, 3, "1e12"), ["'array_col'", "line 3", "no greater than 223", "Visium"]),
        (set_field(2, 2, "1e30"), ["'array_row'", "line 3", "64-bit"]),
        (set_field(3, 3, "3"), ["array_col", "parity"]),
        (lambda rows: [rows[1]] + rows[1:], ["duplicated", "BC00002-1"]),
        (lambda rows: [[r[0], "0"] + r[2:] for r in rows], ["in_tissue", "found none"]),
    ],
)
def test_spaceranger_bad_positions(visium, edit, needles):
    root, positions = visium
    edit_csv(positions, edit)
    expect_error(ValueError, lambda: read_spaceranger(root), positions, *needles)


def test_spaceranger_accepts_the_largest_visium_array(visium):
    root, positions = visium
    edit_csv(positions, lambda rows: rows + [["FAR-1", "1", "127", "223", "250", "350"]])
    s = read_spaceranger(root)
    assert s.num_nodes == 36 and s.graph.grid_shape == (112, 128)  # an 11 mm capture area


def cut_last_line(path: Path, keep: str) -> None:
    """Replace the file's last line by ``keep`` with no final newline (a truncated copy)."""
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1] + [keep]))


@pytest.mark.parametrize(
    "last, needles",
    [
        ("BC05011-1,1,5,11", ["line 36 has 4 fields", "expected 6", "truncated"]),
        ("BC05011-1,1,5,11,700,", ["'pxl_col_in_fullres'", "line 36", "empty", "truncated"]),
        ("BC05011-1,1,5,11,700,8.5e", ["'pxl_col_in_fullres'", "line 36", "expected a number", "truncated"]),
        ("BC05", ["line 36 has 1 fields", "truncated"]),
    ],
)
def test_spaceranger_truncated_last_line(visium, last, needles):
    root, positions = visium
    cut_last_line(positions, last)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an error, not also a warning
        expect_error(ValueError, lambda: read_spaceranger(root), positions, *needles)


def test_spaceranger_last_line_without_newline_warns(visium):
    root, positions = visium
    cut_last_line(positions, "BC05011-1,1,5,11,700,85")  # cut mid-number, still a number
    with pytest.warns(UserWarning, match=r"does not end with a newline; its last line \(36\)") as got:
        read_spaceranger(root)
    assert str(positions) in str(got[0].message)
    positions.write_text(positions.read_text() + "0\n")  # the complete file reads silently
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_spaceranger(root).num_nodes == 35


def test_spaceranger_labels_matching_no_spot(visium, tmp_path):
    root, _ = visium
    barcodes = read_spaceranger(root).barcodes
    loupe = tmp_path / "other.csv"
    loupe.write_text("Barcode,Layer\n" + "".join(f"{b[:-2]}-2,L1\n" for b in barcodes))
    message = expect_error(ValueError, lambda: read_spaceranger(root, labels=loupe), loupe, "'sec'",
                           "none of its 35 labelled barcodes", "tissue_positions_list.csv")
    assert "BC0" not in message  # no barcode (file content) is quoted
    expect_error(ValueError, lambda: read_spaceranger(root, labels={"x": "L1"}), "labels mapping", "'sec'")
    loupe.write_text("Barcode,Layer\nBC00000-1,L1\n")  # labels only an out-of-tissue spot
    expect_error(ValueError, lambda: read_spaceranger(root, labels=loupe), loupe, "none of its 1")
    loupe.write_text("Barcode,Layer\n" + "".join(f"{b},L1\n" for b in barcodes[:3])
                     + "".join(f"X{i}-1,L1\n" for i in range(4)))
    with pytest.warns(UserWarning, match="4 of its 7 barcodes are not in") as got:
        s = read_spaceranger(root, labels=loupe)
    assert int((s.labels >= 0).sum()) == 3 and str(loupe) in str(got[0].message)
    loupe.write_text("Barcode,Layer\n" + "".join(f"{b},L1\n" for b in barcodes[:3]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a partial annotation of this section is fine
        assert int((read_spaceranger(root, labels=loupe).labels >= 0).sum()) == 3


def test_spaceranger_same_array_cell_twice(visium):
    root, positions = visium
    edit_csv(positions, lambda rows: rows + [["EXTRA-1", "1"] + rows[3][2:]])
    expect_error(ValueError, lambda: read_spaceranger(root), positions, "share the grid cell")


def test_spaceranger_2x_header_missing_column(tmp_path):
    root = write_visium(tmp_path / "s", header=True)
    positions = root / "spatial" / "tissue_positions.csv"
    edit_csv(positions, lambda rows: [[c for j, c in enumerate(r) if j != 4] for r in rows])
    expect_error(ValueError, lambda: read_spaceranger(root), positions, "pxl_row_in_fullres", "lacks")


def test_spaceranger_spots_outside_image(visium, tmp_path):
    root, positions = visium
    edit_csv(positions, set_field(6, 5, "5000"))
    expect_error(
        ValueError, lambda: read_spaceranger(root), positions, "tissue_hires_image.png",
        "outside the image", "200x200", "BC01001-1",
    )
    full = tmp_path / "full.png"
    Image.fromarray(np.zeros((100, 100, 3), dtype=np.uint8)).save(full)
    expect_error(ValueError, lambda: read_spaceranger(root, fullres_image=full), full, "outside")
    assert read_spaceranger(root, image=None).num_nodes == 35  # no image, no bound


def test_spaceranger_unknown_and_bad_labels(visium, tmp_path):
    root, _ = visium
    s = read_spaceranger(root)
    loupe = tmp_path / "loupe.csv"
    loupe.write_text("Barcode,Layer\n" + "".join(f"{b},L{i % 3}\n" for i, b in enumerate(s.barcodes)))
    expect_error(ValueError, lambda: read_spaceranger(root, labels=loupe, classes=["L0", "L1"]),
                 loupe, "unknown label names", "L2", "expected one of")
    expect_error(ValueError, lambda: read_spaceranger(root, labels={s.barcodes[0]: "X"}, classes=["A"]),
                 "labels mapping", "'X'")
    loupe.write_text(f"Barcode,Layer\n{s.barcodes[0]},A\n{s.barcodes[0]},B\n")
    expect_error(ValueError, lambda: read_loupe_csv(loupe), loupe, "duplicated", s.barcodes[0])
    loupe.write_text(f"{s.barcodes[0]},A\n")
    expect_error(ValueError, lambda: read_spaceranger(root, labels=loupe), loupe, "Barcode,<Category>")
    table = tmp_path / "map.tsv"
    table.write_text(f"{s.barcodes[0]}\tother\tA\n")
    expect_error(ValueError, lambda: read_spaceranger(root, labels=table), table, "section", "'sec'", "other")
    table.write_text(f"{s.barcodes[0]}\tsec\tA\n{s.barcodes[0]}\tsec\tB\n")
    expect_error(ValueError, lambda: read_spaceranger(root, labels=table), table, "barcode", "duplicated")
    table.write_text(f"{s.barcodes[0]}\tsec\tA\textra\n")
    expect_error(ValueError, lambda: read_spaceranger(root, labels=table), table, "4 columns")
    table.write_text(f"{s.barcodes[0]}\tsec\tA\n{s.barcodes[1]}\tsec\n")
    expect_error(ValueError, lambda: read_spaceranger(root, labels=table), table, "line 2", "expected 3")
    table.write_text("barcode\tsection\tlabel\n" f"{s.barcodes[1]}\tsec\tA\n")
    assert read_barcode_labels(table, "sec") == {s.barcodes[1]: "A"}
    with pytest.raises(TypeError, match="mapping"):
        read_spaceranger(root, labels=[1, 2])


@pytest.mark.parametrize("mode", ["RGBA", "L", "I;16", "P", "LA"])
def test_spaceranger_converts_image_modes(visium, mode):
    root, _ = visium
    path = root / "spatial" / "tissue_hires_image.png"
    grey = np.tile(np.arange(200, dtype=np.uint16)[None, :], (200, 1))
    if mode == "I;16":
        Image.fromarray(grey * 257).save(path)  # 16-bit, full range
    else:
        Image.fromarray(np.repeat(grey.astype(np.uint8)[:, :, None], 3, axis=2)).convert(mode).save(path)
    s = read_spaceranger(root)
    img = s.load_image()
    assert img.shape == (200, 200, 3) and img.dtype == np.uint8
    if mode != "P":  # palette quantisation may shift values slightly
        np.testing.assert_array_equal(img[:, :, 0], grey.astype(np.uint8))
        np.testing.assert_array_equal(img[:, :, 2], grey.astype(np.uint8))


def test_unreadable_image(visium):
    root, _ = visium
    path = root / "spatial" / "tissue_hires_image.png"
    path.write_text("not an image")
    expect_error(ValueError, lambda: read_spaceranger(root), path, "cannot read as an image")


# --------------------------------------------------------------------------- classic ST TSV
@pytest.fixture
def st(tmp_path):
    tsv = tmp_path / "ann.tsv"
    tsv.write_text("\t1_1\t2_1\t1_2\nA\t1\t0\t0\nB\t0\t1\t0\n")
    img = tmp_path / "he.png"
    Image.fromarray(np.zeros((300, 620, 3), dtype=np.uint8)).save(img)
    return tsv, img


@pytest.mark.parametrize(
    "text, needles",
    [
        ("\t1_1\tfoo\nA\t1\t0\n", ["spot column 'foo'", "expected coordinates 'x_y'"]),
        ("\t1_1\t2_1_3\nA\t1\t0\n", ["'2_1_3'", "x_y"]),
        ("\t0_1\nA\t1\n", ["'0_1'", "1-based"]),
        ("\t1_1\t1.1_0.9\nA\t1\t0\n", ["'1_1'", "'1.1_0.9'", "same array position"]),
        ("\t1_1\t2_1\nA\t1\t2\n", ["'2_1'", "class 'A'", "expected 0 or 1"]),
        ("\t1_1\nA\t1\nB\t1\n", ["'1_1'", "marks 2 classes", "one-hot"]),
        ("\t1_1\t2_1\nA\t1\tyes\n", ["'2_1'", "line 2", "expected a number", "got text that is not one"]),
        ("\t1_1\t2_1\nA\t1\tNaN\n", ["'2_1'", "line 2", "NaN"]),
        ("\t1_1\t2_1\nA\t1\n", ["line 2", "2 fields", "expected 3"]),
        ("\t1_1\nA\t1\nA\t0\n", ["class names", "duplicated", "'A'"]),
        ("\t1_1\t1_1\nA\t1\t0\n", ["duplicated", "'1_1'"]),
        ("\t1_1\t40_1\nA\t1\t0\n", ["outside the image", "40_1 at pixel", "he.png"]),
        ("\t1_1\t1e30_1\nA\t1\t0\n", ["spot column '1e30_1'", "x, y <= 100", "ST arrays"]),
        ("\t1_1\t1e12_1\nA\t1\t0\n", ["spot column '1e12_1'", "x, y <= 100"]),
        ("\t1_1\t1_1e12\nA\t1\t0\n", ["spot column '1_1e12'", "x, y <= 100"]),
        ("\t1_1\t101_1\nA\t1\t0\n", ["spot column '101_1'", "x, y <= 100"]),
        ("\t1_1\t2_1\nA\t1\t0\nB\t0", ["line 3", "2 fields", "expected 3", "truncated"]),
        ("\t1_1\t2_1\nA\t1\t0\nB\t0\t1e", ["'2_1'", "line 3", "expected a number", "truncated"]),
    ],
)
def test_st_tsv_bad_input(st, text, needles):
    tsv, img = st
    tsv.write_text(text)
    expect_error(ValueError, lambda: read_st_tsv(tsv, img), tsv, *needles)


def test_st_tsv_without_image_bounds_coordinates(st):
    tsv, _ = st
    for column in ("1e12_1", "1e30_1", "1_1e12"):
        tsv.write_text(f"\t1_1\t{column}\nA\t1\t0\n")  # no image: no pixel bound either
        expect_error(ValueError, lambda: read_st_tsv(tsv, None, spot_spacing_px=10), tsv, column, "<= 100")
    tsv.write_text("\t1_1\t100_100\nA\t1\t0\n")
    assert read_st_tsv(tsv, None, spot_spacing_px=10).graph.grid_shape == (100, 100)


def test_st_tsv_missing_files_and_classes(st, tmp_path):
    tsv, img = st
    expect_error(FileNotFoundError, lambda: read_st_tsv(tmp_path / "x.tsv", img), tmp_path / "x.tsv")
    expect_error(FileNotFoundError, lambda: read_st_tsv(tsv, tmp_path / "x.png"), tmp_path / "x.png")
    expect_error(ValueError, lambda: read_st_tsv(tsv, img, classes=["A"]), tsv, "['B']", "classes")
    expect_error(ValueError, lambda: read_st_tsv(tsv, None), tsv, "spot_spacing_px")
    tsv.write_text("")
    expect_error(ValueError, lambda: read_st_tsv(tsv, img), tsv, "empty")


@pytest.mark.parametrize("mode", ["RGBA", "L", "I;16"])
def test_st_tsv_converts_image_modes(st, mode):
    tsv, img = st
    arr = np.full((300, 620), 100, dtype=np.uint16)
    Image.fromarray(arr * 257 if mode == "I;16" else arr.astype(np.uint8)).convert(
        mode if mode != "I;16" else "I;16"
    ).save(img)
    s = read_st_tsv(tsv, img)
    pix = s.load_image()
    assert pix.shape == (300, 620, 3) and pix.dtype == np.uint8 and (pix == 100).all()


# --------------------------------------------------------------------------- spot tables
SPOTS_HEADER = "\tlabel\tx\ty\tpixel_x\tpixel_y\n"


@pytest.mark.parametrize(
    "body, needles",
    [
        ("s1\t0\t1\t1\t10\t10\ns2\t0\ttwo\t1\t20\t10\n", ["'x'", "line 3", "expected an integer", "got text that is not one"]),
        ("s1\t0\t1\t1\t10\t10\ns2\t0\t2\t1\tnan\t10\n", ["'pixel_x'", "line 3", "NaN"]),
        ("s1\t0\t1\t1\t10\t10\ns1\t0\t2\t1\t20\t10\n", ["duplicated", "'s1'", "lines 2 and 3"]),
        ("s1\t0\t1\t1\t10\t10\ns2\t0\t2\t1\t20\n", ["line 3", "5 fields", "expected 6"]),
        ("s1\t0\t1\t1\t10\t10\ns2\t0\t2\t1\t2000\t10\n", ["outside the image", "s2"]),
        ("s1\t0\t1\t1\t10\t10\ns2\t0\t1\t1\t20\t10\n", ["share the grid cell"]),
        ("s1\t0\t1\t1\t10\t10\ns2\t0\t1e9\t1\t20\t10\n", ["'x'", "line 3", "no greater than 100", "ST"]),
        ("s1\t0\t1\t1\t10\t10\ns2\t0\t2\t1e12\t20\t10\n", ["'y'", "line 3", "no greater than 100"]),
        ("s1\t0\t1\t1\t10\t10\ns2\t0\t1e30\t1\t20\t10\n", ["'x'", "line 3", "64-bit"]),
        ("s1\t0\t1\t1\t10\t10\ns2\t0\t-1\t1\t20\t10\n", ["'x'", "line 3", "non-negative"]),
        ("", ["no spots"]),
        ("s1\t0\t1\t1\t10\t10\ns2\t0\t2\t1\t2", ["line 3", "5 fields", "truncated"]),
    ],
)
def test_spot_table_bad_input(tmp_path, body, needles):
    path = tmp_path / "S_spots.tsv"
    path.write_text(SPOTS_HEADER + body)
    image = np.zeros((100, 100, 3), dtype=np.uint8)
    expect_error(ValueError, lambda: read_spot_table(path, image=image), path, *needles)


def test_spot_table_columns_and_names(tmp_path):
    path = tmp_path / "S_spots.tsv"
    path.write_text("\tlabel\tx\ty\tpixel_y\ns1\t0\t1\t1\t10\n")
    expect_error(ValueError, lambda: read_spot_table(path), path, "'pixel_x'", "the header has none")
    path.write_text(SPOTS_HEADER + "s1\t0\t1\t1\t10\t10\ns2\t3\t2\t1\t20\t10\ns3\t\t3\t1\t30\t10\n")
    names = tmp_path / "cluster_names.tsv"
    names.write_text("label\tname\n0\ttumour\n1\tstroma\n")
    expect_error(ValueError, lambda: read_spot_table(path), path, names, "'label'", "['3']", "no class name")
    names.write_text("label\tname\n0\ttumour\n1\tstroma\n3\timmune\n")
    s = read_spot_table(path)
    assert s.classes == ["tumour", "stroma", "immune"] and s.label_names() == ["tumour", "immune", None]
    expect_error(ValueError, lambda: read_spot_table(path, classes=["tumour"]), path, "unknown label names")
    expect_error(FileNotFoundError, lambda: read_spot_table(tmp_path / "none.tsv"), tmp_path / "none.tsv")


# --------------------------------------------------------------------------- nuclei
@pytest.mark.parametrize(
    "text, needles",
    [
        ("x,label\n1,a\n", ["'y'", "lacks"]),
        ("x,y,label\n1,2,a\nfoo,3,b\n", ["'x'", "line 3", "expected a number", "got text that is not one"]),
        ("x,y,label\n1,2,a\n3,nan,b\n", ["'y'", "line 3", "NaN"]),
        ("x,y,label\n1,2,a\n3,4\n", ["line 3", "2 fields", "expected 3"]),
        ("x,y,label\n1,2,a\n3,40,b\n", ["outside the image", "line 3", "(x=3.0, y=40.0)"]),
        ("x,y,label\n1,2,a\n3,4,zzz\n", ["'label'", "unknown label names", "zzz"]),
        ("x,y,label\n", ["no nuclei"]),
        ("x,y\n", ["no nuclei"]),
        ("x,y,label\n1,2,a\n3,", ["line 3", "2 fields", "expected 3", "truncated"]),
        ("x,y\n1,2\n3,1.5e", ["'y'", "line 3", "expected a number", "truncated"]),
    ],
)
def test_nuclei_bad_input(tmp_path, text, needles):
    path = tmp_path / "img_nuclei.csv"
    path.write_text(text)
    image = np.zeros((20, 20, 3), dtype=np.uint8)
    expect_error(ValueError, lambda: read_nuclei_csv(path, image, classes=["a", "b"]), path, *needles)


def test_nuclei_missing_files_and_image_modes(tmp_path):
    path = tmp_path / "img_nuclei.csv"
    expect_error(FileNotFoundError, lambda: read_nuclei_csv(path, None), path)
    path.write_text("x,y,label\n" + "".join(f"{i},{i},\n" for i in range(10)))
    expect_error(FileNotFoundError, lambda: read_nuclei_csv(path, tmp_path / "img.png"), tmp_path / "img.png")
    for arr in (
        np.zeros((20, 20, 4), dtype=np.uint8),
        np.zeros((20, 20), dtype=np.uint8),
        np.zeros((20, 20), dtype=np.uint16) + 65535,
        np.zeros((20, 20, 3), dtype=np.float32),
    ):
        img = read_nuclei_csv(path, arr).load_image()
        assert img.shape == (20, 20, 3) and img.dtype == np.uint8


# --------------------------------------------------------------------------- binary files
BINARY_READERS = {
    "positions": lambda root, tmp: (root / "spatial" / "tissue_positions_list.csv", lambda: read_spaceranger(root)),
    "labels": lambda root, tmp: (tmp / "labels.csv", lambda: read_spaceranger(root, labels=tmp / "labels.csv")),
    "loupe": lambda root, tmp: (tmp / "loupe.csv", lambda: read_loupe_csv(tmp / "loupe.csv")),
    "spot table": lambda root, tmp: (tmp / "S_spots.tsv", lambda: read_spot_table(tmp / "S_spots.tsv")),
    "st tsv": lambda root, tmp: (tmp / "ann.tsv", lambda: read_st_tsv(tmp / "ann.tsv", None, 10.0)),
    "nuclei": lambda root, tmp: (tmp / "n.csv", lambda: read_nuclei_csv(tmp / "n.csv", None)),
}
GARBAGE = {
    "random": np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
    "zeros": bytes(4096),
    "png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
    "latin-1": "barcode,caf\xe9\n".encode("latin-1"),
    "utf-8 then NUL": b"x,y\n1,2\n\x00\x00\x00\n",
}


@pytest.mark.parametrize("garbage", list(GARBAGE))
@pytest.mark.parametrize("reader", list(BINARY_READERS))
def test_binary_file_is_not_text(visium, tmp_path, reader, garbage):
    root, _ = visium
    path, read = BINARY_READERS[reader](root, tmp_path)
    path.write_bytes(GARBAGE[garbage])
    message = expect_error(ValueError, read, path, "not a text file")
    assert "\\x" not in message and "\x00" not in message  # no file content quoted


# --------------------------------------------------------------------------- dense grid bound
@pytest.mark.parametrize(
    "build, shape",
    [
        (lambda: cartesian_graph([0, 10**9], [0, 1]), "(1000000001, 2)"),
        (lambda: cartesian_graph([0], [0], grid_shape=(2**13, 2**13 + 1)), "(8192, 8193)"),
        (lambda: hex_graph([0, 10**12], [0, 0]), "(1, 1000000000001)"),
    ],
)
def test_builders_refuse_absurd_grids(build, shape):
    expect_error(ValueError, build, "grid_shape", shape, "2**26")


def test_builders_accept_the_largest_grid():
    g = cartesian_graph([0, 2**13 - 1], [0, 2**13 - 1])
    assert g.grid_shape == (2**13, 2**13) and 2**13 * 2**13 == MAX_GRID_CELLS


# --------------------------------------------------------------------------- no final newline
NO_NEWLINE = {
    "nuclei": ("n.csv", "x,y,label\n1,2,a\n3,4,b", lambda p: read_nuclei_csv(p, None)),
    "spot table": ("S_spots.tsv", SPOTS_HEADER + "s1\t0\t1\t1\t10\t10\ns2\t0\t2\t1\t20\t1", read_spot_table),
    "st tsv": ("ann.tsv", "\t1_1\t2_1\nA\t1\t0\nB\t0\t1", lambda p: read_st_tsv(p, None, 10.0)),
    "loupe": ("l.csv", "Barcode,Layer\nA-1,L1\nB-1,L", read_loupe_csv),
    "label table": ("m.tsv", "A-1\tsec\tL1\nA-2\tother\tL1\nB-1\tsec\tL", lambda p: read_barcode_labels(p, "sec")),
}


@pytest.mark.parametrize("reader", list(NO_NEWLINE))
def test_last_line_without_newline_warns(tmp_path, reader):
    """A cut that leaves a valid value cannot be told from a complete file: it warns, naming
    the file and the line; the same file with its newline reads silently."""
    name, text, read = NO_NEWLINE[reader]
    path = tmp_path / name
    path.write_text(text)
    with pytest.warns(UserWarning, match=r"does not end with a newline; its last line \(3\)") as got:
        read(path)
    assert str(path) in str(got[0].message)
    path.write_text(text + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read(path)


def test_errors_never_quote_file_content(tmp_path):
    """A crafted path (e.g. from a checkpoint's data section) must not leak the file's text."""
    from gridgraph.io import read_barcode_labels, read_nuclei_csv, read_spot_table

    secret = tmp_path / "secret"
    secret.write_text("root:$6$s3cr3t:19000:0:99999:7:::\ndaemon:*:19000\n")
    for read in (lambda: read_nuclei_csv(secret, None), lambda: read_spot_table(secret),
                 lambda: read_barcode_labels(secret)):
        with pytest.raises(ValueError) as err:
            read()
        assert str(secret) in str(err.value) and "s3cr3t" not in str(err.value) and "daemon" not in str(err.value)
