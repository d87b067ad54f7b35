"""Speed of gridgraph's pipeline against the naive way, each ratio measured in the same run.

1. One training step (f + g, backward, Adam) on one DLPFC section: gridgraph sends only the
   in-tissue spots through f, chunked and checkpointed; the baseline is the original GridNet's
   dense step, every cell of the 64 x 78 HexagDLy grid (the 78 x 128 Visium array) through f,
   with the same chunked checkpointing. Time and peak RSS, each mode in a fresh process.
   Target: time ratio <= 0.75.
2. One stage-2 epoch of two-stage training over four sections: g on f's cached outputs vs
   recomputing f (no grad) for every section each epoch. Target: >= 50x faster.
3. Inference over a whole section: uint8 patches -> class probabilities of f and f + g
   (normalisation per chunk, f, g, softmax) vs f's bare forward on the same patches already
   normalised in memory. Target: pipeline overhead <= 10%.

    python benchmarks/pipeline_speed.py [--section 151673] [--patch-size 32]
        [--stage2-encoders gridnet_simple densenet121]

Reads ../shared/data/dlpfc; without it, a synthetic section of Visium size stands in (said so).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, peak_rss_mib, print_table, run_worker  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DLPFC = ROOT.parent / "shared" / "data" / "dlpfc"
TRAIN4 = ["151507", "151508", "151509", "151510"]


def load_sections(names, args):
    """Prepared sections (patches cut) of DLPFC, or synthetic Visium-size stand-ins."""
    from gridgraph.config import make_config
    from gridgraph.workflows import load_splits

    if (Path(args.data) / "barcode_level_layer_map.tsv").is_file():
        data = {"name": "spaceranger", "root": args.data,
                "kwargs": {"labels": str(Path(args.data) / "barcode_level_layer_map.tsv")},
                "classes": ["L1", "L2", "L3", "L4", "L5", "L6", "WM"]}
        ids = names
    else:
        data = {"name": "synthetic", "kwargs": {"layout": "hex", "shape": [78, 128], "n_classes": 7}}
        ids = list(range(len(names)))
    cfg = make_config({"data": {**data, "train": ids, "val": ids[:1], "test": []},
                       "patches": {"patch_size": args.patch_size, "window_px": args.window_px,
                                   "window_spots": None}})
    splits, classes = load_splits(cfg, splits=("train",))
    return splits["train"], classes, data["name"]


def build(num_classes: int, chunk: int, encoder: str = "gridnet_simple"):
    from gridgraph import build_model

    torch.manual_seed(0)
    return build_model(num_classes, encoder=encoder, corrector="hexconv", chunk_size=chunk,
                       checkpoint=True)


def dense_version(st):
    """Every cell of the section's grid as a node; background cells get blank patches, label -1."""
    from gridgraph.graph import hex_graph, hex_grid_to_visium

    h, w = st.graph.grid_shape
    cells = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"), -1).view(-1, 2)
    rows, cols = hex_grid_to_visium(cells.numpy())
    graph = hex_graph(rows, cols, grid_shape=(h, w))
    flat = st.graph.grid_index[:, 0] * w + st.graph.grid_index[:, 1]
    patches = torch.zeros((h * w, *st.patches.shape[1:]), dtype=torch.uint8)
    patches[flat] = st.patches
    labels = torch.full((h * w,), -1, dtype=torch.long)
    labels[flat] = st.labels
    return patches, graph, labels


def step_worker(args) -> dict:
    """One mode of measurement 1, in its own process."""
    sections, classes, _ = load_sections([args.section], args)
    st = sections[0]
    model = build(len(classes), args.chunk)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    if args.mode == "dense":
        patches, graph, labels = dense_version(st)
    else:
        patches, graph, labels = st.patches, st.graph, st.labels
    times = []
    for i in range(1 + args.repeats):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(patches, graph), labels, ignore_index=-1)
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
    return {"mode": args.mode, "nodes_through_f": int(patches.shape[0]), "time": statistics.median(times),
            "peak_rss": peak_rss_mib()}


