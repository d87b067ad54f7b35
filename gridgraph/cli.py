"""The ``gridgraph`` console script: train, evaluate, predict, demo.

Bad arguments, configs and files end with one line ``gridgraph: error: ...`` and exit status 2;
running out of memory and internal errors say so (exit 1); ``--debug`` shows the traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
import traceback
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional, Sequence

from .config import load_config, make_config
from .config.prediction import reader_options
from .names import EnsembleMethod


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: one line, exit 2
        self.exit(2, f"gridgraph: error: {message}\n")


def _add_set(p) -> None:
    p.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override config values, e.g. --set g.name=gcn train.lr=1e-4 (repeatable)")


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train f and g as a config file says")
    p.add_argument("config", help="YAML config file")
    _add_set(p)
    p.add_argument("--no-resume", action="store_true", help="do not continue the run in the output folder")
    p.add_argument("--overwrite", action="store_true", help="replace the run in the output folder")
    p.add_argument("--progress", action="store_true", help="progress bars even when stderr is not a terminal")


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="metrics of checkpoints (several: also their ensemble)")
    p.add_argument("checkpoints", nargs="+", help="checkpoint files (best.pt) or ensemble files (ensemble.pt: its members)")
    p.add_argument("--data", help="YAML config whose data section names the sections "
                   "(default: each checkpoint's own)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"),
                   help="split of the data section (default: test)")
    _add_set(p)
    p.add_argument("--out", help="write the metrics as JSON here (a new file unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")


def _predict_flags() -> dict:
    """``{argparse dest: reader name}`` of predict's input flags, one per registered reader."""
    from .io.readers.registry import predict_flags

    return {flag.replace("-", "_"): reader for flag, reader in predict_flags().items()}


# predict's per-input options, filled into the reader's file arguments
INPUT_OPTIONS = ("image", "fullres_image", "alignment", "library_id")


def _flags_taking(option: str) -> list:
    """The input flags whose reader takes the per-input ``option`` (``--nuclei``, ...)."""
    from .io.readers.registry import flags_taking

    return flags_taking(option)


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="label new sections with a checkpoint or an ensemble (several "
                       "sections: split over the processes of torchrun)")
    p.add_argument("checkpoints", nargs="+", metavar="checkpoint",
                   help="best.pt, or ensemble.pt; several: predicted as one ensemble")
    p.add_argument("--ensemble-method", choices=EnsembleMethod.values(),
                   help="how an ensemble combines its members: mean probabilities (default) or the "
                        "paper's unweighted vote (default: the ensemble file's)")
    from .io.readers.registry import READERS

    src = p.add_mutually_exclusive_group(required=True)
    for dest, reader in _predict_flags().items():
        src.add_argument(f"--{dest.replace('_', '-')}", dest=dest, metavar="PATH", nargs="+",
                         help=f"{READERS.get(reader).help or reader + ' input'}; several (or a glob, or @FILE "
                              "listing one per line): one output folder each under --out")
    what = {"image": "the image", "fullres_image": "the full-resolution image",
            "alignment": "the alignment CSV of the H&E image", "library_id": "the library (section) to predict"}
    for option in INPUT_OPTIONS:
        p.add_argument(f"--{option.replace('_', '-')}",
                       help=f"with {' / '.join(_flags_taking(option)) or 'no input'}: {what[option]}")
    from .io.readers.registry import flags_with_levels

    p.add_argument("--image-level", choices=("lowres", "hires", "fullres"),
                   help=f"with {' / '.join(flags_with_levels())}: the image to read (fullres: --fullres-image's "
                        "or the bundle's; default: the level the model was trained on when the input has it, "
                        "else the reader's pick; predict says which)")
    p.add_argument("--counts", help="gene counts of the section, for a model that reads expression "
                   "('{section}' stands for the section id; default: the file its config names)")
    p.add_argument("--embeddings", help="precomputed node embeddings of the section, for a model that reads them")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--no-figure", action="store_true")
    p.add_argument("--qupath", action="store_true",
                   help="also write predictions.geojson (QuPath objects with class and probabilities)")
    p.add_argument("--anndata", action="store_true",
                   help="also write predictions.h5ad (for --h5ad always: the input annotated)")
    p.add_argument("--device", default="auto", help="where the model runs: auto (a GPU when there is one), "
                   "cpu, cuda, cuda:N; under torchrun each process uses its LOCAL_RANK's GPU (default: auto)")
    p.add_argument("--progress", action="store_true", help="a progress bar even when stderr is not a terminal")
    p.add_argument("--strict", action="store_true", help="refuse an input whose graph layout or node kind (spots, "
                   "cells) differs from the training sections' (default: warn)")
    from .config.prediction import PREDICT_SETTINGS

    p.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="change how the trained model runs, e.g. --set model.f_tta=true; only "
                        f"{', '.join(PREDICT_SETTINGS)} (the rest is the trained model), and the input "
                        "reader's options over the trained ones: data.kwargs.KEY=VALUE, e.g. "
                        "data.kwargs.bin_size_um=8")


