"""DLPFC (10x Visium, hexagonal): the GridNet paper's six folds, f alone vs f + g.

Each fold of two sections is held out once as test. Of the ten other sections, the next fold
(in the paper's order) is the validation set that picks the best epoch, and the remaining eight
train. Hyperparameters are fixed in advance (the command line below); nothing is chosen on a
test fold. f is trained once per fold (stage 1 of the two-stage regimen) and shared by every g,
each trained on f's cached outputs (stage 2).

    python benchmarks/dlpfc_cv.py                 # all six folds, g = unet, hexconv and gcn
    python benchmarks/dlpfc_cv.py --quick         # one fold (151673, 151674), < 15 min on 2 cores
    python benchmarks/dlpfc_cv.py --correctors unet --trials 10 --ensemble 5   # the paper's protocol
        # per fold: the search trains on the eight training sections and selects on the validation fold

Writes ``results.md``, ``results.csv``, ``results.json`` and maps of one test section into
``--out``. Reads ../shared/data/dlpfc (lowres images, about 6 px between spots).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import add_training_args, f_config, machine, print_table, scores  # noqa: E402
from _protocol import PROTOCOL_HEADER, SUMMARY_HEADER, add_protocol_args, protocol_rows, protocol_summary, \
    run_protocol  # noqa: E402

from gridgraph.config import make_config  # noqa: E402
from gridgraph.evaluate import DLPFC_FOLDS, cv_splits_with_validation  # noqa: E402
from gridgraph.files.atomic import atomic_write  # noqa: E402
from gridgraph.inference import predict_probs  # noqa: E402
from gridgraph.workflows import build_run, section_figures  # noqa: E402

CLASSES = ["L1", "L2", "L3", "L4", "L5", "L6", "WM"]
PAPER = {"f": {"accuracy": 0.544, "macro_auroc": 0.799}, "f+g": {"accuracy": 0.564, "macro_auroc": 0.796}}
G_KWARGS = {
    "unet": {"base_channels": 16, "depth": 3, "dropout": 0.2},
    "hexconv": {"hidden_channels": 64, "num_layers": 12, "relu_every": 1},
    "gcn": {"hidden_channels": 64, "num_layers": 12, "dropout": 0.1},
    "sage": {"hidden_channels": 64, "num_layers": 12, "dropout": 0.1},
}


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "dlpfc"))
    ap.add_argument("--out", default="runs/dlpfc_cv")
    ap.add_argument("--quick", action="store_true", help="one fold only: (151673, 151674)")
    ap.add_argument("--folds", type=int, nargs="+", help="test fold numbers 1..6 (default all)")
    ap.add_argument("--correctors", nargs="+", default=["unet", "hexconv", "gcn"])
    ap.add_argument("--reuse-f", metavar="RUN_DIR",
                    help="take each fold's f from an earlier run's --out folder (f is not trained): "
                         "compare g's or inference options on the same f")
    ap.add_argument("--augment-sections", action=argparse.BooleanOptionalAction, default=False,
                    help="train g on randomly rotated / mirrored whole sections (hex lattice symmetries); "
                         "off by default: it lowered validation AUROC (sections share an orientation)")
    ap.add_argument("--standardize", action=argparse.BooleanOptionalAction, default=True,
                    help="per-section colour standardisation of the patches (default on)")
    ap.add_argument("--color-jitter", type=float, default=0.3,
                    help="strength of random colour changes of f's training patches (0: off)")
    ap.add_argument("--g-seeds", type=int, default=1,
                    help="separate runs of g per corrector (seeds seed..seed+n-1); f+g averages their softmax "
                         "(each run is itself an ensemble of --g-ensemble g's)")
    add_training_args(ap, epochs_f=10, epochs_g=60, window_px=40.0)
    add_protocol_args(ap)
    return ap.parse_args(argv)


def fold_config(args, test_fold: int, corrector: str, out: Path, epochs_f: int, seed: int):
    split = cv_splits_with_validation(DLPFC_FOLDS)[test_fold]
    return make_config({
        "seed": seed,
        "output": str(out),
        "data": {"name": "spaceranger", "root": args.data,
                 "kwargs": {"labels": str(Path(args.data) / "barcode_level_layer_map.tsv")},
                 "classes": CLASSES, "train": split.train, "val": split.val, "test": split.test},
        "patches": {"patch_size": args.patch_size, "window_px": args.window_px, "window_spots": None,
                    "standardize": args.standardize},
        "f": f_config(args),
        "g": {"name": corrector, "kwargs": G_KWARGS.get(corrector, {})},
        "model": {"g_input": args.g_input, "g_residual": args.g_residual, "g_ensemble": args.g_ensemble,
                  "g_zero_init": args.g_zero_init,
                  "f_tta": args.f_tta, "f_ensemble": args.f_ensemble},
        "train": {"regimen": "two_stage", "epochs_f": epochs_f, "epochs_g": args.epochs_g,
                  "lr": args.lr, "label_smoothing": args.label_smoothing,
                  "pretrain_epochs": args.pretrain_epochs if epochs_f else 0,
                  "cross_fit": args.cross_fit, "cross_fit_block": 2,  # adjacent pairs stay together
                  "accumulate": 2, "metric": "auroc", "progress": False,
                  "augment_sections": args.augment_sections, "color_jitter": args.color_jitter},
    })



def train_one(args, k, corrector, seed, out, f_state, sections_cache):
    """Train one model of the fold (f only when ``f_state`` is None); returns it and the splits."""
    cfg = fold_config(args, k, corrector, out, 0 if f_state is not None else args.epochs_f, seed)
    key = tuple(cfg.data.train + cfg.data.val + cfg.data.test)
    earlier = sections_cache.get(key)
    if earlier is None or earlier.cfg.f != cfg.f:
        sections_cache.clear()
        earlier = None
    # the sections once per fold; a frozen backbone's embeddings once per section, on disk
    run = build_run(cfg, log=lambda line: None, embedding_folder=Path(args.out) / "embeddings", sections_of=earlier)
    sections_cache[key] = run
    model, splits = run.model, run.splits
    if f_state is not None:
        model.f.load_state_dict(f_state)
    trainer = run.trainer(out_dir=out, log=lambda line: print(f"  fold {k + 1} {corrector} seed {seed}: {line}",
                                                              flush=True)).fit(splits["train"], splits["val"],
                                                                               resume=False)
    model.validation = trainer.state.best["metrics"] if trainer.state.best else {}
    return model, splits


def reused_f(args, k: int, corrector: str):
    """f's weights from an earlier run of this script (``--reuse-f``), else ``None``."""
    if not args.reuse_f:
        return None
    from gridgraph.train import load_checkpoint

    folder = Path(args.reuse_f) / f"fold{k + 1}" / corrector
    path = folder / "best.pt" if (folder / "best.pt").is_file() else folder / "seed0" / "best.pt"
    state = load_checkpoint(path)["model"]
    return {key[2:]: v for key, v in state.items() if key.startswith("f.")}


