"""Small builders shared by the training, pipeline and CLI tests."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from gridgraph.config import RunConfig, make_config


def tiny_config(tmp_path: Path, **train) -> RunConfig:
    """A run that trains in about a second: tiny synthetic hex sections, 16 px patches."""
    t = {"epochs_f": 1, "epochs_g": 2, "epochs_joint": 1, "batch_size": 32, "chunk_size": 16,
         "progress": False, "lr": 3e-3, **train}
    return make_config({
        "output": str(tmp_path / "run"),
        "data": {"reader": "synthetic", "options": {"layout": "hex", "shape": [8, 16], "n_classes": 3},
                 "train": [0, 1, 2], "val": [3], "test": [4]},
        "patches": {"patch_size": 16, "window_spots": 1.0},
        "f": {"name": "gridnet_simple", "kwargs": {"stage_channels": [8, 8, 16, 16], "stem_channels": 8,
                                                 "blocks": [1, 1, 1, 1]}},
        "g": {"name": "gcn", "kwargs": {"hidden_channels": 8, "num_layers": 2}},
        "train": t,
    })


def write_spaceranger(section, folder: Path, scale: float = 0.5) -> Path:
    """Write a synthetic hex section as a Space Ranger 1.x ``spatial/`` folder.

    Full-resolution pixels are the section's pixels / ``scale``; the lowres image is the section's
    image, so ``tissue_lowres_scalef = scale``.
    """
    spatial = folder / "spatial"
    spatial.mkdir(parents=True)
    Image.fromarray(section.load_image()).save(spatial / "tissue_lowres_image.png")
    full = section.pixel_pos.numpy() / scale
    with open(spatial / "tissue_positions_list.csv", "w") as fh:
        for b, r, c, (x, y) in zip(section.barcodes, section.array_row, section.array_col, full):
            fh.write(f"{b},1,{r},{c},{y:.6f},{x:.6f}\n")
        fh.write("AAAA-outside,0,0,1,0,0\n")
    (spatial / "scalefactors_json.json").write_text(json.dumps({
        "tissue_lowres_scalef": scale, "spot_diameter_fullres": section.spot_diameter_px / scale,
        "fiducial_diameter_fullres": 1.0, "tissue_hires_scalef": scale,
    }))
    return folder


def changed(cfg: RunConfig, **sections) -> RunConfig:
    """``cfg`` with whole sections replaced by plain mappings (re-validated)."""
    return make_config({**cfg.to_dict(), **sections})


def state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


HD_MPP = 0.5  # µm per full-resolution pixel of write_visium_hd's bundles


def write_visium_hd(outs: Path, bins=(8, 16), side_um: int = 96, levels=("hires", "lowres"),
                    hires: float = 0.5, lowres: float = 0.25) -> Path:
    """A Space Ranger ``outs`` folder with ``binned_outputs/square_XXXum`` of each bin size over one
    ``side_um`` µm square of tissue (full resolution ``HD_MPP`` µm per pixel, 20 px margin), its
    images at ``levels`` (colour bands across the columns: three tissue classes), and
    ``labels_XXXum.csv`` (Loupe: ``Barcode,region``) per bin size; returns ``outs``."""
    import pandas as pd

    full = int(side_um / HD_MPP) + 40
    band = np.repeat(np.array([[200, 60, 60], [60, 200, 60], [60, 60, 200]], np.uint8),
                     -(-full // 3), axis=0)[:full]
    picture = np.broadcast_to(band[None, :, :], (full, full, 3)).copy()
    for b in bins:
        spatial = outs / "binned_outputs" / f"square_{b:03d}um" / "spatial"
        spatial.mkdir(parents=True)
        n = side_um // b
        r, c = np.divmod(np.arange(n * n), n)
        x, y = 20 + (c + 0.5) * b / HD_MPP, 20 + (r + 0.5) * b / HD_MPP
        barcodes = [f"s_{b:03d}um_{i:05d}_{j:05d}-1" for i, j in zip(r, c)]
        pd.DataFrame({"barcode": barcodes, "in_tissue": 1, "array_row": r, "array_col": c,
                      "pxl_row_in_fullres": y, "pxl_col_in_fullres": x}).to_parquet(spatial / "tissue_positions.parquet")
        (spatial / "scalefactors_json.json").write_text(json.dumps({
            "microns_per_pixel": HD_MPP, "bin_size_um": b, "tissue_hires_scalef": hires,
            "tissue_lowres_scalef": lowres, "spot_diameter_fullres": b / HD_MPP}))
        for level in levels:
            scale = hires if level == "hires" else lowres
            Image.fromarray(picture).resize((int(full * scale),) * 2).save(spatial / f"tissue_{level}_image.png")
        regions = np.array(["red", "green", "blue"])[np.minimum((x * 3 // full).astype(int), 2)]
        (outs / f"labels_{b:03d}um.csv").write_text(
            "Barcode,region\n" + "".join(f"{bc},{lab}\n" for bc, lab in zip(barcodes, regions)))
    return outs
