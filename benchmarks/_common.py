"""Helpers shared by the benchmark scripts: timing, tables, subprocess workers, training flags."""
from __future__ import annotations

import json
import platform
import time
from typing import Callable, Sequence

import torch


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """Smallest wall time of ``repeat`` calls, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def machine() -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, {gpu}"


def print_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def run_worker(script: str, argv: Sequence[str]) -> dict:
    """Run ``python script --worker argv...`` in a fresh process; its last stdout line is JSON.

    A fresh process per measurement keeps one run's peak RSS from hiding another's.
    """
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, script, "--worker", *argv], capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        return {"error": tail[0]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB.

    Linux's ``ru_maxrss`` survives ``exec``: a worker started by a parent that once held more
    memory would report the parent's peak. ``VmHWM`` belongs to the process's own address space,
    so it is read first.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def add_training_args(ap, epochs_f: int, epochs_g: int, window_px: float) -> None:
    """The f/g training flags the real-data benchmarks share."""
    import argparse

    ap.add_argument("--epochs-f", type=int, default=epochs_f)
    ap.add_argument("--epochs-g", type=int, default=epochs_g)
    ap.add_argument("--window-px", type=float, default=window_px, help="patch window (px)")
    ap.add_argument("--patch-size", type=int, default=32)
    ap.add_argument("--g-input", default="softmax", choices=["softmax", "logits", "features"])
    ap.add_argument("--g-residual", action=argparse.BooleanOptionalAction, default=True,
                    help="g corrects f's log-probabilities (default) or predicts logits outright")
    ap.add_argument("--g-zero-init", action=argparse.BooleanOptionalAction, default=True,
                    help="a residual g's output layer starts at zero (f + g starts at f)")
    ap.add_argument("--g-ensemble", type=int, default=3,
                    help="g's trained side by side from their own initial weights, probabilities averaged")
    ap.add_argument("--f-tta", action=argparse.BooleanOptionalAction, default=False,
                    help="f's predictions (validation, test, g's inputs) average the 8 flips/turns of each patch")
    ap.add_argument("--f-ensemble", type=int, default=1,
                    help="f's trained side by side from their own initial weights, averaged before g (model.f_ensemble)")
    ap.add_argument("--label-smoothing", type=float, default=0.0)
    ap.add_argument("--cross-fit", type=int, default=0,
                    help="train g on cross-fitted f outputs from this many groups of training sections (0: off)")
    ap.add_argument("--pretrain-epochs", type=int, default=0,
                    help="self-supervised (SimCLR-style) epochs of f on the training patches before f's stage")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--f", dest="f_name", default="gridnet_simple", help="f's encoder name (ENCODERS)")
    ap.add_argument("--f-kwargs", type=json.loads, default={},
                    help='f\'s kwargs as JSON, e.g. \'{"model_name": "resnet10t", "freeze": true}\'')


def f_config(args) -> dict:
    """The ``f`` section the training flags name."""
    return {"name": args.f_name, "kwargs": dict(args.f_kwargs)}


def scores(y, probs) -> dict:
    """Headline metrics plus per-class AUROC (a list, JSON-ready)."""
    from gridgraph.evaluate import compute_metrics, per_class_auroc

    m = compute_metrics(y, probs)
    m["per_class_auroc"] = per_class_auroc(y, probs).tolist()
    return m
