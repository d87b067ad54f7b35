"""End-to-end steps shared by the CLI, the examples and the benchmarks.

config -> sections -> model -> :class:`~gridgraph.train.Trainer` -> evaluation -> files.
Inference goes through :func:`gridgraph.inference.predict_probs` everywhere.
"""
from __future__ import annotations

import contextlib
import json
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from . import distributed as dist
from .config import DataConfig, PatchConfig, RunConfig, dump_config, legacy_config
from .config.schema import AUTO
from .defaults import GRAPH_CORRECTOR, GRID_CORRECTOR, resolve_config
from .datasets import load_splits, load_splits_and_features, prepare, rebuild_graph, training_scale, unify_classes
from .embeddings import attach_backbone_embeddings, uses_cached_embeddings
from .encoders import ENCODERS
from .features import image_only, needs_image
from .evaluate import accuracy, compute_metrics, confusion_matrix, ensemble, format_comparison, mean_std
from .inference import evaluate_probs, predict_probs, predict_stream
from .files.atomic import atomic_write
from .io.images.image import prefetching
from .files.output_set import OutputSet
from .model import GridGraphNet, build_model
from .patches import SectionTensors
from .patches.extract import iter_section_patches, section_window_px
from .patches.stain import section_stain_table
from .train.run_folder import prepare_run_folder
from .train import CheckpointManager, Trainer, load_checkpoint

__all__ = ["model_from_config", "load_model", "run_training", "evaluate_checkpoints", "predict_section",
           "section_figures", "write_json"]


def model_from_config(cfg: RunConfig, num_classes: int, pretrained: bool = True,
                      features: Optional[dict] = None) -> GridGraphNet:
    """The :class:`GridGraphNet` a config describes (``f``, ``g``, ``model``, ``train.chunk_size``).

    ``pretrained=False`` skips f's ``weights`` argument (the weights come from a checkpoint).
    ``features``: the node-feature state (:func:`~gridgraph.datasets.load_splits_and_features`;
    a checkpoint's ``features``) whose ``in_features`` sizes an f over feature vectors.
    """
    f_kwargs = dict(cfg.f.kwargs)
    if not pretrained:  # the weights come from the checkpoint: no file, no download
        f_kwargs = _without_weights(f_kwargs)
    if cfg.g.name == AUTO:
        raise ValueError("g: 'auto' depends on the sections' layout: resolve it first with "
                         "gridgraph.defaults.resolve_config(cfg, training_sections)")
    widths = (features or {}).get("in_features") or {}
    if cfg.f.name == "fusion":
        f_kwargs["in_features"] = dict(widths)
    elif widths and "in_features" in (ENCODERS.parameters(cfg.f.name) or []):
        f_kwargs["in_features"] = next(iter(widths.values()))
    return build_model(num_classes, encoder=cfg.f.name, corrector=cfg.g.name, g_input=str(cfg.model.g_input),
                       g_residual=cfg.model.g_residual, encoder_kwargs=f_kwargs,
                       corrector_kwargs=dict(cfg.g.kwargs), chunk_size=cfg.train.chunk_size,
                       checkpoint=cfg.train.checkpoint, g_ensemble=cfg.model.g_ensemble,
                       g_zero_init=cfg.model.g_zero_init, f_tta=cfg.model.f_tta, g_tta=cfg.model.g_tta)


def _without_weights(f_kwargs: dict) -> dict:
    out = {k: v for k, v in f_kwargs.items() if k not in ("weights", "pretrained")}
    if isinstance(out.get("branches"), dict):
        out["branches"] = {key: {**spec, "kwargs": _without_weights(dict(spec.get("kwargs") or {}))}
                           for key, spec in out["branches"].items()}
    return out


