"""gridgraph predict against its peers on the same slide, cells, patches and f weights.

    python benchmarks/peers.py [--slide-px 60000] [--cells 200000] [--repeats 3] [--peers]

Writes into --work (once, reused) a textured pyramidal BigTIFF of ``--slide-px`` px (JPEG tiles
of 512 px, 5 levels) and a Xenium-like bundle of ``--cells`` cells spread over it (an identity
alignment CSV registers the slide), a torchvision ``--model`` with random weights (seed 0) and
K = 4 classes, saved once as a gridgraph checkpoint (f only: ``use_g`` off; f + g: a 2-layer
GCN) and as a plain torchvision state dict that every other tool loads. Each tool cuts a
``--window`` px window around every cell, resizes it to ``--patch`` px and writes per-cell
probabilities:

- ``gridgraph f`` / ``gridgraph f+g``: ``gridgraph predict CK --xenium DIR --image slide.tif
  --alignment CSV --no-figure`` (colour standardisation off, so every tool feeds f the same input);
- ``plain``: :mod:`_plain` (pandas, tifffile + zarr, torch uint8 resize, f in batches, pyarrow);
- ``tiatoolbox``: its patch predictor over patches read at the same points (``--peers`` only);
- ``lazyslide``: its tile feature extraction over tiles at the same corners (``--peers`` only).

Every measurement is a fresh process with its libraries (torch, torchvision, the tool) imported
before its clock starts; the clock then covers loading f, reading the table, cutting, f and
writing. The tools alternate within each of ``--repeats`` rounds;
the best time and the lowest peak RSS of each are kept. A peer runs from its own virtual
environment under ``benchmarks/.venvs/`` (made on first use, sharing this interpreter's torch
through a ``.pth`` file); one that cannot be installed or run is skipped with its reason.
Targets (PASS/FAIL lines): gridgraph f-only time <= 0.8x the fastest peer's and peak RSS <=
1.0x the lightest peer's; f + g time <= 1.1x gridgraph's own f-only time.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _peer_tools  # noqa: E402
from _common import machine, peak_rss_mib, print_table  # noqa: E402
from _peer_tools import PEERS, _settings, _torchvision_f, peer_python  # noqa: E402

K, PIXEL_UM, SEED = 4, 0.2125, 0
HEAD = {"resnet18": "fc", "densenet121": "classifier"}
TARGETS = (("f time vs fastest peer", 0.8), ("f RSS vs lightest peer", 1.0), ("f+g time vs f", 1.1))


# --- data ---------------------------------------------------------------------------------------

def write_bundle(folder: Path, size: int, cells: int, margin: int) -> None:
    """Cells uniform over the slide (``margin`` px from its edges), in µm; identity alignment."""
    import pandas as pd

    rng = np.random.default_rng(SEED)
    xy = rng.uniform(margin, size - margin, (cells, 2)) * PIXEL_UM
    pd.DataFrame({"cell_id": [f"c{i:07d}" for i in range(cells)], "x_centroid": xy[:, 0],
                  "y_centroid": xy[:, 1]}).to_parquet(folder / "cells.parquet")
    (folder / "experiment.xenium").write_text(json.dumps({"pixel_size": PIXEL_UM}))
    np.savetxt(folder / "he_alignment.csv", np.eye(3), delimiter=",")


def write_models(folder: Path, model: str, window: int, patch: int) -> None:
    """``f.pt`` (f only), ``fg.pt`` (f + g): gridgraph checkpoints of one model; ``tv.pt``: the
    same f as a torchvision state dict (its head the checkpoint's classifier)."""
    import torch

    from gridgraph.config import make_config
    from gridgraph.workflows import model_from_config
    from gridgraph.train import save_checkpoint

    cfg = make_config({"data": {"name": "xenium"},
                       "f": {"name": "torchvision", "kwargs": {"model_name": model, "input_size": patch}},
                       "patches": {"patch_size": patch, "window_px": window, "standardize": False},
                       "g": {"name": "gcn", "kwargs": {"hidden_channels": 16, "num_layers": 2}}})
    torch.manual_seed(SEED)
    state = model_from_config(cfg, K).state_dict()
    for name, use_g in (("f.pt", False), ("fg.pt", True)):
        state["use_g"] = torch.tensor(use_g)
        save_checkpoint(folder / name, {"config": cfg.to_dict(), "classes": list("abcd"), "model": dict(state)})
    tv = {k[len("f.backbone."):]: v for k, v in state.items() if k.startswith("f.backbone.")}
    tv.update({f"{HEAD[model]}.weight": state["f.classifier.weight"], f"{HEAD[model]}.bias": state["f.classifier.bias"]})
    torch.save(tv, folder / "tv.pt")


def prepare(args) -> Path:
    sys.path.insert(0, str(HERE))
    from wholeslide import write_slide

    work = Path(args.work) / f"s{args.slide_px}-c{args.cells}-{args.model}-w{args.window}-p{args.patch}"
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "done").is_file():
        t0 = time.perf_counter()
        write_slide(work / "slide.tif", args.slide_px)
        write_bundle(work, args.slide_px, args.cells, args.window)
        write_models(work, args.model, args.window, args.patch)
        (work / "settings.json").write_text(json.dumps({"model": args.model, "window": args.window,
                                                        "patch": args.patch, "batch": args.batch}))
        (work / "done").write_text("")
        print(f"wrote {work} in {time.perf_counter() - t0:.0f} s", flush=True)
    return work


