"""Visium HD and Xenium at scale: read -> graph -> predict (f + g) -> predictions.h5ad.

    python benchmarks/platforms.py [--hd-side 840] [--cells 200000]

Generates, in --work, a synthetic Visium HD 8 µm section (``--hd-side``^2 in-tissue bins,
~700,000 by default, over a textured hires image) and a Xenium-like bundle (``--cells`` cells
on an H&E image registered by an alignment CSV), in the documented layouts. Each measurement
runs in a fresh process: ``gridgraph predict ... --anndata --no-figure`` end to end, and, as the
baseline, f's bare forward pass over the same patches (cut beforehand, not timed). In both, the
libraries are imported before the clock starts (the predict worker's import time is printed
beside it: a fixed cost per process, as torch's import is). Untrained weights: the point is
cost, not accuracy.
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


def _texture(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = [180 + 50 * np.sin(x / 23.0) * np.cos(y / 31.0), 120 + 60 * np.sin((x + y) / 13.0),
           170 + 40 * np.cos(x / 7.0 - y / 11.0)]
    return np.stack(rgb, axis=-1).clip(0, 255).astype(np.uint8)


def write_hd(folder: Path, side: int) -> Path:
    import pandas as pd
    from PIL import Image

    spatial = folder / "binned_outputs" / "square_008um" / "spatial"
    spatial.mkdir(parents=True, exist_ok=True)
    r, c = np.divmod(np.arange(side * side), side)
    step = 8 / MPP
    pd.DataFrame({"barcode": [f"s_008um_{i:05d}_{j:05d}-1" for i, j in zip(r, c)], "in_tissue": 1,
                  "array_row": r, "array_col": c, "pxl_row_in_fullres": 400 + r * step,
                  "pxl_col_in_fullres": 400 + c * step}).to_parquet(spatial / "tissue_positions.parquet")
    hires = 6000 / (800 + side * step)
    (spatial / "scalefactors_json.json").write_text(json.dumps({
        "microns_per_pixel": MPP, "bin_size_um": 8, "tissue_hires_scalef": hires,
        "tissue_lowres_scalef": hires / 10, "spot_diameter_fullres": step}))
    Image.fromarray(_texture(6000, 6000)).save(spatial / "tissue_hires_image.png")
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
                 "gridgraph.io.readers.visium_hd", "gridgraph.io.readers.xenium", "gridgraph.pipeline"):
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


WORKERS = {"predict": worker_predict, "bare_f": worker_bare_f}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hd-side", type=int, default=840, help="bins per side (840: 705,600 bins)")
    ap.add_argument("--cells", type=int, default=200_000)
    ap.add_argument("--work", default="/tmp/gridgraph-platforms")
    ap.add_argument("--repeat", type=int, default=2, help="alternated runs of each measurement (best kept)")
    ap.add_argument("--worker", nargs=3, metavar=("WHAT", "KIND", "FOLDER"))
    args = ap.parse_args(argv)
    if args.worker:
        what, kind, folder = args.worker
        print(json.dumps({**WORKERS[what](kind, folder), "peak_mib": peak_rss_mib()}))
        return
    work = Path(args.work)
    sets = {"hd": (write_hd, work / f"hd{args.hd_side}", args.hd_side),
            "xenium": (write_xenium, work / f"xenium{args.cells}", args.cells)}
    rows = []
    for kind, (write, folder, size) in sets.items():
        if not (folder / "done").is_file():
            t0 = time.perf_counter()
            write(folder, size)
            (folder / "done").write_text("")
            print(f"wrote {folder} in {time.perf_counter() - t0:.0f} s", flush=True)
        runs = [(run_worker(__file__, ["bare_f", kind, str(folder)]), run_worker(__file__, ["predict", kind, str(folder)]))
                for _ in range(args.repeat)]  # alternated, so a busy moment hits both; best of each
        bare = min((b for b, _ in runs), key=lambda r: r.get("seconds", float("inf")))
        ours = min((o for _, o in runs), key=lambda r: r.get("seconds", float("inf")))
        overhead = ours["seconds"] / bare["seconds"] - 1 if "seconds" in ours and "seconds" in bare else "-"
        rows.append([kind, bare.get("nodes", bare.get("error")), bare.get("seconds"), bare.get("peak_mib"),
                     ours.get("seconds", ours.get("error")), ours.get("imports", "-"), ours.get("peak_mib"),
                     f"{overhead:+.1%}" if isinstance(overhead, float) else overhead])
    print(f"\nplatforms at scale on {machine()}; f = gridnet_simple on {PATCH} px patches of "
          f"{WINDOW_UM:.0f} µm, g = gcn\n")
    print_table(["data", "nodes", "f bare forward s", "f bare MiB", "read -> predictions.h5ad s",
                 "imports before it s", "predict MiB", "overhead"], rows)


if __name__ == "__main__":
    main()