def run_fold(args, k: int, sections_cache: dict) -> list:
    """f once (with the first g), then ``--g-seeds`` g's per corrector; f+g is their mean softmax."""
    out = Path(args.out) / f"fold{k + 1}"
    rows, f_state = [], reused_f(args, k, args.correctors[0])
    for corrector in args.correctors:
        t0 = time.perf_counter()
        members = []
        for s in range(args.g_seeds):
            folder = out / corrector / (f"seed{s}" if args.g_seeds > 1 else "")
            model, splits = train_one(args, k, corrector, args.seed + s, folder, f_state, sections_cache)
            f_state = model.f.state_dict()
            members.append(predict_probs(model, splits["test"]))
            validation = model.validation
        probs = [(parts[0][0], torch.stack([p[1] for p in parts]).mean(0)) for parts in zip(*members)]
        y = torch.cat([st.labels for st in splits["test"]])
        res = {"fold": k + 1, "test": "+".join(st.name for st in splits["test"]), "g": corrector,
               "seconds": time.perf_counter() - t0, "g_seeds": args.g_seeds,
               "val": {key: v for key, v in validation.items() if isinstance(v, float)},
               "f": scores(y, torch.cat([p[0] for p in probs])),
               "f+g": scores(y, torch.cat([p[1] for p in probs]))}
        rows.append(res)
        val = res["val"]
        print(f"fold {k + 1} ({res['test']}) g={corrector}: acc f {res['f']['accuracy']:.3f} "
              f"f+g {res['f+g']['accuracy']:.3f}; macro AUROC f {res['f']['macro_auroc']:.3f} "
              f"f+g {res['f+g']['macro_auroc']:.3f}; validation AUROC f {val.get('f_macro_auroc', float('nan')):.3f} "
              f"f+g {val.get('macro_auroc', float('nan')):.3f}", flush=True)
        if k == args.figure_fold:
            section_figures(splits["test"][0], probs[0], CLASSES, Path(args.out), prefix=f"{corrector}_")
    return rows


def pooled(rows, g, head, key):
    vals = [r[head][key] for r in rows if r["g"] == g]
    return float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0