# --- workers (each in a fresh process) ----------------------------------------------------------

def worker_gridgraph(work: Path, which: str) -> dict:
    from gridgraph.cli import main
    import gridgraph.workflows  # noqa: F401 - imported before the clock, as torch is
    import torchvision.models  # noqa: F401

    t0 = time.perf_counter()
    code = main(["predict", str(work / f"{which}.pt"), "--xenium", str(work), "--image", str(work / "slide.tif"),
                 "--alignment", str(work / "he_alignment.csv"), "--no-figure", "--out", str(work / f"out_{which}")])
    if code != 0:
        raise SystemExit(code)
    return {"seconds": time.perf_counter() - t0}


def worker_plain(work: Path) -> dict:
    import pyarrow.parquet  # noqa: F401 - imported before the clock
    import torch  # noqa: F401

    import _plain

    import torchvision.models  # noqa: F401 - imported before the clock, in every worker

    s = _settings(work)
    t0 = time.perf_counter()
    net, norm = _torchvision_f(work), _plain.normalizer()
    res = _plain.run(lambda: _plain.xenium_table(work, work / "he_alignment.csv"), work / "slide.tif", s["window"],
                     s["patch"], lambda x: net(norm(x)), work / "out_plain" / "predictions.parquet", s["batch"],
                     list("abcd"))
    return {**res, "seconds": time.perf_counter() - t0}


WORKERS = {"gridgraph f": lambda w: worker_gridgraph(w, "f"), "gridgraph f+g": lambda w: worker_gridgraph(w, "fg"),
           "plain": worker_plain, "tiatoolbox": _peer_tools.worker_tiatoolbox,
           "lazyslide": _peer_tools.worker_lazyslide}


