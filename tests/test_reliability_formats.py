"""Bad input for the newer files: ensemble files, search spaces, study storages, Xenium Explorer
cell groups (written and read back) and QuPath GeoJSON. Each is one line naming the file and the
field (exit 2 through the CLI) and nothing is written."""
from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch
import yaml

from gridgraph.checkpoint import save_ensemble
from gridgraph.cli import main
from gridgraph.io import read_xenium
from gridgraph.io.writers.exports import write_qupath_geojson, write_xenium_cell_groups
from test_cli_errors import error_line
from test_io_errors import expect_error
from test_io_xenium import write_bundle

CLASSES = ["tumour", "stroma", "immune"]


# --------------------------------------------------------------------------- ensemble files
@pytest.fixture(scope="module")
def ensemble_raw(tiny_checkpoint, tmp_path_factory):
    path = save_ensemble(tmp_path_factory.mktemp("ens") / "ensemble.pt", [tiny_checkpoint, tiny_checkpoint])
    return path, torch.load(path, weights_only=True)


def _nan_member(member: dict) -> dict:
    return {**member, "model": {k: v.clone().fill_(float("nan")) if v.is_floating_point() else v
                                for k, v in member["model"].items()}}


ENSEMBLE_CASES = {
    "format": (lambda r: {**r, "format": "gridgraph-ensembl"},
               ["field 'format' is 'gridgraph-ensembl'", "expected 'gridgraph-checkpoint' or 'gridgraph-ensemble'"]),
    "format_missing": (lambda r: {k: v for k, v in r.items() if k != "format"}, ["field 'format' is missing"]),
    "not_a_mapping": (lambda r: [r], ["holds list, expected a mapping with field 'format'"]),
    "members_empty": (lambda r: {**r, "members": [], "sources": []},
                      ["field 'members' must be a non-empty list of checkpoints"]),
    "members_text": (lambda r: {**r, "members": "a.pt"}, ["field 'members' must be a non-empty list"]),
    "members_absent": (lambda r: {k: v for k, v in r.items() if k != "members"}, ["field 'members'"]),
    "member_not_checkpoint": (lambda r: {**r, "members": [{"a": 1}, 3]},
                              ["member 0: not a gridgraph checkpoint (field 'format' is missing"]),
    "member_number": (lambda r: {**r, "members": [r["members"][0], 3]},
                      ["member 1: not a gridgraph checkpoint (holds int"]),
    "member_ensemble": (lambda r: {**r, "members": [r, r]},
                        ["member 0: not a gridgraph checkpoint (field 'format' is 'gridgraph-ensemble', "
                         "expected 'gridgraph-checkpoint')"]),
    "member_nan_weights": (lambda r: {**r, "members": [r["members"][0], _nan_member(r["members"][1])]},
                           ["member 1: weight 'f.", "non-finite values (NaN or Inf)"]),
    "member_config_text": (lambda r: {**r, "members": [r["members"][0], {**r["members"][1], "config": "x"}]},
                           ["member 1: field 'config' must be a mapping"]),
    "member_other_classes": (lambda r: {**r, "members": [r["members"][0], {**r["members"][1],
                                                                          "classes": ["x", "y", "z"]}]},
                             ["member 1", "classes ['x', 'y', 'z'] differ from", "member 0"]),
    "method": (lambda r: {**r, "method": "median"}, ["field 'method' must be one of mean, vote, not 'median'"]),
    "method_number": (lambda r: {**r, "method": 1}, ["field 'method' must be one of mean, vote, not 1"]),
    "method_list": (lambda r: {**r, "method": ["mean"]}, ["field 'method'", "not ['mean']"]),
    "sources_text": (lambda r: {**r, "sources": "abc"},
                     ["field 'sources' must be a list of 2 member names (text), not str 'abc'"]),
    "sources_number": (lambda r: {**r, "sources": 5}, ["field 'sources'", "not int 5"]),
    "sources_too_few": (lambda r: {**r, "sources": ["a"]}, ["field 'sources' must be a list of 2"]),
    "info_list": (lambda r: {**r, "info": [1, 2]}, ["field 'info' must be a mapping, not list"]),
    "info_text": (lambda r: {**r, "info": "xy"}, ["field 'info' must be a mapping, not str"]),
}