def _add_tune(sub) -> None:
    p = sub.add_parser("tune", help="the paper's protocol: a hyperparameter search (Optuna), then an "
                       "ensemble of the best trials")
    p.add_argument("config", help="YAML config file (its output folder holds the study)")
    p.add_argument("--trials", type=int, required=True, help="trials to run in all (over every worker)")
    p.add_argument("--ensemble", type=int, default=5, metavar="K",
                   help="ensemble.pt holds the K best trials (default 5, the paper's; 0: none)")
    p.add_argument("--ensemble-method", choices=EnsembleMethod.values(), default="mean",
                   help="how ensemble.pt combines its members (default mean; vote: the paper's)")
    p.add_argument("--space", help="YAML search space, one config key per line, e.g. "
                   "'train.lr: log_uniform(1e-4, 1e-3)', 'g.name: [unet, gcn]' (default: the paper's lr and alpha)")
    p.add_argument("--storage", help="Optuna storage shared by workers: postgresql://..., mysql://..., "
                   "sqlite:///FILE or journal:FILE (default: OUTPUT/study.db)")
    p.add_argument("--study-name", default="gridgraph", help="name of the study in the storage")
    p.add_argument("--sampler", choices=("random", "tpe"), default="random",
                   help="random search (the paper's, default) or Optuna's TPE")
    p.add_argument("--no-prune", action="store_true", help="run every trial to its end")
    p.add_argument("--no-figures", action="store_true", help="no maps and confusion matrix in the trial folders")
    _add_set(p)
    p.add_argument("--progress", action="store_true", help="progress bars even when stderr is not a terminal")


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="train on synthetic tissue and compare f with f+g")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--quick", action="store_true", help="a few epochs only (smoke test)")
    _add_set(p)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gridgraph", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show the traceback of any error")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in (_add_train, _add_tune, _add_evaluate, _add_predict, _add_demo):
        add(sub)
    return parser


DEMO_CONFIG = {
    "output": "runs/demo",
    "data": {"name": "synthetic", "kwargs": {"layout": "hex", "n_classes": 5},
             "train": [1, 2, 3, 4], "val": [5], "test": [6]},
    "patches": {"patch_size": 32, "window_spots": 1.0},  # one synthetic spot: f sees its own tissue only
    "f": {"name": "gridnet_simple"},
    "train": {"regimen": "two_stage", "epochs_f": 6, "epochs_g": 40, "lr": 1e-3},
}
QUICK = ["train.epochs_f=1", "train.epochs_g=2", "data.train=[1]", "data.val=[2]", "data.test=[3]"]


def _cmd_train(args) -> int:
    from .workflows import run_training

    cfg = load_config(args.config, args.overrides + (["train.progress=true"] if args.progress else []))
    run_training(cfg, resume=not args.no_resume, overwrite=args.overwrite, config_file=args.config)
    return 0


def _cmd_tune(args) -> int:
    from .config.space import load_space
    from .workflows.tune import run_study

    cfg = load_config(args.config, args.overrides + (["train.progress=true"] if args.progress else []))
    space = load_space(args.space, cfg.to_dict())  # checked before anything runs
    run_study(cfg, args.trials, ensemble=args.ensemble, space=space, storage=args.storage,
              study_name=args.study_name, prune=not args.no_prune, sampler=args.sampler,
              method=args.ensemble_method, figures=not args.no_figures)
    return 0


