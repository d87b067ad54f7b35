"""Gene expression as f's input: library-size normalisation, log1p and a gene selection.

The selection (``n_top_genes`` highly variable genes, or a given list) is fitted on the training
sections only and stored with the model, so that prediction feeds f the same genes in the same
order. Counts are ``scipy.sparse`` ``(spots, genes)`` matrices.
"""
from __future__ import annotations

import warnings
from typing import Optional, Sequence

import numpy as np
from scipy import sparse

__all__ = ["normalize_log1p", "highly_variable_genes", "expression_matrix"]


def normalize_log1p(counts, target_sum: float = 1e4) -> sparse.csr_matrix:
    """``log1p(counts / spot total * target_sum)`` per spot (a spot without counts stays 0);
    ``(spots, genes)`` -> the same shape, float32 CSR."""
    counts = sparse.csr_matrix(counts, dtype=np.float32)
    totals = np.asarray(counts.sum(axis=1)).ravel()
    scale = np.divide(float(target_sum), totals, out=np.zeros_like(totals), where=totals > 0)
    out = sparse.diags(scale.astype(np.float32)) @ counts
    out = sparse.csr_matrix(out, dtype=np.float32)
    np.log1p(out.data, out=out.data)
    return out


def highly_variable_genes(matrices: Sequence, genes: Sequence[str], n_top: int, bins: int = 20) -> list:
    """The ``n_top`` most variable genes over the spots of all ``matrices`` (normalised
    ``log1p`` data, ``(spots, genes)`` each, columns = ``genes``), in the order of ``genes``.

    Dispersion ``var / mean`` per gene, its log z-scored within ``bins`` bins of the mean
    expression (so that highly expressed genes do not win by their mean alone; fewer bins when
    there are fewer than 20 expressed genes a bin); genes never expressed are never picked. All genes when ``n_top >= len(genes)``.
    """
    genes = [str(g) for g in genes]
    if n_top >= len(genes):
        return genes
    stacked = sparse.vstack([sparse.csr_matrix(m) for m in matrices]).astype(np.float64)
    mean = np.asarray(stacked.mean(axis=0)).ravel()
    var = np.asarray(stacked.multiply(stacked).mean(axis=0)).ravel() - mean**2
    expressed = mean > 0
    dispersion = np.full(len(genes), -np.inf)
    dispersion[expressed] = np.log(np.maximum(var[expressed], 1e-12) / mean[expressed])
    score = np.full(len(genes), -np.inf)
    if expressed.any():
        bins = max(1, min(int(bins), int(expressed.sum()) // 20))  # at least ~20 genes a bin
        edges = np.quantile(mean[expressed], np.linspace(0, 1, bins + 1)[1:-1])
        which = np.digitize(mean, edges)
        for b in np.unique(which[expressed]):
            members = expressed & (which == b)
            d = dispersion[members]
            sd = d.std()
            score[members] = (d - d.mean()) / sd if sd > 0 else 0.0
    order = np.lexsort((np.arange(len(genes)), -score))  # best score first, ties by gene order
    picked = np.sort(order[: int(n_top)])
    return [genes[i] for i in picked if expressed[i]]


def expression_matrix(ids: Sequence[str], file_ids: Sequence[str], file_genes: Sequence[str], counts,
                      genes: Sequence[str], target_sum: float = 1e4, source: str = "counts") -> np.ndarray:
    """``(N, len(genes))`` float32 normalised ``log1p`` expression of the nodes ``ids``, from
    ``counts`` ``(spots, genes)`` whose rows are ``file_ids`` and columns ``file_genes``.

    Nodes absent from the file get zeros and genes absent from it zero columns, each with a
    warning naming ``source`` and how many; no node at all in the file is an error.
    """
    from ..io.readers.features import match_rows

    rows = match_rows(ids, file_ids, source, "counts")
    if len(ids) and (rows < 0).all():
        raise ValueError(f"{source}: none of the section's {len(ids)} node ids is in the counts "
                         f"(e.g. {ids[0]!r}); expected the same spot ids (or give id_format)")
    if (rows < 0).any():
        warnings.warn(f"{source}: {int((rows < 0).sum())} of {len(ids)} nodes have no counts; "
                      "their expression is set to 0", stacklevel=2)
    cols = match_rows(genes, file_genes, source, "gene names")
    if (cols < 0).any():
        warnings.warn(f"{source}: {int((cols < 0).sum())} of the model's {len(genes)} genes are absent "
                      f"(e.g. {genes[int(np.flatnonzero(cols < 0)[0])]!r}); they are set to 0", stacklevel=2)
    out = np.zeros((len(ids), len(genes)), dtype=np.float32)
    have_r, have_c = rows >= 0, cols >= 0
    if have_r.any() and have_c.any():  # per-spot normalisation: only the nodes' rows are needed
        block = normalize_log1p(sparse.csr_matrix(counts)[rows[have_r]], target_sum)[:, cols[have_c]].toarray()
        out[np.ix_(np.flatnonzero(have_r), np.flatnonzero(have_c))] = block
    return out


def node_ids(section, id_format: Optional[str] = None) -> list:
    """The ids that name ``section``'s nodes in a counts or features file: its barcodes, or
    ``id_format`` filled per node with ``{barcode}``, ``{array_row}``/``{array_col}`` (alias
    ``{y}``/``{x}``), e.g. ``"{x}x{y}"`` for the her2st counts tables."""
    if not id_format:
        return [str(b) for b in section.barcodes]
    if ("{x}" in id_format or "{array_col}" in id_format) and section.array_col is None:
        raise ValueError(f"section {section.name}: id_format {id_format!r} needs array coordinates, "
                         "which its reader did not give")
    cols = section.array_col if section.array_col is not None else [None] * section.num_nodes
    rows = section.array_row if section.array_row is not None else [None] * section.num_nodes
    return [id_format.format(barcode=b, x=c, y=r, array_col=c, array_row=r)
            for b, c, r in zip(section.barcodes, np.asarray(cols).tolist(), np.asarray(rows).tolist())]
