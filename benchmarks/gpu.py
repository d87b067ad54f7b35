"""The GPU checks, one command (a few minutes on one H100-class GPU): one table, exit status.

    python benchmarks/gpu.py [--bins 700000] [--sizes 500 2000 5000] [--steps 10]

1. DenseNet-121 training throughput at 256 px (patches/s; forward, cross-entropy, backward,
   Adam; uint8 patches already on the device, normalised there), fp32 and bf16 autocast. Target
   on an H100-class device (H100, H200, GH200, B100, B200): the faster of the two >= 3,000.
2. The chunked + checkpointed training step (``memory_time.py``'s, f = ``--memory-encoder`` on
   ``--memory-patch`` px patches held on the CPU) at ``--sizes`` spots: peak device memory
   (``torch.cuda.max_memory_allocated``) flat: peak(largest) / peak(smallest) <= 1.3.
3. Predict on ``--bins`` Visium HD bins with the model on the device (read the section, cut the
   patches, f, g, write the tables: ``predict_section``), in nodes/s; reported, no target.
4. CPU/GPU equality: f and f + g probabilities of the same model and patches (``predict_stream``,
   TF32 off) on both devices, max |difference| <= 1e-4.

Exit status: 0 every check passed; 1 a check failed; 3 no CUDA device (nothing was run).
The checks are functions of plain numbers and tensors (testable on CPU tensors).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from argparse import Namespace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

OK, FAILED, NO_DEVICE = 0, 1, 3
THROUGHPUT_MIN, MEMORY_RATIO_MAX, EQUAL_ATOL = 3000.0, 1.3, 1e-4
H100_CLASS = ("H100", "H200", "GH200", "B100", "B200", "GB200")


# --- checks: plain numbers and tensors in, one table row out -------------------------------------

def row(check: str, value, target: str, ok) -> list:
    """``[check, value, target, verdict]``; ``ok`` None: reported only."""
    return [check, value, target, "-" if ok is None else ("PASS" if ok else "FAIL")]


def check_throughput(per_dtype: dict, device_name: str) -> list:
    """Rows per dtype (reported) and the target row: the best >= 3,000 patches/s on H100-class."""
    rows = [row(f"DenseNet-121 256 px training, {k}", v, "reported", None) for k, v in per_dtype.items()]
    best = max(per_dtype.values())
    if any(tag in device_name.upper() for tag in H100_CLASS):
        rows.append(row("training patches/s, best dtype", best, f">= {THROUGHPUT_MIN:.0f} (H100-class)",
                        best >= THROUGHPUT_MIN))
    else:
        rows.append(row("training patches/s, best dtype", best, f"not H100-class ({device_name}): no target", None))
    return rows


def check_flat(peaks: dict) -> list:
    """Peak memory per size (reported) and peak(largest) / peak(smallest) <= 1.3."""
    sizes = sorted(peaks)
    rows = [row(f"chunked step peak MiB, {n} spots", peaks[n] / 2**20, "reported", None) for n in sizes]
    ratio = peaks[sizes[-1]] / peaks[sizes[0]]
    rows.append(row(f"peak({sizes[-1]}) / peak({sizes[0]})", ratio, f"<= {MEMORY_RATIO_MAX}", ratio <= MEMORY_RATIO_MAX))
    return rows


def check_equal(cpu: dict, gpu: dict, atol: float = EQUAL_ATOL) -> list:
    """Max |difference| of each named probability tensor (``{"f": ..., "f+g": ...}``) <= atol."""
    rows = []
    for name in cpu:
        a, b = cpu[name].float().cpu(), gpu[name].float().cpu()
        diff = float((a - b).abs().max()) if a.shape == b.shape else math.inf
        rows.append(row(f"CPU vs GPU {name} probabilities, max |diff|", diff, f"<= {atol:g}", diff <= atol))
    return rows


def exit_code(rows: list) -> int:
    return FAILED if any(r[3] == "FAIL" for r in rows) else OK


# --- measurements (any device; the script runs them on CUDA) --------------------------------------

def _sync(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def train_throughput(f, patch: int, batch: int, steps: int, device, dtype=None, classes: int = 4) -> float:
    """Patches/s of ``steps`` training steps of ``f`` (after 2 warm-up steps) on one batch."""
    import torch

    from gridgraph.patches.transforms import normalize

    torch.manual_seed(0)
    f = f.to(device).train()
    opt = torch.optim.Adam(f.parameters(), lr=1e-4)
    x = torch.randint(0, 256, (batch, 3, patch, patch), dtype=torch.uint8, device=device)
    y = torch.randint(0, classes, (batch,), device=device)
    dev = torch.device(device).type

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev, dtype=dtype, enabled=dtype is not None):
            loss = torch.nn.functional.cross_entropy(f(normalize(x)), y)
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return batch * steps / (time.perf_counter() - t0)


def chunked_peaks(sizes, device: str, encoder: str, patch: int) -> dict:
    """``{spots: peak device bytes}`` of memory_time.py's chunked + checkpointed step."""
    import memory_time

    peaks = {}
    for n in sizes:
        r = memory_time.worker(Namespace(spots=n, device=device, layout="hex", corrector=None, mode="chunked+ckpt",
                                         chunk=32, classes=7, encoder=encoder, patch=patch, repeats=1))
        peaks[n] = r["cuda_peak"] * 2**20 if r["cuda_peak"] is not None else r["peak_rss"] * 2**20
    return peaks