def _cmd_demo(args) -> int:
    from .workflows import run_training

    overrides = (QUICK if args.quick else []) + [f"output={args.out}"] + args.overrides
    cfg = make_config(DEMO_CONFIG, overrides, source="demo")
    result = run_training(cfg, resume=False, overwrite=True)
    f_acc, fg_acc = result["test"]["f"]["accuracy"], result["test"]["f+g"]["accuracy"]
    print(f"\ndemo: test accuracy f alone {f_acc:.3f}, f+g {fg_acc:.3f} "
          f"({fg_acc - f_acc:+.3f}); figures and checkpoints in {args.out}")
    return 0


def _cmd_evaluate(args) -> int:
    from .evaluate import format_comparison
    from .workflows import evaluate_checkpoints, write_json

    if args.overrides and not args.data:
        raise ValueError("--set needs --data (the checkpoint's own settings are used as saved)")
    if args.out and Path(args.out).exists() and not args.overwrite:
        raise ValueError(f"--out {args.out} exists; pass --overwrite to replace it")
    data = load_config(args.data, args.overrides).data if args.data else None
    result = evaluate_checkpoints(args.checkpoints, data, split=args.split)
    for path, res in result["models"].items():
        print(f"{path}:\n{format_comparison(res)}\n")
    ens = {k: v for k, v in result.items() if k.startswith("ensemble_")}
    if ens:
        print("ensembles:\n" + format_comparison(ens))
    if args.out:
        write_json(args.out, result)
    return 0


def _input_flag(args) -> str:
    return next(d for d in _predict_flags() if getattr(args, d, None) is not None)


def _predict_input(args, ckpt, path: str):
    """``(section, AnnData or None)`` of ``path`` for predict's input flag
    (:func:`~gridgraph.workflows.predict_input.read_input`; section ``None``: an AnnData of several libraries)."""
    from .workflows.predict_input import read_input

    dest = _input_flag(args)
    return read_input(ckpt, _predict_flags()[dest], f"--{dest.replace('_', '-')}", path,
                      {option: getattr(args, option) for option in INPUT_OPTIONS}, reader_options(args.overrides),
                      level=args.image_level, log=_note)


def _note(line: str) -> None:
    from .distributed import is_main

    if is_main():
        print(f"gridgraph: {line}", file=sys.stderr)


def _shows_progress(args) -> bool:
    """predict's progress bar: with ``--progress`` or when stderr is a terminal, on rank 0 only."""
    from .distributed import is_main

    return (args.progress or sys.stderr.isatty()) and is_main()


def _check_platform(args, ckpt, section) -> None:
    """One warning line (``--strict``: an error) when ``section`` is of another kind than the
    model's training sections (:func:`~gridgraph.workflows.platform.platform_mismatch`)."""
    from .workflows.platform import platform_mismatch

    problem = platform_mismatch(ckpt, section)
    if problem and args.strict:
        raise ValueError(f"{problem} (--strict)")
    if problem:
        print(f"gridgraph: warning: {problem} (--strict refuses it)", file=sys.stderr)


def _predict_one(args, model, ckpt, path: str, out) -> dict:
    from .inference import showing_progress
    from .workflows import predict_section

    section, adata = _predict_input(args, ckpt, path)
    if section is None:  # several libraries in one AnnData
        from .workflows.libraries import predict_libraries

        with showing_progress(_shows_progress(args)):
            return {k: str(v) for k, v in predict_libraries(model, ckpt, adata, out, reader_options(
                args.overrides), figures=not args.no_figure, qupath=args.qupath, log=_note,
                check=lambda one: _check_platform(args, ckpt, one)).items()}
    _check_platform(args, ckpt, section)
    with ThreadPoolExecutor(1) as pool, showing_progress(_shows_progress(args)):
        if adata is None and args.anndata:  # imported and built while f runs (f releases the GIL)
            from .io.writers.anndata import section_anndata

            adata = pool.submit(section_anndata, section)
        paths = predict_section(model, ckpt, section, out, figures=not args.no_figure, adata=adata,
                                library_id=args.library_id, qupath=args.qupath,
                                sdata=path if _predict_flags()[_input_flag(args)] == "spatialdata" else None)
    return {k: str(v) for k, v in paths.items()}