@pytest.mark.parametrize("case", sorted(ENSEMBLE_CASES))
def test_bad_ensemble_fields(ensemble_raw, tmp_path, capsys, case):
    edit, needles = ENSEMBLE_CASES[case]
    _, raw = ensemble_raw
    path = tmp_path / "ensemble.pt"
    torch.save(edit(raw), path)
    out = tmp_path / "out"
    error_line(capsys, main(["predict", str(path), "--synthetic", "5", "--out", str(out)]), str(path), *needles)
    assert not out.exists()


@pytest.mark.parametrize("cut, needles", [
    (lambda b: b[: len(b) // 2], ["bytes that are not a torch.save archive: truncated"]),
    (lambda b: b[:100], ["100 bytes that are not a torch.save archive"]),
    (lambda b: b"", ["not a readable checkpoint (the file is empty)"]),
    (lambda b: bytes(range(256)) * 4, ["1024 bytes that are not a torch.save archive"]),
])
def test_damaged_ensemble_files(ensemble_raw, tmp_path, capsys, cut, needles):
    good, _ = ensemble_raw
    path = tmp_path / "ensemble.pt"
    path.write_bytes(cut(good.read_bytes()))
    err = error_line(capsys, main(["evaluate", str(path)]), str(path), *needles)
    assert "weights_only" not in err and len(err) < 300  # not torch's page-long advice
    out = tmp_path / "out"
    error_line(capsys, main(["predict", str(path), "--synthetic", "5", "--out", str(out)]), str(path), *needles)
    assert not out.exists()


# --------------------------------------------------------------------------- search spaces
@pytest.fixture
def tune_config(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"output": str(tmp_path / "study")}))
    return cfg


@pytest.mark.parametrize("text, needles", [
    (b"", ["a search space maps config keys to distributions", "got None"]),
    (b"# only a comment\n", ["got None"]),
    (bytes(range(256)), ["not a YAML text file (not UTF-8 text)"]),
    ("train.lr: uniform(0, 1)\n".encode("utf-16"), ["not a YAML text file"]),
    (b"- train.lr\n- uniform(0, 1)\n", ["a search space maps config keys", "got list"]),
    (b"3\n", ["got int"]),
    (b"[" * 5000 + b"]" * 5000, ["nested too deeply"]),
    (b"train.lr: log_uniform(1e-4, 1e-", ["train.lr: 'log_uniform(1e-4, 1e-' is not a distribution"]),
    (b"train.lr: uniform(1e-5, 1e400)\n", ["train.lr: uniform(1e-05, inf): needs finite low < high"]),
    (b"train.alpha: uniform(-1.7e308, 1.7e308)\n", ["train.alpha", "high - low overflows a 64-bit float"]),
    (b"train.lr: uniform(nan, 0.1)\n", ["train.lr: uniform(nan, 0.1): needs finite low < high"]),
    (b"train.lr: log_uniform(1e-4, inf)\n", ["needs finite low < high"]),
    (b"train.epochs_g: int(1, 1e30)\n", ["train.epochs_g: int bounds must be integers within +-2**53", "1e30"]),
    (b"train.epochs_g: int(1, inf)\n", ["train.epochs_g: int bounds must be integers within +-2**53", "inf"]),
    (b"train.epochs_g: int(1, nan)\n", ["train.epochs_g: int bounds must be integers within +-2**53", "nan"]),
    (b"train.lr: [.nan, 0.1]\n", ["train.lr=nan", "finite number"]),
    (b"train.lr: [.inf, 0.1]\n", ["train.lr=inf", "finite number"]),
    (b"train.lr: null\n", ["train.lr: None is not a distribution"]),
    (b"train.lr: true\n", ["train.lr: True is not a distribution"]),
    (b"3: uniform(0, 1)\n", ["key 3 is not a config key like train.lr"]),
    (b"train.lr: uniform(0, 1)\ntrain.lr: uniform(0, 2)\n", ["key 'train.lr' is given twice"]),
    (b"g.name: [{a: 1}, gcn]\n", ["g.name: choice options must be plain values"]),
    (b"train.epochs_g: int(-5, 3)\n", ["train.epochs_g=-5", "greater than or equal to 0"]),
])
def test_bad_space_files_run_nothing(tmp_path, tune_config, capsys, text, needles):
    pytest.importorskip("optuna")
    space = tmp_path / "space.yaml"
    space.write_bytes(text)
    code = main(["tune", str(tune_config), "--trials", "1", "--space", str(space)])
    error_line(capsys, code, str(space), *needles)
    assert not (tmp_path / "study").exists()


