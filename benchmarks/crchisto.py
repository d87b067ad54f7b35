"""CRCHistoPhenotypes nuclei (irregular points): f alone vs f + g (GCN on a kNN graph).

Every detected nucleus is a node; unclassified ones are nodes without a loss. f classifies a
small patch around each nucleus; g is a GCN over the kNN graph of the image's nuclei. Trained
on ``train/`` (70 images), the best epoch selected on ``validation/`` (10 images), where the
metrics are reported beside the original paper's (softmax CNN + neighbouring ensemble).

    python benchmarks/crchisto.py                              # train, then report on validation/
        # (g corrects f's log-probabilities; --g-input / --no-g-residual for the other variants)
    python benchmarks/crchisto.py --evaluate runs/crchisto/best.pt --folder DIR
    python benchmarks/crchisto.py --trials 10 --ensemble 5
        # the paper's protocol: the search trains on 60 images of train/ and selects on its other
        # 10, so that validation/ stays a report set for the ensemble
        # any folder of imgN.png + imgN_nuclei.csv, with a saved checkpoint

Writes ``results.md`` / ``results.csv`` / ``results.json`` and maps of one image into ``--out``.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import add_training_args, f_config, machine, print_table, scores  # noqa: E402
from _protocol import PROTOCOL_HEADER, add_protocol_args, protocol_rows, run_protocol  # noqa: E402

from gridgraph.config import make_config  # noqa: E402
from gridgraph.workflows import load_splits  # noqa: E402
from gridgraph.files.atomic import atomic_write  # noqa: E402
from gridgraph.inference import predict_probs  # noqa: E402
from gridgraph.workflows import build_run, load_model, section_figures  # noqa: E402

PAPER = {"weighted_f1": 0.784, "macro_auroc": 0.917}
CLASSES = ["epithelial", "fibroblast", "inflammatory", "others"]


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "crchisto"))
    ap.add_argument("--out", default="runs/crchisto")
    ap.add_argument("--evaluate", metavar="CHECKPOINT", help="evaluate a saved model instead of training")
    ap.add_argument("--folder", help="with --evaluate: folder of imgN.png + imgN_nuclei.csv")
    ap.add_argument("--k", type=int, default=8, help="neighbours of the kNN graph")
    add_training_args(ap, epochs_f=15, epochs_g=80, window_px=32.0)
    add_protocol_args(ap)
    return ap.parse_args(argv)


def config(args, root: str, train, val, test=()) -> dict:
    return make_config({
        "seed": args.seed,
        "output": args.out,
        "data": {"name": "nuclei", "root": root, "kwargs": {},
                 "classes": CLASSES, "train": train, "val": val, "test": list(test)},
        "graph": {"name": "knn", "kwargs": {"k": args.k}},
        "patches": {"patch_size": args.patch_size, "window_px": args.window_px, "window_spots": None},
        "f": f_config(args),
        "g": {"name": "gcn", "kwargs": {"hidden_channels": 64, "num_layers": 4, "dropout": 0.1}},
        "model": {"g_input": args.g_input, "g_residual": args.g_residual, "g_ensemble": args.g_ensemble,
                  "g_zero_init": args.g_zero_init,
                  "f_tta": args.f_tta, "f_ensemble": args.f_ensemble},
        "train": {"regimen": "two_stage", "epochs_f": args.epochs_f, "epochs_g": args.epochs_g,
                  "lr": args.lr, "label_smoothing": args.label_smoothing,
                  "pretrain_epochs": args.pretrain_epochs if args.epochs_f else 0, "cross_fit": args.cross_fit,
                  "accumulate": 8, "batch_size": 64, "progress": False},
    })



def report(args, res: dict, where: str) -> str:
    rows = [[head, res[head]["accuracy"], res[head]["weighted_f1"], res[head]["macro_auroc"]]
            for head in ("f", "f+g")]
    rows.append(["Sirinukunwattana et al. 2016 (paper)", "-", PAPER["weighted_f1"], PAPER["macro_auroc"]])
    text = (f"CRCHisto nuclei, {where}: {res['images']} images, {res['num_labeled']} classified nuclei; "
            f"on {machine()}\n\n" + print_table(["model", "accuracy", "weighted F1", "macro AUROC"], rows))
    per = [[h] + [f"{v:.3f}" for v in res[h]["per_class_auroc"]] for h in ("f", "f+g")]
    text += "\n\nPer-class AUROC:\n\n" + print_table(["model"] + CLASSES, per) + "\n"
    out = Path(args.out)
    with atomic_write(out / "results.md") as fh:
        fh.write(text)
    with atomic_write(out / "results.csv") as fh:
        csv.writer(fh).writerows([["model", "accuracy", "weighted_f1", "macro_auroc"], *rows])
    with atomic_write(out / "results.json") as fh:
        json.dump(res, fh, indent=1)
    return text


def evaluate(model, sections) -> dict:
    probs = predict_probs(model, sections)
    y = torch.cat([st.labels for st in sections])
    return {"images": len(sections), "num_labeled": int((y >= 0).sum()),
            "f": scores(y, torch.cat([p[0] for p in probs])),
            "f+g": scores(y, torch.cat([p[1] for p in probs])), "probs": probs}


def main(argv=None) -> None:
    args = parse(argv)
    if args.evaluate:
        model, ckpt = load_model(args.evaluate)
        folder = Path(args.folder or Path(args.data) / "validation")
        cfg = ckpt.config
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"root": str(folder), "test": ["*"]})})
        sections = load_splits(cfg, splits=("test",), classes=ckpt.classes, features=ckpt.features)[0]["test"]
        res = evaluate(model, sections)
        res.pop("probs")
        print(report(args, res, str(folder)))
        return
    if not (Path(args.data) / "train").is_dir():
        print(f"skipped: CRCHisto data not found at {args.data}")
        return
    if args.trials:
        return protocol(args)
    cfg = config(args, args.data, ["train/*"], ["validation/*"])
    # a frozen backbone: its embeddings once per image, on disk (unchanged sections otherwise)
    run = build_run(cfg, splits=("train", "val"), embedding_folder=Path(args.out) / "embeddings")
    model, splits, classes = run.model, run.splits, run.classes
    t0 = time.perf_counter()
    run.trainer(out_dir=args.out, log=lambda s: print(s, flush=True)).fit(splits["train"], splits["val"], resume=False)
    res = evaluate(model, splits["val"])
    probs = res.pop("probs")
    res["minutes"] = (time.perf_counter() - t0) / 60
    biggest = max(range(len(splits["val"])), key=lambda i: splits["val"][i].num_nodes)
    section_figures(splits["val"][biggest], probs[biggest], classes, Path(args.out))
    print("\n" + report(args, res, "validation/"))


def protocol(args) -> None:
    """``--trials``: the search on train/ (its last 10 images select), the ensemble reported on validation/."""
    images = sorted(p.name[:-len("_nuclei.csv")] for p in (Path(args.data) / "train").glob("*_nuclei.csv"))
    train, val = [f"train/{i}" for i in images[:-10]], [f"train/{i}" for i in images[-10:]]
    cfg = config(args, args.data, train, val, ["validation/*"])
    cfg = cfg.model_copy(update={"output": str(Path(args.out) / "protocol"), "train": cfg.train.model_copy(
        update={"embedding_cache": str(Path(args.out) / "embeddings")})})
    res = run_protocol(cfg, args, log=lambda line: print(line, flush=True) if not line.startswith("  [") else None)
    text = (f"CRCHisto, the paper's protocol ({args.trials} trials on {len(train)} train/ images selected on "
            f"{len(val)} others, ensemble of the {args.ensemble} best, {args.ensemble_method}), reported on "
            f"validation/, on {machine()}\n\n" + print_table(PROTOCOL_HEADER, protocol_rows(
                [{"name": "validation/", "protocol": res}])) + "\n")
    with atomic_write(Path(args.out) / "protocol" / "results.md") as fh:
        fh.write(text)
    with atomic_write(Path(args.out) / "protocol" / "results.json") as fh:
        json.dump(res, fh, indent=1)
    print("\n" + text)


if __name__ == "__main__":
    main()
