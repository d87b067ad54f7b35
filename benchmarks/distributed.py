"""Distributed training throughput (1 vs 2 processes on the CPU) and GPU efficiency options.

CPU part, always: the same tiny synthetic training (GridNetSimple f at 32 px, GCN g) timed in
stage f (patch minibatches) and in the joint stage (whole sections, f chunked and
checkpointed), by the trainer's own per-epoch throughput (training time only, validation
excluded; the second epoch, after a warm-up one). Rows:

* ``1 proc x 1 thread``: one process, one intra-op thread;
* ``2 procs x 1 thread``: ``torch.distributed`` (gloo) with 2 ranks, as ``torchrun
  --nproc_per_node=2`` runs it (torchrun sets one thread per process), each rank with the same
  per-rank batch as the one-process rows (twice the global batch).

``scaling`` is the throughput over that of ``1 proc x 1 thread``, measured in the same run
(patches/s and sections/s count all ranks together). Every row runs in fresh processes, so
imports and caches do not carry over. On a machine with fewer free cores than processes (or
shared with other work) the ranks compete for the cores and the scaling stays below 1.

GPU part, only ``if torch.cuda.is_available()`` (else it prints ``no GPU``): DenseNet-121 f at
256 px, forward + backward patches/s in fp32 and in bf16 autocast (``train.amp``), with and
without channels_last; and the peak CUDA memory of one chunked, checkpointed joint training
step (chunks of 32 patches) on sections of 500, 2000 and 5000 spots.

Usage::

    python benchmarks/distributed.py            # about a minute on 2 CPU cores
    python benchmarks/distributed.py --sections 6 --shape 16 24
"""
from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPEED = re.compile(r"\[(\w+) (\d+)/\d+\].*\| (?:([\d.]+) patches/s, )?(?:f cached, )?([\d.]+) sections/s")


# --------------------------------------------------------------------------- CPU: 1 vs 2 processes
def _config(args, regimen: str):
    from gridgraph.config import make_config

    epochs = {"epochs_f": 2, "epochs_g": 0} if regimen == "two_stage" else {"epochs_joint": 2}
    return make_config({
        "output": "unused",
        "data": {"name": "synthetic", "kwargs": {"layout": "hex", "shape": list(args.shape), "n_classes": 3},
                 "train": list(range(args.sections)), "val": [100], "test": []},
        "patches": {"patch_size": 32, "window_spots": 1.0},
        "f": {"name": "gridnet_simple"},
        "g": {"name": "gcn", "kwargs": {"hidden_channels": 16, "num_layers": 2}},
        "train": {"regimen": regimen, **epochs, "batch_size": 32, "chunk_size": 32, "accumulate": 1,
                  "progress": False, "device": "cpu"},
    })


def _train(args, regimen: str) -> dict:
    """Train one regimen; the second epoch's ``(patches/s, sections/s)`` from the trainer's log."""
    from gridgraph.workflows import build_run

    cfg = _config(args, regimen)
    lines: list = []
    run = build_run(cfg, log=lines.append)
    run.trainer(log=lines.append).fit(run.splits["train"], run.splits["val"])
    speed = [m for m in map(SPEED.search, lines) if m]
    if not speed:  # ranks other than 0 do not log
        return {}
    last = speed[-1]
    return {"patches_s": float(last[3] or 0.0), "sections_s": float(last[4]),
            "patches": sum(st.num_nodes for st in run.splits["train"])}


def _rank_main(rank: int, world: int, port: int, args, out: str) -> None:
    import datetime

    import torch

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    if world > 1:
        torch.distributed.init_process_group("gloo", rank=rank, world_size=world,
                                             timeout=datetime.timedelta(seconds=300))
    try:
        result = {regimen: _train(args, regimen) for regimen in ("two_stage", "at_once")}
    finally:
        if world > 1:
            torch.distributed.destroy_process_group()
    if rank == 0:
        Path(out).write_text(json.dumps(result))


def _worker(args) -> None:
    """One measurement: ``--procs`` ranks with ``--threads`` threads each; prints JSON."""
    import tempfile

    import torch
    import torch.multiprocessing as mp

    out = Path(tempfile.mkdtemp()) / "result.json"
    if args.procs == 1:
        os.environ.pop("WORLD_SIZE", None)
        torch.set_num_threads(args.threads)
        result = {regimen: _train(args, regimen) for regimen in ("two_stage", "at_once")}
        out.write_text(json.dumps(result))
    else:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        mp.spawn(_rank_main, args=(args.procs, port, args, str(out)), nprocs=args.procs, join=True)
    print(out.read_text())