def load_model(path, map_location="cpu") -> tuple[GridGraphNet, dict]:
    """Rebuild a model from a checkpoint file alone; returns ``(model, checkpoint)`` where
    ``checkpoint["config"]`` is a :class:`RunConfig`."""
    ckpt = load_checkpoint(path, map_location=map_location)
    ckpt["config"] = RunConfig.from_dict(legacy_config(ckpt["config"]), source=f"{path}: field 'config'")
    ckpt["path"] = str(path)
    model = model_from_config(ckpt["config"], len(ckpt["classes"]), pretrained=False, features=ckpt.get("features"))
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        raise ValueError(f"{path}: field 'model' does not fit the model its config describes ({err})") from err
    return model.eval(), ckpt


def write_json(path, obj) -> None:
    with atomic_write(path) as fh:
        json.dump(obj, fh, indent=2, default=float)


def section_figures(st: SectionTensors, probs, classes, out_dir: Path, prefix: str = "") -> list:
    """true / f / f+g label maps and misclassification maps of one section, as PNGs."""
    from .plot import plot_misclassification, plot_predictions

    f_prob, g_prob = probs
    y = st.labels.numpy()
    image = st.section.image if st.section is not None else None
    stem = f"{prefix}{st.name.replace('/', '_')}"
    paths = [out_dir / f"{stem}_labels.png", out_dir / f"{stem}_misclassification.png"]
    plot_predictions(st.graph, y, f_prob.numpy(), g_prob.numpy(), classes, image=image, path=paths[0])
    plot_misclassification(st.graph, y, {"f": f_prob.numpy(), "f+g": g_prob.numpy()}, image=image, path=paths[1])
    return paths


def _training_figures(out: Path, splits: dict, which: str, probs, classes) -> None:
    from .plot import plot_confusion_matrix, plot_label_map

    first = splits["train"][0]
    if first.section is not None:
        image = first.section.image
        plot_label_map(first.graph, first.labels.numpy(), classes, image=image,
                       title=f"{first.name}: labels", path=out / "train_labels.png")
    shown = splits[which]
    section_figures(shown[0], probs[0], classes, out)
    y = torch.cat([st.labels for st in shown]).numpy()
    pred = torch.cat([p[1] for p in probs]).argmax(1).numpy()
    plot_confusion_matrix(confusion_matrix(y, pred, num_classes=len(classes)), classes,
                          title=f"f+g, {which}", path=out / f"confusion_{which}.png")


