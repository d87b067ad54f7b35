"""The libraries (sections) of one AnnData: which ``obs`` column tells them apart, and their ids.

``anndata.concat`` of several Visium sections keeps each library's ``uns['spatial'][id]`` but
names the column of library ids as the user asked (``label="sample"``, squidpy's ``library_id``,
``library``). :func:`library_key_of` finds it: the column asked for when ``obs`` has it, else the
one column whose values are exactly the ``uns['spatial']`` libraries.
"""
from __future__ import annotations

__all__ = ["library_key_of", "library_ids", "anndata_levels"]


def _spatial_libraries(adata) -> list:
    spatial = adata.uns.get("spatial") if hasattr(adata.uns, "get") else None
    return [str(k) for k in spatial] if hasattr(spatial, "keys") else []


def _values(column) -> set:
    return {str(v) for v in column.dropna().unique().tolist()}


def library_key_of(adata, library_key: str = "library_id", source: str = "adata") -> str:
    """The ``obs`` column of library ids: ``library_key`` when ``obs`` has it or the file holds one
    library (or none) in ``uns['spatial']``; else the one column whose values are those libraries.
    Several libraries and no such column is a ``ValueError`` naming ``library_key``."""
    if library_key in adata.obs:
        return library_key
    libraries = _spatial_libraries(adata)
    if len(libraries) < 2:
        return library_key
    found = [str(c) for c in adata.obs.columns
             if adata.obs[c].dtype.kind in "OUS" or str(adata.obs[c].dtype) == "category"
             if _values(adata.obs[c]) == set(libraries)]
    if len(found) == 1:
        return found[0]
    which = f" ({' or '.join(found)} both do)" if found else ""
    raise ValueError(f"{source}: uns['spatial'] holds libraries {libraries[:10]} but obs has no column "
                     f"{library_key!r} saying which observation is of which; give the obs column of library "
                     f"ids (library_key=, --set data.kwargs.library_key=...){which}")


def library_ids(adata, library_key: str = "library_id", source: str = "adata") -> list:
    """The library ids of ``adata``, sorted: ``obs[library_key]``'s values (the column
    :func:`library_key_of` finds), else ``uns['spatial']``'s keys; ``[]`` when neither says."""
    key = library_key_of(adata, library_key, source)
    if key in adata.obs:
        return sorted(_values(adata.obs[key]))
    return sorted(_spatial_libraries(adata))



def anndata_levels(adata, options=None) -> list:
    """The image levels (``hires``, ``lowres``) every library of ``uns['spatial']`` holds (of an
    AnnData, or the path of an ``.h5ad`` file: then none are looked up)."""
    if isinstance(adata, (str, bytes)) or not hasattr(adata, "uns"):
        return []
    libraries = _spatial_libraries(adata)
    spatial = adata.uns.get("spatial") if libraries else {}
    held = [set((spatial[lib] or {}).get("images", {}) or {}) for lib in libraries]
    return [level for level in ("hires", "lowres") if held and all(level in h for h in held)]
