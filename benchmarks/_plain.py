"""The plain pipeline: the strongest short script of well-kept libraries, the baseline of
``peers.py`` and ``platforms.py`` (one copy, imported by both).

Table with pandas (parquet), coordinates to image pixels with numpy, windows cut from 2048 px
blocks (a pyramidal TIFF through tifffile's zarr store, read block by block; a PNG decoded whole
by PIL), resized as uint8 by torch (bilinear, antialiased), f in batches under
``torch.inference_mode``, probabilities written with pyarrow. The next block is read in a thread
while f runs on the current one. All of it -- reading the table, cutting, f, writing -- is inside
the clock (:func:`run` times itself from its first line).
"""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional

import numpy as np

BLOCK = 2048
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class TiffLevel0:
    """Level 0 of a (pyramidal) TIFF, read region by region through tifffile's zarr store."""

    def __init__(self, path):
        import tifffile
        import zarr

        self._tf = tifffile.TiffFile(path)
        z = zarr.open(self._tf.series[0].aszarr(level=0), mode="r")
        self.z = z if hasattr(z, "shape") else z["0"]
        self.shape = self.z.shape[:2]

    def region(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        return np.asarray(self.z[y0:y1, x0:x1])

    def close(self) -> None:
        self._tf.close()


class InMemory:
    """A decoded image (PNG, JPEG): regions are views."""

    def __init__(self, path):
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = None
        self.a = np.asarray(Image.open(path).convert("RGB"))
        self.shape = self.a.shape[:2]

    def region(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        return self.a[y0:y1, x0:x1]

    def close(self) -> None:
        pass


def open_image(path):
    return TiffLevel0(path) if str(path).lower().endswith((".tif", ".tiff")) else InMemory(path)


def xenium_table(folder, alignment=None):
    """``(ids, (N, 2) x, y in image pixels)`` of a Xenium bundle's ``cells.parquet``."""
    import pandas as pd

    folder = Path(folder)
    cells = pd.read_parquet(folder / "cells.parquet", columns=["cell_id", "x_centroid", "y_centroid"])
    mpp = json.loads((folder / "experiment.xenium").read_text())["pixel_size"]
    xy = cells[["x_centroid", "y_centroid"]].to_numpy(np.float64) / mpp
    if alignment is not None:
        inv = np.linalg.inv(np.loadtxt(alignment, delimiter=","))
        xy = xy @ inv[:2, :2].T + inv[:2, 2]
    return cells["cell_id"].to_numpy(), xy


def visium_hd_table(folder, bin_um: int = 8):
    """``(ids, (N, 2) x, y in hires-image pixels, hires µm per pixel)`` of in-tissue bins."""
    import pandas as pd

    spatial = Path(folder) / "binned_outputs" / f"square_{bin_um:03d}um" / "spatial"
    t = pd.read_parquet(spatial / "tissue_positions.parquet")
    t = t[t["in_tissue"] == 1]
    scale = json.loads((spatial / "scalefactors_json.json").read_text())
    s = scale["tissue_hires_scalef"]
    xy = t[["pxl_col_in_fullres", "pxl_row_in_fullres"]].to_numpy(np.float64) * s
    return t["barcode"].to_numpy(), xy, scale["microns_per_pixel"] / s


def _window_at(image, y0: int, x0: int, h: int, w: int) -> np.ndarray:
    """``image.region`` clipped to the image and zero-padded back to ``h x w``."""
    H, W = image.shape
    ya, yb, xa, xb = max(y0, 0), min(y0 + h, H), max(x0, 0), min(x0 + w, W)
    region = image.region(ya, yb, xa, xb)
    if (ya, yb, xa, xb) == (y0, y0 + h, x0, x0 + w):
        return region
    out = np.zeros((h, w, 3), np.uint8)
    out[ya - y0: yb - y0, xa - x0: xb - x0] = region
    return out


def _blocks(image, corners: np.ndarray, window: int):
    """``(node indices, (n, window, window, 3) uint8 windows)`` block by block (2048 px)."""
    keys = (corners[:, 1] // BLOCK) * 1_000_003 + corners[:, 0] // BLOCK
    order = np.argsort(keys, kind="stable")
    bounds = np.flatnonzero(np.diff(keys[order])) + 1
    for idx in np.split(order, bounds):
        lo = corners[idx].min(0)
        hi = corners[idx].max(0) + window
        region = _window_at(image, int(lo[1]), int(lo[0]), int(hi[1] - lo[1]), int(hi[0] - lo[0]))
        rel = corners[idx] - lo
        yield idx, np.stack([region[y: y + window, x: x + window] for x, y in rel])


def normalizer(mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """uint8 ``(B, 3, P, P)`` -> float ``(x / 255 - mean) / std``."""
    import torch

    m = torch.tensor(mean).view(1, 3, 1, 1) * 255
    s = torch.tensor(std).view(1, 3, 1, 1) * 255
    return lambda x: (x.float() - m) / s


def run(table: Callable[[], tuple], image_path, window: int, patch: int, f: Callable, out,
        batch: int = 64, classes: Optional[list] = None) -> dict:
    """Everything timed: ``table()`` -> ``(ids, xy)``; cut ``window`` px around each node, resize
    to ``patch``, ``f(uint8 (B, 3, P, P)) -> logits``, softmax; write ``out`` (parquet: id,
    label, one probability column per class). Returns ``{"seconds", "nodes"}``."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch
    import torch.nn.functional as F

    t0 = time.perf_counter()
    ids, xy = table()[:2]
    corners = np.floor(xy - window / 2 + 0.5).astype(np.int64)
    image = open_image(image_path)
    probs = None
    with torch.inference_mode(), ThreadPoolExecutor(1) as pool:
        blocks = _blocks(image, corners, window)
        pending = pool.submit(next, blocks, None)
        while True:
            item = pending.result()
            if item is None:
                break
            pending = pool.submit(next, blocks, None)  # the next block is read while f runs
            idx, crops = item
            for s in range(0, len(idx), batch):
                x = torch.from_numpy(crops[s: s + batch]).permute(0, 3, 1, 2)
                if window != patch:
                    x = F.interpolate(x, size=(patch, patch), mode="bilinear", antialias=True, align_corners=False)
                p = f(x.contiguous()).float().softmax(-1)
                if probs is None:
                    probs = torch.empty((len(ids), p.shape[1]))
                probs[torch.from_numpy(idx[s: s + batch])] = p
    image.close()
    probs = probs.numpy()
    names = classes or [str(k) for k in range(probs.shape[1])]
    cols = {"id": pa.array(ids.astype(str)), "label": pa.array(np.asarray(names)[probs.argmax(1)])}
    cols.update({f"p_{c}": pa.array(probs[:, k]) for k, c in enumerate(names)})
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(cols), out)
    return {"seconds": time.perf_counter() - t0, "nodes": int(len(ids))}
