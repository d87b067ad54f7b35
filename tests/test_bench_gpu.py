"""benchmarks/gpu.py without a GPU: it refuses with its own exit status; its checks and
measurements run on CPU tensors."""
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
gpu = pytest.importorskip("gpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present: the script would run")
def test_refuses_without_cuda():
    proc = subprocess.run([sys.executable, str(BENCH / "gpu.py")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == gpu.NO_DEVICE and gpu.NO_DEVICE not in (gpu.OK, gpu.FAILED)
    assert "no CUDA device" in proc.stderr and "nothing was run" in proc.stderr


def test_check_throughput_applies_the_target_on_h100_class_only():
    rows = gpu.check_throughput({"fp32": 1800.0, "bf16": 3200.0}, "NVIDIA H200")
    assert rows[-1][1] == 3200.0 and rows[-1][3] == "PASS" and [r[3] for r in rows[:2]] == ["-", "-"]
    assert gpu.check_throughput({"fp32": 1800.0, "bf16": 2900.0}, "NVIDIA H100 80GB HBM3")[-1][3] == "FAIL"
    assert gpu.check_throughput({"fp32": 10.0, "bf16": 20.0}, "NVIDIA A10")[-1][3] == "-"


def test_check_flat_ratio_is_largest_over_smallest():
    rows = gpu.check_flat({2000: 110 * 2**20, 500: 100 * 2**20, 5000: 125 * 2**20})
    assert [r[1] for r in rows[:3]] == [100.0, 110.0, 125.0]
    assert rows[-1][0] == "peak(5000) / peak(500)" and math.isclose(rows[-1][1], 1.25) and rows[-1][3] == "PASS"
    assert gpu.check_flat({500: 1.0, 5000: 2.0})[-1][3] == "FAIL"


def test_check_equal_and_exit_code():
    a = torch.softmax(torch.randn(50, 4), -1)
    rows = gpu.check_equal({"f": a, "f+g": a}, {"f": a + 5e-5, "f+g": a.clone()})
    assert [r[3] for r in rows] == ["PASS", "PASS"] and math.isclose(rows[0][1], 5e-5, rel_tol=1e-2)
    bad = gpu.check_equal({"f": a}, {"f": a + 1e-2})
    assert bad[0][3] == "FAIL" and gpu.exit_code(rows) == gpu.OK and gpu.exit_code(rows + bad) == gpu.FAILED
    assert gpu.check_equal({"f": a}, {"f": a[:3]})[0][1] == math.inf


def test_measurements_run_on_cpu_tensors(tmp_path):
    from gridgraph.encoders import densenet_tiny

    assert gpu.train_throughput(densenet_tiny(4), 16, 4, 1, "cpu") > 0
    assert gpu.train_throughput(densenet_tiny(4), 16, 4, 1, "cpu", torch.bfloat16) > 0
    peaks = gpu.chunked_peaks([20, 40], "cpu", "gridnet_simple", 16)
    assert set(peaks) == {20, 40} and all(v > 0 for v in peaks.values())
    model, patches, graph = gpu.equality_inputs(n_side=6, patch=16)
    first, second = gpu.probabilities(model, patches, graph), gpu.probabilities(model, patches, graph)
    assert [r[3] for r in gpu.check_equal(first, second)] == ["PASS", "PASS"]
    assert not torch.allclose(first["f"], first["f+g"])  # g is not zero-initialised: it corrects f
    assert gpu.predict_throughput(tmp_path, 16, "cpu", hires_px=300) > 0
