"""benchmarks/peers.py end to end at a tiny size: gridgraph against the plain pipeline only
(the peers' installs never run in tests); the ratios are quotients of this run's own timings."""
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
peers = pytest.importorskip("peers")


@pytest.mark.slow  # three fresh processes, each importing torch: ~50 s on a busy 2-core machine
def test_peers_tiny_run_computes_its_ratios(tmp_path, capsys):
    report = peers.main(["--slide-px", "1024", "--cells", "24", "--repeats", "1", "--window", "48",
                         "--patch", "32", "--batch", "16", "--work", str(tmp_path), "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    results = report["results"]
    assert set(results) == {"gridgraph f", "gridgraph f+g", "plain"}
    assert all("seconds" in r and "peak_mib" in r for r in results.values()), results
    assert "skipped tiatoolbox: not run" in out and "skipped lazyslide: not run" in out
    # the same f on the same windows: the plain script's probabilities are gridgraph's
    assert report["agreement"]["plain"] < 1e-4 and report["agreement"]["gridgraph f+g"] < 1e-4
    keys = {"f time vs fastest peer": ("gridgraph f", "seconds"), "f RSS vs lightest peer": ("gridgraph f", "peak_mib"),
            "f+g time vs f": ("gridgraph f+g", "seconds")}
    assert [row[0] for row in report["targets"]] == list(keys)
    for name, ours, ref_tool, ref, ratio, limit, verdict in report["targets"]:
        tool, key = keys[name]
        assert ours == results[tool][key] and ref == results[ref_tool][key]
        assert ref_tool == ("gridgraph f" if name.startswith("f+g") else "plain")
        assert math.isclose(ratio, ours / ref)
        assert verdict == ("PASS" if ratio <= limit else "FAIL")
        assert f"{verdict}: {name}: " in out


def test_targets_pick_the_fastest_and_lightest_peer():
    results = {"gridgraph f": {"seconds": 2.0, "peak_mib": 90.0}, "gridgraph f+g": {"seconds": 2.1, "peak_mib": 95.0},
               "plain": {"seconds": 4.0, "peak_mib": 100.0}, "tiatoolbox": {"seconds": 3.0, "peak_mib": 300.0}}
    rows = {r[0]: r for r in peers.targets(results)}
    assert rows["f time vs fastest peer"][1:5] == [2.0, "tiatoolbox", 3.0, 2.0 / 3.0]
    assert rows["f RSS vs lightest peer"][1:5] == [90.0, "plain", 100.0, 0.9]
    assert rows["f+g time vs f"][1:5] == [2.1, "gridgraph f", 2.0, 2.1 / 2.0]
    assert [r[-1] for r in rows.values()] == ["PASS", "PASS", "PASS"]


def test_targets_skip_without_a_peer():
    rows = peers.targets({"gridgraph f": {"seconds": 2.0, "peak_mib": 10.0}, "plain": {"error": "boom"}})
    assert [r[-1] for r in rows] == ["SKIP", "SKIP", "SKIP"]


def test_best_keeps_the_fastest_run_and_the_lowest_rss():
    runs = [{"seconds": 3.0, "peak_mib": 5.0}, {"error": "x"}, {"seconds": 2.0, "peak_mib": 7.0}]
    got = peers.best(runs)
    assert got["seconds"] == 2.0 and got["peak_mib"] == 5.0 and got["runs"] == 2
    assert "error" in peers.best([{"error": "x"}])


platforms = pytest.importorskip("platforms")


@pytest.mark.slow  # six fresh processes: ~60 s on a busy 2-core machine
def test_platforms_tiny_run_ratio_is_predict_over_plain(tmp_path, capsys):
    rows = platforms.main(["--hd-side", "10", "--hires-px", "400", "--cells", "120", "--repeat", "1",
                           "--work", str(tmp_path)])
    out = capsys.readouterr().out
    assert [r[0] for r in rows] == ["hd", "xenium"]
    for kind, nodes, plain_s, _, predict_s, _, _, ratio, bare_s, _ in rows:
        assert nodes == (100 if kind == "hd" else 120)
        assert isinstance(plain_s, float) and isinstance(predict_s, float) and isinstance(bare_s, float)
        assert math.isclose(ratio, predict_s / plain_s)
        verdict = "PASS" if ratio <= platforms.TARGET else "FAIL"
        assert f"{verdict}: {kind}: predict / plain pipeline = " in out
    assert "f bare forward s (no target)" in out and "overhead" not in out


def test_platforms_verdict_lines():
    assert platforms.verdict("hd", {"seconds": 1.0}, {"seconds": 1.0}).startswith("PASS: hd: ")
    assert platforms.verdict("hd", {"seconds": 1.2}, {"seconds": 1.0}).startswith("FAIL: hd: ")
    assert platforms.verdict("xenium", {"error": "boom"}, {"seconds": 1.0}) == \
        "SKIP: xenium: predict / plain pipeline: boom"
    assert platforms.best_run([{"seconds": 2.0}, {"error": "x"}, {"seconds": 1.5}]) == {"seconds": 1.5}
