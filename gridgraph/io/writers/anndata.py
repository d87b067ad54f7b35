"""Predictions in AnnData laid out as scanpy / squidpy expect (``scanpy.read_visium``'s layout).

Every AnnData gridgraph writes has ``obsm["spatial"]`` in full-resolution pixels ``(x, y)``,
``uns["spatial"][library_id]`` with ``images`` (``hires`` / ``lowres`` when the reader had one,
any other image reduced to a ``hires`` of at most 2000 pixels a side) and ``scalefactors`` (``tissue_hires_scalef``, ``tissue_lowres_scalef``,
``spot_diameter_fullres``), ``obs["library_id"]`` (categorical) and, once predicted,
``obs["gridgraph"]`` (categorical, colours in ``uns["gridgraph_colors"]``),
``obs["gridgraph_f"]`` (f alone), ``obs["gridgraph_confidence"]`` (max probability),
``obs["gridgraph_entropy"]`` (nats), ``obsm["gridgraph_probs"]`` (``(n_obs, K)``, columns in the
order of ``uns["gridgraph"]["classes"]``) and the provenance in ``uns["gridgraph"]``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from ...files.atomic import atomic_path
from .predictions import check_probabilities, class_hex_colors, complete_provenance, confidence

__all__ = ["add_predictions", "write_h5ad", "section_anndata", "sections_anndata", "predictions_anndata",
           "fullres_positions", "section_scalefactors"]

_IMAGE_KINDS = ("hires", "lowres")
#: Longest side of the ``hires`` image made from another image (Space Ranger's hires: 2000).
HIRES_MAX_SIDE = 2000


def _scale(section) -> float:
    """Pixels of the section's image per full-resolution pixel (1 when the reader said nothing)."""
    scale = (section.meta or {}).get("scale") or 1.0
    return float(scale)


def fullres_positions(section) -> np.ndarray:
    """``(N, 2)`` float64 full-resolution pixel ``(x, y)`` of the section's nodes: its image
    positions divided by the reader's scale (``tissue_hires_scalef`` for a hires image, 1 for a
    full-resolution one or none)."""
    return section.pixel_pos.numpy().astype(np.float64) / _scale(section)


def section_scalefactors(section) -> dict:
    """``scalefactors`` as Space Ranger writes them: the reader's own (finite positive numbers
    only) completed with ``tissue_<image>_scalef`` of the image the section holds (a
    ``tissue_hires_scalef`` of 1 when none is known), ``spot_diameter_fullres`` and
    ``microns_per_pixel`` (µm per full-resolution pixel) when known."""
    meta, scale = section.meta or {}, _scale(section)
    out = {}
    for key, value in dict(meta.get("scalefactors") or {}).items():
        try:
            number = float(np.asarray(value).reshape(-1)[0])
        except (TypeError, ValueError, IndexError):
            continue
        if np.isfinite(number) and number > 0:
            out[str(key)] = number
    kind = meta.get("image_kind")
    if kind in _IMAGE_KINDS:
        out.setdefault(f"tissue_{kind}_scalef", scale)
    # no hires image: a scale of one stands in, so that scanpy/squidpy (img_res_key "hires")
    # draw circles of the full-resolution spot size at the full-resolution positions
    out.setdefault("tissue_hires_scalef", 1.0)
    if section.spot_diameter_px:
        out.setdefault("spot_diameter_fullres", float(section.spot_diameter_px) / scale)
    if section.microns_per_px:
        out.setdefault("microns_per_pixel", float(section.microns_per_px) * scale)
    return out


def _library(section, images: bool) -> dict:
    """``uns["spatial"][library_id]`` of a section: ``images`` and ``scalefactors``. A hires or
    lowres image the reader had is stored as it is; any other image (full resolution, a slide,
    a registered H&E) as a ``hires`` image of at most :data:`HIRES_MAX_SIDE` pixels a side, with
    its ``tissue_hires_scalef``."""
    from ..images.image import thumbnail

    factors = section_scalefactors(section)
    meta, out = section.meta or {}, {}
    kind = meta.get("image_kind")
    if images and section.image is not None:
        if kind in _IMAGE_KINDS:
            out[kind] = np.ascontiguousarray(section.load_image(), dtype=np.uint8)
        else:
            small, factor = thumbnail(section.image, HIRES_MAX_SIDE)
            out["hires"] = np.ascontiguousarray(small, dtype=np.uint8)
            factors["tissue_hires_scalef"] = _scale(section) / float(factor)
    return {"images": out, "scalefactors": factors, "metadata": {"source": str(meta.get("source", ""))}}


