"""Visium HD and Xenium at scale: read -> graph -> predict (f + g) -> predictions.h5ad.

    python benchmarks/platforms.py [--hd-side 840] [--cells 200000] [--repeat 2]

Generates, in --work, a synthetic Visium HD 8 µm section (``--hd-side``^2 in-tissue bins,
~700,000 by default, over a textured hires image) and a Xenium-like bundle (``--cells`` cells
on an H&E image registered by an alignment CSV), in the documented layouts. Each measurement
runs in a fresh process, alternated, best of ``--repeat``:

- ``gridgraph predict ... --anndata --no-figure`` end to end (predictions.csv, the Loupe CSV and
  predictions.h5ad; colour standardisation on, as the checkpoint's defaults say);
- the plain pipeline (:mod:`_plain`: pandas, the image block by block, torch uint8 resize, the
  same f in batches, pyarrow) over the same nodes and windows, everything inside its clock;
- f's bare forward pass over the same patches (cut beforehand, not timed): reported, no target.

Target (PASS/FAIL lines): predict's time <= 1.10x the plain pipeline's, on each platform; the
ratio is the quotient of the two times beside it. In every worker the libraries are imported
before the clock starts (the predict worker's import time is printed beside it: a fixed cost per
process, as torch's import is). Untrained weights: the point is cost, not accuracy.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, peak_rss_mib, print_table, run_worker  # noqa: E402

MPP = 0.25  # µm per full-resolution pixel (Visium HD)
PATCH, WINDOW_UM = 16, 32.0
PLAIN_PIXELS = 256 * 64 * 64  # the plain pipeline's batch, in pixels (4096 patches of 16 px)
TARGET = 1.10  # predict time / plain pipeline time, each platform


def _texture(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = [180 + 50 * np.sin(x / 23.0) * np.cos(y / 31.0), 120 + 60 * np.sin((x + y) / 13.0),
           170 + 40 * np.cos(x / 7.0 - y / 11.0)]
    return np.stack(rgb, axis=-1).clip(0, 255).astype(np.uint8)


def write_hd(folder: Path, side: int, hires_px: int = 6000) -> Path:
    import pandas as pd
    from PIL import Image

    spatial = folder / "binned_outputs" / "square_008um" / "spatial"
    spatial.mkdir(parents=True, exist_ok=True)
    r, c = np.divmod(np.arange(side * side), side)
    step = 8 / MPP
    pd.DataFrame({"barcode": [f"s_008um_{i:05d}_{j:05d}-1" for i, j in zip(r, c)], "in_tissue": 1,
                  "array_row": r, "array_col": c, "pxl_row_in_fullres": 400 + r * step,
                  "pxl_col_in_fullres": 400 + c * step}).to_parquet(spatial / "tissue_positions.parquet")
    hires = hires_px / (800 + side * step)
    (spatial / "scalefactors_json.json").write_text(json.dumps({
        "microns_per_pixel": MPP, "bin_size_um": 8, "tissue_hires_scalef": hires,
        "tissue_lowres_scalef": hires / 10, "spot_diameter_fullres": step}))
    Image.fromarray(_texture(hires_px, hires_px)).save(spatial / "tissue_hires_image.png")
    return folder


def write_xenium(folder: Path, cells: int, pixel_size: float = 0.2125) -> Path:
    import pandas as pd
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    side_um = np.sqrt(cells * 100.0)  # one cell per 100 µm²
    rng = np.random.default_rng(0)
    pd.DataFrame({"cell_id": [f"c{i:07d}" for i in range(cells)],
                  "x_centroid": rng.uniform(20, side_um, cells),
                  "y_centroid": rng.uniform(20, side_um, cells)}).to_parquet(folder / "cells.parquet")
    (folder / "experiment.xenium").write_text(json.dumps({"pixel_size": pixel_size}))
    scale = 4.0  # one H&E pixel = 4 Xenium pixels
    np.savetxt(folder / "he_alignment.csv", [[scale, 0, 0], [0, scale, 0], [0, 0, 1]], delimiter=",")
    side_px = int((side_um + 40) / pixel_size / scale) + 1
    Image.fromarray(_texture(side_px, side_px)).save(folder / "he.png")
    return folder


def _checkpoint(folder: Path, reader: str) -> Path:
    import torch

    from gridgraph.config import make_config
    from gridgraph.workflows import model_from_config
    from gridgraph.train import save_checkpoint

    cfg = make_config({"data": {"name": reader}, "patches": {"patch_size": PATCH, "window_um": WINDOW_UM},
                       "g": {"name": "gcn", "kwargs": {"hidden_channels": 16, "num_layers": 2}}})
    torch.manual_seed(0)
    path = folder / "model.pt"
    save_checkpoint(path, {"config": cfg.to_dict(), "classes": list("abcd"),
                           "model": model_from_config(cfg, 4).state_dict(), "scale": {"window_um": WINDOW_UM}})
    return path


def _argv(kind: str, folder: Path) -> list:
    if kind == "hd":
        return ["--visium-hd", str(folder)]
    return ["--xenium", str(folder), "--image", str(folder / "he.png"), "--alignment", str(folder / "he_alignment.csv")]


def _import_libraries() -> float:
    """Import what predict uses (readers, writers, AnnData, h5py) before the clock starts, as
    torch is: a fixed cost per process, not per node. Returns the seconds it took."""
    import importlib

    t0 = time.perf_counter()
    for name in ("anndata", "h5py", "pyarrow.parquet", "scipy.spatial", "gridgraph.io.writers.anndata",
                 "gridgraph.io.readers.visium_hd", "gridgraph.io.readers.xenium", "gridgraph.workflows"):
        importlib.import_module(name)
    return time.perf_counter() - t0


def worker_predict(kind: str, folder: str) -> dict:
    from gridgraph.cli import main

    folder = Path(folder)
    ckpt = _checkpoint(folder, "visium_hd" if kind == "hd" else "xenium")
    imports = _import_libraries()
    t0 = time.perf_counter()
    code = main(["predict", str(ckpt), *_argv(kind, folder), "--anndata", "--no-figure", "--out", str(folder / "pred")])
    if code != 0:
        raise SystemExit(code)
    return {"seconds": time.perf_counter() - t0, "imports": imports}


def worker_bare_f(kind: str, folder: str) -> dict:
    import torch

    from gridgraph.cli import _predict_input, build_parser
    from gridgraph.patches.extract import iter_section_patches
    from gridgraph.workflows import load_model, trained_window

    folder = Path(folder)
    model, ckpt = load_model(_checkpoint(folder, "visium_hd" if kind == "hd" else "xenium"))
    argv = _argv(kind, folder)
    args = build_parser().parse_args(["predict", "x", *argv, "--out", "x"])
    section, _ = _predict_input(args, ckpt, argv[1])
    window = trained_window(ckpt, section)
    chunks = [p for _, p in iter_section_patches(section, window.patch_size, **window.window(section))]
    t0 = time.perf_counter()
    with torch.no_grad():
        for patches in chunks:
            model.forward_f(patches)
    return {"seconds": time.perf_counter() - t0, "nodes": section.num_nodes}


def worker_plain(kind: str, folder: str) -> dict:
    """The plain pipeline over the same nodes, windows and f (the checkpoint's), timed whole."""
    import pandas  # noqa: F401 - imported before the clock, as in the other workers
    import pyarrow.parquet  # noqa: F401
    import torch

    import _plain
    from gridgraph.workflows import load_model

    folder = Path(folder)
    ckpt_path = _checkpoint(folder, "visium_hd" if kind == "hd" else "xenium")
    t0 = time.perf_counter()
    model, ckpt = load_model(ckpt_path)
    model.eval()
    if kind == "hd":
        ids, xy, mpp = _plain.visium_hd_table(folder)
        table = lambda: (ids, xy)  # noqa: E731 - read inside the clock, above
        image = folder / "binned_outputs" / "square_008um" / "spatial" / "tissue_hires_image.png"
    else:
        scale = np.sqrt(abs(np.linalg.det(np.loadtxt(folder / "he_alignment.csv", delimiter=",")[:2, :2])))
        mpp = json.loads((folder / "experiment.xenium").read_text())["pixel_size"] * scale
        table = lambda: _plain.xenium_table(folder, folder / "he_alignment.csv")  # noqa: E731
        image = folder / "he.png"
    window = max(1, int(round(WINDOW_UM / mpp)))
    batch = max(1, PLAIN_PIXELS // (PATCH * PATCH))
    with torch.inference_mode():
        res = _plain.run(table, image, window, PATCH, lambda x: model.f(model.transform(x)),
                         folder / "plain" / "predictions.parquet", batch, list(ckpt.classes))
    return {**res, "seconds": time.perf_counter() - t0}


WORKERS = {"predict": worker_predict, "bare_f": worker_bare_f, "plain": worker_plain}


def main(argv=None) -> list:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hd-side", type=int, default=840, help="bins per side (840: 705,600 bins)")
    ap.add_argument("--hires-px", type=int, default=6000, help="side of the Visium HD hires image")
    ap.add_argument("--cells", type=int, default=200_000)
    ap.add_argument("--work", default="/tmp/gridgraph-platforms")
    ap.add_argument("--repeat", type=int, default=2, help="alternated runs of each measurement (best kept)")
    ap.add_argument("--worker", nargs=3, metavar=("WHAT", "KIND", "FOLDER"))
    args = ap.parse_args(argv)
    if args.worker:
        what, kind, folder = args.worker
        print(json.dumps({**WORKERS[what](kind, folder), "peak_mib": peak_rss_mib()}))
        return []
    work = Path(args.work)
    sets = {"hd": (lambda f, n: write_hd(f, n, args.hires_px),
                  work / (f"hd{args.hd_side}" + ("" if args.hires_px == 6000 else f"-{args.hires_px}")), args.hd_side),
            "xenium": (write_xenium, work / f"xenium{args.cells}", args.cells)}
    rows, verdicts = [], []
    for kind, (write, folder, size) in sets.items():
        if not (folder / "done").is_file():
            t0 = time.perf_counter()
            write(folder, size)
            (folder / "done").write_text("")
            print(f"wrote {folder} in {time.perf_counter() - t0:.0f} s", flush=True)
        runs = {what: [] for what in ("plain", "predict", "bare_f")}
        for _ in range(args.repeat):  # alternated, so a busy moment hits all; best of each
            for what in runs:
                runs[what].append(run_worker(__file__, [what, kind, str(folder)]))
        plain, ours, bare = (best_run(runs[w]) for w in ("plain", "predict", "bare_f"))
        ratio = ours["seconds"] / plain["seconds"] if "seconds" in ours and "seconds" in plain else None
        rows.append([kind, plain.get("nodes", bare.get("nodes", "-")), plain.get("seconds", plain.get("error")),
                     plain.get("peak_mib", "-"), ours.get("seconds", ours.get("error")), ours.get("imports", "-"),
                     ours.get("peak_mib", "-"), ratio if ratio is not None else "-",
                     bare.get("seconds", bare.get("error")), bare.get("peak_mib", "-")])
        verdicts.append(verdict(kind, ours, plain))
    print(f"\nplatforms at scale on {machine()}; f = gridnet_simple on {PATCH} px patches of "
          f"{WINDOW_UM:.0f} µm, g = gcn; best of {args.repeat}\n")
    print_table(["data", "nodes", "plain pipeline s", "plain MiB", "read -> predictions.h5ad s",
                 "imports before it s", "predict MiB", "predict / plain", "f bare forward s (no target)",
                 "f bare MiB"], rows)
    for line in verdicts:
        print(line)
    return rows


def best_run(runs: list) -> dict:
    """The fastest of a measurement's runs (the last error when none ran)."""
    ok = [r for r in runs if "seconds" in r]
    return min(ok, key=lambda r: r["seconds"]) if ok else (runs[-1] if runs else {"error": "did not run"})


def verdict(kind: str, ours: dict, plain: dict) -> str:
    """``PASS``/``FAIL``/``SKIP`` line of the end-to-end target: predict / plain <= TARGET."""
    if "seconds" not in ours or "seconds" not in plain:
        return f"SKIP: {kind}: predict / plain pipeline: {ours.get('error') or plain.get('error')}"
    ratio = ours["seconds"] / plain["seconds"]
    return (f"{'PASS' if ratio <= TARGET else 'FAIL'}: {kind}: predict / plain pipeline = "
            f"{ours['seconds']:.4g} / {plain['seconds']:.4g} = {ratio:.3f} (limit {TARGET})")


if __name__ == "__main__":
    main()
