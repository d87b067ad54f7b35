"""Gene expression as the target of f and g: the genes, their normalisation and the per-node values.

The target is normalised as f's expression inputs are (:func:`~.expression.normalize_log1p`:
per-spot total, log1p), then optionally standardised per gene. What depends on data (the
genes, when the ``top_variable`` most variable are asked for, and each gene's mean and SD) is
fitted on the training sections only by :func:`fit_target` and kept in the checkpoint's
``features["target"]``, so that prediction writes the same genes in the same order on the same
scale. ``target`` below is a run config's ``target`` section as plain data
(``cfg.target.model_dump()``). Counts come from ``target["counts"]`` (a file per section,
``{section}`` standing for its id) or from the section itself (``section.meta["counts"]``:
``{"genes": [...], "matrix": (N, genes) counts in node order}``, as the synthetic reader gives).
"""
from __future__ import annotations

import warnings
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
import torch
from scipy import sparse

from .expression import highly_variable_genes, node_ids, normalize_log1p

__all__ = ["fit_target", "section_targets", "target_genes", "destandardize", "TARGET_KEY"]

TARGET_KEY = "target"  # where the target's state lives in the node-feature state (a checkpoint's features)


def _counts(section, target: Mapping) -> tuple:
    """``(source, file ids, file genes, CSR counts, node ids)`` of a section's counts."""
    path = target.get("counts")
    if path:
        from .inputs import _read_counts_cached, _stamp

        path = str(path).format(section=section.name)
        ids, genes, counts = _read_counts_cached(path, *_stamp(path))
        return path, ids, genes, counts, node_ids(section, target.get("id_format"))
    own = (section.meta or {}).get("counts")
    if own is None:
        raise ValueError(f"section {section.name}: the target is gene expression but the section has no counts; "
                         "give target.counts (a counts file per section, '{section}' standing for its id)")
    barcodes = [str(b) for b in section.barcodes]
    return f"section {section.name} (its reader's counts)", barcodes, list(own["genes"]), \
        sparse.csr_matrix(own["matrix"], dtype=np.float32), barcodes


def _check_finite(source: str, genes: Sequence[str], counts) -> None:
    """NaN or infinite counts are an error naming the file and the first gene holding one."""
    counts = sparse.csc_matrix(counts)
    bad = ~np.isfinite(counts.data)
    if bad.any():
        col = int(np.searchsorted(counts.indptr, np.flatnonzero(bad)[0], side="right") - 1)
        raise ValueError(f"{source}: the counts of gene {genes[col]!r} hold NaN or infinite values; "
                         "expected raw counts >= 0")


def _node_rows(source: str, section, ids, node) -> np.ndarray:
    from ..io.readers.features import match_rows

    rows = match_rows(node, ids, source, "counts")
    if len(node) and (rows < 0).all():
        raise ValueError(f"{source}: none of section {section.name}'s {len(node)} node ids is in the counts "
                         f"(e.g. {node[0]!r}); expected the same spot ids (or give target.id_format)")
    return rows


def _gene_columns(source: str, genes: Sequence[str], file_genes: Sequence[str]) -> np.ndarray:
    from ..io.readers.features import match_rows

    cols = match_rows(genes, file_genes, source, "gene names")
    missing = np.flatnonzero(cols < 0)
    if len(missing):
        raise ValueError(f"{source}: target gene {genes[int(missing[0])]!r} is not in the counts "
                         f"({len(missing)} of the {len(genes)} target genes are absent)")
    return cols


def _normalised(section, target: Mapping) -> tuple:
    """``(source, rows, file genes, normalised (spots with counts, file genes))`` of one section:
    ``rows`` the row of each node among the file's spots (``-1``: no counts)."""
    source, ids, file_genes, counts, node = _counts(section, target)
    rows = _node_rows(source, section, ids, node)
    matrix = sparse.csr_matrix(counts)[rows[rows >= 0]]
    _check_finite(source, file_genes, matrix)
    return source, rows, list(file_genes), normalize_log1p(matrix, float(target.get("target_sum", 1e4)))


def _input_genes(f_state: Mapping) -> set:
    return {g for key, s in f_state.items() if key != TARGET_KEY and isinstance(s, Mapping)
            for g in s.get("genes", ())}


