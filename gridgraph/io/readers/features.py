"""Per-node feature matrices and gene counts from files, matched to a section's node ids.

- :func:`read_node_features`: precomputed embeddings, ``(N, D)`` float32: ``.npy`` (rows in
  node order), ``.npz`` (``ids`` + a matrix), parquet/CSV/TSV (an id column, then one column per
  feature) or ``.h5ad`` (``obsm[key]``, ids from ``obs_names``).
- :func:`read_counts`: gene counts, ``(ids, genes, CSR matrix spots x genes)``: a counts table
  (spots as rows, genes as columns, ``.tsv``/``.csv``, optionally gzipped), a 10x
  ``filtered_feature_bc_matrix.h5``, a Matrix Market folder (``matrix.mtx[.gz]``,
  ``barcodes.tsv[.gz]``, ``features.tsv[.gz]``) or an ``.h5ad`` (``layers["counts"]``, else
  ``raw.X``, else ``X``).
- :func:`match_rows`: the row of each node in a file's ids (``-1`` where absent).

Errors name the file, the field and what was expected.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..tables import is_parquet, separator
from ..tables import PathLike, open_maybe_gzip, require_file

__all__ = ["read_node_features", "read_counts", "match_rows"]


def match_rows(ids: Sequence[str], file_ids: Sequence[str], path: PathLike, what: str) -> np.ndarray:
    """``(N,)`` int64: the row of each of ``ids`` among ``file_ids`` (``-1`` when absent).
    Repeated file ids are an error naming the file."""
    import pandas as pd

    index = pd.Index(np.asarray([str(i) for i in file_ids], dtype=object))
    if index.has_duplicates:
        raise ValueError(f"{path}: the {what} repeats the id {index[index.duplicated()][0]!r}; expected unique ids")
    return index.get_indexer(np.asarray([str(i) for i in ids], dtype=object)).astype(np.int64)


def _frame_ids(frame, path: Path, what: str):
    import pandas as pd

    if not isinstance(frame.index, pd.RangeIndex):  # ids saved as the index (e.g. a parquet file)
        frame = frame.reset_index()
    columns = [str(c) for c in frame.columns]
    lowered = [c.lower() for c in columns]
    at = next((lowered.index(c) for c in ("id", "barcode", "cell_id", "node_id") if c in lowered), 0)
    return frame.iloc[:, at].astype(str).to_numpy(), frame.drop(columns=frame.columns[at])


def _read_table_features(path: Path, what: str):
    import pandas as pd

    try:
        frame = pd.read_parquet(path) if is_parquet(path) else pd.read_csv(path, sep=separator(path))
    except Exception as err:  # pandas/pyarrow raise many types for a file that is not a table
        raise ValueError(f"{path}: cannot read the {what} as a table ({type(err).__name__})") from None
    ids, values = _frame_ids(frame, path, what)
    numeric = values.apply(pd.to_numeric, errors="coerce")
    bad = [c for c in values.columns if numeric[c].isna().any() and not values[c].isna().all()]
    if bad:
        raise ValueError(f"{path}: {what} column {str(bad[0])!r}: expected numbers")
    return ids, numeric.to_numpy(dtype=np.float32)


def read_node_features(path: PathLike, ids: Sequence[str], key: Optional[str] = None,
                       what: str = "node features") -> np.ndarray:
    """``(N, D)`` float32 features of the nodes ``ids``, read from ``path`` (see the module).

    ``key``: the matrix in an ``.npz`` (default ``"features"``) or the ``obsm`` key of an
    ``.h5ad`` (required there). Every node must be in the file and every value finite.
    """
    path = require_file(path, what)
    name = path.name.lower()
    if name.endswith(".npy"):
        values = np.load(path, allow_pickle=False)
        if values.ndim != 2 or len(values) != len(ids):
            raise ValueError(f"{path}: expected a ({len(ids)}, D) {what} matrix in node order, got shape {values.shape}")
        return _finite(values.astype(np.float32), path, what, ids)
    if name.endswith(".npz"):
        with np.load(path, allow_pickle=False) as archive:
            key = key or "features"
            for field in ("ids", key):
                if field not in archive:
                    raise ValueError(f"{path}: no array {field!r}; expected 'ids' and {key!r} ({what})")
            file_ids, values = archive["ids"].astype(str), archive[key]
    elif name.endswith(".h5ad"):
        from .anndata import load_h5ad

        adata = load_h5ad(path)
        if not key or key not in adata.obsm:
            raise ValueError(f"{path}: no obsm key {key!r}; expected one of {sorted(adata.obsm.keys())} ({what})")
        file_ids, values = np.asarray(adata.obs_names, dtype=str), np.asarray(adata.obsm[key])
    else:
        file_ids, values = _read_table_features(path, what)
    if values.ndim != 2 or values.shape[1] == 0:
        raise ValueError(f"{path}: expected a (rows, D) {what} matrix with D >= 1, got shape {values.shape}")
    rows = match_rows(ids, file_ids, path, what)
    missing = np.flatnonzero(rows < 0)
    if len(missing):
        raise ValueError(f"{path}: {len(missing)} of the section's {len(ids)} nodes have no {what}, "
                         f"e.g. {ids[missing[0]]!r}; expected a row for every node id")
    return _finite(np.asarray(values[rows], dtype=np.float32), path, what, ids)


def _finite(values: np.ndarray, path: Path, what: str, ids: Sequence[str]) -> np.ndarray:
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        raise ValueError(f"{path}: the {what} of node {ids[int(np.flatnonzero(bad)[0])]!r} holds NaN or "
                         "infinite values; expected finite numbers")
    return values


def unique_names(names: Sequence[str]) -> list:
    """``names`` with repeats made distinct by a suffix (``MATR3``, ``MATR3-1``, ...), as
    AnnData's ``var_names_make_unique`` does (10x references repeat a few gene symbols)."""
    seen: dict = {}
    out = []
    taken = set(names)
    for name in names:
        if name in seen:
            k = seen[name]
            while f"{name}-{k}" in taken:
                k += 1
            seen[name] = k + 1
            name = f"{name}-{k}"
            taken.add(name)
        else:
            seen[name] = 1
        out.append(name)
    return out