def run_tool(python: str, tool: str, work: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([python, __file__, "--worker", tool, str(work)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        return {"error": tail[0]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- report -------------------------------------------------------------------------------------

def best(runs: list) -> dict:
    """Best time and lowest peak RSS over a tool's runs (an error when none ran)."""
    ok = [r for r in runs if "seconds" in r]
    if not ok:
        return {"error": runs[-1].get("error", "did not run") if runs else "did not run"}
    return {**min(ok, key=lambda r: r["seconds"]), "peak_mib": min(r["peak_mib"] for r in ok), "runs": len(ok)}


def targets(results: dict) -> list:
    """``[name, gridgraph value, reference tool, reference value, ratio, limit, verdict]``; the
    ratio is always the quotient of the two values beside it, both from this run."""
    peers = {t: r for t, r in results.items() if not t.startswith("gridgraph") and "seconds" in r}
    checks = [("gridgraph f", "seconds", peers), ("gridgraph f", "peak_mib", peers),
              ("gridgraph f+g", "seconds", {"gridgraph f": results.get("gridgraph f", {})})]
    rows = []
    for (name, limit), (ours, key, refs) in zip(TARGETS, checks):
        refs = {t: r[key] for t, r in refs.items() if key in r}
        value = results.get(ours, {}).get(key)
        if value is None or not refs:
            rows.append([name, "-", "-", "-", "-", limit, "SKIP"])
            continue
        tool = min(refs, key=refs.get)  # the fastest / the lightest
        ratio = value / refs[tool]
        rows.append([name, value, tool, refs[tool], ratio, limit, "PASS" if ratio <= limit else "FAIL"])
    return rows


def agreement(work: Path, tools) -> dict:
    """Largest |probability difference| of each tool's output from gridgraph f-only's, per cell id."""
    import pandas as pd

    try:
        ref = pd.read_csv(work / "out_f" / "predictions.csv").set_index("id")[list("abcd")]
    except (OSError, KeyError, ValueError):
        return {}
    out = {}
    for tool in tools:
        path = work / "out_fg" / "predictions.csv" if tool == "gridgraph f+g" else work / f"out_{tool}" / "predictions.parquet"
        try:
            if path.suffix == ".csv":
                other = pd.read_csv(path).set_index("id")[list("abcd")]
            else:
                other = pd.read_parquet(path).set_index("id")[[f"p_{c}" for c in "abcd"]]
                other.columns = list("abcd")
            out[tool] = float(np.abs(other.loc[ref.index].to_numpy() - ref.to_numpy()).max())
        except (OSError, KeyError, ValueError):
            pass
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slide-px", type=int, default=60_000)
    ap.add_argument("--cells", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default="resnet18", choices=sorted(HEAD))
    ap.add_argument("--window", type=int, default=256, help="window cut around each cell, px")
    ap.add_argument("--patch", type=int, default=224, help="f's input side, px")
    ap.add_argument("--batch", type=int, default=64, help="f's batch in the plain script and the peers")
    ap.add_argument("--peers", action="store_true", help="install (first time) and run TIAToolbox and LazySlide")
    ap.add_argument("--work", default="/tmp/gridgraph-peers")
    ap.add_argument("--json", help="also write the report here")
    ap.add_argument("--worker", nargs=2, metavar=("TOOL", "WORK"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        tool, work = args.worker
        print(json.dumps({**WORKERS[tool](Path(work)), "peak_mib": peak_rss_mib()}))
        return {}
    work = prepare(args)
    pythons, skipped = {t: sys.executable for t in ("gridgraph f", "gridgraph f+g", "plain")}, {}
    for tool in PEERS:
        if not args.peers:
            skipped[tool] = "not run (pass --peers to install and run it)"
            continue
        python, why = peer_python(tool)
        if python:
            pythons[tool] = python
        else:
            skipped[tool] = why
    runs = {t: [] for t in pythons}
    for _ in range(args.repeats):  # alternated: a busy moment hits every tool alike
        for tool, python in pythons.items():
            runs[tool].append(run_tool(python, tool, work))
    results = {t: best(r) for t, r in runs.items()}
    for tool, why in skipped.items():
        print(f"skipped {tool}: {why}")
    print(f"\npeers on {machine()}: {args.model} (random weights), {args.window} -> {args.patch} px, "
          f"{args.cells} cells on a {args.slide_px} px slide, best of {args.repeats}\n")
    same = agreement(work, [t for t in results if t != "gridgraph f"])
    rows = [[t, r.get("seconds", r.get("error")), r.get("peak_mib", "-"),
             args.cells / r["seconds"] if "seconds" in r else "-", same.get(t, "-")] for t, r in results.items()]
    print_table(["tool", "seconds", "peak MiB", "cells/s", "max |p - p(gridgraph f)|"], rows)
    target_rows = targets(results)
    print()
    print_table(["target", "gridgraph", "reference", "reference value", "ratio", "limit", "verdict"], target_rows)
    for name, ours, tool, ref, ratio, limit, verdict in target_rows:
        if verdict != "SKIP":
            print(f"{verdict}: {name}: {ours:.4g} / {ref:.4g} ({tool}) = {ratio:.3f} (limit {limit})")
        else:
            print(f"SKIP: {name}: a measurement is missing")
    report = {"results": results, "targets": target_rows, "agreement": same, "skipped": skipped, "work": str(work)}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
