"""Loupe CSV and prediction writers: formats, round trips, atomic writes."""
import csv

import numpy as np
import pytest
import torch

from gridgraph.io import (
    read_loupe_csv,
    read_predictions,
    read_spaceranger,
    write_loupe_csv,
    write_predictions,
)
from test_io_spaceranger import DLPFC_LAYERS, write_visium


def test_loupe_csv_format(tmp_path):
    path = write_loupe_csv(tmp_path / "sub" / "a.csv", ["A-1", "B-1", "C-1"], ["L1", None, "WM"], "Layer")
    assert path.read_text() == "Barcode,Layer\nA-1,L1\nC-1,WM\n"
    assert read_loupe_csv(path) == {"A-1": "L1", "C-1": "WM"}
    assert not [p for p in path.parent.iterdir() if p.name != "a.csv"]  # no temporary files left


def test_loupe_round_trip_synthetic(tmp_path):
    root = write_visium(tmp_path / "s")
    s0 = read_spaceranger(root)
    names = [None if i % 4 == 0 else ("x" if i % 2 else "y") for i in range(s0.num_nodes)]
    csv_path = write_loupe_csv(tmp_path / "loupe.csv", s0.barcodes, names)
    s1 = read_spaceranger(root, labels=csv_path)
    assert s1.label_names() == names


@pytest.mark.realdata
def test_loupe_round_trip_dlpfc(dlpfc_dir, tmp_path):
    s = read_spaceranger(dlpfc_dir / "151673", labels=dlpfc_dir / "barcode_level_layer_map.tsv")
    path = write_loupe_csv(tmp_path / "151673_layers.csv", s.barcodes, s.label_names(), "Layer")
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["Barcode", "Layer"] and len(rows) - 1 == int((s.labels >= 0).sum()) == 3611
    back = read_spaceranger(dlpfc_dir / "151673", labels=path)
    assert back.classes == s.classes == DLPFC_LAYERS
    assert torch.equal(back.labels, s.labels)
    assert back.barcodes == s.barcodes


def test_predictions_round_trip(tmp_path):
    classes = ["a", "b", "c"]
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [1 / 3, 1 / 3, 1 / 3]])
    path = write_predictions(tmp_path / "pred.csv", ["s1", "s2", "s3"], torch.tensor([0, 2, -1]), probs, classes)
    lines = path.read_text().splitlines()
    assert lines[0] == "id,label,a,b,c"
    assert lines[1] == "s1,a,0.7,0.2,0.1"
    assert lines[3].startswith("s3,,0.333333")
    ids, names, p, cls = read_predictions(path)
    assert ids == ["s1", "s2", "s3"] and names == ["a", "c", None] and cls == classes
    np.testing.assert_allclose(p, probs.numpy(), atol=1e-6)

    tsv = write_predictions(tmp_path / "pred.tsv", ["s1", "s2"], ["b", "a"], classes=classes)
    assert tsv.read_text() == "id\tlabel\nb\n".replace("b\n", "s1\tb\ns2\ta\n")
    ids, names, p, cls = read_predictions(tsv)
    assert names == ["b", "a"] and p is None and cls == []


def test_predictions_bad_input_leaves_old_file(tmp_path):
    path = tmp_path / "pred.csv"
    path.write_text("old\n")
    with pytest.raises(ValueError, match=r"shape \(2, 2\); expected \(2, 3\)"):
        write_predictions(path, ["a", "b"], [0, 1], np.ones((2, 2)), ["x", "y", "z"])
    with pytest.raises(ValueError, match="integer labels need classes"):
        write_predictions(path, ["a", "b"], [0, 1])
    with pytest.raises(ValueError, match="outside -1..1"):
        write_predictions(path, ["a", "b"], [0, 2], classes=["x", "y"])
    with pytest.raises(ValueError, match="clash"):
        write_predictions(path, ["a"], [0], np.ones((1, 1)), ["label"])
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["pred.csv"]
