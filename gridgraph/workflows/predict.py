"""``gridgraph predict``: a checkpoint and new sections -> predictions, as tables, figures, AnnData.

A new section is read as the checkpoint was trained (its graph and patch settings, its classes,
its physical scale); patches are streamed: cut (from a whole-slide image, read) while f runs, one
chunk at a time, never all held.
"""
from __future__ import annotations

import contextlib
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Mapping, Optional, Union

from ..checkpoint import Checkpoint
from ..config import PatchConfig
from ..features import image_only, needs_image
from ..files.output_set import OutputSet
from ..inference import NonFiniteOutput, check_finite, predict_probs, predict_stream
from ..io.images.image import prefetching
from ..model import GridGraphNet
from ..patches.plan import SectionPatchPlan
from ..patches.window import Window
from .ensemble import Ensemble
from .figures import prediction_figure
from .predict_expression import expression_anndata, write_predicted_expression
from .sections import prepare, rebuild_graph, unify_classes

__all__ = ["predict_probabilities", "trained_window", "read_as_trained", "predict_anndata", "predict_spatialdata",
           "predict_section", "provenance"]


def predict_probabilities(model: Union[GridGraphNet, Ensemble], ckpt: Checkpoint, section) -> tuple:
    """``(section, f probabilities, f + g probabilities)`` of a raw section, read as the
    checkpoint was trained; for an :class:`~gridgraph.workflows.ensemble.Ensemble` (``ckpt``
    unused), each member's on its own settings, combined."""
    if isinstance(model, Ensemble):
        parts = [_model_probabilities(m, c, section) for m, c in model.members]
        return parts[0][0], model.combine([p[1] for p in parts]), model.combine([p[2] for p in parts])
    return _model_probabilities(model, ckpt, section)


def _model_probabilities(model: GridGraphNet, ckpt: Checkpoint, section) -> tuple:
    try:
        return _probabilities_of(model, ckpt, section)
    except NonFiniteOutput as err:
        raise NonFiniteOutput(f"{ckpt.path}: {err}") from None


def _probabilities_of(model: GridGraphNet, ckpt: Checkpoint, section) -> tuple:
    cfg, classes = ckpt.config, ckpt.classes
    section = rebuild_graph(section, cfg.graph)
    if section.classes and section.labels.ge(0).any() and not model.regression:
        section = unify_classes([section], classes)[0]
    if not image_only(cfg.f.name, cfg.f.kwargs):  # feature inputs: read whole
        patches = trained_window(ckpt, section) if needs_image(cfg.f.name, cfg.f.kwargs) else cfg.patches
        inputs = prepare(section, patches, f=cfg.f, features=ckpt.features)
        (f_prob, g_prob), = predict_probs(model, [inputs])
        check_finite("f", f_prob)
        check_finite("g", g_prob)
        return section, f_prob, g_prob
    patches = cfg.patches
    window = Window.from_record(ckpt.scale, Window.from_config(patches), section)  # as trained_window
    # one colour map for the section, from a sample of its patches, applied as each chunk is cut
    plan = SectionPatchPlan(section, patches.patch_size, window, patches.standardize)
    return (section, *predict_stream(model, plan.chunks(), section.graph))


def trained_window(ckpt: Checkpoint, section) -> PatchConfig:
    """The checkpoint's patch settings for a new section, at the physical scale it was trained at
    (:meth:`Window.from_record <gridgraph.patches.window.Window.from_record>` of the checkpoint's
    ``scale``): a window recorded in µm cuts that many µm around each node of any section whose µm
    per pixel is known and refuses one whose scale cannot be known; older checkpoints use their
    settings as saved."""
    patches = ckpt.config.patches
    window = Window.from_record(ckpt.scale, Window.from_config(patches), section)
    return patches.model_copy(update=window.fields())


