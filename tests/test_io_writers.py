"""Loupe CSV and prediction writers: formats, round trips, atomic writes (modes, full disks,
stale temporary files)."""
import csv
import errno
import os
import stat
from collections import namedtuple

import numpy as np
import pytest
import torch

import gridgraph.files.atomic as atomic
from gridgraph.io import (
    read_loupe_csv,
    read_predictions,
    read_spaceranger,
    write_loupe_csv,
    write_predictions,
)
from gridgraph.files.atomic import atomic_save, atomic_write, remove_stale_temp_files
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


# --------------------------------------------------------------------------- atomic writes

WRITERS = {
    "loupe": lambda p: write_loupe_csv(p, ["A-1"], ["L1"]),
    "predictions": lambda p: write_predictions(p, ["a"], [0], np.ones((1, 1)), ["x"]),
    "atomic_save": lambda p: atomic_save({"w": torch.zeros(3)}, p),
}


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002, 0o027])
@pytest.mark.parametrize("writer", ["loupe", "predictions", "atomic_save"])
def test_outputs_get_the_mode_the_umask_implies(tmp_path, umask, writer):
    path = tmp_path / "out.csv"
    path.write_text("old\n")
    os.chmod(path, 0o600)  # written by an earlier version: replaced like a fresh file
    old = os.umask(umask)
    try:
        WRITERS[writer](path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def _fill_disk(monkeypatch):
    """Make atomic_write's writes to its (real) temporary file go to /dev/full (ENOSPC)."""
    if not os.path.exists("/dev/full"):
        pytest.skip("/dev/full is not available")

    def full_open(file, mode="r", **kwargs):
        return open("/dev/full", mode, **kwargs)

    monkeypatch.setattr(atomic, "open", full_open, raising=False)


@pytest.mark.parametrize("writer", ["loupe", "predictions", "atomic_save"])
def test_disk_full_says_so_and_leaves_no_temp_file(tmp_path, monkeypatch, writer):
    path = tmp_path / "out.pt"
    path.write_text("old\n")
    _fill_disk(monkeypatch)
    big = writer == "atomic_save"
    with pytest.raises(OSError) as info:
        if big:
            atomic_save({"w": torch.zeros(100_000)}, path)
        else:
            WRITERS[writer](path)
    assert info.value.errno == errno.ENOSPC
    assert f"no space left writing {path}" in str(info.value)
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["out.pt"]


def test_torch_write_failure_without_errno(tmp_path, monkeypatch):
    """torch.save can report a failed write as a bare RuntimeError; it is blamed on the disk
    only when the disk is in fact full."""
    def failing_save(obj, fh):
        fh.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    monkeypatch.setattr(torch, "save", failing_save)
    usage = namedtuple("usage", "total used free")
    path = tmp_path / "last.pt"
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda p: usage(10**9, 10**9, 0))
    with pytest.raises(OSError, match=f"no space left writing {path}") as info:
        atomic_save({}, path)
    assert info.value.errno == errno.ENOSPC
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda p: usage(10**9, 0, 10**9))
    with pytest.raises(OSError, match=f"writing {path} failed") as info:
        atomic_save({}, path)
    assert info.value.errno == errno.EIO
    monkeypatch.setattr(torch, "save", lambda obj, fh: (_ for _ in ()).throw(RuntimeError("other")))
    with pytest.raises(RuntimeError, match="^other$"):  # unrelated errors pass unchanged
        atomic_save({}, path)
    assert list(tmp_path.iterdir()) == []


def test_remove_stale_temp_files(tmp_path):
    stale = [".last.pt.k3j9x0qa.tmp", ".best.pt.zz99__aa.tmp", ".metrics.jsonl.abcdefgh.tmp"]
    kept = ["last.pt", ".last.pt.tmp", ".last.pt.ABCDEFGH.tmp", ".hidden", "x.last.pt.abcdefgh.tmp",
            ".last.pt.abcdefg.tmp"]
    for name in stale + kept:
        (tmp_path / name).write_text("x")
    (tmp_path / ".dir.abcdefgh.tmp").mkdir()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".last.pt.abcdefgh.tmp").write_text("x")  # not searched recursively
    assert remove_stale_temp_files(tmp_path, target="last.pt") == [tmp_path / stale[0]]
    assert remove_stale_temp_files(tmp_path, older_than=3600) == []  # all were just written
    old = os.path.getmtime(tmp_path / stale[1]) - 7200
    os.utime(tmp_path / stale[1], (old, old))
    assert remove_stale_temp_files(tmp_path, older_than=3600) == [tmp_path / stale[1]]
    assert remove_stale_temp_files(tmp_path) == [tmp_path / stale[2]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept + [".dir.abcdefgh.tmp", "sub"])
    assert remove_stale_temp_files(tmp_path / "absent") == []


