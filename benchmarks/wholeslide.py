"""Whole-slide images: patch extraction and predict on a pyramidal BigTIFF, time and peak RSS.

    python benchmarks/wholeslide.py [--sizes 20000 60000] [--spots 3639]

Writes a synthetic textured pyramidal BigTIFF (JPEG tiles of 512 px, 5 levels) and a Space
Ranger-like folder per size into --work, then measures, each in a fresh process:
- gridgraph's patch extraction (256 px windows -> 224 px patches: ``read_spaceranger`` with the
  slide as ``fullres_image``, then ``section_patches``, its default threads) against a baseline that
  reads the same 2048 px blocks through tifffile's zarr store, cuts and resizes them (32 at a time,
  torch's uint8 resize) in one thread;
- ``gridgraph predict`` with its figure (f = gridnet_simple, g = gcn, untrained weights).
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

TILE = 512


def _texture(y0: int, x0: int, h: int, w: int, step: int) -> np.ndarray:
    """Tissue-like texture at level-0 coordinates ``(y0, x0)`` sampled every ``step`` pixels."""
    y, x = np.mgrid[y0: y0 + h * step: step, x0: x0 + w * step: step]
    r = 180 + 50 * np.sin(x / 97.0) * np.cos(y / 131.0)
    g = 120 + 60 * np.sin((x + y) / 53.0)
    b = 170 + 40 * np.cos(x / 29.0 - y / 41.0)
    return np.stack([r, g, b], axis=-1).clip(0, 255).astype(np.uint8)


def _tiles(size: int, step: int):
    n = -(-size // step)
    for ty in range(0, n, TILE):
        for tx in range(0, n, TILE):
            yield _texture(ty * step, tx * step, TILE, TILE, step)


def write_slide(path: Path, size: int, levels: int = 5) -> None:
    import tifffile

    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        opts = dict(tile=(TILE, TILE), compression="jpeg", photometric="rgb", dtype=np.uint8)
        tw.write(_tiles(size, 1), shape=(size, size, 3), subifds=levels - 1, **opts)
        for k in range(1, levels):
            side = -(-size // 2 ** k)
            tw.write(_tiles(size, 2 ** k), shape=(side, side, 3), subfiletype=1, **opts)


def write_spaceranger(folder: Path, size: int, spots: int) -> None:
    """Visium-like spot positions (hex rows) over the slide, in full-resolution pixels."""
    spatial = folder / "spatial"
    spatial.mkdir(parents=True, exist_ok=True)
    cols = int(np.ceil(np.sqrt(spots * 2)))
    pitch = 0.8 * size / cols
    lines = []
    for i in range(spots):
        row, k = divmod(i, cols // 2)
        col = 2 * k + row % 2
        x, y = 0.1 * size + col * pitch / 2, 0.1 * size + row * pitch * 0.866
        lines.append(f"B{i:06d}-1,1,{row},{col},{y:.2f},{x:.2f}\n")
    (spatial / "tissue_positions_list.csv").write_text("".join(lines))
    (spatial / "scalefactors_json.json").write_text(json.dumps({
        "tissue_lowres_scalef": 0.01, "tissue_hires_scalef": 0.05, "fiducial_diameter_fullres": pitch,
        "spot_diameter_fullres": 0.55 * pitch}))


def _positions(folder: Path) -> np.ndarray:
    rows = [line.split(",") for line in (folder / "spatial" / "tissue_positions_list.csv").read_text().splitlines()]
    return np.array([[float(r[5]), float(r[4])] for r in rows])


def _digest(patches) -> str:
    """MD5 of the patch bytes, read in place (a sum would allocate an int64 copy)."""
    import hashlib

    return hashlib.md5(memoryview(patches.contiguous().numpy()).cast("B")).hexdigest()


def worker_gridgraph(slide: str, folder: str, window: int, patch: int) -> dict:
    """The user's path: ``read_spaceranger(fullres_image=...)`` opens the TIFF as a
    ``SlideImage``; ``section_patches`` reads it block by block (its default threads)."""
    from gridgraph.io import read_spaceranger
    from gridgraph.patches import section_patches

    t0 = time.perf_counter()
    section = read_spaceranger(folder, fullres_image=slide)
    patches = section_patches(section, patch, window_px=window)
    seconds = time.perf_counter() - t0
    if np.abs(section.pixel_pos.numpy() - _positions(Path(folder))).max() > 0.01:  # float32 vs text
        raise SystemExit("read_spaceranger's positions differ from the baseline's")
    return {"seconds": seconds, "shape": list(patches.shape), "md5": _digest(patches)}


def worker_baseline(slide: str, folder: str, window: int, patch: int) -> dict:
    import tifffile
    import torch
    import torch.nn.functional as F
    import zarr

    pos = _positions(Path(folder))
    t0 = time.perf_counter()
    with tifffile.TiffFile(slide) as tf:
        z = zarr.open(tf.series[0].aszarr(level=0), mode="r")
        z = z if hasattr(z, "shape") else z["0"]
        corners = np.floor(pos - window / 2 + 0.5).astype(np.int64)
        out = torch.empty((len(pos), 3, patch, patch), dtype=torch.uint8)
        keys = (corners[:, 1] // 2048) * 100000 + corners[:, 0] // 2048
        for key in np.unique(keys):
            idx = np.flatnonzero(keys == key)
            lo, hi = corners[idx].min(0), corners[idx].max(0) + window
            region = np.asarray(z[lo[1]: hi[1], lo[0]: hi[0]])
            crops = np.stack([region[y - lo[1]: y - lo[1] + window, x - lo[0]: x - lo[0] + window]
                              for x, y in corners[idx]])
            for s in range(0, len(idx), 32):  # a few windows at a time, resized as uint8
                t = torch.from_numpy(crops[s: s + 32]).permute(0, 3, 1, 2)
                out[idx[s: s + 32]] = F.interpolate(t, size=(patch, patch), mode="bilinear", antialias=True,
                                                    align_corners=False)
    return {"seconds": time.perf_counter() - t0, "shape": list(out.shape), "md5": _digest(out)}


def worker_predict(slide: str, folder: str, window: int, patch: int) -> dict:
    import torch

    from gridgraph.cli import main
    from gridgraph.config import make_config
    from gridgraph.workflows import model_from_config
    from gridgraph.train import save_checkpoint

    cfg = make_config({"data": {"name": "spaceranger"}, "patches": {"patch_size": patch, "window_px": window},
                       "g": {"name": "gcn", "kwargs": {"hidden_channels": 16, "num_layers": 2}}})
    torch.manual_seed(0)
    model = model_from_config(cfg, 4)
    ckpt = Path(folder) / "model.pt"
    save_checkpoint(ckpt, {"config": cfg.to_dict(), "classes": list("abcd"), "model": model.state_dict()})
    t0 = time.perf_counter()
    code = main(["predict", str(ckpt), "--spaceranger", folder, "--fullres-image", slide,
                 "--out", str(Path(folder) / "pred")])
    if code != 0:
        raise SystemExit(code)
    return {"seconds": time.perf_counter() - t0}


WORKERS = {"gridgraph": worker_gridgraph, "baseline": worker_baseline, "predict": worker_predict}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[20000])
    ap.add_argument("--spots", type=int, default=3639)
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--patch", type=int, default=224)
    ap.add_argument("--work", default="/tmp/gridgraph-wholeslide")
    ap.add_argument("--no-predict", action="store_true")
    ap.add_argument("--worker", nargs=5, metavar=("KIND", "SLIDE", "FOLDER", "WINDOW", "PATCH"))
    args = ap.parse_args(argv)
    if args.worker:
        kind, slide, folder, window, patch = args.worker
        result = WORKERS[kind](slide, folder, int(window), int(patch))
        print(json.dumps({**result, "peak_mib": peak_rss_mib()}))
        return
    rows = []
    for size in args.sizes:
        folder = Path(args.work) / f"s{size}"
        slide = folder / "slide.tif"
        if not slide.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            write_slide(slide, size)
            print(f"wrote {slide} ({slide.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.0f} s",
                  flush=True)
        write_spaceranger(folder, size, args.spots)
        argv_ = [str(slide), str(folder), str(args.window), str(args.patch)]
        base, ours = run_worker(__file__, ["baseline", *argv_]), run_worker(__file__, ["gridgraph", *argv_])
        same = base.get("md5") is not None and base.get("md5") == ours.get("md5")
        rows.append([f"{size} px", f"extraction {args.window}->{args.patch} px, {args.spots} spots",
                     base.get("seconds"), base.get("peak_mib"), ours.get("seconds"), ours.get("peak_mib"),
                     _ratio(ours, base, "seconds"), _ratio(ours, base, "peak_mib"), "yes" if same else "NO"])
        if not args.no_predict:
            pred = run_worker(__file__, ["predict", *argv_])
            rows.append([f"{size} px", "predict with figure", "-", "-", pred.get("seconds", pred.get("error")),
                         pred.get("peak_mib"), "-", "-", "-"])
    print(f"\nwhole-slide reading on {machine()}\n")
    print_table(["slide", "measurement", "baseline s", "baseline MiB", "gridgraph s", "gridgraph MiB",
                 "time ratio", "RSS ratio", "same patches"], rows)


def _ratio(a: dict, b: dict, key: str):
    return a[key] / b[key] if key in a and key in b and b[key] else "-"


if __name__ == "__main__":
    main()