def run_training(cfg: RunConfig, resume: bool = True, log: Callable[[str], None] = print,
                 figures: bool = True, overwrite: bool = False, config_file=None) -> dict:
    """Train as ``cfg`` says, evaluate the best model on the test split, write everything.

    Writes into ``cfg.output``: ``config.yaml``, ``last.pt``, ``best.pt``, ``metrics.jsonl``,
    ``test_metrics.json`` and, with ``figures``, maps of the first training and test (else
    validation) sections and the confusion matrix. A folder holding another run is refused
    unless ``resume`` (continue it) or ``overwrite`` (its run files are removed first);
    ``config_file`` (the file the config came from) is never written over.
    Returns ``{"val": ..., "test": ..., "classes": ...}``.

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
            auto = {"g": [c.model_dump(mode="json") for c in (GRID_CORRECTOR, GRAPH_CORRECTOR)]}
            CheckpointManager(folder, cfg.to_dict(), []).check_resumable(auto if cfg.g.name == AUTO else None)
        with atomic_write(folder / "config.yaml") as fh:
            fh.write(dump_config(cfg))
        return folder

    out = Path(dist.on_main(prepare))  # rank 0 prepares; its errors are raised on every rank
    main = dist.is_main()
    if not main:
        log = lambda line: None  # noqa: E731 - only rank 0 logs
    splits, classes, features = load_splits_and_features(cfg, log=log)
    if cfg.g.name == AUTO:
        cfg = resolve_config(cfg, splits["train"])
        log(f"g: auto -> {cfg.g.name} {cfg.g.kwargs} (layout {splits['train'][0].graph.layout})")
        if main:
            with atomic_write(out / "config.yaml") as fh:
                fh.write(dump_config(cfg))
    for split in ("train", "val", "test"):
        log(f"{split}: {len(splits[split])} sections, {sum(st.num_nodes for st in splits[split])} nodes")
    if splits["train"][0].section is not None:
        log(splits["train"][0].section.summary())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)  # a run's initial weights follow its seed
        model = model_from_config(cfg, len(classes), features=features)
    if uses_cached_embeddings(model):  # a linear probe: the frozen backbone runs once per section
        log("f's backbone is frozen: its embeddings are computed once, from unaugmented patches "
            "(dihedral turns and colour jitter do not reach them)")
        folder = cfg.train.embedding_cache or out / "embeddings"
        splits = {name: attach_backbone_embeddings(model, split, folder, log) for name, split in splits.items()}
    scale = training_scale(splits["train"], cfg.patches) if needs_image(cfg.f.name, cfg.f.kwargs) else {}
    trainer = Trainer(model, cfg, classes, out_dir=out, log=log, meta={"scale": scale, "features": features}).fit(
        splits["train"], splits["val"], resume=resume)
    result, probs = {"classes": classes}, {}
    for split in ("val", "test"):
        if splits[split]:
            probs[split] = trainer.predict(splits[split], amp=False)  # split over ranks, gathered
            result[split] = evaluate_probs([st.labels for st in splits[split]], probs[split])
    which = "test" if splits["test"] else "val"
    if main:
        write_json(out / "test_metrics.json", result)
        log(f"\n{which} split, best model:\n" + format_comparison(result[which]))
        if figures:
            _training_figures(out, splits, which, probs[which], classes)
    dist.barrier()
    return result


def _sections_for(ckpt: dict, data: Optional[DataConfig], split: str, cache: dict) -> list:
    """Sections of ``split`` read as the checkpoint was trained (its graph and patches), from
    ``data`` or the checkpoint's own data settings; shared between checkpoints that agree."""
    cfg: RunConfig = ckpt["config"]
    if data is not None:
        cfg = cfg.model_copy(update={"data": data})
    key = json.dumps([cfg.data.model_dump(mode="json"), cfg.graph.model_dump(mode="json"),
                      cfg.patches.model_dump(mode="json"), cfg.f.model_dump(mode="json"), ckpt["classes"],
                      ckpt.get("features") or {}], sort_keys=True)
    if key not in cache:
        cache[key] = load_splits(cfg, splits=(split,), classes=ckpt["classes"],
                                 features=ckpt.get("features") or {})[0][split]
    return cache[key]


def _same_nodes(sections: Sequence[SectionTensors], reference: Sequence[SectionTensors], path) -> None:
    if [(s.name, s.num_nodes) for s in sections] != [(s.name, s.num_nodes) for s in reference]:
        raise ValueError(f"{path}: its settings give other sections or nodes than the first checkpoint's "
                         "(an ensemble needs the same nodes)")


def evaluate_checkpoints(paths: Sequence, data: Optional[DataConfig] = None, split: str = "test",
                         log: Callable[[str], None] = print) -> dict:
    """Each checkpoint's metrics on ``split`` plus the mean-softmax and majority-vote ensembles.

    Each checkpoint reads the sections with its own graph and patch settings; ``data`` replaces
    the data settings of all of them (default: each checkpoint's own).
    """
    loaded = [load_model(p) for p in paths]
    classes = loaded[0][1]["classes"]
    cache: dict = {}
    per_model, stacked, reference, y = {}, {"f": [], "f+g": []}, None, None
    for p, (model, ckpt) in zip(paths, loaded):
        if ckpt["classes"] != classes:
            raise ValueError(f"{p}: classes {ckpt['classes']} differ from {paths[0]}'s {classes}")
        if data is None:
            log(f"{p}: reading the sections its config names (data.root {ckpt['config'].data.root})")
        sections = _sections_for(ckpt, data, split, cache)
        if not sections:
            raise ValueError(f"data split {split!r} lists no sections")
        if reference is None:
            reference, y = sections, torch.cat([st.labels for st in sections])
        _same_nodes(sections, reference, p)
        probs = predict_probs(model, sections)
        per_model[str(p)] = evaluate_probs([st.labels for st in sections], probs)
        for head, i in (("f", 0), ("f+g", 1)):
            stacked[head].append(torch.cat([q[i] for q in probs]).numpy())
    result = {"classes": classes, "split": split, "models": per_model}
    if len(paths) > 1:
        result.update(_ensembles(y, stacked, per_model))
    return result


