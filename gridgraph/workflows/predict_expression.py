"""``gridgraph predict`` for an expression model: its values, back on the normalised log1p scale,
written as ``expression.csv`` and into the AnnData (:mod:`gridgraph.io.writers.expression`)."""
from __future__ import annotations

from ..checkpoint import Checkpoint
from ..features.targets import TARGET_KEY, destandardize
from ..io.writers.expression import add_expression, write_expression_outputs
from ..model import GridGraphNet

__all__ = ["expression_values", "write_predicted_expression", "expression_anndata"]


def expression_values(model: GridGraphNet, ckpt: Checkpoint, f_values, g_values) -> tuple:
    """``(genes, f's values, f + g's values or None when g is off)``: the model's outputs with
    the standardisation fitted on the training sections undone (the checkpoint's
    ``features["target"]``)."""
    state = ckpt.features.get(TARGET_KEY)
    if not state:
        raise ValueError(f"{ckpt.path}: an expression model without its target's genes and normalisation "
                         "(field 'features', key 'target')")
    g = destandardize(g_values.numpy(), state) if bool(model.use_g) else None
    return list(state["genes"]), destandardize(f_values.numpy(), state), g


def write_predicted_expression(model, ckpt, section, f_values, g_values, out_dir, adata=None, info=None) -> dict:
    """``expression.csv`` (and ``predictions.h5ad`` with ``adata``) of one predicted section."""
    genes, f, g = expression_values(model, ckpt, f_values, g_values)
    return write_expression_outputs(out_dir, section.barcodes, f, g, genes, adata=adata, info=info)


def expression_anndata(model, ckpt, section, f_values, g_values, adata, info=None):
    """A copy of ``adata`` with the section's predicted expression (see :func:`add_expression`)."""
    genes, f, g = expression_values(model, ckpt, f_values, g_values)
    return add_expression(adata, section.barcodes, f, g, genes, info=info)