def predict_throughput(work: Path, bins: int, device: str, hires_px: int = 6000) -> float:
    """Nodes/s of reading a Visium HD section and ``predict_section`` with the model on ``device``."""
    from platforms import _checkpoint, write_hd

    from gridgraph.io import read_visium_hd
    from gridgraph.workflows import load_model, predict_section

    side = math.ceil(math.sqrt(bins))
    folder = work / f"hd{side}-{hires_px}"
    if not (folder / "done").is_file():
        write_hd(folder, side, hires_px)
        (folder / "done").write_text("")
    model, ckpt = load_model(_checkpoint(folder, "visium_hd"), device=device)
    _sync(device)
    t0 = time.perf_counter()
    section = read_visium_hd(folder)
    predict_section(model, ckpt, section, folder / "pred", figures=False)
    _sync(device)
    return section.num_nodes / (time.perf_counter() - t0)


def probabilities(model, patches, graph) -> dict:
    """``{"f", "f+g"}`` probabilities of ``predict_stream`` over ``patches`` in 4 chunks."""
    from gridgraph.inference import predict_stream

    chunks = list(patches.chunk(4))
    f, g = predict_stream(model, chunks, graph)
    return {"f": f, "f+g": g}


def equality_inputs(n_side: int = 24, patch: int = 32):
    """A small gridnet_simple + GCN model, uint8 patches and a Cartesian graph (seed 0)."""
    import numpy as np
    import torch

    from gridgraph import build_model
    from gridgraph.graph import cartesian_graph

    torch.manual_seed(0)
    model = build_model(4, encoder="gridnet_simple", corrector="gcn", g_zero_init=False)
    idx = np.arange(n_side * n_side)
    graph = cartesian_graph(idx // n_side, idx % n_side)
    patches = torch.randint(0, 256, (len(idx), 3, patch, patch), dtype=torch.uint8)
    return model.eval(), patches, graph


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bins", type=int, default=700_000, help="Visium HD bins of the predict check")
    ap.add_argument("--sizes", type=int, nargs="+", default=[500, 2000, 5000], help="spots of the memory check")
    ap.add_argument("--memory-encoder", default="densenet121")
    ap.add_argument("--memory-patch", type=int, default=256)
    ap.add_argument("--batch", type=int, default=128, help="training batch of the throughput check")
    ap.add_argument("--steps", type=int, default=10, help="timed training steps per dtype")
    ap.add_argument("--work", default="/tmp/gridgraph-gpu")
    args = ap.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("gpu.py: no CUDA device here (torch.cuda.is_available() is False); nothing was run. "
              f"Run it on a machine with a GPU (exit {NO_DEVICE}: no device, {FAILED}: a check failed).",
              file=sys.stderr)
        return NO_DEVICE
    from _common import print_table

    from gridgraph.encoders import densenet121

    t_start = time.perf_counter()
    device, name = "cuda", torch.cuda.get_device_name(0)
    torch.backends.cudnn.benchmark = True
    rates = {}
    for label, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        rates[label] = train_throughput(densenet121(4), 256, args.batch, args.steps, device, dtype)
        print(f"throughput {label}: {rates[label]:.0f} patches/s ({time.perf_counter() - t_start:.0f} s)", flush=True)
    rows = check_throughput(rates, name)
    torch.cuda.empty_cache()
    rows += check_flat(chunked_peaks(args.sizes, device, args.memory_encoder, args.memory_patch))
    print(f"memory done ({time.perf_counter() - t_start:.0f} s)", flush=True)
    torch.cuda.empty_cache()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows.append(row(f"predict nodes/s, {args.bins} Visium HD bins", predict_throughput(work, args.bins, device),
                    "reported", None))
    print(f"predict done ({time.perf_counter() - t_start:.0f} s)", flush=True)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    model, patches, graph = equality_inputs()
    cpu = probabilities(model, patches, graph)
    rows += check_equal(cpu, probabilities(model.to(device), patches, graph))
    print(f"\nGPU checks on {name}, {time.perf_counter() - t_start:.0f} s\n")
    print_table(["check", "value", "target", "verdict"], rows)
    code = exit_code(rows)
    print("all checks passed" if code == OK else "a check FAILED")
    return code


if __name__ == "__main__":
    sys.exit(main())
