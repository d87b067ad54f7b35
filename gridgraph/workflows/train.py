"""``gridgraph train``: a config -> a run folder with checkpoints, metrics and figures."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional

from .. import distributed as dist
from ..config import RunConfig, dump_config
from ..defaults import AUTO, GRAPH_CORRECTOR, GRID_CORRECTOR
from ..evaluate import format_comparison
from ..files.atomic import atomic_write
from ..inference import evaluate_probs, truth
from ..train import CheckpointManager
from ..train.run_folder import prepare_run_folder
from .build import build_run
from .figures import expression_figure, training_figures

__all__ = ["run_training", "write_json"]


def write_json(path, obj) -> None:
    with atomic_write(path) as fh:
        json.dump(obj, fh, indent=2, default=float)


def run_training(cfg: RunConfig, resume: bool = True, log: Callable[[str], None] = print,
                 figures: bool = True, overwrite: bool = False, config_file=None,
                 on_epoch: Optional[Callable[[int, float], None]] = None) -> dict:
    """Train as ``cfg`` says, evaluate the best model on the test split, write everything.

    Writes into ``cfg.output``: ``config.yaml`` (the config with ``g: auto`` settled, written
    once), ``last.pt``, ``best.pt``, ``metrics.jsonl``, ``test_metrics.json`` and, with
    ``figures``, maps of the first training and test (else validation) sections and the
    confusion matrix. A folder holding another run is refused unless ``resume`` (continue it) or
    ``overwrite`` (its run files are removed first); ``config_file`` (the file the config came
    from) is never written over. ``on_epoch``: the trainer's epoch callback
    (:class:`~gridgraph.train.Trainer`; ``gridgraph tune`` prunes there). Returns ``{"val": ..., "test": ..., "classes": ...}``.

    Under torchrun (``WORLD_SIZE > 1``) every process runs this; the process group is joined
    here (:func:`gridgraph.distributed.init_from_env`), training and the final predictions are
    split over the ranks, and only rank 0 logs and writes files (the output folder must be
    shared by all machines).
    """
    resume = resume and not overwrite
    dist.init_from_env(cfg.train.device)

    def prepare():
        folder = prepare_run_folder(cfg.output, resume=resume, overwrite=overwrite, config_file=config_file)
        if resume:  # an automatic g may have become either default corrector
            auto = {"g": [GRID_CORRECTOR, GRAPH_CORRECTOR]}
            CheckpointManager(folder, cfg.to_dict(), []).check_resumable(auto if cfg.g.name == AUTO else None)
        return folder

    out = Path(dist.on_main(prepare))  # rank 0 prepares; its errors are raised on every rank
    main = dist.is_main()
    if not main:
        log = lambda line: None  # noqa: E731 - only rank 0 logs
    run = build_run(cfg, log=log, embedding_folder=cfg.train.embedding_cache or out / "embeddings")
    if main:
        with atomic_write(out / "config.yaml") as fh:
            fh.write(dump_config(run.cfg))
    splits = run.splits
    for split in ("train", "val", "test"):
        log(f"{split}: {len(splits[split])} sections, {sum(st.num_nodes for st in splits[split])} nodes")
    if splits["train"][0].section is not None:
        log(splits["train"][0].section.summary())
    trainer = run.trainer(out_dir=out, log=log, on_epoch=on_epoch).fit(splits["train"], splits["val"], resume=resume)
    result, probs = {"classes": run.classes}, {}
    for split in ("val", "test"):
        if splits[split]:
            probs[split] = trainer.predict(splits[split], amp=False)  # split over ranks, gathered
            result[split] = evaluate_probs([truth(run.model, st) for st in splits[split]], probs[split])
    which = "test" if splits["test"] else "val"
    if main:
        write_json(out / "test_metrics.json", result)
        log(f"\n{which} split, best model:\n" + format_comparison(result[which]))
        if figures and run.model.regression:  # measured against predicted maps of three genes
            expression_figure(splits[which][0], probs[which][0], run.classes, out / f"expression_{which}.png")
        elif figures:
            training_figures(out, splits, which, probs[which], run.classes)
    dist.barrier()
    return result