def report(args, rows) -> str:
    out = Path(args.out)
    table = []
    for r in rows:
        table.append([r["fold"], r["test"], r["g"], r["f"]["accuracy"], r["f+g"]["accuracy"],
                      r["f"]["macro_auroc"], r["f+g"]["macro_auroc"], r["seconds"] / 60])
    header = ["fold", "test sections", "g", "acc f", "acc f+g", "AUROC f", "AUROC f+g", "min"]
    text = [f"DLPFC, {len(set(r['fold'] for r in rows))} fold(s), lowres images, "
            f"window {args.window_px:g} px -> {args.patch_size} px, "
            f"colour standardised per section: {'yes' if args.standardize else 'no'}, "
            f"f colour jitter {args.color_jitter:g}, f+g = mean of {args.g_seeds} run(s) x {args.g_ensemble} g's, "
            f"on {machine()}\n",
            print_table(header, table), ""]
    summary = []
    for g in args.correctors:
        fa, fg = pooled(rows, g, "f", "accuracy"), pooled(rows, g, "f+g", "accuracy")
        ua, ug = pooled(rows, g, "f", "macro_auroc"), pooled(rows, g, "f+g", "macro_auroc")
        summary.append([f"gridgraph f / f+g ({g})", f"{fa[0]:.3f} ± {fa[1]:.3f}", f"{fg[0]:.3f} ± {fg[1]:.3f}",
                        f"{ua[0]:.3f} ± {ua[1]:.3f}", f"{ug[0]:.3f} ± {ug[1]:.3f}"])
    summary.append(["GridNet paper, Table 3 (full resolution)", PAPER["f"]["accuracy"], PAPER["f+g"]["accuracy"],
                    PAPER["f"]["macro_auroc"], PAPER["f+g"]["macro_auroc"]])
    text += ["Mean ± SD over folds:\n",
             print_table(["model", "acc f", "acc f+g", "macro AUROC f", "macro AUROC f+g"], summary), ""]
    per_class = [[g] + [f"{np.nanmean([r['f+g']['per_class_auroc'][i] for r in rows if r['g'] == g]):.3f}"
                        for i in range(len(CLASSES))] for g in args.correctors]
    text += ["Per-class AUROC of f+g (mean over folds):\n", print_table(["g"] + CLASSES, per_class)]
    md = "\n".join(text) + "\n"
    with atomic_write(out / "results.md") as fh:
        fh.write(md)
    with atomic_write(out / "results.csv") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(table)
    with atomic_write(out / "results.json") as fh:
        json.dump(rows, fh, indent=1)
    return md


def main(argv=None) -> None:
    args = parse(argv)
    if not (Path(args.data) / "barcode_level_layer_map.tsv").is_file():
        print(f"skipped: DLPFC data not found at {args.data}")
        return
    folds = [4] if args.quick else [k - 1 for k in (args.folds or range(1, 7))]
    args.figure_fold = folds[0]
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    if args.trials:
        return protocol(args, folds)
    rows, cache = [], {}
    for k in folds:
        rows += run_fold(args, k, cache)
        report(args, rows)
    print("\n" + report(args, rows))


def protocol(args, folds) -> None:
    """``--trials``: per fold, the paper's search (first corrector) and its top-K ensemble on the test fold."""
    t0, done = time.perf_counter(), []
    for k in folds:
        cfg = fold_config(args, k, args.correctors[0], Path(args.out) / "protocol" / f"fold{k + 1}", args.epochs_f,
                          args.seed)
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(
            update={"embedding_cache": str(Path(args.out) / "embeddings")})})  # shared by every trial
        done.append({"name": f"{k + 1} ({'+'.join(cfg.data.test)})",
                     "protocol": run_protocol(cfg, args, log=lambda line: print(line, flush=True)
                                              if not line.startswith("  [") else None)})
        text = (f"DLPFC, the paper's protocol per fold ({args.trials} trials, ensemble of the {args.ensemble} best, "
                f"{args.ensemble_method}; g = {args.correctors[0]}), lowres images, on {machine()}, "
                f"{(time.perf_counter() - t0) / 60:.1f} min\n\n" + print_table(PROTOCOL_HEADER, protocol_rows(done))
                + "\n\nMean ± SD over folds:\n\n" + print_table(SUMMARY_HEADER, protocol_summary(done)) + "\n")
        with atomic_write(Path(args.out) / "protocol" / "results.md") as fh:
            fh.write(text)
        with atomic_write(Path(args.out) / "protocol" / "results.json") as fh:
            json.dump(done, fh, indent=1)
    print("\n" + text)


if __name__ == "__main__":
    main()