def _ensembles(y, stacked: dict, per_model: dict) -> dict:
    out = {}
    for head in ("f", "f+g"):
        stack = np.stack(stacked[head])
        for method in ("mean", "vote"):
            labels, scores = ensemble(stack, method=method)
            metrics = compute_metrics(y, scores)
            metrics["accuracy"] = accuracy(y, labels)
            out[f"ensemble_{method}_{head}"] = metrics
        spread = mean_std([m[head]["accuracy"] for m in per_model.values()])
        out[f"accuracy_over_models_{head}"] = {"mean": spread.mean, "sd": spread.std}
    return out


def _predict(model: GridGraphNet, ckpt: dict, section) -> tuple:
    """``(section, f probabilities, f + g probabilities)`` of a raw section, read as the
    checkpoint was trained (its graph and patch settings, its classes). Patches are streamed:
    cut (from a whole-slide image, read) while f runs, one chunk at a time, never all held."""
    cfg, classes = ckpt["config"], ckpt["classes"]
    section = rebuild_graph(section, cfg.graph)
    if section.classes and section.labels.ge(0).any():
        section = unify_classes([section], classes)[0]
    if not image_only(cfg.f.name, cfg.f.kwargs):  # feature inputs: read whole
        patches = trained_window(ckpt, section) if needs_image(cfg.f.name, cfg.f.kwargs) else cfg.patches
        inputs = prepare(section, patches, f=cfg.f, features=ckpt.get("features") or {})
        (f_prob, g_prob), = predict_probs(model, [inputs])
        return section, f_prob, g_prob
    patches = trained_window(ckpt, section)
    window_px = section_window_px(section, **patches.window(section))
    # one colour map for the section, from a sample of its patches, applied as each chunk is cut
    table = section_stain_table(section, patches.patch_size, window_px) if patches.standardize else None
    chunks = iter_section_patches(section, patches.patch_size, window_px=window_px, table=table)
    return (section, *predict_stream(model, chunks, section.graph))


def trained_window(ckpt: dict, section) -> PatchConfig:
    """The checkpoint's patch settings for a new section, at the physical scale it was trained at.

    A checkpoint that recorded its window in µm cuts that many µm around each node of any
    section whose µm per pixel is known (whatever image or magnification it comes with) and
    refuses one whose scale cannot be known; older checkpoints use their settings as saved.
    """
    patches = ckpt["config"].patches
    scale = ckpt.get("scale") or {}
    window_um = scale.get("window_um")
    if window_um is None and scale.get("window_px") is not None:  # an automatic window, in pixels
        return patches.model_copy(update={"window_spots": None, "window_px": scale["window_px"], "window_um": None})
    if window_um is None:
        return patches
    if section.microns_per_px is None:
        raise ValueError(f"section {section.name}: its µm per pixel is unknown (no spot diameter or "
                         f"scale factors), but the model was trained on {window_um:.1f} µm windows; "
                         "give the section's scale (e.g. the Space Ranger scalefactors_json.json)")
    return patches.model_copy(update={"window_spots": None, "window_px": None, "window_um": window_um})


