"""Predict every library (section) of one AnnData in one call.

A file of several libraries (``anndata.concat`` of Visium sections, its library ids in any ``obs``
column: :func:`~gridgraph.io.readers.libraries.library_key_of`) gives one output folder per library
(``OUT/<library>/``: the tables, Loupe CSV with the barcodes Space Ranger wrote, figure) and one
annotated copy of the whole file (``OUT/predictions.h5ad``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Optional, Union

from ..checkpoint import Checkpoint
from ..files import OutputSet
from ..files.locations import safe_name
from ..model import GridGraphNet
from .ensemble import Ensemble
from .predict import predict_probabilities, predict_section, provenance, read_as_trained

__all__ = ["anndata_libraries", "annotate_libraries", "predict_libraries"]


def anndata_libraries(ckpt: Checkpoint, adata, options: Optional[Mapping] = None) -> tuple[str, list]:
    """``(library_key, [library ids])`` of ``adata`` read as the checkpoint was trained (its
    reader options' ``library_key`` when it was trained on AnnData, ``options`` over them)."""
    from ..io.readers.libraries import library_ids, library_key_of

    data = ckpt.config.data
    trained = dict(data.kwargs) if data.name == "anndata" else {}
    key = {**trained, **(options or {})}.get("library_key", "library_id")
    key = library_key_of(adata, key)
    return key, library_ids(adata, key)


def annotate_libraries(model: Union[GridGraphNet, Ensemble], ckpt: Checkpoint, adata, options=None,
                       each: Optional[Callable] = None, log=None, check: Optional[Callable] = None):
    """``adata`` annotated with the predictions of each of its libraries
    (:func:`~gridgraph.io.writers.anndata.add_predictions`; ``uns["gridgraph"]["library_ids"]``
    lists them); ``check(section)`` is called as each is read (before it is predicted) and
    ``each(library, (section, f, f + g))`` as each is predicted."""
    from ..io.writers.anndata import add_predictions

    key, libraries = anndata_libraries(ckpt, adata, options)
    info, annotated = provenance(model, ckpt), adata
    for library in libraries or [None]:
        section = read_as_trained(ckpt, "anndata", {"path": adata, "library_id": library}, options, log=log)
        if check is not None:
            check(section)
        probabilities = predict_probabilities(model, ckpt, section)
        if each is not None:
            each(library, probabilities)
        section, f_prob, g_prob = probabilities
        annotated = add_predictions(annotated, section.barcodes, f_prob.numpy(),
                                    g_prob.numpy() if bool(model.use_g) else None, ckpt.classes, info=info,
                                    library_id=library, library_key=key)
    return annotated


def predict_libraries(model: Union[GridGraphNet, Ensemble], ckpt: Checkpoint, adata, out_dir,
                      options: Optional[Mapping] = None, figures: bool = True, qupath: bool = False,
                      log=None, check: Optional[Callable] = None) -> dict:
    """Every library of ``adata``: ``out_dir/<library>/`` with :func:`predict_section`'s files
    (no AnnData), and ``out_dir/predictions.h5ad``, the whole file annotated (``log``, ``check``:
    as :func:`annotate_libraries`'s). Returns
    ``{"h5ad": path, "<library>/<file>": path, ...}``."""
    from ..io.writers.anndata import write_h5ad

    out_dir, done = Path(out_dir), {}

    def each(library, probabilities):
        done[library] = predict_section(model, ckpt, probabilities[0], out_dir / safe_name(str(library)),
                                        figures=figures, qupath=qupath, probabilities=probabilities)

    annotated = annotate_libraries(model, ckpt, adata, options, each=each, log=log, check=check)
    with OutputSet(out_dir, ["predictions.h5ad"]) as tmp:
        write_h5ad(annotated, tmp / "predictions.h5ad")
    return {"h5ad": out_dir / "predictions.h5ad",
            **{f"{library}/{key}": path for library, files in done.items() for key, path in files.items()}}