def read_counts(path: PathLike, what: str = "gene counts"):
    """``(ids, genes, counts)``: spot ids, gene names (made unique, see :func:`unique_names`)
    and a ``scipy.sparse.csr_matrix`` ``(spots, genes)`` float32 of raw counts (see the module
    for the formats)."""
    ids, genes, counts = _read_counts(path, what)
    return ids, unique_names([str(g) for g in genes]), counts


def _read_counts(path: PathLike, what: str):
    from scipy import sparse

    path = Path(path)
    if path.is_dir():
        return _read_mtx_folder(path, what)
    path = require_file(path, what)
    name = path.name.lower()
    if name.endswith(".h5ad"):
        from .anndata import load_h5ad

        adata = load_h5ad(path)
        if "counts" in adata.layers:
            matrix, genes = adata.layers["counts"], adata.var_names
        elif adata.raw is not None:
            matrix, genes = adata.raw.X, adata.raw.var_names
        else:
            matrix, genes = adata.X, adata.var_names
        matrix = sparse.csr_matrix(matrix, dtype=np.float32)
        if matrix.nnz and not np.array_equal(matrix.data, np.round(matrix.data)):
            warnings.warn(f"{path}: the counts (layers['counts'], else raw.X, else X) are not whole numbers; "
                          "gridgraph normalises and log1p's them again, expecting raw counts", stacklevel=2)
        return list(map(str, adata.obs_names)), list(map(str, genes)), matrix
    if name.endswith(".h5"):
        return _read_10x_h5(path, what)
    return _read_counts_table(path, what)