def _library_obs(section, library_key: str, library_id: str):
    import pandas as pd

    obs = pd.DataFrame(index=pd.Index(np.asarray(section.barcodes, dtype=str).astype(object)))
    obs["in_tissue"] = np.ones(section.num_nodes, dtype=np.int64)
    if section.array_row is not None:
        obs["array_row"], obs["array_col"] = np.asarray(section.array_row), np.asarray(section.array_col)
    obs[library_key] = library_id
    return obs


def sections_anndata(sections: Sequence, library_key: str = "library_id", library_ids: Optional[Sequence[str]] = None,
                     images: bool = True):
    """One AnnData of several sections, one library each (scanpy's layout, see the module).

    Args:
        sections: :class:`~gridgraph.io.Section` objects.
        library_key: the ``obs`` column naming each observation's library (categorical).
        library_ids: one id per section (default the section names; they must be distinct).
        images: store each section's image in ``uns["spatial"][library_id]["images"]``.

    ``obs_names`` are the node ids; where two sections share an id, ``"<id>-<library>"`` (the
    plain id stays in ``obs["barcode"]``).
    """
    import anndata
    import pandas as pd

    sections = list(sections)
    if not sections:
        raise ValueError("sections_anndata: no sections given; expected at least one")
    ids = [str(s.name) for s in sections] if library_ids is None else [str(i) for i in library_ids]
    if len(ids) != len(sections):
        raise ValueError(f"sections_anndata: {len(ids)} library ids for {len(sections)} sections")
    if len(set(ids)) != len(ids):
        raise ValueError(f"sections_anndata: library ids must be distinct, got {ids}; pass library_ids=")
    obs = pd.concat([_library_obs(s, library_key, lib) for s, lib in zip(sections, ids)])
    barcodes = obs.index.to_numpy(dtype=object)
    if not obs.index.is_unique:
        obs["barcode"] = barcodes
        obs.index = pd.Index([f"{b}-{lib}" for b, lib in zip(barcodes, obs[library_key])])
    obs[library_key] = pd.Categorical(obs[library_key], categories=ids)
    for column in ("array_row", "array_col"):
        if column in obs and obs[column].isna().any():  # some sections without an array
            obs[column] = obs[column].astype("Int64")
    adata = anndata.AnnData(obs=obs)
    adata.obsm["spatial"] = np.concatenate([fullres_positions(s) for s in sections]).astype(np.float64)
    adata.uns["spatial"] = {lib: _library(s, images) for s, lib in zip(sections, ids)}
    return adata


def section_anndata(section, library_key: str = "library_id", library_id: Optional[str] = None,
                    images: bool = True):
    """An AnnData of one section's nodes in scanpy's layout: ``obs_names`` the node ids,
    ``obsm["spatial"]`` their full-resolution pixel ``(x, y)``, ``obs[library_key]``,
    ``obs["array_row"/"array_col"]`` where known, ``uns["spatial"][library_id]``."""
    return sections_anndata([section], library_key, None if library_id is None else [library_id], images)


def _rows(adata, ids: Sequence[str], library_id, library_key: str) -> np.ndarray:
    """Row of each id among the obs names (of library ``library_id`` when given; there the
    ``obs["barcode"]`` column is also searched)."""
    import pandas as pd

    ids = [str(i) for i in ids]
    if library_id is None:
        rows = adata.obs_names.get_indexer(ids)
    else:
        if library_key not in adata.obs:
            raise ValueError(f"adata: obs has no column {library_key!r} (library_key); found {list(adata.obs.columns)}")
        inside = np.flatnonzero((adata.obs[library_key].astype(str) == str(library_id)).to_numpy())
        if not len(inside):
            raise ValueError(f"adata: obs[{library_key!r}] has no observations of library {str(library_id)!r}")
        names = pd.Index(adata.obs_names[inside])
        found = names.get_indexer(ids) if names.is_unique else np.full(len(ids), -1)
        if (found < 0).any() and "barcode" in adata.obs:
            plain = pd.Index(adata.obs["barcode"].astype(str).to_numpy()[inside])
            if plain.is_unique:
                found = np.where(found < 0, plain.get_indexer(ids), found)
        rows = np.where(found >= 0, inside[np.maximum(found, 0)], -1)
    if (rows < 0).any():
        missing = ids[int(np.flatnonzero(rows < 0)[0])]
        where = "" if library_id is None else f" of library {str(library_id)!r}"
        raise ValueError(f"node id {missing!r} is not an obs name{where} of the AnnData")
    if len(np.unique(rows)) != len(rows):
        raise ValueError("node ids must be distinct: two predictions for one observation")
    return rows


def _previous(out, column: str, classes: list, n: int) -> np.ndarray:
    """Codes already in ``obs[column]`` (other libraries' predictions) when its categories are
    ``classes``; else all missing."""
    codes = np.full(n, -1, dtype=np.int64)
    old = out.obs.get(column) if column in out.obs else None
    if old is not None and hasattr(old, "cat") and [str(c) for c in old.cat.categories] == classes:
        codes = old.cat.codes.to_numpy().astype(np.int64)
    return codes


