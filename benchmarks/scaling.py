"""How ``gridgraph predict`` scales: time and peak RSS against the number of nodes and the slide size.

    python benchmarks/scaling.py [--nodes 10000 100000 1000000] [--slides 10000 30000 60000]

Two series, each point ``gridgraph predict CK --xenium DIR --image slide.tif --alignment CSV
--no-figure`` in a fresh process (libraries imported before the clock), best of ``--repeats``
runs alternated over the points:

- nodes: Xenium-like bundles of ``--nodes`` cells spread over one pyramidal BigTIFF of
  ``--nodes-slide-px`` px (read window by window, so the image costs no memory per node);
- slides: ``--slide-cells`` cells over BigTIFFs of ``--slides`` px.

f = gridnet_simple on 16 px patches of 32 px windows, g = a 2-layer GCN, untrained weights.
Printed per series: the exponent ``a`` of ``time ~ size^a`` fitted by least squares on log-log
and the spread of peak RSS (``max / min - 1``). Targets (PASS/FAIL lines, nodes series): ``a <=
1.05``, and peak RSS flat within 15% over the points from 10^5 nodes up (all points when none is
that large). The slides series is reported without a target.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import machine, peak_rss_mib, print_table, run_worker  # noqa: E402

EXPONENT_LIMIT, RSS_LIMIT, RSS_FROM = 1.05, 0.15, 100_000
PATCH, WINDOW = 16, 32


def fit_exponent(sizes, seconds) -> float:
    """``a`` of ``seconds ~ c * sizes^a``: the least-squares slope of log(seconds) on log(sizes)."""
    x, y = np.log(np.asarray(sizes, float)), np.log(np.asarray(seconds, float))
    design = np.stack([x, np.ones_like(x)], 1)
    return float(np.linalg.lstsq(design, y, rcond=None)[0][0])


def spread(values) -> float:
    """``max / min - 1`` (0: flat)."""
    v = np.asarray(values, float)
    return float(v.max() / v.min() - 1)


def _checkpoint(folder: Path) -> Path:
    import torch

    from gridgraph.config import make_config
    from gridgraph.workflows import model_from_config
    from gridgraph.train import save_checkpoint

    cfg = make_config({"data": {"name": "xenium"}, "patches": {"patch_size": PATCH, "window_px": WINDOW},
                       "g": {"name": "gcn", "kwargs": {"hidden_channels": 16, "num_layers": 2}}})
    torch.manual_seed(0)
    path = folder / "model.pt"
    save_checkpoint(path, {"config": cfg.to_dict(), "classes": list("abcd"), "model": model_from_config(cfg, 4).state_dict()})
    return path


def dataset(work: Path, slide_px: int, cells: int) -> Path:
    """A bundle of ``cells`` cells on a ``slide_px`` slide (the slide shared by its bundles)."""
    from peers import write_bundle
    from wholeslide import write_slide

    slide = work / f"slide{slide_px}.tif"
    if not slide.is_file():
        t0 = time.perf_counter()
        write_slide(slide.with_suffix(".part"), slide_px)
        slide.with_suffix(".part").rename(slide)
        print(f"wrote {slide} in {time.perf_counter() - t0:.0f} s", flush=True)
    folder = work / f"s{slide_px}-c{cells}"
    if not (folder / "done").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        write_bundle(folder, slide_px, cells, WINDOW)
        _checkpoint(folder)
        (folder / "slide.txt").write_text(str(slide))
        (folder / "done").write_text("")
    return folder


def worker(folder: str) -> dict:
    import importlib

    from gridgraph.cli import main

    for name in ("pyarrow.parquet", "scipy.spatial", "gridgraph.io.readers.xenium", "gridgraph.workflows"):
        importlib.import_module(name)  # before the clock, as torch is
    folder = Path(folder)
    t0 = time.perf_counter()
    code = main(["predict", str(folder / "model.pt"), "--xenium", str(folder), "--image",
                 (folder / "slide.txt").read_text(), "--alignment", str(folder / "he_alignment.csv"),
                 "--no-figure", "--out", str(folder / "pred")])
    if code != 0:
        raise SystemExit(code)
    return {"seconds": time.perf_counter() - t0}


def measure(points: list, repeats: int) -> list:
    """``[{"size", "folder", "seconds", "peak_mib"} | {"size", "error"}]``, best time and lowest RSS."""
    runs = {p: [] for p in range(len(points))}
    for _ in range(repeats):
        for i, (_, folder) in enumerate(points):
            runs[i].append(run_worker(__file__, [str(folder)]))
    out = []
    for i, (size, folder) in enumerate(points):
        ok = [r for r in runs[i] if "seconds" in r]
        if not ok:
            out.append({"size": size, "error": runs[i][-1].get("error", "did not run")})
            continue
        out.append({"size": size, "seconds": min(r["seconds"] for r in ok), "peak_mib": min(r["peak_mib"] for r in ok)})
    return out


def summary(name: str, rows: list, rss_from=None) -> dict:
    """Exponent and RSS spread of one series (``None`` where fewer than two points ran)."""
    ok = [r for r in rows if "seconds" in r]
    flat = [r for r in ok if rss_from is None or r["size"] >= rss_from]
    flat = flat if len(flat) >= 2 else ok
    return {"series": name, "sizes": [r["size"] for r in ok], "seconds": [r["seconds"] for r in ok],
            "peak_mib": [r["peak_mib"] for r in ok],
            "exponent": fit_exponent([r["size"] for r in ok], [r["seconds"] for r in ok]) if len(ok) >= 2 else None,
            "rss_sizes": [r["size"] for r in flat],
            "rss_spread": spread([r["peak_mib"] for r in flat]) if len(flat) >= 2 else None}


def verdicts(nodes: dict) -> list:
    lines = []
    for what, value, limit in (("time ~ nodes^a: a", nodes["exponent"], EXPONENT_LIMIT),
                               (f"peak RSS spread over {nodes['rss_sizes']} nodes", nodes["rss_spread"], RSS_LIMIT)):
        if value is None:
            lines.append(f"SKIP: {what}: fewer than two points ran")
        else:
            lines.append(f"{'PASS' if value <= limit else 'FAIL'}: {what} = {value:.3f} (limit {limit})")
    return lines


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--nodes-slide-px", type=int, default=20_000, help="the slide of the nodes series")
    ap.add_argument("--slides", type=int, nargs="+", default=[10_000, 30_000, 60_000])
    ap.add_argument("--slide-cells", type=int, default=10_000, help="cells of the slides series")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--work", default="/tmp/gridgraph-scaling")
    ap.add_argument("--json", help="also write the report here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps({**worker(args.worker), "peak_mib": peak_rss_mib()}))
        return {}
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    node_points = [(n, dataset(work, args.nodes_slide_px, n)) for n in args.nodes]
    slide_points = [(s, dataset(work, s, args.slide_cells)) for s in args.slides]
    nodes_rows, slide_rows = measure(node_points, args.repeats), measure(slide_points, args.repeats)
    nodes, slides = summary("nodes", nodes_rows, RSS_FROM), summary("slide px", slide_rows)
    print(f"\npredict scaling on {machine()}; f = gridnet_simple ({WINDOW} -> {PATCH} px), g = gcn; "
          f"best of {args.repeats}\n")
    table = [[f"{r['size']} nodes on {args.nodes_slide_px} px", r.get("seconds", r.get("error")), r.get("peak_mib", "-"),
              r["size"] / r["seconds"] if "seconds" in r else "-"] for r in nodes_rows]
    table += [[f"{args.slide_cells} nodes on {r['size']} px", r.get("seconds", r.get("error")), r.get("peak_mib", "-"),
               args.slide_cells / r["seconds"] if "seconds" in r else "-"] for r in slide_rows]
    print_table(["point", "seconds", "peak MiB", "nodes/s"], table)
    print()
    print_table(["series", "fitted exponent a (time ~ size^a)", "RSS spread (max/min - 1)", "RSS over"],
                [[s["series"], s["exponent"] if s["exponent"] is not None else "-",
                  s["rss_spread"] if s["rss_spread"] is not None else "-", s["rss_sizes"]] for s in (nodes, slides)])
    lines = verdicts(nodes)
    for line in lines:
        print(line)
    report = {"nodes": nodes, "slides": slides, "rows": {"nodes": nodes_rows, "slides": slide_rows}, "verdicts": lines}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
