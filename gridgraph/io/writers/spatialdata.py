"""Predictions back into SpatialData: a table annotating the shapes the section was read from
(needs the optional ``spatialdata`` extra)."""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np

from .anndata import add_predictions

__all__ = ["predictions_table", "write_spatialdata_predictions"]

REGION_KEY = "region"
INSTANCE_KEY = "instance_id"


def _origin(section) -> dict:
    info = (section.meta or {}).get("spatialdata")
    if not info or "shapes" not in info or "instance_ids" not in info:
        raise ValueError(f"section {section.name}: not read by read_spatialdata (its meta lacks 'spatialdata': "
                         "shapes and instance ids); read it with gridgraph.io.read_spatialdata")
    if len(info["instance_ids"]) != section.num_nodes:
        raise ValueError(f"section {section.name}: {len(info['instance_ids'])} instance ids for "
                         f"{section.num_nodes} nodes")
    return info


def predictions_table(section, f_probs, g_probs, classes: Sequence[str], info: Optional[Mapping] = None,
                      key: str = "gridgraph"):
    """A SpatialData table (``TableModel``) of the section's predictions annotating the shapes
    it was read from: ``obs["region"]`` the shapes' name, ``obs["instance_id"]`` their ids,
    ``obs[key]`` categorical (colours in ``uns[key + "_colors"]``), ``obs[key + "_f"]``,
    ``obs[key + "_confidence"]``, ``obs[key + "_entropy"]``, ``obsm[key + "_probs"]`` and
    ``uns[key]`` (classes, provenance), as :func:`~gridgraph.io.writers.anndata.add_predictions`
    writes them."""
    import anndata
    import pandas as pd
    from spatialdata.models import TableModel

    origin = _origin(section)
    obs = pd.DataFrame(index=pd.Index(np.asarray(section.barcodes, dtype=str).astype(object)))
    obs[REGION_KEY] = pd.Categorical([origin["shapes"]] * section.num_nodes, categories=[origin["shapes"]])
    ids = np.asarray(origin["instance_ids"])
    obs[INSTANCE_KEY] = ids if ids.dtype.kind in "iu" else ids.astype(str)
    adata = add_predictions(anndata.AnnData(obs=obs), section.barcodes, f_probs, g_probs, classes, info=info, key=key)
    return TableModel.parse(adata, region=origin["shapes"], region_key=REGION_KEY, instance_key=INSTANCE_KEY)


def write_spatialdata_predictions(sdata, section, f_probs, g_probs, classes: Sequence[str],
                                  info: Optional[Mapping] = None, table_name: str = "gridgraph",
                                  key: str = "gridgraph", overwrite: bool = False):
    """Add the section's predictions to ``sdata`` as the table ``table_name`` (see
    :func:`predictions_table`) and, when ``sdata`` is a path or a SpatialData backed by a
    ``.zarr`` store, write that table into the store.

    Args:
        sdata: the SpatialData object (or ``.zarr`` path) the section was read from.
        section: a :class:`~gridgraph.io.Section` from :func:`~gridgraph.io.read_spatialdata`.
        f_probs, g_probs: ``(N, K)`` probabilities of f alone and of f + g (``None``: f alone).
        classes: the K class names.
        info: provenance (a checkpoint summary, see
            :func:`~gridgraph.io.writers.predictions.prediction_provenance`).
        table_name: the new table's name; an existing one is refused unless ``overwrite``.

    Returns the SpatialData object holding the new table.
    """
    from ..readers.spatialdata import load_spatialdata

    sdata, source = load_spatialdata(sdata)
    origin = _origin(section)
    if origin["shapes"] not in sdata.shapes and origin["shapes"] not in sdata.points:
        raise ValueError(f"{source}: no element {origin['shapes']!r} to annotate (the section was read from it)")
    if table_name in sdata.tables and not overwrite:
        raise ValueError(f"{source}: a table {table_name!r} exists; pass overwrite=True or another table_name")
    table = predictions_table(section, f_probs, g_probs, classes, info=info, key=key)
    backed = getattr(sdata, "path", None) is not None
    if backed and table_name in sdata.tables:
        del sdata.tables[table_name]
        if table_name in [p.split("/")[-1] for p in sdata.elements_paths_on_disk()]:
            sdata.delete_element_from_disk(table_name)
    sdata.tables[table_name] = table
    if backed:
        sdata.write_element(table_name, overwrite=True)
    return sdata