def add_predictions(adata, ids: Sequence[str], f_probs: np.ndarray, g_probs: Optional[np.ndarray],
                    classes: Sequence[str], info: Optional[Mapping] = None, key: str = "gridgraph",
                    library_id: Optional[str] = None, library_key: str = "library_id"):
    """A copy of ``adata`` with gridgraph's predictions for the observations ``ids``.

    Writes ``obs[key]`` (f + g's class, or f's when ``g_probs`` is ``None``; categorical in
    class order, colours in ``uns[key + "_colors"]``), ``obs[key + "_f"]`` (f alone),
    ``obs[key + "_confidence"]`` (max probability), ``obs[key + "_entropy"]`` (nats),
    ``obsm[key + "_probs"]`` (``(n_obs, K)``) and ``uns[key]`` (``classes`` and ``info``; a
    checkpoint summary with ``checkpoint`` is completed by
    :func:`~gridgraph.io.writers.predictions.prediction_provenance`: absolute path, ``used``,
    version). Observations not predicted get a missing class and NaN, except that, with
    ``library_id``, the predictions of earlier calls for other libraries (same classes) are kept
    and ``uns[key]["library_ids"]`` lists the libraries predicted: call it once per library to
    annotate a file of several libraries.

    Args:
        adata: the AnnData the section was read from.
        ids: ``(N,)`` obs names of the predicted nodes, in the order of the probability rows.
        f_probs, g_probs: ``(N, K)`` class probabilities of f alone and of f + g (``None``:
            f was used alone).
        classes: the K class names.
        info: plain data stored beside the classes (e.g. the checkpoint's summary).
        library_id, library_key: look ``ids`` up among the observations whose
            ``obs[library_key]`` is ``library_id`` only.
    """
    import pandas as pd

    classes = [str(c) for c in classes]
    n = len(ids)
    f_probs = check_probabilities(f_probs, n, classes, "f probabilities")
    g_used = g_probs is not None
    g_probs = check_probabilities(g_probs, n, classes, "f + g probabilities") if g_used else f_probs
    rows = _rows(adata, ids, library_id, library_key)
    out = adata.copy()
    earlier = out.uns.get(key) if library_id is not None and hasattr(out.uns.get(key), "get") else None
    if earlier is not None and [str(c) for c in earlier.get("classes", [])] != classes:
        earlier = None  # another model's classes: start afresh
    probs = np.full((out.n_obs, len(classes)), np.nan, dtype=np.float32)
    old = out.obsm.get(f"{key}_probs") if f"{key}_probs" in out.obsm else None
    if earlier is not None and old is not None and np.shape(old) == probs.shape:
        probs[:] = np.asarray(old, dtype=np.float32)
    probs[rows] = g_probs
    for column, p in ((key, g_probs), (f"{key}_f", f_probs)):
        codes = np.full(out.n_obs, -1, dtype=np.int64)  # -1: a missing class
        if earlier is not None:
            codes = _previous(out, column, classes, out.n_obs)
        if len(p):
            codes[rows] = p.argmax(1)
        out.obs[column] = pd.Categorical.from_codes(codes, categories=classes)
    top, entropy = confidence(probs)
    out.obs[f"{key}_confidence"], out.obs[f"{key}_entropy"] = top, entropy
    out.obsm[f"{key}_probs"] = probs
    out.uns[key] = {"classes": classes, **complete_provenance(info, g_used)}
    if library_id is not None:
        before = [str(v) for v in (earlier or {}).get("library_ids", [])]
        out.uns[key]["library_ids"] = sorted(set(before) | {str(library_id)})
    out.uns[f"{key}_colors"] = class_hex_colors(classes)
    libraries = list(out.uns["spatial"]) if hasattr(out.uns.get("spatial"), "keys") else []
    if library_key not in out.obs and len(libraries) == 1:
        out.obs[library_key] = pd.Categorical([str(libraries[0])] * out.n_obs)
    return out


def predictions_anndata(section, f_probs, g_probs, classes: Sequence[str], info: Optional[Mapping] = None,
                        key: str = "gridgraph", library_key: str = "library_id"):
    """:func:`section_anndata` of ``section`` with its predictions (:func:`add_predictions`)."""
    adata = section_anndata(section, library_key)
    return add_predictions(adata, section.barcodes, f_probs, g_probs, classes, info=info, key=key)


def write_h5ad(adata, path: Union[str, os.PathLike]) -> Path:
    """Write ``adata`` to ``path`` atomically (see :func:`~gridgraph.files.atomic.atomic_path`)."""
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp)
    return Path(path)
