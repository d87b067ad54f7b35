"""CSV injection: text cells a spreadsheet would run as formulas are written with a leading ',
numbers stay numbers, and gridgraph's readers give back exactly what was written; Loupe barcodes
lose the library suffix anndata.concat appends."""
import csv

import numpy as np
import pytest

from gridgraph.io import read_barcode_labels
from gridgraph.io.writers.tables import (
    formula_safe,
    formula_unsafe,
    read_loupe_csv,
    read_predictions,
    write_columns,
    write_loupe_csv,
    write_predictions,
)

RISKY = ["=1+2", "+SUM(A1:A9)", "-2+3", "@cmd", "\tx", "\rx", "-", "=HYPERLINK(\"http://e.x\")"]
QUOTED = ["'=already", "''", "'plain"]
HARMLESS = ["AAACAAGTATCTCCCA-1", "a=b", "-1", "+0.5", "-2e-3", ".5", "1."]


def rows(path, delimiter=","):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh, delimiter=delimiter))


def dangerous(cell: str) -> bool:
    """What a spreadsheet would evaluate: the test's own statement of the rule."""
    if not cell or cell[0] not in "=+-@\t\r":
        return False
    try:
        float(cell)
        return cell.lower() in ("-inf", "+inf", "-nan", "+nan", "-infinity", "+infinity")
    except ValueError:
        return True


def test_formula_safe_prefixes_only_risky_text():
    cells = RISKY + QUOTED + HARMLESS + ["", None]
    out = formula_safe(cells).to_pylist()
    for before, after in zip(cells, out):
        if before is None:
            assert after is None
        elif before in RISKY:
            assert after == "'" + before
        elif before in ("'=already", "''"):
            assert after == "'" + before  # so that reading back is exact
        else:
            assert after == before
        assert after is None or not dangerous(after)
    assert formula_unsafe(out) == cells
    assert formula_safe(np.array([-1.5, 2.0])).to_pylist() == [-1.5, 2.0]  # numbers pass
    assert formula_safe(["-inf"]).to_pylist() == ["'-inf"]  # text, not a number a spreadsheet reads


@pytest.mark.parametrize("suffix,delimiter", [(".csv", ","), (".tsv", "\t")])
def test_predictions_neutralise_text_and_read_back_exactly(tmp_path, suffix, delimiter):
    ids = RISKY + QUOTED + HARMLESS
    classes = ["=cls", "-", "WM"]
    n = len(ids)
    labels = [classes[k % 3] for k in range(n)]
    probs = np.full((n, 3), 1 / 3)
    path = write_predictions(tmp_path / f"predictions{suffix}", ids, labels, probs, classes)
    table = rows(path, delimiter)
    assert table[0] == ["id", "label", "'=cls", "'-", "WM"]
    for row in table:
        assert not any(dangerous(cell) for cell in row), row
    assert table[1][:2] == ["'=1+2", "'=cls"]
    assert not path.read_text(encoding="utf-8").startswith("=") and "\n=" not in path.read_text(encoding="utf-8")
    got_ids, names, got_probs, got_classes = read_predictions(path)
    assert got_ids == ids  # exactly, a leading tab or CR included (it follows the quote)
    assert names == labels and got_classes == classes
    assert np.allclose(got_probs, probs)


def test_negative_numbers_in_numeric_columns_stay_numbers(tmp_path):
    path = write_columns(tmp_path / "t.csv", {"id": ["-1", "=x"], "score": np.array([-0.25, -3e-8]),
                                              "count": np.array([-3, 4])})
    assert rows(path) == [["id", "score", "count"], ["-1", "-0.25", "-3"], ["'=x", "-3e-8", "4"]]


