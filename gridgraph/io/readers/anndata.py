"""AnnData (scanpy/squidpy layout) to :class:`Section`; needs the optional ``anndata`` extra."""
from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from ...graph.spec import GraphSpec, GraphSpecLike
from ..images.image import image_size, to_rgb_uint8
from ..section import Section
from .spaceranger import VISIUM_MAX_COL, VISIUM_MAX_ROW, VISIUM_RANGE, VISIUM_SPOT_UM, visium_graph
from ..tables import check_array_index, check_inside, check_unique, is_positive_number, require_file
from ..labels import labels_from_obs
from .libraries import library_key_of

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _import_anndata():
    try:
        import anndata
    except ImportError as err:
        raise ImportError(
            "read_anndata needs the optional 'anndata' package: pip install gridgraph[anndata]"
        ) from err
    return anndata


def load_h5ad(path):
    """Read an ``.h5ad`` file with errors that name it (absent, not HDF5, not AnnData)."""
    return _read_h5ad(_import_anndata(), path)


def _read_h5ad(anndata, path):
    """``anndata.read_h5ad`` with errors that name the file: absent, not HDF5, not AnnData."""
    path = require_file(path, "AnnData file (.h5ad)")
    with open(path, "rb") as fh:
        head = fh.read(2048 + len(HDF5_SIGNATURE))
    # HDF5 puts its signature at byte 0, 512, 1024 or 2048 (after a user block).
    if not any(head[at:at + 8] == HDF5_SIGNATURE for at in (0, 512, 1024, 2048)):
        raise ValueError(
            f"{path}: not an h5ad file (no HDF5 signature); expected AnnData written by anndata/scanpy"
        )
    try:
        return anndata.read_h5ad(path)
    except Exception as err:  # h5py/anndata errors do not name the file
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise ValueError(f"{path}: cannot read as an h5ad file (AnnData): {reason}") from err


def _scale(factors: dict, key: str, where: str) -> float:
    """``factors[key]`` checked to be a finite positive number; errors name ``where`` and ``key``."""
    if key not in factors:
        raise ValueError(f"{where} lacks field {key!r}")
    if not is_positive_number(factors[key]):
        raise ValueError(f"{where}[{key!r}]: expected a finite positive number")
    return float(np.asarray(factors[key]).reshape(-1)[0])


def _array_coords(obs, keep: np.ndarray, source: str) -> tuple:
    """``obs['array_row'/'array_col']`` of the kept rows as int64, checked to be Visium-sized."""
    out = []
    for col, high in (("array_row", VISIUM_MAX_ROW), ("array_col", VISIUM_MAX_COL)):
        where = f"{source}: obs[{col!r}]"
        values = obs[col].to_numpy()[keep]
        at = [f"observation {i}" for i in np.flatnonzero(keep)]
        try:
            values = values.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: expected integer array indices, found {values.dtype} values") from None
        bad = ~np.isfinite(values) | (values != np.round(values))
        if bad.any():
            raise ValueError(f"{where}, {at[int(np.flatnonzero(bad)[0])]}: expected an integer array index")
        check_array_index(values, high, where, at, VISIUM_RANGE)
        out.append(values.astype(np.int64))
    return tuple(out)


def _library(adata, library_id: Optional[str], library_key: str, source: str):
    """``(library id or None, its uns['spatial'] entry or {})``; the ids come from
    ``uns['spatial']``, else from ``obs[library_key]``."""
    spatial = adata.uns.get("spatial") if hasattr(adata.uns, "get") else None
    if not spatial:
        column = adata.obs[library_key] if library_key in adata.obs else None
        if column is None:
            if library_id is not None:
                raise ValueError(f"{source}: uns['spatial'] and obs[{library_key!r}] are absent; "
                                 f"expected library {library_id!r}")
            return None, {}
        libraries = sorted({str(v) for v in column.dropna().tolist()})
        if library_id is None:
            if len(libraries) != 1:
                raise ValueError(f"{source}: obs[{library_key!r}] holds libraries {libraries[:10]}; pass library_id=")
            library_id = libraries[0]
        if str(library_id) not in libraries:
            raise ValueError(f"{source}: obs[{library_key!r}] has no library {library_id!r}; found {libraries[:10]}")
        return str(library_id), {}
    libraries = list(spatial)
    if library_id is None:
        if len(libraries) != 1:
            raise ValueError(f"{source}: uns['spatial'] holds libraries {libraries}; pass library_id=")
        library_id = libraries[0]
    if library_id not in spatial:
        raise ValueError(f"{source}: uns['spatial'] has no library {library_id!r}; found {libraries}")
    return library_id, spatial[library_id]