def _read_counts_table(path: Path, what: str):
    """A spots x genes text table: the first column the spot ids, then one column per gene."""
    import pandas as pd

    sep = separator(path)
    try:
        header = pd.read_csv(path, sep=sep, nrows=0).columns.tolist()
        if len(header) < 2:
            raise ValueError(f"{path}: expected a spot id column then one column per gene ({what})")
        frame = pd.read_csv(path, sep=sep, index_col=0, dtype={header[0]: str})
    except ValueError as err:
        if str(err).startswith(str(path)):
            raise
        raise ValueError(f"{path}: malformed {what} table") from None
    except Exception as err:  # pandas raises many types for a file that is not a table
        raise ValueError(f"{path}: cannot read the {what} as a table ({type(err).__name__})") from None
    text = [c for c, kind in zip(frame.columns, frame.dtypes) if kind.kind not in "iuf"]
    if text:
        raise ValueError(f"{path}: gene column {str(text[0])!r}: expected numeric counts ({what})")
    values = frame.to_numpy(dtype=np.float32)
    if not np.isfinite(values).all():
        row, col = np.argwhere(~np.isfinite(values))[0]
        raise ValueError(f"{path}: empty, NaN or infinite counts (gene {str(frame.columns[col])!r}, spot "
                         f"{str(frame.index[row])!r}); expected raw counts >= 0 ({what})")
    if (values < 0).any():
        raise ValueError(f"{path}: negative counts; expected raw counts >= 0 ({what})")
    from scipy import sparse

    return [str(i) for i in frame.index], [str(g) for g in frame.columns], sparse.csr_matrix(values)


def _read_10x_h5(path: Path, what: str):
    import h5py
    from scipy import sparse

    try:
        with h5py.File(path, "r") as h5:
            if "matrix" not in h5:
                raise ValueError(f"{path}: no 'matrix' group; expected a 10x feature-barcode matrix .h5 ({what})")
            m = h5["matrix"]
            genes_field = m["features"]["name"] if "features" in m else m["gene_names"]
            shape = tuple(int(v) for v in m["shape"][()])
            matrix = sparse.csc_matrix((m["data"][()].astype(np.float32), m["indices"][()], m["indptr"][()]), shape=shape)
            ids = [b.decode() if isinstance(b, bytes) else str(b) for b in m["barcodes"][()]]
            genes = [g.decode() if isinstance(g, bytes) else str(g) for g in genes_field[()]]
    except OSError:
        raise ValueError(f"{path}: not an HDF5 file; expected a 10x feature-barcode matrix .h5 ({what})") from None
    return ids, genes, matrix.T.tocsr()


def _first_of(folder: Path, names: Sequence[str], what: str) -> Path:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{what} not found: {folder} holds none of {list(names)}")


def _read_mtx_folder(folder: Path, what: str):
    from scipy import io as sio

    matrix_path = _first_of(folder, ["matrix.mtx.gz", "matrix.mtx"], what)
    barcodes = _first_of(folder, ["barcodes.tsv.gz", "barcodes.tsv"], what)
    features = _first_of(folder, ["features.tsv.gz", "features.tsv", "genes.tsv.gz", "genes.tsv"], what)
    with open_maybe_gzip(barcodes, "rt") as fh:
        ids = [line.rstrip("\n").split("\t")[0] for line in fh if line.strip()]
    with open_maybe_gzip(features, "rt") as fh:
        rows = [line.rstrip("\n").split("\t") for line in fh if line.strip()]
    genes = [r[1] if len(r) > 1 else r[0] for r in rows]
    try:
        matrix = sio.mmread(str(matrix_path))
    except (ValueError, OSError) as err:
        raise ValueError(f"{matrix_path}: not a Matrix Market file ({err.__class__.__name__}; {what})") from None
    if matrix.shape != (len(genes), len(ids)):
        raise ValueError(f"{matrix_path}: shape {matrix.shape}; expected (genes, barcodes) = "
                         f"({len(genes)}, {len(ids)}) from {features.name} and {barcodes.name}")
    return ids, genes, matrix.T.tocsr().astype(np.float32)
