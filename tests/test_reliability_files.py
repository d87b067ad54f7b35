"""Output locations: one safe, distinct folder name per prediction input, and output folders that
exist as files (or lie under one) refused before anything is written."""
import os

import pytest

from gridgraph.files import check_output_folder, output_folder_names, output_folders
from gridgraph.files.locations import MAX_NAME, input_name, safe_name


def assert_safe(name):
    assert name and name not in (".", "..") and not os.path.isabs(name)
    assert "/" not in name and "\\" not in name and os.sep not in name and "\0" not in name
    assert not name.startswith((".", "-")) and len(name) <= MAX_NAME


def test_names_come_from_what_the_path_means(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert output_folder_names(["fx/sr_base/spatial/.."]) == ["sr_base"]
    assert output_folder_names(["fx/sr_base/./spatial/../"]) == ["sr_base"]
    assert output_folder_names(["runs/151673/outs", "runs/151674/outs/"]) == ["151673", "151674"]
    assert output_folder_names(["data/s1.h5ad", "data/cells.csv.gz", "x.tif"]) == ["s1", "cells", "x.tif"]
    assert output_folder_names(["."]) == [safe_name(tmp_path.name)]
    assert output_folder_names([".."]) == [safe_name(tmp_path.parent.name)]
    assert input_name("/") == "" and output_folder_names(["/"]) == ["input"]


@pytest.mark.parametrize("raw", [".", "..", "...", "", "/", "a/b", "a\\b", "-rf", ".hidden", "a\x00b", "a\nb",
                                 " spaced out ", "é" * 300, "___", "x" * 300, "CON.", "..\\..\\etc"])
def test_every_name_is_safe(raw):
    assert_safe(safe_name(raw))


def test_hostile_inputs_give_safe_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    inputs = ["/", "..", ".", "...", "a/..", "-x", "../.hidden", "d/a b\tc", "/abs/path/", "s/%%%", "q/" + "z" * 400]
    names = output_folder_names(inputs)
    for name in names:
        assert_safe(name)
        assert (tmp_path / name).resolve().parent == tmp_path.resolve()  # stays inside --out
    assert len({n.lower() for n in names}) == len(names)
    assert names[7] == "a_b_c" and names[8] == "path" and names[5] == "x"


def test_repeated_names_are_numbered_in_input_order():
    assert output_folder_names(["a/s1", "b/s1", "c/s1"]) == ["s1", "s1-2", "s1-3"]
    assert output_folder_names(["x/s1", "x/s1"]) == ["s1", "s1-2"]  # the same input twice
    # a number another input holds is skipped; case is ignored (case-folding file systems)
    assert output_folder_names(["a/s1", "b/s1", "s1-2", "S1"]) == ["s1", "s1-3", "s1-2", "S1-4"]
    assert output_folder_names(["a/outs", "a.h5ad", "a.csv"]) == ["a", "a-2", "a-3"]


def test_an_output_folder_that_is_a_file_is_refused(tmp_path):
    existing = tmp_path / "out"
    assert check_output_folder(existing) == existing  # absent: fine, and not made
    assert not existing.exists()
    existing.mkdir()
    assert check_output_folder(existing) == existing
    blocker = tmp_path / "predictions.csv"
    blocker.write_text("id,label\n")
    with pytest.raises(NotADirectoryError) as info:
        check_output_folder(blocker)
    assert str(blocker) in str(info.value) and "is a file" in str(info.value)
    with pytest.raises(NotADirectoryError) as info:
        check_output_folder(blocker / "deeper" / "still")
    assert f"{blocker} is a file" in str(info.value)
    assert blocker.read_text() == "id,label\n"
    dangling = tmp_path / "gone"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(NotADirectoryError, match="link to nothing"):
        check_output_folder(dangling / "x")
    with pytest.raises(OSError):  # what the CLI turns into one line, exit 2
        check_output_folder(blocker, what="--out")


def test_an_unwritable_folder_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(PermissionError, match="is not writable") as info:
        check_output_folder(tmp_path / "new")
    assert str(tmp_path) in str(info.value)


def test_output_folders_for_one_and_several_inputs(tmp_path):
    out = tmp_path / "out"
    assert output_folders(out, ["a/s1"]) == [out]
    assert output_folders(out, ["a/s1", "b/s1", "fx/sr/spatial/.."]) == [out / "s1", out / "s1-2", out / "sr"]
    out.mkdir()
    (out / "s1-2").write_text("in the way")
    with pytest.raises(NotADirectoryError, match="s1-2"):
        output_folders(out, ["a/s1", "b/s1"])
    assert sorted(p.name for p in out.iterdir()) == ["s1-2"]  # nothing was made
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="file"):
        output_folders(tmp_path / "file", ["a"])