def _summary(ckpt: dict) -> dict:
    cfg = ckpt["config"]
    return {"checkpoint": ckpt.get("path", ""), "f": cfg.f.name, "g": cfg.g.name,
            "validation": {k: v for k, v in (ckpt.get("metrics") or {}).items() if isinstance(v, float)}}


def read_as_trained(ckpt: dict, reader: str, paths: dict):
    """A new section read by the registered ``reader`` from explicit files (``paths``), with the
    reader options the model was trained with when it was trained with the same reader."""
    from .io.readers.registry import READERS

    data, f = ckpt["config"].data, ckpt["config"].f
    # an f that reads patches: the image decodes while the reader parses tables and builds the graph
    with prefetching() if needs_image(f.name, f.kwargs) else contextlib.nullcontext():
        return READERS.get(reader).from_paths(paths, data.options if data.reader == reader else {})


def predict_anndata(model: GridGraphNet, ckpt: dict, adata, library_id=None):
    """An AnnData in memory -> a copy with gridgraph's predictions in ``obs["gridgraph"]``,
    ``obs["gridgraph_f"]``, ``obsm["gridgraph_probs"]`` and ``uns["gridgraph"]`` (see
    :func:`gridgraph.io.writers.anndata.add_predictions`); read with the trained reader options when
    the model was trained on AnnData."""
    from .io.writers.anndata import add_predictions

    section = read_as_trained(ckpt, "anndata", {"path": adata, "library_id": library_id})
    section, f_prob, g_prob = _predict(model, ckpt, section)
    return add_predictions(adata, section.barcodes, f_prob.numpy(), g_prob.numpy(), ckpt["classes"],
                           info=_summary(ckpt))


def _figure(section, f_prob, g_prob, classes, path) -> None:
    from .plot import plot_label_maps

    image = section.image
    panels = {"f": f_prob.numpy(), "f+g": g_prob.numpy()}
    if section.labels.ge(0).any():
        panels = {"true": section.labels.numpy(), **panels}
    plot_label_maps(section.graph, panels, classes, image=image, path=path)


def predict_section(model: GridGraphNet, ckpt: dict, section, out_dir, figures: bool = True,
                    adata=None) -> dict:
    """Predict one raw :class:`~gridgraph.io.Section` with a loaded checkpoint and write, as one
    set (all or none), ``predictions.csv`` (id, label, class probabilities),
    ``predictions_loupe.csv`` (for spots with barcodes) and ``predictions.png``; with ``adata``
    (the AnnData the section was read from, or a :class:`concurrent.futures.Future` of it)
    also ``predictions.h5ad``. Returns the paths."""
    from .io import write_loupe_csv, write_predictions
    from .io.writers.anndata import add_predictions, write_h5ad

    classes = ckpt["classes"]
    section, f_prob, g_prob = _predict(model, ckpt, section)
    codes = g_prob.argmax(1).numpy()
    files = {"table": "predictions.csv", "loupe": "predictions_loupe.csv"}
    if figures:
        files["figure"] = "predictions.png"
    if adata is not None:
        files["h5ad"] = "predictions.h5ad"
    def tables(tmp):
        write_predictions(tmp / files["table"], section.barcodes, codes, g_prob.numpy(), classes)
        write_loupe_csv(tmp / files["loupe"], section.barcodes, codes, category="gridgraph", classes=classes)

    with OutputSet(out_dir, list(files.values())) as tmp, ThreadPoolExecutor(1) as pool:
        written = pool.submit(tables, tmp)  # the CSVs (pyarrow, mostly without the GIL) beside the rest
        if figures:
            _figure(section, f_prob, g_prob, classes, tmp / files["figure"])
        if adata is not None:
            adata = adata.result() if isinstance(adata, Future) else adata
            annotated = add_predictions(adata, section.barcodes, f_prob.numpy(), g_prob.numpy(), classes,
                                        info=_summary(ckpt))
            write_h5ad(annotated, tmp / files["h5ad"])
        written.result()
    return {key: Path(out_dir) / name for key, name in files.items()}