# --------------------------------------------------------------------------- study storages
@pytest.mark.parametrize("url, needles", [
    ("foo", ["--storage foo: expected a database URL"]),
    ("http://x/y", ["expected a database URL"]),
    ("sqlite:///{tmp}/nodir/x.db", ["cannot open it (OperationalError", "unable to open database file"]),
    ("sqlite:///{tmp}/adir", ["cannot open it (OperationalError"]),
    ("sqlite:///{tmp}/garbage.db", ["cannot open it (DatabaseError", "file is not a database"]),
    ("sqlite:///{tmp}/cut.db", ["file is not a database"]),
    ("sqlite://", ["an in-memory database is gone when the process ends", "sqlite:///FILE"]),
    ("sqlite:///:memory:", ["an in-memory database"]),
    ("journal:{tmp}/nodir/x.log", ["folder", "nodir does not exist"]),
    ("journal:{tmp}/adir", ["not an Optuna journal file (IsADirectoryError"]),
    ("journal:{tmp}/garbage.db", ["not an Optuna journal file (UnicodeDecodeError"]),
    ("postgresql://bob:secret@127.0.0.1:1/db", ["--storage postgresql://bob:***@127.0.0.1:1/db: cannot open it"]),
])
def test_bad_storages_run_nothing(tmp_path, tune_config, capsys, url, needles):
    pytest.importorskip("optuna")
    (tmp_path / "adir").mkdir()
    (tmp_path / "garbage.db").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "cut.db").write_bytes(b"SQLite format 3\x00" + b"\x10\x00" * 10)
    url = url.format(tmp=tmp_path)
    err = error_line(capsys, main(["tune", str(tune_config), "--trials", "1", "--storage", url]), *needles)
    assert "secret" not in err and "sqlalche.me" not in err
    study = tmp_path / "study"
    assert not study.exists() or not any(study.iterdir())  # at most the empty output folder


# --------------------------------------------------------------------------- Xenium cell groups
@pytest.fixture
def bundle(tmp_path):
    folder, frame = write_bundle(tmp_path / "run")
    return folder, frame.cell_id.tolist()


@pytest.mark.parametrize("body, needles", [
    ("", ["the cell label table is empty", "expected columns ['cell_id', 'label']"]),
    ("cell_id,group\n", ["has a header but no rows", "cell_id,group"]),
    ("id,group\n{0},a\n", ["the header lacks columns ['cell_id']"]),
    ("cell_id,colour\n{0},a\n", ["the header lacks columns ['label']"]),
    ("cell_id,group\nzzz1,a\nzzz2,b\n", ["none of its cell ids is a cell of", "cells.parquet"]),
    ("cell_id,group\n{0},a\n{0},b\n", ["column 'cell_id'", "duplicated value", "lines 2 and 3"]),
    ("cell_id,group\n{0},a,x,y\n", ["line 2 has 4 fields; expected 2 (cell_id, group)"]),
    ("cell_id,group\n{0}\n{1},b\n", ["line 2 has 1 fields; expected 2"]),
    ("cell_id,group,color\n{0},a,#ff0000\n{1},b", ["line 3 has 2 fields; expected 3", "looks truncated"]),
    ("cell_id,group,color\ncel", ["line 2 has 1 fields", "looks truncated"]),
    ("cell_id,group\n{0},a\x00b\n", ["not a text file", "NUL bytes"]),
])
def test_bad_cell_groups_read_back(tmp_path, bundle, body, needles):
    folder, ids = bundle
    path = tmp_path / "groups.csv"
    path.write_text(body.format(*ids))
    expect_error(ValueError, lambda: read_xenium(folder, labels=path), str(path), *needles)


