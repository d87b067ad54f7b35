"""TIAToolbox and LazySlide as ``peers.py`` runs them: their virtual environments and workers.

Each peer gets its own venv under ``benchmarks/.venvs/<tool>`` (made on first use with
``--peers``, never by the tests), which sees this interpreter's site-packages (torch,
torchvision) through a ``.pth`` file placed after its own, so pip installs only what the peer
adds or pins (TIAToolbox 2.1 pins its own torch: a few GB on first use). A failed install is remembered (``failed`` holds the reason; delete the folder to
retry). The workers load the same torchvision f as the plain script (``tv.pt``).
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PEERS = {"tiatoolbox": "tiatoolbox", "lazyslide": "lazyslide"}  # tool -> pip requirement
K = 4


def _settings(work: Path) -> dict:
    return json.loads((work / "settings.json").read_text())


def _torchvision_f(work: Path):
    import torch
    from torchvision import models

    net = models.get_model(_settings(work)["model"], weights=None, num_classes=K)
    net.load_state_dict(torch.load(work / "tv.pt", weights_only=True))
    return net.eval()


def peer_python(tool: str) -> tuple:
    """``(python, None)`` of the peer's venv (made and installed on first use), or ``(None, why)``."""
    venv = HERE / ".venvs" / tool
    python = venv / "bin" / "python"
    if (venv / "installed").is_file():
        return str(python), None
    if (venv / "failed").is_file():
        return None, (venv / "failed").read_text().strip()
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, text=True)
        site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True).stdout.strip()
        import torch

        shared = Path(torch.__file__).resolve().parents[1]  # this interpreter's site-packages, after the venv's own
        Path(site, "zz_shared.pth").write_text(f"{shared}\n{HERE.parent}\n")
        proc = subprocess.run([str(python), "-m", "pip", "install", "-q", PEERS[tool]], capture_output=True,
                              text=True, timeout=1800)
        if proc.returncode != 0:
            raise RuntimeError(((proc.stderr or proc.stdout).strip().splitlines() or ["pip failed"])[-1])
        subprocess.run([str(python), "-c", f"import {tool}"], check=True, capture_output=True, text=True, timeout=600)
    except (subprocess.SubprocessError, OSError, RuntimeError) as err:
        lines = str(getattr(err, "stderr", "") or err).strip().splitlines() or [type(err).__name__]
        why = f"cannot install or import {PEERS[tool]}: {lines[-1]}"
        venv.mkdir(parents=True, exist_ok=True)
        (venv / "failed").write_text(why)
        return None, why
    (venv / "installed").write_text("")
    return str(python), None


def worker_tiatoolbox(work: Path) -> dict:
    """TIAToolbox's patch predictor over patches its point extractor reads at the cells."""
    import pandas as pd
    import torch
    import torch.nn.functional as F
    from tiatoolbox.models.engine.patch_predictor import PatchPredictor
    from tiatoolbox.models.models_abc import ModelABC
    from tiatoolbox.tools.patchextraction import get_patch_extractor

    import _plain

    import torchvision.models  # noqa: F401 - imported before the clock, in every worker

    s = _settings(work)
    t0 = time.perf_counter()
    net, norm, patch = _torchvision_f(work), _plain.normalizer(), s["patch"]

    class Wrapped(ModelABC):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            x = x.permute(0, 3, 1, 2).contiguous()
            if x.shape[-1] != patch:
                x = F.interpolate(x, size=(patch, patch), mode="bilinear", antialias=True, align_corners=False)
            return self.net(norm(x)).softmax(-1)

        @staticmethod
        def infer_batch(model, batch_data, *args, **kwargs):
            with torch.inference_mode():
                return model(torch.as_tensor(np.asarray(batch_data))).numpy()

    ids, xy = _plain.xenium_table(work, work / "he_alignment.csv")
    points = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1]})
    extractor = get_patch_extractor("point", input_img=str(work / "slide.tif"), locations_list=points,
                                    patch_size=(s["window"], s["window"]), resolution=0, units="level")
    predictor = PatchPredictor(model=Wrapped(), batch_size=s["batch"], verbose=sys.stderr.isatty())  # no bars in logs
    chunk, probs, batch = 4096, [], []
    for p in extractor:
        batch.append(np.asarray(p))
        if len(batch) == chunk:
            probs.append(_tia_probs(predictor, batch))
            batch = []
    if batch:
        probs.append(_tia_probs(predictor, batch))
    probs = np.concatenate(probs)
    _write(work / "out_tiatoolbox" / "predictions.parquet", ids, probs)
    return {"seconds": time.perf_counter() - t0, "nodes": int(len(probs))}