def fit_target(target: Mapping, train_sections: Sequence, f_state: Optional[Mapping] = None,
               log: Callable[[str], None] = print, measured_in: Sequence = ()) -> dict:
    """The target's state from the training sections: ``{"kind", "genes", "target_sum",
    "mean", "std"}`` (``mean``/``std`` per gene over the training nodes with counts; ``None``
    without ``standardize``). Genes that f also reads as inputs (``f_state``, its node-feature
    state) are refused: the model would be handed its answer. ``measured_in``: further sections
    (the run's validation and test sections) whose counts must hold every ``top_variable`` gene:
    only their gene names are read, never their values."""
    if not train_sections:
        raise ValueError("the expression target is fitted on the training sections, but none were given")
    parts = [_normalised(st, target) for st in train_sections]
    genes = target.get("genes")
    if genes:
        genes = [str(g) for g in genes]
        columns = [_gene_columns(source, genes, file_genes) for source, _, file_genes, _ in parts]
    else:
        common = set(parts[0][2]).intersection(*(set(p[2]) for p in parts[1:]),
                                               *(set(_counts(st, target)[2]) for st in measured_in))
        names = [g for g in parts[0][2] if g in common]
        where = [{g: k for k, g in enumerate(p[2])} for p in parts]
        matrices = [p[3][:, [w[g] for g in names]] for p, w in zip(parts, where)]
        genes = highly_variable_genes(matrices, names, int(target["top_variable"]))
        columns = [np.array([w[g] for g in genes]) for w in where]
        log(f"target: the {len(genes)} most variable genes of {len(train_sections)} training sections")
    overlap = [g for g in genes if g in _input_genes(f_state or {})]
    if overlap:
        raise ValueError(f"the target genes {overlap[:5]} ({len(overlap)} of {len(genes)}) are also f's expression "
                         "inputs: f would read its answer; drop them from f's genes or from the target")
    values = np.concatenate([p[3][:, c].toarray() for p, c in zip(parts, columns)]).astype(np.float64)
    state = {"kind": "expression", "genes": list(genes), "target_sum": float(target.get("target_sum", 1e4)),
             "mean": None, "std": None}
    if target.get("standardize", True):
        mean, std = values.mean(0), values.std(0)
        flat = np.flatnonzero(std <= 1e-8 * np.maximum(1.0, np.abs(mean)))
        if len(flat):
            raise ValueError(f"target gene {genes[int(flat[0])]!r} has the same value on every training spot; "
                             "it cannot be standardised (drop it, or set target.standardize: false)")
        state["mean"], state["std"] = mean.tolist(), std.tolist()
    return state


def target_genes(state: Mapping) -> list:
    """The target's genes, in the order of the model's outputs."""
    return list(state[TARGET_KEY]["genes"])


def section_targets(section, target: Mapping, state: Mapping) -> torch.Tensor:
    """``(N, G)`` float32 target of a section's nodes, normalised (and standardised) as fitted
    (``state``: :func:`fit_target`'s); rows of NaN for nodes without counts (with a warning).
    A target gene absent from the section's counts is an error naming the file and the gene."""
    source, rows, file_genes, matrix = _normalised(section, target)
    cols = _gene_columns(source, state["genes"], file_genes)
    out = np.full((len(rows), len(cols)), np.nan, dtype=np.float64)
    out[rows >= 0] = matrix[:, cols].toarray()
    if (rows < 0).any():
        warnings.warn(f"{source}: {int((rows < 0).sum())} of {len(rows)} nodes have no counts; they have no "
                      "target (left out of the loss and the metrics)", stacklevel=2)
    if state.get("mean") is not None:
        out = (out - np.asarray(state["mean"])) / np.asarray(state["std"])
    return torch.from_numpy(out.astype(np.float32))


def destandardize(values, state: Mapping) -> np.ndarray:
    """Predicted values back on the normalised log1p scale (the inverse of the standardisation)."""
    values = np.asarray(values, dtype=np.float64)
    if state.get("mean") is None:
        return values.astype(np.float32)
    return (values * np.asarray(state["std"]) + np.asarray(state["mean"])).astype(np.float32)