def stage2_epoch(args, sections, classes, encoder: str) -> list:
    from gridgraph.train import masked_cross_entropy

    model = build(len(classes), args.chunk, encoder)
    model.freeze_f()
    opt = torch.optim.Adam(model.g.parameters(), lr=1e-3)
    with torch.no_grad():
        cache = [model.f_outputs(st.patches)[1] for st in sections]

    def epoch(recompute: bool) -> float:
        t0 = time.perf_counter()
        for k, st in enumerate(sections):
            if recompute:
                with torch.no_grad():
                    g_in = model.f_outputs(st.patches)[1]
            else:
                g_in = cache[k]
            opt.zero_grad(set_to_none=True)
            masked_cross_entropy(model.g_outputs(g_in, st.graph), st.labels).backward()
            opt.step()
        return time.perf_counter() - t0

    cached = min(epoch(False) for _ in range(3))
    recomputed = min(epoch(True) for _ in range(1 if encoder == "densenet121" else 2))
    n = sum(st.num_nodes for st in sections)
    return [[f"stage-2 epoch, 4 sections, f = {encoder}", n, "f recomputed", recomputed, "f cached",
             cached, recomputed / cached]]


def inference(args, st, classes) -> list:
    from gridgraph.patches import normalize
    from gridgraph.inference import predict_probs

    model = build(len(classes), args.chunk).eval()
    pre = normalize(st.patches)

    @torch.no_grad()
    def bare():
        for start in range(0, pre.shape[0], 256):
            model.f(pre[start:start + 256])

    def end_to_end():
        predict_probs(model, [st])

    def timed(fn):
        ts = []
        for _ in range(5):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts)

    t_bare, t_e2e = timed(bare), timed(end_to_end)
    return [["inference, 1 section", st.num_nodes, "f bare forward", t_bare, "patches -> f, f+g probs",
             t_e2e, t_e2e / t_bare]]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DLPFC))
    ap.add_argument("--section", default="151673")
    ap.add_argument("--patch-size", type=int, default=32)
    ap.add_argument("--window-px", type=float, default=40.0)
    ap.add_argument("--chunk", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--stage2-encoders", nargs="+", default=["gridnet_simple"],
                    help="f of the stage-2 measurement (e.g. also densenet121, the paper's f)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        import json

        print(json.dumps(step_worker(args)))
        return
    common = ["--data", args.data, "--section", args.section, "--patch-size", str(args.patch_size),
              "--window-px", str(args.window_px), "--chunk", str(args.chunk), "--repeats", str(args.repeats)]
    fg = run_worker(__file__, common + ["--mode", "foreground"])
    dense = run_worker(__file__, common + ["--mode", "dense"])
    sections, classes, reader = load_sections(TRAIN4, args)
    one, _, _ = load_sections([args.section], args)
    source = "DLPFC" if reader == "spaceranger" else "synthetic Visium-size sections (DLPFC absent)"
    print(f"\nPipeline speed on {machine()}; {source}; gridnet_simple + hexconv, "
          f"{args.patch_size} px patches, chunk {args.chunk}\n")
    rows = []
    for r in (fg, dense):
        if "error" in r:
            raise SystemExit(f"worker failed: {r['error']}")
    rows.append([f"training step, section {args.section}", f"{fg['nodes_through_f']} vs {dense['nodes_through_f']}",
                 "dense grid (all cells)", dense["time"], "foreground only", fg["time"], fg["time"] / dense["time"]])
    for encoder in args.stage2_encoders:
        rows += stage2_epoch(args, sections, classes, encoder)
    rows += inference(args, one[0], classes)
    print_table(["measurement", "nodes", "baseline", "baseline s", "gridgraph", "gridgraph s", "ratio"], rows)
    print(f"\npeak RSS of the training step: foreground {fg['peak_rss']:.0f} MiB, "
          f"dense grid {dense['peak_rss']:.0f} MiB")
    speedups = ", ".join(f"{r[-1]:.0f}x" for r in rows[1:-1])
    print(f"training-step time ratio {rows[0][-1]:.2f} (target <= 0.75); stage-2 speed-up "
          f"{speedups} (target >= 50x); inference overhead {100 * (rows[-1][-1] - 1):+.1f}% "
          "(target <= 10%)")


if __name__ == "__main__":
    main()