def _with_sources(ckpt, sources: dict):
    """``ckpt`` with its f reading the section's files named on the command line."""
    from .features import with_sources

    f = ckpt.config.f
    kwargs = with_sources(f.name, f.kwargs, sources)
    return ckpt.replace(config=ckpt.config.model_copy(update={"f": f.model_copy(update={"kwargs": kwargs})}))


def _cmd_predict(args) -> int:
    """One input: outputs in --out. Several: one folder per input under --out, the inputs split
    over the processes of torchrun (each writes its own folders atomically)."""
    from . import distributed as dist
    from .files import output_folders
    from .train import pick_device
    from .workflows.ensemble import Ensemble, load_predictor

    inputs = dist.expand_inputs(getattr(args, _input_flag(args)))
    if len(inputs) > 1:
        for flag in INPUT_OPTIONS:
            if getattr(args, flag):
                raise ValueError(f"--{flag.replace('_', '-')} belongs to one input; predict "
                                 f"{len(inputs)} inputs one by one")
    folders = output_folders(args.out, inputs, what="--out")  # checked before anything is read or written
    device = pick_device(args.device, setting="--device")  # under torchrun: cuda:LOCAL_RANK
    dist.init_from_env("cpu")  # gloo carries the bookkeeping, whatever device computes
    if device.type == "cuda":
        import torch

        torch.cuda.set_device(device)
    model, ckpt = load_predictor(args.checkpoints, args.ensemble_method, device=device, overrides=args.overrides)
    if args.counts or args.embeddings:
        sources = {"expression": args.counts, "embedding": args.embeddings}
        if isinstance(model, Ensemble):
            model.members = [(m, _with_sources(c, sources)) for m, c in model.members]
        ckpt = _with_sources(ckpt, sources)
    done = {}
    for i in dist.shard_inputs(len(inputs)):
        out = folders[i]
        if not dist.is_distributed():
            done[i] = _predict_one(args, model, ckpt, inputs[i], out)
            continue
        try:  # one rank's failure must reach the others, which wait for its results
            done[i] = _predict_one(args, model, ckpt, inputs[i], out)
        except Exception as err:  # noqa: BLE001 - raised again on every rank below
            done[i] = {"error": f"{inputs[i]}: {type(err).__name__}: {err}",
                       "input_error": isinstance(err, (ValueError, OSError))}
    done = dist.gather_indexed(done, len(inputs))
    failed = [d for d in done if "error" in d]
    if failed:
        kind = ValueError if all(d["input_error"] for d in failed) else RuntimeError
        raise kind(f"{len(failed)} of {len(inputs)} inputs failed; first: {failed[0]['error']}")
    if dist.is_main():
        print(json.dumps(done[0] if len(inputs) == 1 else dict(zip(inputs, done)), indent=2))
    return 0


COMMANDS = {"train": _cmd_train, "tune": _cmd_tune, "evaluate": _cmd_evaluate, "predict": _cmd_predict, "demo": _cmd_demo}


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def _report(err: BaseException) -> int:
    """Print one line for ``err``; 2 for input the user can fix, 1 for the rest."""
    import torch

    if isinstance(err, (MemoryError, getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError))):
        print("gridgraph: out of memory: lower train.chunk_size / train.batch_size or the patch size "
              f"({type(err).__name__}: {_one_line(err)[:300]})", file=sys.stderr)
        return 1
    if isinstance(err, (ValueError, OSError)):  # ConfigError is a ValueError
        print(f"gridgraph: error: {_one_line(err)}", file=sys.stderr)
        return 2
    print(f"gridgraph: internal error ({type(err).__name__}: {_one_line(err)[:300]}); "
          "rerun with --debug for the traceback and report it", file=sys.stderr)
    return 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # argparse: --help (0) or a usage error (2, already printed)
        return int(stop.code or 0)
    from .distributed import shutdown

    ok = False
    try:
        code = COMMANDS[args.command](args)
        ok = True
        return code
    except KeyboardInterrupt:
        print("gridgraph: interrupted (rerun the same command to resume from last.pt)", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - every error becomes one line unless --debug
        if args.debug:
            traceback.print_exc()
        return _report(err)
    finally:
        shutdown(wait=ok)  # under torchrun: leave the process group (nothing otherwise)


if __name__ == "__main__":
    sys.exit(main())