def test_stale_temp_files_match_what_atomic_write_leaves(tmp_path):
    path = tmp_path / "last.pt"
    writer = atomic_write(path, "wb")
    writer.__enter__().write(b"partial")  # a process killed here leaves its temporary file
    (left,) = list(tmp_path.iterdir())
    assert remove_stale_temp_files(tmp_path) == [left] and list(tmp_path.iterdir()) == []
    # the interrupted write then cleans up without error and lets the interrupt through
    assert writer.__exit__(KeyboardInterrupt, KeyboardInterrupt(), None) is False
    assert list(tmp_path.iterdir()) == []


def test_names_are_computed_once_per_value_but_never_shared_across_types(tmp_path):
    from gridgraph.io.writers.tables import _names

    nan = float("nan")
    assert _names(["a ", 1, True, 1.0, nan, None, "", "a "]) == ["a", "1", "True", "1.0", None, None, None, "a"]
    assert _names([["x"], "y"]) == ["['x']", "y"]  # unhashable values are named one by one
    path = write_predictions(tmp_path / "p.csv", ["s1", "s2", "s3"], [" L1", 1, True], classes=["L1", "L2"])
    assert [line.split(",")[1] for line in path.read_text().splitlines()] == ["label", "L1", "L2", "True"]


def test_class_indices_are_named_by_one_lookup_in_both_writers(tmp_path):
    classes = ["L1", "WM"]
    codes = np.array([1, -1, 0, 1])
    loupe = write_loupe_csv(tmp_path / "l.csv", ["a", "b", "c", "d"], codes, "Layer", classes=classes)
    assert loupe.read_text() == "Barcode,Layer\na,WM\nc,L1\nd,WM\n"
    assert write_loupe_csv(tmp_path / "t.csv", ["a"], torch.tensor([0]), classes=classes).read_text() == \
        "Barcode,Annotation\na,L1\n"
    table = write_predictions(tmp_path / "p.csv", ["a", "b", "c", "d"], codes, classes=classes)
    assert table.read_text() == "id,label\na,WM\nb,\nc,L1\nd,WM\n"
    assert write_loupe_csv(tmp_path / "n.csv", ["a", "b"], [0, 1]).read_text() == "Barcode,Annotation\na,0\nb,1\n"
    with pytest.raises(ValueError, match=r"l2.csv: label 2 outside -1..1"):
        write_loupe_csv(tmp_path / "l2.csv", ["a", "b"], np.array([0, 2]), classes=classes)
    with pytest.raises(ValueError, match="2 barcodes but 3 names"):
        write_loupe_csv(tmp_path / "l3.csv", ["a", "b"], np.array([0, 1, 1]), classes=classes)
    assert not (tmp_path / "l2.csv").exists() and not (tmp_path / "l3.csv").exists()


def test_class_index_lists_names_cleaning_and_huge_codes(tmp_path):
    classes = [" L1 ", ""]
    assert write_loupe_csv(tmp_path / "a.csv", ["a", "b"], [0, 1], classes=classes).read_text() == \
        "Barcode,Annotation\na,L1\n"  # a list of ints indexes the classes too; an empty name is no label
    assert write_predictions(tmp_path / "p.csv", ["a", "b"], [0, 1], classes=classes).read_text() == \
        "id,label\na,L1\nb,\n"
    with pytest.raises(ValueError, match="outside -1..1"):
        write_predictions(tmp_path / "u.csv", ["a"], np.array([2**64 - 1], dtype=np.uint64), classes=classes)