def test_loupe_csv_neutralises_barcodes_and_names(tmp_path):
    barcodes = ["=1+2", "AAAC-1", "@x", "'=y"]
    names = ["+ve", "WM", None, "-"]
    path = write_loupe_csv(tmp_path / "loupe.csv", barcodes, names, category="=cat")
    table = rows(path)
    assert table == [["Barcode", "'=cat"], ["'=1+2", "'+ve"], ["AAAC-1", "WM"], ["''=y", "'-"]]
    expected = {"=1+2": "+ve", "AAAC-1": "WM", "'=y": "-"}
    assert read_loupe_csv(path) == expected
    assert read_barcode_labels(path) == expected


def concatenated():
    anndata = pytest.importorskip("anndata")
    parts = {lib: anndata.AnnData(np.zeros((3, 1), dtype=np.float32)) for lib in ("151673", "151674")}
    for k, a in enumerate(parts.values()):
        a.obs_names = ["AAACAAGTATCTCCCA-1", "AAACACCAATAACTGC-1", f"AAAG{k}-1"]
    return anndata.concat(parts, label="library_id", index_unique="-")


def test_loupe_barcodes_lose_the_concat_suffix(tmp_path):
    both = concatenated()
    assert both.obs_names[0] == "AAACAAGTATCTCCCA-1-151673"
    one = both[both.obs["library_id"] == "151674"]
    path = write_loupe_csv(tmp_path / "l.csv", list(one.obs_names), ["L1", "L2", "WM"], library_ids="151674")
    assert [r[0] for r in rows(path)[1:]] == ["AAACAAGTATCTCCCA-1", "AAACACCAATAACTGC-1", "AAAG1-1"]
    # one id per barcode, as the obs column concat wrote; a barcode without the suffix is kept
    ids = list(one.obs_names[:2]) + ["AAAG9-1"]
    path = write_loupe_csv(tmp_path / "m.csv", ids, ["L1", "L2", "WM"], library_ids=list(one.obs["library_id"]))
    assert list(read_loupe_csv(path)) == ["AAACAAGTATCTCCCA-1", "AAACACCAATAACTGC-1", "AAAG9-1"]
    # library "1": a plain Space Ranger barcode keeps its own -1; a concatenated one loses the suffix
    path = write_loupe_csv(tmp_path / "o.csv", ["AAACAAGTATCTCCCA-1", "AAACACCAATAACTGC-1-1", "cell-1"],
                           ["L1", "L2", "WM"], library_ids="1")
    assert list(read_loupe_csv(path)) == ["AAACAAGTATCTCCCA-1", "AAACACCAATAACTGC-1", "cell-1"]
    # without library_ids the barcodes are written as given
    path = write_loupe_csv(tmp_path / "n.csv", list(one.obs_names), ["L1", "L2", "WM"])
    assert rows(path)[1][0] == "AAACAAGTATCTCCCA-1-151674"


def test_loupe_suffix_errors_name_the_file(tmp_path):
    both = concatenated()
    target = tmp_path / "both.csv"
    with pytest.raises(ValueError, match="AAACAAGTATCTCCCA-1-151673.*one Loupe CSV per library") as info:
        write_loupe_csv(target, list(both.obs_names), ["x"] * 6, library_ids=list(both.obs["library_id"]))
    assert str(target) in str(info.value) and not target.exists()
    with pytest.raises(ValueError, match="6 barcodes but 2 library ids"):
        write_loupe_csv(target, list(both.obs_names), ["x"] * 6, library_ids=["151673", "151674"])


def test_anndata_outputs_keep_ids_exact(tmp_path):
    anndata = pytest.importorskip("anndata")
    from gridgraph.io.writers.anndata import add_predictions, write_h5ad

    ids = ["=1+2", "-2+3", "AAAC-1"]
    adata = anndata.AnnData(np.zeros((3, 1), dtype=np.float32))
    adata.obs_names = ids
    probs = np.full((3, 2), 0.5)
    add_predictions(adata, ids, probs, probs, ["=a", "b"])
    back = anndata.read_h5ad(write_h5ad(adata, tmp_path / "p.h5ad"))
    assert list(back.obs_names) == ids
