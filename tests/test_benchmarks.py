"""The benchmark scripts still run (tiny sizes); their numbers are not asserted here."""
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def run(script, *args, timeout=300):
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_graph_build_prints_table():
    out = run("graph_build.py", "--sizes", "2000", "--repeat", "1")
    assert "| kNN (k=6) | 2000 |" in out and "speed-up" in out


@pytest.mark.slow
def test_memory_time_runs_tiny():
    out = run("memory_time.py", "--sizes", "20", "40", "--patch", "16", "--repeats", "1",
              "--device", "cpu")
    assert "chunked peak(40) / peak(20)" in out


def test_real_data_benchmarks_skip_cleanly_without_data(tmp_path):
    assert "skipped: DLPFC data not found" in run("dlpfc_cv.py", "--data", str(tmp_path / "none"))
    assert "skipped: CRCHisto data not found" in run("crchisto.py", "--data", str(tmp_path / "none"))