def read_anndata(
    adata,
    library_id: Optional[str] = None,
    label_key: Optional[str] = None,
    classes: Optional[Sequence[str]] = None,
    image: Optional[str] = "auto",
    graph: GraphSpecLike = "auto",
    library_key: str = "library_id",
) -> Section:
    """Build a :class:`Section` from an AnnData object (or the path of an ``.h5ad`` file).

    Args:
        adata: ``AnnData`` with ``obsm['spatial']`` (``(N, 2)`` full-resolution pixel ``(x, y)``)
            and, optionally, ``uns['spatial'][library_id]`` with ``images`` (``hires``/``lowres``)
            and ``scalefactors``, as written by ``scanpy.read_visium``/squidpy.
        library_id: which library of ``uns['spatial']`` (else of ``obs[library_key]``); required
            when there are several. With an ``obs[library_key]`` column only that library's rows
            are read.
        label_key: ``obs`` column of class names (``None``: unlabeled). Missing values are ``-1``;
            for a categorical column its categories give the class order.
        classes: explicit class order (overrides the above).
        image: ``"auto"`` (hires, else lowres, else none), ``"hires"``, ``"lowres"`` or ``None``.
            Positions are scaled by ``tissue_<image>_scalef`` into that image.
        graph: ``"auto"`` (hex over ``obs['array_row'/'array_col']`` when present, else kNN),
            or a :class:`~gridgraph.graph.GraphSpec` / its plain form (``"cartesian"``,
            ``{"name": "knn", "kwargs": {"k": 8}}``, ...).
        library_key: the ``obs`` column naming each observation's library (default
            ``"library_id"``, scanpy's; squidpy and others also use ``"library"``, ``"sample"``);
            when ``obs`` has no such column but ``uns['spatial']`` holds several libraries, the one
            column whose values are those libraries (:func:`~gridgraph.io.readers.libraries.library_key_of`).

    Rows with ``obs['in_tissue'] == 0`` are dropped. A path that is not an h5ad file, a scale
    factor that is not a finite positive number and ``obs`` array indices beyond the largest
    Visium array (rows 0..127, columns 0..223) raise ``ValueError`` naming the file or key.
    """
    anndata = _import_anndata()
    source = "adata"
    if isinstance(adata, (str, os.PathLike)):
        source = str(adata)
        adata = _read_h5ad(anndata, adata)
    elif not isinstance(adata, anndata.AnnData):
        source = str(adata)
        adata = anndata.read_h5ad(adata)
    if "spatial" not in adata.obsm:
        raise ValueError(f"{source}: obsm['spatial'] is absent; expected (N, 2) pixel coordinates (x, y)")
    library_id, lib = _library(adata, library_id, library_key, source)
    library_key = library_key_of(adata, library_key, source)
    obs = adata.obs
    keep = np.ones(adata.n_obs, dtype=bool)
    if library_id is not None and library_key in obs:
        keep &= (obs[library_key].astype(str) == str(library_id)).to_numpy()
    if "in_tissue" in obs:
        keep &= (obs["in_tissue"].to_numpy() == 1)
    if not keep.any():
        raise ValueError(f"{source}: no observations left after selecting library/in_tissue rows")
    barcodes = [str(b) for b in adata.obs_names[keep]]
    check_unique(barcodes, f"{source}: obs_names")
    fullres = np.asarray(adata.obsm["spatial"], dtype=np.float64)[keep]
    if fullres.ndim != 2 or fullres.shape[1] != 2:
        raise ValueError(f"{source}: obsm['spatial'] has shape {fullres.shape}; expected (N, 2)")
    if not np.isfinite(fullres).all():
        i = int(np.flatnonzero(~np.isfinite(fullres).all(axis=1))[0])
        raise ValueError(f"{source}: obsm['spatial'] of {barcodes[i]}: expected finite numbers, got NaN/inf")

    images = lib.get("images", {})
    factors = dict(lib.get("scalefactors", {}))
    sf_where = f"{source}: uns['spatial'][{library_id!r}]['scalefactors']"
    diameter = None
    if "spot_diameter_fullres" in factors:
        diameter = _scale(factors, "spot_diameter_fullres", sf_where)
    if image == "auto":
        image = next((kind for kind in ("hires", "lowres") if kind in images), None)
    img, scale = None, 1.0
    if image is not None:
        if image not in images:
            raise ValueError(f"{source}: uns['spatial'][{library_id!r}]['images'] has no {image!r} image; found {list(images)}")
        scale = _scale(factors, f"tissue_{image}_scalef", sf_where)
        img = to_rgb_uint8(np.asarray(images[image]), f"{source} {image} image")
    pos = fullres * scale
    if img is not None:
        check_inside(pos, image_size(img), f"{source}: obsm['spatial'] (in the {image} image)", barcodes)

    labels, classes = labels_from_obs(obs, label_key, keep, classes, source, len(barcodes))

    # a library without array indices (cells beside spots in one file) has them all missing
    has_grid = all(c in obs and not obs[c][keep].isna().all() for c in ("array_row", "array_col"))
    spec = GraphSpec.parse(("hex" if has_grid else "knn") if graph == "auto" else graph)
    if spec is None:
        raise ValueError(f"{source}: graph must be 'auto' or a graph rule, got {graph!r}")
    array_row = array_col = None
    if spec.needs_array:
        if not has_grid:
            raise ValueError(f"{source}: graph {spec.rule.value!r} needs obs['array_row'] and obs['array_col']")
        array_row, array_col = _array_coords(obs, keep, source)
    if spec == GraphSpec("hex"):
        g = visium_graph(array_row, array_col, pos)
    else:
        g = spec.build(pos, array_row, array_col, where=source)
    return Section(
        graph=g,
        labels=labels,
        classes=classes,
        barcodes=barcodes,
        image=img,
        spot_diameter_px=None if diameter is None else float(diameter) * scale,
        spot_diameter_um=VISIUM_SPOT_UM if spec.rule == "hex" else None,
        array_row=array_row,
        array_col=array_col,
        name=str(library_id) if library_id is not None else "section",
        meta={"source": source, "image_kind": image, "scale": scale, "scalefactors": factors,
              "library_key": library_key},
    )
