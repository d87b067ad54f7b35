"""her2st (classic ST, patient C): image f vs expression f vs image + expression, each with g.

Leave one section out over C2-C6: each section is the test set once, the next one (cyclically)
validation, the other three training. Labels are the authors' expression clusters, so
expression is expected to win; the point is that each modality is carried correctly and that g
still adds to the fused f.

    python benchmarks/her2st.py [--data ../shared/data/her2st] [--epochs-f 12 --epochs-g 40]
    python benchmarks/her2st.py --only image --trials 10 --ensemble 5   # the paper's protocol per fold

Prints accuracy and macro AUROC (mean ± SD over the five folds) of f and f + g per input, and
writes ``results.md`` / ``results.json`` into ``--out``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_table  # noqa: E402
from _protocol import PROTOCOL_HEADER, SUMMARY_HEADER, add_protocol_args, protocol_rows, protocol_summary, \
    run_protocol  # noqa: E402

from gridgraph.config import make_config  # noqa: E402
from gridgraph.files.atomic import atomic_write  # noqa: E402
from gridgraph.workflows import run_training  # noqa: E402

SECTIONS = ["C2", "C3", "C4", "C5", "C6"]
IMAGE_F = {"name": "gridnet_simple"}


def expression_f(data: str, genes: int) -> dict:
    return {"name": "expression", "kwargs": {"counts": str(Path(data) / "{section}_counts.tsv.gz"),
                                             "id_format": "{x}x{y}", "n_top_genes": genes, "hidden": [64]}}


def inputs(args) -> dict:
    expr = expression_f(args.data, args.genes)
    return {"image": IMAGE_F, "expression": expr,
            "image+expression": {"name": "fusion", "kwargs": {"branches": {"image": IMAGE_F, "expression": expr},
                                                              "modality_dropout": 0.2}}}


def split_data(args, test: str) -> dict:
    """The data section of a fold: ``test`` held out, the next section (cyclically) validation."""
    val = SECTIONS[(SECTIONS.index(test) + 1) % len(SECTIONS)]
    return {"name": "spot_table", "root": args.data, "kwargs": {"label_names": "cluster_names.tsv"},
            "train": [s for s in SECTIONS if s not in (test, val)], "val": [val], "test": [test]}


def config(args, f: dict, test: str, out: Path) -> dict:
    return make_config({
        "seed": args.seed, "output": str(out),
        "data": split_data(args, test),
        "patches": {"patch_size": 32, "window_um": 200.0, "window_spots": None, "standardize": True},
        "f": f,
        "g": {"name": "unet"},
        "model": {"g_residual": True, "f_tta": args.f_tta, "g_tta": args.g_tta, "f_ensemble": args.f_ensemble},
        "train": {"regimen": "two_stage", "epochs_f": args.epochs_f, "epochs_g": args.epochs_g, "lr": 1e-3,
                  "batch_size": 32, "color_jitter": 0.1, "label_smoothing": args.label_smoothing,
                  "pretrain_epochs": args.pretrain_epochs if args.epochs_f else 0,
                  "cross_fit": args.cross_fit, "augment_sections": args.augment_sections,
                  "progress": False},
    })


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "her2st"))
    ap.add_argument("--out", default="runs/her2st")
    ap.add_argument("--epochs-f", type=int, default=12)
    ap.add_argument("--epochs-g", type=int, default=40)
    ap.add_argument("--genes", type=int, default=1000, help="highly variable genes of the expression f")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--f-tta", action=argparse.BooleanOptionalAction, default=False,
                    help="f's predictions average the 8 flips/turns of each patch")
    ap.add_argument("--label-smoothing", type=float, default=0.0)
    ap.add_argument("--f-ensemble", type=int, default=1, help="f's averaged before g (model.f_ensemble)")
    ap.add_argument("--augment-sections", action="store_true", help="g sees sections turned and mirrored")
    ap.add_argument("--g-tta", action="store_true", help="g's predictions average the lattice symmetries")
    ap.add_argument("--pretrain-epochs", type=int, default=0, help="self-supervised epochs of f first")
    ap.add_argument("--cross-fit", type=int, default=0, help="g on cross-fitted f outputs (groups; 0: off)")
    ap.add_argument("--only", nargs="*", help="inputs to run (default: all three)")
    ap.add_argument("--tests", nargs="+", default=SECTIONS, choices=SECTIONS, help="test sections (default all five)")
    add_protocol_args(ap)
    args = ap.parse_args(argv)
    if not (Path(args.data) / "C2_counts.tsv.gz").is_file():
        print(f"skipped: her2st data with counts not found at {args.data}")
        return
    if args.trials:
        return protocol(args)
    results, t0 = {}, time.perf_counter()
    for name, f in inputs(args).items():
        if args.only and name not in args.only:
            continue
        folds = []
        for test in args.tests:
            cfg = config(args, f, test, Path(args.out) / name.replace("+", "_") / test)
            run = run_training(cfg, resume=False, overwrite=True, figures=False, log=lambda line: None)
            res, val = run["test"], run["val"]
            folds.append({h: {m: res[h][m] for m in ("accuracy", "macro_auroc")} for h in ("f", "f+g")})
            for h in ("f", "f+g"):  # the validation section's scores of the kept model
                folds[-1][h].update({f"val_{m}": val[h][m] for m in ("accuracy", "macro_auroc")})
            print(f"{name} test {test}: f {folds[-1]['f']['accuracy']:.3f}  f+g {folds[-1]['f+g']['accuracy']:.3f}",
                  flush=True)
        results[name] = folds
    rows = []
    for name, folds in results.items():
        for head in ("f", "f+g"):
            cells = []
            for metric in ("accuracy", "macro_auroc", "val_accuracy", "val_macro_auroc"):
                v = np.array([fold[head][metric] for fold in folds])
                cells.append(f"{v.mean():.3f} ± {v.std(ddof=1):.3f}")
            rows.append([name, head, *cells])
    text = (f"her2st C2-C6, leave one section out (5 folds), on {machine()}, "
            f"{(time.perf_counter() - t0) / 60:.1f} min\n\n"
            + print_table(["input", "head", "accuracy", "macro AUROC", "val accuracy", "val macro AUROC"], rows)
            + "\n")
    out = Path(args.out)
    with atomic_write(out / "results.md") as fh:
        fh.write(text)
    with atomic_write(out / "results.json") as fh:
        json.dump(results, fh, indent=1)
    print("\n" + text)


def protocol(args) -> None:
    """``--trials``: per input and fold, the paper's search and the ensemble of its K best trials."""
    t0, text = time.perf_counter(), []
    results = {}
    for name, f in inputs(args).items():
        if args.only and name not in args.only:
            continue
        folds = []
        for test in args.tests:
            cfg = config(args, f, test, Path(args.out) / "protocol" / name.replace("+", "_") / test)
            folds.append({"name": test, "protocol": run_protocol(cfg, args, log=lambda line: None)})
            e = folds[-1]["protocol"]["ensemble"]
            print(f"{name} test {test}: ensemble f {e['f']['accuracy']:.3f} f+g {e['f+g']['accuracy']:.3f}", flush=True)
        results[name] = folds
        text += [f"### {name}\n", print_table(PROTOCOL_HEADER, protocol_rows(folds)), "",
                 "Mean ± SD over folds:\n", print_table(SUMMARY_HEADER, protocol_summary(folds)), ""]
    head = (f"her2st, the paper's protocol per fold ({args.trials} trials, ensemble of the {args.ensemble} best, "
            f"{args.ensemble_method}), test sections {' '.join(args.tests)}, on {machine()}, "
            f"{(time.perf_counter() - t0) / 60:.1f} min\n")
    out = Path(args.out) / "protocol"
    with atomic_write(out / "results.md") as fh:
        fh.write(head + "\n" + "\n".join(text) + "\n")
    with atomic_write(out / "results.json") as fh:
        json.dump(results, fh, indent=1)
    print("\n" + head)


if __name__ == "__main__":
    main()
