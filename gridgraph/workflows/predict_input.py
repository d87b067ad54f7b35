"""predict's input, read: a section of any registered reader, or an AnnData of several libraries."""
from __future__ import annotations

import importlib.util
from typing import Mapping, Optional

from ..checkpoint import Checkpoint
from .libraries import anndata_libraries
from .predict import read_as_trained
from .reading import input_paths

__all__ = ["read_input"]


def read_input(ckpt: Checkpoint, reader: str, flag: str, path, values: Mapping, options: Optional[Mapping] = None,
               level: Optional[str] = None, log=None) -> tuple:
    """``(section, AnnData or None)``: predict's input ``path`` of the input ``flag`` read by the
    registered ``reader`` with the per-input ``values``
    (:func:`~gridgraph.workflows.reading.input_paths`), the reader ``options`` over the trained
    ones and the image ``level``
    (:func:`~gridgraph.workflows.predict.read_as_trained`); for ``--h5ad`` also the AnnData, and
    section ``None`` when it holds several libraries and ``library_id`` names none (each is
    predicted: :func:`~gridgraph.workflows.libraries.predict_libraries`)."""
    paths = input_paths(reader, flag, path, values)
    if reader == "spatialdata" and importlib.util.find_spec("spatialdata") is None:
        raise ValueError(f"{flag} needs the optional 'spatialdata' package: pip install gridgraph[spatialdata]")
    adata = None
    if reader == "anndata":
        from ..io.readers.anndata import load_h5ad

        adata = paths["path"] = load_h5ad(paths["path"])
        paths.setdefault("library_id", None)
        if paths["library_id"] is None and len(anndata_libraries(ckpt, adata, options)[1]) > 1:
            return None, adata
    return read_as_trained(ckpt, reader, paths, options, level=level, log=log), adata