def provenance(model: Union[GridGraphNet, Ensemble], ckpt: Checkpoint) -> dict:
    """What the predictions come from (:func:`~gridgraph.io.writers.predictions.prediction_provenance`):
    the checkpoint (absolute path), f, the g actually used (``"none"`` when training kept f
    alone), the validation metrics and the versions that trained and that predicted; for an
    ensemble, its file (or first member), members and method."""
    from ..io.writers.predictions import prediction_provenance

    if isinstance(model, Ensemble):
        return model.provenance()

    g = ckpt.config.g.name if bool(model.use_g) else None
    return prediction_provenance(ckpt.path, ckpt.config.f.name, g, trained_with=dict(ckpt.versions),
                                 validation=ckpt.metric_summary())


def read_as_trained(ckpt: Checkpoint, reader: str, paths: dict, options: Optional[Mapping] = None,
                    level: Optional[str] = None, log: Optional[Callable[[str], None]] = None):
    """A new section read by the registered ``reader`` from explicit files (``paths``), with the
    reader options the model was trained with when it was trained with the same reader, and
    ``options`` (``--set data.kwargs.KEY=VALUE``) over them; at the image ``level`` asked for, else
    the level the model was trained on when the input has it, else the reader's own choice
    (:func:`~gridgraph.workflows.reading.input_options`). ``log`` gets one line saying which
    level was read when predict chose it."""
    from ..io.readers.registry import READERS
    from .reading import input_options, level_note

    f = ckpt.config.f
    trained, given, choice = input_options(ckpt, reader, paths, options, level)
    # an f that reads patches: the image decodes while the reader parses tables and builds the graph
    with prefetching() if needs_image(f.name, f.kwargs) else contextlib.nullcontext():
        section = READERS.get(reader).from_paths(paths, trained, given)
    note = level_note(section, choice)
    if note and log is not None:
        log(note)
    return section


def predict_anndata(model: GridGraphNet, ckpt: Checkpoint, adata, library_id=None):
    """An AnnData in memory -> a copy with gridgraph's predictions in ``obs["gridgraph"]``,
    ``obs["gridgraph_f"]``, ``obsm["gridgraph_probs"]`` and ``uns["gridgraph"]`` (see
    :func:`gridgraph.io.writers.anndata.add_predictions`); read with the trained reader options when
    the model was trained on AnnData."""
    from ..io.writers.anndata import add_predictions

    section = read_as_trained(ckpt, "anndata", {"path": adata, "library_id": library_id})
    section, f_prob, g_prob = predict_probabilities(model, ckpt, section)
    if model.regression:
        return expression_anndata(model, ckpt, section, f_prob, g_prob, adata, provenance(model, ckpt))
    return add_predictions(adata, section.barcodes, f_prob.numpy(), g_prob.numpy(), ckpt.classes,
                           info=provenance(model, ckpt))


def predict_spatialdata(model: Union[GridGraphNet, Ensemble], ckpt: Checkpoint, sdata, table_name: str = "gridgraph",
                        options: Optional[Mapping] = None, overwrite: bool = False):
    """A SpatialData object (or ``.zarr`` path) -> the same with gridgraph's predictions as the
    table ``table_name`` annotating the shapes or points they were read from (categorical class,
    f alone, probabilities, confidence, provenance: :func:`~gridgraph.io.writers.spatialdata.predictions_table`),
    written into the store when it is backed by one; read as the checkpoint was trained, with the
    reader ``options`` (``table``, ``shapes``, ``image``, ...) over the trained ones."""
    from ..io.writers.spatialdata import write_spatialdata_predictions

    section = read_as_trained(ckpt, "spatialdata", {"path": sdata}, options)
    section, f_prob, g_prob = predict_probabilities(model, ckpt, section)
    return write_spatialdata_predictions(sdata, section, f_prob.numpy(), g_prob.numpy() if bool(model.use_g) else None,
                                         ckpt.classes, info=provenance(model, ckpt), table_name=table_name,
                                         overwrite=overwrite)