@pytest.mark.parametrize("name, data, needles", [
    ("garbage.csv", bytes(range(256)) * 3, ["not a text file"]),
    ("utf16.csv", "cell_id,group\nx,a\n".encode("utf-16"), ["not a text file"]),
    ("groups.csv.gz", b"not gzip", ["not a text file", "BadGzipFile"]),
    ("groups.parquet", b"PAR1garbage", ["not a parquet file"]),
])
def test_binary_cell_groups(tmp_path, bundle, name, data, needles):
    folder, _ = bundle
    path = tmp_path / name
    path.write_bytes(data)
    expect_error(ValueError, lambda: read_xenium(folder, labels=path), str(path), *needles)


def test_a_cut_cell_groups_file_that_still_parses_warns(tmp_path, bundle):
    folder, ids = bundle
    path = tmp_path / "groups.csv"
    path.write_text(f"cell_id,group\n{ids[0]},a\n{ids[1]},b")
    with pytest.warns(UserWarning, match=r"does not end with a newline; its last line \(3\)"):
        assert read_xenium(folder, labels=path).label_names()[:2] == ["a", "b"]
    with gzip.open(tmp_path / "g.csv.gz", "wt") as fh:
        fh.write(f"cell_id,group\n{ids[0]},a\n")
    assert read_xenium(folder, labels=tmp_path / "g.csv.gz").label_names()[0] == "a"


def test_cell_groups_neutralise_formulas_and_read_back_exactly(tmp_path, bundle):
    folder, ids = bundle
    path = write_xenium_cell_groups(tmp_path / "g.csv", ids[:3], ["=HYPERLINK(1)", "@SUM(A1)", "plain"])
    assert path.read_text().splitlines()[1:] == [f"{ids[0]},'=HYPERLINK(1)", f"{ids[1]},'@SUM(A1)", f"{ids[2]},plain"]
    assert read_xenium(folder, labels=path).label_names()[:3] == ["=HYPERLINK(1)", "@SUM(A1)", "plain"]


@pytest.mark.parametrize("labels, classes, needles", [
    ([True, False], CLASSES, ["field 'label', row 0", "got True (a boolean)"]),
    (np.zeros((2, 2), int), CLASSES, ["field 'label'", "one label per node (1-D), got shape (2, 2)"]),
    (None, CLASSES, ["field 'label'", "got shape ()"]),
    (["tumour", "a\nb"], None, ["field 'label', row 1", "a class name on one line"]),
    ([0, 1], ["a", "a", "b"], ["field 'classes'", "'a' appears twice"]),
    ([0, 1], [], ["field 'classes'", "at least one class name"]),
    (torch.tensor([0, 7]), CLASSES, ["field 'label', row 1", "class index 7 outside -1..2"]),
])
def test_bad_labels_for_both_writers(tmp_path, labels, classes, needles):
    groups, geojson = tmp_path / "g.csv", tmp_path / "g.geojson"
    expect_error(ValueError, lambda: write_xenium_cell_groups(groups, ["x", "y"], labels, classes), groups, *needles)
    expect_error(ValueError, lambda: write_qupath_geojson(geojson, ["x", "y"], [[0, 0], [1, 1]], labels,
                                                          classes if classes is not None else ["tumour"]),
                 geojson, *(n for n in needles if "one line" not in n))
    assert not groups.exists() and not geojson.exists()
