"""Node features beyond image patches: which modalities an f reads, gene expression
preprocessing fitted on the training sections, and a section's inputs built for f."""
from .expression import expression_matrix, highly_variable_genes, node_ids, normalize_log1p
from .inputs import fit_features, image_only, in_features, modalities, needs_image, section_inputs, with_sources

__all__ = ["expression_matrix", "highly_variable_genes", "node_ids", "normalize_log1p", "fit_features",
           "in_features", "modalities", "needs_image", "image_only", "section_inputs", "with_sources"]
