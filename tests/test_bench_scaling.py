"""benchmarks/scaling.py: the fit and spread on known numbers; a tiny end-to-end run whose printed
exponent and spread are computed from that run's own timings."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
scaling = pytest.importorskip("scaling")


def test_fit_exponent_recovers_a_power_law():
    n = np.array([1e4, 1e5, 1e6])
    assert math.isclose(scaling.fit_exponent(n, 3e-4 * n ** 0.93), 0.93, rel_tol=1e-9)
    assert math.isclose(scaling.fit_exponent(n, 2.0 * n), 1.0, rel_tol=1e-9)


def test_spread_and_rss_window():
    assert scaling.spread([100.0, 110.0, 105.0]) == pytest.approx(0.10)
    rows = [{"size": 10_000, "seconds": 1.0, "peak_mib": 50.0}, {"size": 100_000, "seconds": 9.0, "peak_mib": 100.0},
            {"size": 1_000_000, "seconds": 95.0, "peak_mib": 112.0}, {"size": 3, "error": "x"}]
    s = scaling.summary("nodes", rows, scaling.RSS_FROM)
    assert s["rss_sizes"] == [100_000, 1_000_000] and s["rss_spread"] == pytest.approx(0.12)
    assert s["exponent"] == pytest.approx(scaling.fit_exponent([1e4, 1e5, 1e6], [1.0, 9.0, 95.0]))
    lines = scaling.verdicts(s)
    assert lines[0].startswith("PASS: time ~ nodes^a") and lines[1].startswith("PASS: peak RSS spread")
    assert scaling.verdicts(scaling.summary("nodes", rows[:1]))[0].startswith("SKIP")


@pytest.mark.slow  # four fresh predict processes: ~50 s on a busy 2-core machine
def test_scaling_tiny_run(tmp_path, capsys):
    report = scaling.main(["--nodes", "30", "60", "--nodes-slide-px", "768", "--slides", "768", "1024",
                           "--slide-cells", "30", "--repeats", "1", "--work", str(tmp_path)])
    out = capsys.readouterr().out
    for key in ("nodes", "slides"):
        s = report[key]
        rows = report["rows"][key]
        assert [r["seconds"] for r in rows] == s["seconds"] and len(rows) == 2
        assert s["exponent"] == pytest.approx(scaling.fit_exponent(s["sizes"], s["seconds"]))
        assert s["rss_spread"] == pytest.approx(max(s["peak_mib"]) / min(s["peak_mib"]) - 1)
    a = report["nodes"]["exponent"]
    assert f"{'PASS' if a <= scaling.EXPONENT_LIMIT else 'FAIL'}: time ~ nodes^a: a = {a:.3f}" in out