def _tia_probs(predictor, patches) -> np.ndarray:
    batch = np.stack(patches)
    if hasattr(predictor, "run"):  # TIAToolbox 2.x
        side = tuple(batch.shape[1:3])
        out = predictor.run(images=batch, patch_mode=True, return_probabilities=True, output_type="dict",
                            patch_input_shape=side, input_resolutions=[{"units": "baseline", "resolution": 1.0}])
    else:
        out = predictor.predict(imgs=list(batch), mode="patch", return_probabilities=True, on_gpu=False)
    return np.asarray(out["probabilities"])


def worker_lazyslide(work: Path) -> dict:
    """LazySlide's tile feature extraction, with f as the model, over tiles at the cells' corners."""
    import lazyslide as zs
    from wsidata import open_wsi

    import _plain

    import torchvision.models  # noqa: F401 - imported before the clock, in every worker

    s = _settings(work)
    t0 = time.perf_counter()
    net, norm, patch = _torchvision_f(work), _plain.normalizer(), s["patch"]
    ids, xy = _plain.xenium_table(work, work / "he_alignment.csv")
    corners = np.floor(xy - s["window"] / 2 + 0.5).astype(np.int64)
    wsi = open_wsi(str(work / "slide.tif"))
    from wsidata.io import add_tiles

    add_tiles(wsi, key="cells", xys=corners, tile_spec=_lazyslide_spec(wsi, s["window"]),
              tissue_ids=np.zeros(len(corners), np.int64))
    zs.tl.feature_extraction(wsi, model=_LazyF(net, norm, patch), tile_key="cells", key_added="f",
                             batch_size=s["batch"], num_workers=0, pbar=False)
    feats = np.asarray(wsi.tables["f_cells" if "f_cells" in wsi.tables else "f"].X)
    probs = np.exp(feats - feats.max(1, keepdims=True))
    _write(work / "out_lazyslide" / "predictions.parquet", ids, probs / probs.sum(1, keepdims=True))
    return {"seconds": time.perf_counter() - t0, "nodes": int(len(feats))}


def _lazyslide_spec(wsi, window: int):
    from wsidata import TileSpec

    return TileSpec.from_wsidata(wsi, tile_px=window)


class _LazyF:
    """f as a callable module on LazySlide's float tiles (0..1 or 0..255, NCHW or NHWC)."""

    def __init__(self, net, norm, patch):
        self.net, self.norm, self.patch = net, norm, patch

    def __call__(self, x):
        import torch.nn.functional as F

        if x.shape[1] != 3:
            x = x.permute(0, 3, 1, 2)
        x = x.float() * (255.0 if x.is_floating_point() and float(x.max()) <= 1.0 else 1.0)
        if x.shape[-1] != self.patch:
            x = F.interpolate(x, size=(self.patch, self.patch), mode="bilinear", antialias=True, align_corners=False)
        return self.net(self.norm(x))


def _write(path: Path, ids, probs: np.ndarray) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    names = "abcd"[: probs.shape[1]]  # the checkpoint's classes
    pq.write_table(pa.table({"id": ids.astype(str), **{f"p_{c}": probs[:, k] for k, c in enumerate(names)}}), path)


