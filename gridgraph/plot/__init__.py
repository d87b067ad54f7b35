"""Figures: label maps, misclassification maps, confusion and class-adjacency matrices, and
measured against predicted expression maps.

Everything is drawn on :class:`matplotlib.figure.Figure` objects rendered with the Agg canvas, so
importing or using this module never touches pyplot or changes the user's backend. Every function
returns the figure and, given ``path``, writes it as a PNG atomically (a failed drawing leaves no
partial file). Sizes are exact: the PNG is ``figsize * dpi`` pixels.

Node coordinates are image pixels ``pos[:, 0] = x`` (column), ``pos[:, 1] = y`` (row, downwards),
so maps are drawn with the y axis inverted, matching the section image.
"""
from ..colors import class_colors
from .common import UNLABELED_COLOR, save_figure
from .expression import pick_genes, plot_expression_maps
from .maps import plot_label_map, plot_label_maps, plot_misclassification, plot_predictions
from .matrices import plot_class_adjacency, plot_confusion_matrix
from .nodes import RASTER_MIN_NODES

__all__ = [
    "class_colors",
    "save_figure",
    "plot_label_map",
    "plot_label_maps",
    "plot_predictions",
    "plot_misclassification",
    "plot_confusion_matrix",
    "plot_class_adjacency",
    "pick_genes",
    "plot_expression_maps",
    "UNLABELED_COLOR",
    "RASTER_MIN_NODES",
]