def predict_section(model: Union[GridGraphNet, Ensemble], ckpt: Checkpoint, section, out_dir, figures: bool = True,
                    adata=None, library_id=None, qupath: bool = False, probabilities=None,
                    sdata=None) -> dict:
    """Predict one raw :class:`~gridgraph.io.Section` with a loaded checkpoint (or an
    :class:`~gridgraph.workflows.ensemble.Ensemble`: the same files) and write, as one
    set (all or none), ``predictions.csv`` (id, label, class probabilities),
    ``predictions_loupe.csv`` (for spots with barcodes), for cells ``predictions_cell_groups.csv``
    (Xenium Explorer's ``cell_id,group``) and ``predictions.png``; with ``qupath``
    ``predictions.geojson`` (QuPath: spots, bins or cells in full-resolution pixels with their
    class and probabilities; asked for, since it takes about 40 s and 400 MB per 10^6 nodes);
    with ``adata`` (the AnnData the section was read from, or a
    :class:`concurrent.futures.Future` of it) also ``predictions.h5ad``; ``probabilities``: the
    ``(section, f, f + g)`` of :func:`predict_probabilities` when already computed; with ``sdata``
    (the SpatialData, or ``.zarr`` path, the section was read from by
    :func:`~gridgraph.io.read_spatialdata`) also the table ``gridgraph`` annotating its shapes or
    points, written into the store (replacing an earlier one; ``"zarr"`` in the paths). Returns the paths."""
    from ..io import write_loupe_csv, write_predictions
    from ..io.writers.anndata import add_predictions, write_h5ad
    from ..io.writers.exports import section_cell_groups, section_geojson

    classes = ckpt.classes
    section, f_prob, g_prob = probabilities or predict_probabilities(model, ckpt, section)
    if model.regression:  # expression: expression.csv (+ predictions.h5ad), see gridgraph.io.writers.expression
        return write_predicted_expression(model, ckpt, section, f_prob, g_prob, out_dir, adata, provenance(model, ckpt))
    codes = g_prob.argmax(1).numpy()
    files = {"table": "predictions.csv", "loupe": "predictions_loupe.csv"}
    if qupath:
        files["qupath"] = "predictions.geojson"
    cells = str(section.graph.layout) == "irregular"
    if cells:
        files["xenium_groups"] = "predictions_cell_groups.csv"
    if figures:
        files["figure"] = "predictions.png"
    if adata is not None:
        files["h5ad"] = "predictions.h5ad"

    def tables(tmp):
        write_predictions(tmp / files["table"], section.barcodes, codes, g_prob.numpy(), classes)
        write_loupe_csv(tmp / files["loupe"], section.barcodes, codes, category="gridgraph", classes=classes,
                        library_ids=section.name)
        if cells:
            section_cell_groups(tmp / files["xenium_groups"], section, codes, classes)

    with OutputSet(out_dir, list(files.values())) as tmp, ThreadPoolExecutor(1) as pool:
        written = pool.submit(tables, tmp)  # the CSVs (pyarrow, mostly without the GIL) beside the rest
        if figures:
            prediction_figure(section, f_prob, g_prob, classes, tmp / files["figure"], uses_g=bool(model.use_g))
        if qupath:  # in this thread: its colours import matplotlib, which two threads must not import at once
            section_geojson(tmp / files["qupath"], section, codes, classes, probs=g_prob.numpy())
        if adata is not None:
            adata = adata.result() if isinstance(adata, Future) else adata
            annotated = add_predictions(adata, section.barcodes, f_prob.numpy(),
                                        g_prob.numpy() if bool(model.use_g) else None, classes,
                                        info=provenance(model, ckpt),
                                        library_id=library_id if "library_id" in adata.obs else None)
            write_h5ad(annotated, tmp / files["h5ad"])
        written.result()
    paths = {key: Path(out_dir) / name for key, name in files.items()}
    if sdata is not None:
        from ..io.writers.spatialdata import write_spatialdata_predictions

        write_spatialdata_predictions(sdata, section, f_prob.numpy(), g_prob.numpy() if bool(model.use_g) else None,
                                      classes, info=provenance(model, ckpt), overwrite=True)
        paths["zarr"] = Path(str(sdata)) / "tables" / "gridgraph" if isinstance(sdata, (str, Path)) else None
    return {key: value for key, value in paths.items() if value is not None}
