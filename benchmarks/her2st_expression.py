"""her2st (classic ST, patient C): predict gene expression from the H&E image, f vs f + g vs ridge.

Leave one section out over C2-C6: each section is the test set once, the next one (cyclically)
validation, the other three training. The target is the ``--genes`` (50; 250 with ``--genes
250``) most variable genes of the three training sections, normalised per spot total, log1p'd
and standardised with the training spots' statistics. f = gridnet_simple on 32 px patches of
200 µm, trained with MSE; f + g: the U-Net g on the ST grid and a GCN, each correcting f's
predicted values as a residual on f's cached outputs (the same trained f for both, two-stage);
ridge: closed-form ridge regression on the trained f's embeddings (penalty picked on the
validation section), as the HEST-Benchmark does on a frozen backbone's. Scores: Pearson r per
gene across the test section's spots, mean and median over the genes.

    python benchmarks/her2st_expression.py [--data ../shared/data/her2st] [--genes 50]
        [--epochs-f 12 --epochs-g 40]

Prints per-fold and mean Pearson r, the genes predicted best, and writes ``results.md`` /
``results.json`` into ``--out``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_table  # noqa: E402
from her2st import SECTIONS, split_data  # noqa: E402

from gridgraph.config import make_config  # noqa: E402
from gridgraph.evaluate.regression import regression_metrics  # noqa: E402
from gridgraph.evaluate.ridge import select_ridge  # noqa: E402
from gridgraph.files.atomic import atomic_write  # noqa: E402
from gridgraph.inference import node_embeddings  # noqa: E402
from gridgraph.workflows import build_run  # noqa: E402

HEADS = ("f", "f+g unet", "f+g gcn", "ridge")
GCN = {"name": "gcn", "kwargs": {"hidden_channels": 64, "num_layers": 3, "residual": True}}


def config(args, test: str, out: Path, g: dict, epochs_f: int) -> dict:
    return make_config({
        "seed": args.seed, "output": str(out),
        "data": split_data(args, test),
        "patches": {"patch_size": 32, "window_um": 200.0, "standardize": True},
        "f": {"name": "gridnet_simple"},
        "g": g,
        "model": {"g_input": "logits", "g_residual": True, "g_ensemble": args.g_ensemble},
        "target": {"kind": "expression", "top_variable": args.genes, "standardize": True, "loss": args.loss,
                   "counts": str(Path(args.data) / "{section}_counts.tsv.gz"), "id_format": "{x}x{y}"},
        "train": {"regimen": "two_stage", "epochs_f": epochs_f, "epochs_g": args.epochs_g, "lr": args.lr,
                  "batch_size": 32, "color_jitter": 0.1, "progress": False},
    })


def scores(y: torch.Tensor, pred) -> dict:
    return regression_metrics(y, pred, per_gene=True)


def fold(args, test: str) -> dict:
    """One fold: f and f + U-Net g trained, then a GCN g on the same f, then ridge."""
    quiet = lambda line: None  # noqa: E731
    out = Path(args.out) / test
    unet = build_run(config(args, test, out / "unet", {"name": "unet"}, args.epochs_f), log=quiet)
    splits = unet.splits
    genes = list(unet.classes)
    y = {s: torch.cat([st.targets for st in splits[s]]) for s in ("train", "val", "test")}
    trainer = unet.trainer(log=quiet).fit(splits["train"], splits["val"])
    res = {"genes": genes}
    (f_pred, unet_pred), = trainer.predict(splits["test"])
    res["f"], res["f+g unet"] = scores(y["test"], f_pred), scores(y["test"], unet_pred)
    res["unet_kept_g"] = bool(trainer.model.use_g)
    f_state = {k: v.clone() for k, v in trainer.model.f.state_dict().items()}
    # the GCN g on the same trained f (no f epochs: the f stage of the regimen is empty)
    gcn = build_run(config(args, test, out / "gcn", GCN, 0), log=quiet, sections_of=unet)
    gcn.model.f.load_state_dict(f_state)
    g_trainer = gcn.trainer(log=quiet).fit(splits["train"], splits["val"])
    (_, gcn_pred), = g_trainer.predict(splits["test"])
    res["f+g gcn"] = scores(y["test"], gcn_pred)
    res["gcn_kept_g"] = bool(g_trainer.model.use_g)
    emb = {s: torch.cat([node_embeddings(trainer.model, st) for st in splits[s]]) for s in y}
    ridge = select_ridge(emb["train"], y["train"], emb["val"], y["val"])
    res["ridge"] = scores(y["test"], ridge.predict(emb["test"]))
    res["ridge_penalty"] = ridge.penalty
    return res


def best_genes(folds: dict, head: str, top: int = 10) -> list:
    """``(gene, mean r over the folds that predicted it, folds)`` best first."""
    seen = defaultdict(list)
    for res in folds.values():
        for gene, r in zip(res["genes"], res[head]["pearson"]):
            if r is not None:
                seen[gene].append(r)
    ranked = sorted(seen.items(), key=lambda kv: -np.mean(kv[1]))
    return [(g, float(np.mean(v)), len(v)) for g, v in ranked[:top]]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "her2st"))
    ap.add_argument("--out", default="runs/her2st_expression")
    ap.add_argument("--genes", type=int, default=50, help="most variable genes of the training sections (50 or 250)")
    ap.add_argument("--epochs-f", type=int, default=12)
    ap.add_argument("--epochs-g", type=int, default=40)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--loss", default="mse")
    ap.add_argument("--g-ensemble", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--folds", nargs="*", default=SECTIONS, help="test sections to run (default: all five)")
    args = ap.parse_args(argv)
    if not (Path(args.data) / "C2_counts.tsv.gz").is_file():
        print(f"skipped: her2st data with counts not found at {args.data}")
        return
    t0 = time.perf_counter()
    folds = {}
    for test in args.folds:
        t = time.perf_counter()
        folds[test] = res = fold(args, test)
        print(f"test {test}: " + "  ".join(f"{h} {res[h]['mean_pearson']:.3f}" for h in HEADS)
              + f"  (g kept: unet {res['unet_kept_g']}, gcn {res['gcn_kept_g']}; ridge penalty "
              f"{res['ridge_penalty']:g}; {time.perf_counter() - t:.0f} s)", flush=True)
    rows = [[test] + [f"{res[h]['mean_pearson']:.3f} / {res[h]['median_pearson']:.3f}" for h in HEADS]
            for test, res in folds.items()]
    means = {h: (np.mean([r[h]["mean_pearson"] for r in folds.values()]),
                 np.mean([r[h]["median_pearson"] for r in folds.values()])) for h in HEADS}
    rows.append(["mean"] + [f"{means[h][0]:.3f} / {means[h][1]:.3f}" for h in HEADS])
    table = print_table(["test section", *(f"{h} mean / median r" for h in HEADS)], rows)
    extra = print_table(["head", "genes r > 0.3 (mean over folds)", "Bonferroni-significant", "MSE"],
                        [[h, f"{np.mean([r[h]['genes_r_above_0.3'] for r in folds.values()]):.1f}",
                          f"{np.mean([r[h]['genes_significant'] for r in folds.values()]):.1f}",
                          f"{np.mean([r[h]['mse'] for r in folds.values()]):.3f}"] for h in HEADS])
    best = best_genes(folds, "f+g unet")
    named = ", ".join(f"{g} {r:.2f} ({n})" for g, r, n in best)
    text = (f"her2st C2-C6, {args.genes} most variable genes, leave one section out ({len(folds)} folds), "
            f"f {args.epochs_f} epochs, g {args.epochs_g} epochs, on {machine()}, "
            f"{(time.perf_counter() - t0) / 60:.1f} min\n\n{table}\n\n{extra}\n\n"
            f"best predicted genes (f + U-Net g, mean r over the folds that selected them, folds): {named}\n")
    out = Path(args.out)
    with atomic_write(out / "results.md") as fh:
        fh.write(text)
    with atomic_write(out / "results.json") as fh:
        json.dump(folds, fh, indent=1, default=float)
    print("\n" + text)


if __name__ == "__main__":
    main()
