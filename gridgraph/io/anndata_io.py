"""AnnData (scanpy/squidpy layout) to :class:`Section`; needs the optional ``anndata`` extra."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..graph import cartesian_graph, knn_graph
from .image import image_size, to_rgb_uint8
from .section import Section
from .spaceranger import VISIUM_SPOT_UM, visium_graph
from .tables import check_inside, check_unique, encode_names


def _import_anndata():
    try:
        import anndata
    except ImportError as err:
        raise ImportError(
            "read_anndata needs the optional 'anndata' package: pip install gridgraph[anndata]"
        ) from err
    return anndata


def _library(adata, library_id: Optional[str], source: str):
    spatial = adata.uns.get("spatial") if hasattr(adata.uns, "get") else None
    if not spatial:
        if library_id is not None:
            raise ValueError(f"{source}: uns['spatial'] is absent; expected library {library_id!r}")
        return None, {}
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
    graph: str = "auto",
    k: int = 6,
) -> Section:
    """Build a :class:`Section` from an AnnData object (or the path of an ``.h5ad`` file).

    Args:
        adata: ``AnnData`` with ``obsm['spatial']`` (``(N, 2)`` full-resolution pixel ``(x, y)``)
            and, optionally, ``uns['spatial'][library_id]`` with ``images`` (``hires``/``lowres``)
            and ``scalefactors``, as written by ``scanpy.read_visium``/squidpy.
        library_id: which library of ``uns['spatial']``; required when there are several. With
            an ``obs['library_id']`` column only that library's rows are read.
        label_key: ``obs`` column of class names (``None``: unlabeled). Missing values are ``-1``;
            for a categorical column its categories give the class order.
        classes: explicit class order (overrides the above).
        image: ``"auto"`` (hires, else lowres, else none), ``"hires"``, ``"lowres"`` or ``None``.
            Positions are scaled by ``tissue_<image>_scalef`` into that image.
        graph: ``"auto"`` (hex over ``obs['array_row'/'array_col']`` when present, else kNN),
            ``"hex"``, ``"cartesian"`` or ``"knn"`` (with ``k`` neighbours).

    Rows with ``obs['in_tissue'] == 0`` are dropped.
    """
    anndata = _import_anndata()
    source = "adata"
    if not isinstance(adata, anndata.AnnData):
        source = str(adata)
        adata = anndata.read_h5ad(adata)
    if "spatial" not in adata.obsm:
        raise ValueError(f"{source}: obsm['spatial'] is absent; expected (N, 2) pixel coordinates (x, y)")
    library_id, lib = _library(adata, library_id, source)
    obs = adata.obs
    keep = np.ones(adata.n_obs, dtype=bool)
    if library_id is not None and "library_id" in obs:
        keep &= (obs["library_id"].astype(str) == str(library_id)).to_numpy()
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
    if image == "auto":
        image = next((kind for kind in ("hires", "lowres") if kind in images), None)
    img, scale = None, 1.0
    if image is not None:
        if image not in images:
            raise ValueError(f"{source}: uns['spatial'][{library_id!r}]['images'] has no {image!r} image; found {list(images)}")
        key = f"tissue_{image}_scalef"
        if key not in factors:
            raise ValueError(f"{source}: uns['spatial'][{library_id!r}]['scalefactors'] lacks field {key!r}")
        img = to_rgb_uint8(np.asarray(images[image]), f"{source} {image} image")
        scale = float(factors[key])
    pos = fullres * scale
    if img is not None:
        check_inside(pos, image_size(img), f"{source}: obsm['spatial'] (in the {image} image)", barcodes)

    names = [None] * len(barcodes)
    if label_key is not None:
        if label_key not in obs:
            raise ValueError(f"{source}: obs has no column {label_key!r}; found {list(obs.columns)}")
        column = obs[label_key][keep]
        if classes is None and hasattr(column, "cat"):
            classes = [str(c) for c in column.cat.categories]
        names = [None if v is None or v != v else v for v in column.tolist()]
    labels, classes = encode_names(names, classes, f"{source}: obs[{label_key!r}]")

    has_grid = "array_row" in obs and "array_col" in obs
    if graph == "auto":
        graph = "hex" if has_grid else "knn"
    array_row = array_col = None
    if graph in ("hex", "cartesian"):
        if not has_grid:
            raise ValueError(f"{source}: graph={graph!r} needs obs['array_row'] and obs['array_col']")
        array_row = obs["array_row"].to_numpy()[keep].astype(np.int64)
        array_col = obs["array_col"].to_numpy()[keep].astype(np.int64)
    if graph == "hex":
        g = visium_graph(array_row, array_col, pos)
    elif graph == "cartesian":
        g = cartesian_graph(array_row, array_col, pos=pos)
    elif graph == "knn":
        g = knn_graph(pos, k=k)
    else:
        raise ValueError(f"graph must be 'auto', 'hex', 'cartesian' or 'knn', got {graph!r}")
    diameter = factors.get("spot_diameter_fullres")
    return Section(
        graph=g,
        labels=labels,
        classes=classes,
        barcodes=barcodes,
        image=img,
        spot_diameter_px=None if diameter is None else float(diameter) * scale,
        spot_diameter_um=VISIUM_SPOT_UM if graph == "hex" else None,
        array_row=array_row,
        array_col=array_col,
        name=str(library_id) if library_id is not None else "section",
        meta={"source": source, "image_kind": image, "scale": scale, "scalefactors": factors},
    )
