"""The ``gridgraph`` console script: train, evaluate, predict, demo.

Every bad argument or file ends with one line ``gridgraph: error: ...`` and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Optional, Sequence

from .config import ConfigError, load_config, make_config


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: one line, exit 2
        self.exit(2, f"gridgraph: error: {message}\n")


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train f and g as a config file says")
    p.add_argument("config", help="YAML config file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set g.name=gcn (repeatable)")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing last.pt")


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="metrics of checkpoints (several: also their ensemble)")
    p.add_argument("checkpoints", nargs="+", help="checkpoint files (best.pt)")
    p.add_argument("--data", help="YAML config whose data section names the sections "
                   "(default: the checkpoint's own)")
    p.add_argument("--split", default="test", help="split of the data section (default: test)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", help="write the metrics as JSON here")


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="label a new section with a checkpoint")
    p.add_argument("checkpoint")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--spaceranger", metavar="DIR", help="Space Ranger spatial/ folder or its parent")
    src.add_argument("--nuclei", metavar="CSV", help="nuclei CSV (x, y[, label]); needs --image")
    src.add_argument("--spot-table", metavar="TSV", help="per-spot table; needs --image")
    src.add_argument("--synthetic", metavar="SEED", type=int, help="a synthetic section")
    p.add_argument("--image", help="image of --nuclei / --spot-table")
    p.add_argument("--fullres-image", help="with --spaceranger: the full-resolution image")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--no-figure", action="store_true")


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="train on synthetic tissue and compare f with f+g")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--quick", action="store_true", help="a few epochs only (smoke test)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gridgraph", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in (_add_train, _add_evaluate, _add_predict, _add_demo):
        add(sub)
    return parser


DEMO_CONFIG = {
    "output": "runs/demo",
    "data": {"reader": "synthetic", "options": {"layout": "hex", "n_classes": 5},
             "train": [1, 2, 3, 4], "val": [5], "test": [6]},
    "patches": {"patch_size": 32, "window_spots": 1.0},
    "f": {"name": "gridnet_simple"},
    "g": {"name": "gcn", "kwargs": {"hidden_channels": 64, "num_layers": 4}},
    "train": {"regimen": "two_stage", "epochs_f": 6, "epochs_g": 40, "lr": 1e-3},
}
QUICK = ["train.epochs_f=1", "train.epochs_g=2", "data.train=[1]", "data.val=[2]", "data.test=[3]"]


def _cmd_train(args) -> int:
    from .pipeline import run_training

    cfg = load_config(args.config, args.overrides)
    run_training(cfg, resume=not args.no_resume)
    return 0


def _cmd_demo(args) -> int:
    from .pipeline import run_training

    overrides = (QUICK if args.quick else []) + [f"output={args.out}"] + args.overrides
    cfg = make_config(DEMO_CONFIG, overrides, source="demo")
    result = run_training(cfg, resume=False)
    f_acc, fg_acc = result["test"]["f"]["accuracy"], result["test"]["f+g"]["accuracy"]
    print(f"\ndemo: test accuracy f alone {f_acc:.3f}, f+g {fg_acc:.3f} "
          f"({fg_acc - f_acc:+.3f}); figures and checkpoints in {args.out}")
    return 0


def _cmd_evaluate(args) -> int:
    from .evaluate import format_comparison
    from .pipeline import evaluate_checkpoints, write_json

    if args.overrides and not args.data:
        raise ValueError("--set needs --data (the checkpoint's own settings are used as saved)")
    data = load_config(args.data, args.overrides)["data"] if args.data else None
    result = evaluate_checkpoints(args.checkpoints, data, split=args.split)
    for path, res in result["models"].items():
        print(f"{path}:\n{format_comparison(res)}\n")
    ens = {k: v for k, v in result.items() if k.startswith("ensemble_")}
    if ens:
        print("ensembles:\n" + format_comparison(ens))
    if args.out:
        write_json(args.out, result)
    return 0


def _cmd_predict(args) -> int:
    from .io import read_nuclei_csv, read_spaceranger, read_spot_table
    from .pipeline import load_model, predict_section

    model, ckpt = load_model(args.checkpoint)
    data = ckpt["config"]["data"]

    def trained_options(reader: str, keys) -> dict:
        """The reader options the model was trained with (graph rule, k, ...), same reader only."""
        opts = data.get("options") or {}
        return {k: opts[k] for k in keys if k in opts} if data["reader"] == reader else {}

    if args.spaceranger:
        opts = trained_options("spaceranger", ("image",))
        if opts.get("image") not in ("auto", "hires", "lowres", "fullres"):
            opts = {}  # an image path of the training data is no use for another section
        section = read_spaceranger(args.spaceranger, fullres_image=args.fullres_image, **opts)
    elif args.synthetic is not None:
        from .synthetic import make_section

        section = make_section(seed=args.synthetic, **trained_options("synthetic", data.get("options") or {}))
    else:
        if not args.image:
            raise ValueError("--nuclei and --spot-table need --image")
        if args.nuclei:
            section = read_nuclei_csv(args.nuclei, args.image, **trained_options("nuclei", ("graph", "k", "r")))
        else:
            section = read_spot_table(args.spot_table, image=args.image,
                                      **trained_options("spot_table", ("connectivity",)))
    paths = predict_section(model, ckpt, section, args.out, figures=not args.no_figure)
    print(json.dumps({k: str(v) for k, v in paths.items()}, indent=2))
    return 0


COMMANDS = {"train": _cmd_train, "evaluate": _cmd_evaluate, "predict": _cmd_predict, "demo": _cmd_demo}


def main(argv: Optional[Sequence[str]] = None) -> int:
    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # argparse: --help (0) or a usage error (2, already printed)
        return int(stop.code or 0)
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, ValueError, OSError, RuntimeError, KeyError, TypeError) as err:
        message = f"missing key {err.args[0]!r}" if isinstance(err, KeyError) and err.args else str(err)
        print(f"gridgraph: error: {' '.join(message.split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gridgraph: interrupted (rerun the same command to resume from last.pt)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