def cpu_table(args) -> None:
    import subprocess

    rows, base = [], None
    for procs, threads in ((1, 1), (2, 1)):
        argv = [sys.executable, __file__, "--worker", "--procs", str(procs), "--threads", str(threads),
                "--sections", str(args.sections), "--shape", *map(str, args.shape)]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
        t0 = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            print(f"{procs} proc x {threads}: failed: {(proc.stderr or proc.stdout).strip()[-1500:]}")
            continue
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        base = base or res
        for stage, regimen in (("f", "two_stage"), ("joint", "at_once")):
            r, b = res[regimen], base[regimen]
            rows.append([f"{procs} proc{'s' if procs > 1 else ''} x {threads} thread{'s' if threads > 1 else ''}",
                         stage, r["sections_s"], r["patches_s"], r["patches_s"] / b["patches_s"], round(wall, 1)])
    print(f"\nCPU training throughput ({machine()}; {args.sections} sections of {args.shape[0]}x{args.shape[1]} "
          "hex spots, 32 px patches, GridNetSimple + GCN; second epoch, training time only)\n")
    print_table(["processes", "stage", "sections/s", "patches/s", "scaling", "wall s (incl. start)"], rows)


# --------------------------------------------------------------------------- GPU
def gpu_tables() -> None:
    import torch

    if not torch.cuda.is_available():
        print("\nGPU part: no GPU")
        return
    from gridgraph import build_model
    from gridgraph.encoders import encode
    from gridgraph.inference import autocast

    device = torch.device("cuda")
    rows = []
    for amp in (False, True):
        for channels_last in (False, True):
            torch.manual_seed(0)
            f = build_model(5, encoder="densenet121", corrector="gcn").f.to(device)
            if channels_last:
                f.to(memory_format=torch.channels_last)
            x = torch.randint(0, 256, (64, 3, 256, 256), dtype=torch.uint8).pin_memory()
            opt = torch.optim.Adam(f.parameters(), lr=1e-4)

            def step():
                opt.zero_grad(set_to_none=True)
                with autocast(device, amp):
                    out = encode(f, x, chunk_size=None, checkpoint=False, device=device)
                out.float().logsumexp(1).mean().backward()
                opt.step()

            step()
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(5):
                step()
            torch.cuda.synchronize()
            rows.append(["bf16" if amp else "fp32", channels_last, 5 * 64 / (time.perf_counter() - t0)])
    print(f"\nDenseNet-121 f, 256 px, batch 64, forward + backward ({torch.cuda.get_device_name(0)})\n")
    print_table(["precision", "channels_last", "patches/s"], rows)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from memory_time import _section

    rows = []
    for spots in (500, 2000, 5000):
        for amp in (False, True):
            torch.manual_seed(0)
            model = build_model(5, encoder="densenet121", corrector="gcn", chunk_size=32, checkpoint=True).to(device)
            opt = torch.optim.Adam(model.parameters(), lr=1e-4)
            graph = _section(spots, "hex").to(device)
            patches = torch.randint(0, 256, (spots, 3, 256, 256), dtype=torch.uint8).pin_memory()
            target = torch.randint(0, 5, (spots,), device=device)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            with autocast(device, amp):
                logits = model(patches, graph)
            torch.nn.functional.cross_entropy(logits.float(), target).backward()
            opt.step()
            torch.cuda.synchronize()
            rows.append([spots, "bf16" if amp else "fp32", torch.cuda.max_memory_allocated() / 2**20,
                         time.perf_counter() - t0])
            model = opt = patches = None  # freed before the next size
            torch.cuda.empty_cache()
    print("\nOne chunked + checkpointed joint step (DenseNet-121 f at 256 px, chunks of 32, GCN g)\n")
    print_table(["spots", "precision", "CUDA peak MiB", "step s"], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--procs", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--sections", type=int, default=4, help="training sections (default 4)")
    ap.add_argument("--shape", type=int, nargs=2, default=(16, 24), help="hex array rows, columns")
    ap.add_argument("--no-gpu", action="store_true", help="skip the GPU part")
    args = ap.parse_args()
    if args.worker:
        _worker(args)
        return
    cpu_table(args)
    if not args.no_gpu:
        gpu_tables()


if __name__ == "__main__":
    main()
