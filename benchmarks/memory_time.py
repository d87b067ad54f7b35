"""Peak memory and time of one full GridGraphNet training step, chunked+checkpointed vs plain.

One step = f over every node patch, g on the graph, cross-entropy on g's and f's logits,
backward, Adam step. Sections of 500, 2000 and 5000 spots with random uint8 64 px patches on a
hex (Visium-like, ``hexconv`` corrector) or Cartesian (``conv2d``) graph from the builders.

Every configuration runs in a fresh subprocess, so one run's RSS peak cannot hide another's.
Reported per run:

* ``peak_rss``: the process's peak resident set size (``getrusage``), MiB, whole process;
* ``step_rss``: that peak minus the RSS just before the first step (model, patches, optimizer
  and the torch runtime already loaded), i.e. what the training step itself adds;
* ``cuda_peak``: ``torch.cuda.max_memory_allocated`` during the steps, when on a GPU;
* ``time``: median wall time of the timed steps (after one warm-up step).

RSS includes memory that glibc keeps after frees (heap fragmentation from many chunk-sized
allocations); ``MALLOC_MMAP_THRESHOLD_=65536`` in the environment returns it and shows the
tighter bound.

The ratio column is ``peak(N) / peak(smallest N)`` for the same mode (CUDA peak on a GPU, else
peak RSS); the target with chunking is ``peak(5000) / peak(500) <= 1.3``.

Usage::

    python benchmarks/memory_time.py                      # CPU, or the GPU when there is one
    python benchmarks/memory_time.py --device cpu --layout cartesian --sizes 500 2000
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mib, run_worker  # noqa: E402

MODES = {
    "chunked+ckpt": dict(chunk_size=32, checkpoint=True),
    "no chunking": dict(chunk_size=None, checkpoint=False),
}


def _rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _section(n: int, layout: str):
    """A roughly square block of ``n`` spots."""
    import numpy as np

    from gridgraph.graph import cartesian_graph, hex_graph

    w = math.ceil(math.sqrt(n))
    idx = np.arange(n)
    rows = idx // w
    if layout == "hex":  # Visium: columns share their row's parity, two apart
        return hex_graph(rows, 2 * (idx % w) + rows % 2)
    return cartesian_graph(rows, idx % w)


def worker(args) -> dict:
    import torch

    from gridgraph import build_model

    torch.manual_seed(0)
    device = torch.device(args.device)
    graph = _section(args.spots, args.layout).to(device)
    corrector = args.corrector or ("hexconv" if args.layout == "hex" else "conv2d")
    mode = dict(MODES[args.mode])
    if mode["chunk_size"] is not None:
        mode["chunk_size"] = args.chunk
    model = build_model(args.classes, encoder=args.encoder, corrector=corrector, **mode).to(device)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    patches = torch.randint(0, 256, (args.spots, 3, args.patch, args.patch), dtype=torch.uint8)
    target = torch.randint(0, args.classes, (args.spots,), device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        out = model(patches, graph, return_f=True)
        loss = torch.nn.functional.cross_entropy(out.g_logits, target)
        loss = loss + torch.nn.functional.cross_entropy(out.f_logits, target)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    rss_before = _rss_mib()
    times = []
    for i in range(1 + args.repeats):
        t0 = time.perf_counter()
        step()
        if i > 0:
            times.append(time.perf_counter() - t0)
    peak_rss = peak_rss_mib()
    times.sort()
    return {
        "spots": args.spots,
        "mode": args.mode,
        "device": str(device),
        "peak_rss": peak_rss,
        "step_rss": peak_rss - rss_before,
        "cuda_peak": torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None,
        "time": times[len(times) // 2],
        "threads": torch.get_num_threads(),
    }


def _run_one(args, spots: int, mode: str) -> dict:
    argv = [
        "--spots", str(spots), "--mode", mode, "--device", args.device,
        "--layout", args.layout, "--patch", str(args.patch), "--chunk", str(args.chunk),
        "--classes", str(args.classes), "--encoder", args.encoder,
        "--repeats", str(args.repeats),
    ]
    if args.corrector:
        argv += ["--corrector", args.corrector]
    result = run_worker(os.path.abspath(__file__), argv)
    return {"spots": spots, "mode": mode, **result}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[500, 2000, 5000])
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--layout", default="hex", choices=["hex", "cartesian"])
    p.add_argument("--corrector", default=None, help="default: hexconv on hex, conv2d otherwise")
    p.add_argument("--encoder", default="gridnet_simple")
    p.add_argument("--patch", type=int, default=64)
    p.add_argument("--chunk", type=int, default=32)
    p.add_argument("--classes", type=int, default=7)
    p.add_argument("--repeats", type=int, default=1, help="timed steps after one warm-up step")
    p.add_argument("--json", default=None, help="also write the results to this file")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--spots", type=int, help=argparse.SUPPRESS)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.worker:
        print(json.dumps(worker(args)))
        return

    results = [_run_one(args, n, m) for m in args.modes for n in args.sizes]
    cuda = args.device.startswith("cuda")
    key = "cuda_peak" if cuda else "peak_rss"
    print(
        f"GridGraphNet training step: {args.encoder} + "
        f"{args.corrector or ('hexconv' if args.layout == 'hex' else 'conv2d')} on a "
        f"{args.layout} graph, {args.patch} px patches, chunk {args.chunk}, device {args.device}"
    )
    head = f"{'mode':<14}{'spots':>7}{'peak RSS MiB':>14}{'step RSS MiB':>14}"
    if cuda:
        head += f"{'CUDA peak MiB':>15}"
    head += f"{'time s':>9}{'ratio':>8}"
    print(head)
    print("-" * len(head))
    for m in args.modes:
        rows = [r for r in results if r["mode"] == m]
        base = next((r[key] for r in rows if "error" not in r), None)
        for r in rows:
            if "error" in r:
                print(f"{m:<14}{r['spots']:>7}  failed: {r['error']}")
                continue
            line = f"{m:<14}{r['spots']:>7}{r['peak_rss']:>14.0f}{r['step_rss']:>14.0f}"
            if cuda:
                line += f"{r['cuda_peak']:>15.0f}"
            line += f"{r['time']:>9.2f}{r[key] / base:>8.2f}"
            print(line)
    ok = [r for r in results if r["mode"] == "chunked+ckpt" and "error" not in r]
    if len(ok) >= 2:
        ratio = ok[-1][key] / ok[0][key]
        verdict = "meets" if ratio <= 1.3 else "misses"
        print(
            f"\nchunked peak({ok[-1]['spots']}) / peak({ok[0]['spots']}) = {ratio:.2f} "
            f"({verdict} the <= 1.3 target)"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
