"""Prediction outputs: a model whose outputs overflow is refused naming the head and the count of
nodes, and a predict killed while writing leaves the previous outputs byte for byte."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from gridgraph.checkpoint import load_checkpoint, save_checkpoint
from gridgraph.cli import main
from gridgraph.files.output_set import OutputSet, recover_output_sets
from test_cli_errors import error_line

ROOT = Path(__file__).resolve().parents[1]
BIG = 3.0e38  # finite in float32 (max 3.4e38): any sum of two such products overflows


def _overflowing(ckpt: Path, tmp_path: Path, prefix: str) -> Path:
    """A copy of ``ckpt`` whose weights under ``prefix`` are all ``BIG``: finite, so the file
    loads, but the layer's outputs overflow to Inf (and NaN after softmax)."""
    raw = load_checkpoint(ckpt)
    hit = [k for k in raw["model"] if k.startswith(prefix) and k.endswith("weight")]
    assert hit, f"no weights under {prefix}"
    for k in hit:
        raw["model"][k] = torch.full_like(raw["model"][k], BIG)
    path = tmp_path / f"{prefix.rstrip('.')}_big.pt"
    save_checkpoint(path, raw)
    return path


@pytest.mark.parametrize("prefix, head", [("f.features.", "f"), ("g.", "g")])
def test_non_finite_outputs_are_named_and_nothing_is_written(tiny_checkpoint, tmp_path, capsys, prefix, head):
    path = _overflowing(tiny_checkpoint, tmp_path, prefix)
    out = tmp_path / "out"
    code = main(["predict", str(path), "--synthetic", "5", "--out", str(out), "--device", "cpu"])
    err = error_line(capsys, code, f"{path}: {head} produced non-finite values (NaN or Inf) for ", "nothing was written")
    count = re.search(r"for (\d+) of the 60 nodes \(first: node \d+\)", err)  # synthetic section 5: 60 spots
    assert count and 1 <= int(count[1]) <= 60, err
    assert "got patches for" not in err
    assert not out.exists() or not any(out.iterdir())
    assert main(["predict", str(tiny_checkpoint), "--synthetic", "5", "--out", str(out), "--device", "cpu"]) == 0


# --------------------------------------------------------------------------- a killed predict
#: Runs ``gridgraph predict`` with one writer patched to SIGKILL the process: ``loupe`` while the
#: Loupe CSV is half written (inside the hidden set folder), ``move`` after the first finished file
#: was moved over its old copy.
KILLER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    import gridgraph.io as gio
    from gridgraph.cli import main

    where, out = sys.argv[1], Path(sys.argv[2]).resolve()
    if where == "loupe":
        def write_loupe_csv(path, *args, **kwargs):
            Path(path).write_text("Barcode,gridgraph\\nBC-1,ba")  # half a file, then the kill
            os.kill(os.getpid(), signal.SIGKILL)
        gio.write_loupe_csv = write_loupe_csv
    else:
        real, moved = os.replace, []
        def replace(src, dst, *args, **kwargs):
            real(src, dst, *args, **kwargs)
            if Path(dst).parent.resolve() == out:
                moved.append(dst)
                os.kill(os.getpid(), signal.SIGKILL)
        os.replace = replace
    sys.exit(main(sys.argv[3:]))
""")


def _files(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _killed_predict(tmp_path: Path, ckpt: Path, where: str, out: Path) -> None:
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, str(script), where, str(out), "predict", str(ckpt), "--synthetic", "4",
                          "--out", str(out), "--device", "cpu"], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]


@pytest.fixture
def earlier(tiny_checkpoint, tmp_path):
    """``(out, its files)``: predictions of synthetic section 5, the outputs a later run must keep."""
    out = tmp_path / "out"
    assert main(["predict", str(tiny_checkpoint), "--synthetic", "5", "--out", str(out), "--device", "cpu"]) == 0
    (out / "notes.txt").write_text("the user's own file\n")
    before = _files(out)
    assert {"predictions.csv", "predictions_loupe.csv", "predictions.png"} <= set(before)
    return out, before


def test_a_predict_killed_while_writing_leaves_the_previous_outputs(tiny_checkpoint, tmp_path, earlier):
    out, before = earlier
    _killed_predict(tmp_path, tiny_checkpoint, "loupe", out)
    visible = {k: v for k, v in _files(out).items() if not k.startswith(".gridgraph-out-")}
    assert visible == before, "every earlier output byte for byte, and no partial file beside them"
    hidden = [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert len(hidden) == 1 and hidden[0].startswith(".gridgraph-out-")  # the dead run's own folder
    assert not (out / hidden[0] / "COMMITTED").exists()
    assert recover_output_sets(out) == [out / hidden[0]]  # as the next predict into --out does
    assert _files(out) == before and sorted(p.name for p in out.iterdir()) == sorted(before)


def test_a_predict_killed_while_moving_its_files_in_is_finished_by_the_next(tiny_checkpoint, tmp_path, earlier):
    out, before = earlier
    reference = tmp_path / "reference"
    assert main(["predict", str(tiny_checkpoint), "--synthetic", "4", "--out", str(reference), "--device", "cpu"]) == 0
    after = _files(reference)
    assert after["predictions.csv"] != before["predictions.csv"]
    _killed_predict(tmp_path, tiny_checkpoint, "move", out)
    now = {k: v for k, v in _files(out).items() if not k.startswith(".gridgraph-out-")}
    assert sorted(now) == sorted(before)  # every file whole: one already new, the others old
    assert sum(now[k] == after[k] for k in after) == 1 and sum(now[k] == before[k] for k in after) == len(after) - 1
    recover_output_sets(out)
    assert _files(out) == {**after, "notes.txt": before["notes.txt"]}, "the killed run's set, completed"


def test_a_live_process_set_is_left_alone(tmp_path):
    with OutputSet(tmp_path, ["a.csv"]) as tmp:
        (tmp / "a.csv").write_text("1")
        assert recover_output_sets(tmp_path) == [] and tmp.is_dir()  # this process is alive
        other = tmp_path / ".gridgraph-out-1@elsewhere.example.abcd1234"  # another host's
        other.mkdir()
    assert recover_output_sets(tmp_path) == [] and other.is_dir()
    assert (tmp_path / "a.csv").read_text() == "1"
