"""The figures runs write: label and misclassification maps, the confusion matrix (Agg PNGs)."""
from __future__ import annotations

from pathlib import Path

import torch

from ..evaluate import confusion_matrix
from ..patches import SectionTensors

__all__ = ["section_figures", "training_figures", "prediction_figure", "expression_figure"]


def section_figures(st: SectionTensors, probs, classes, out_dir: Path, prefix: str = "") -> list:
    """true / f / f+g label maps and misclassification maps of one section, as PNGs."""
    from ..plot import plot_misclassification, plot_predictions

    f_prob, g_prob = probs
    y = st.labels.numpy()
    image = st.section.image if st.section is not None else None
    stem = f"{prefix}{st.name.replace('/', '_')}"
    paths = [out_dir / f"{stem}_labels.png", out_dir / f"{stem}_misclassification.png"]
    plot_predictions(st.graph, y, f_prob.numpy(), g_prob.numpy(), classes, image=image, path=paths[0])
    plot_misclassification(st.graph, y, {"f": f_prob.numpy(), "f+g": g_prob.numpy()}, image=image, path=paths[1])
    return paths


def training_figures(out: Path, splits: dict, which: str, probs, classes) -> None:
    """The first training section's labels, the first ``which`` section's maps and the confusion
    matrix of ``which``."""
    from ..plot import plot_confusion_matrix, plot_label_map

    first = splits["train"][0]
    if first.section is not None:
        image = first.section.image
        plot_label_map(first.graph, first.labels.numpy(), classes, image=image,
                       title=f"{first.name}: labels", path=out / "train_labels.png")
    shown = splits[which]
    section_figures(shown[0], probs[0], classes, out)
    y = torch.cat([st.labels for st in shown]).numpy()
    pred = torch.cat([p[1] for p in probs]).argmax(1).numpy()
    plot_confusion_matrix(confusion_matrix(y, pred, num_classes=len(classes)), classes,
                          title=f"f+g, {which}", path=out / f"confusion_{which}.png")


def prediction_figure(section, f_prob, g_prob, classes, path, uses_g: bool = True) -> None:
    """Label maps of a predicted section: its labels when it has them, f's, and f + g's (titled
    ``f`` alone when the model's g is off)."""
    from ..plot import plot_label_maps

    panels = {"f": f_prob.numpy()}
    if uses_g:
        panels["f+g"] = g_prob.numpy()
    if section.labels.ge(0).any():
        panels = {"true": section.labels.numpy(), **panels}
    plot_label_maps(section.graph, panels, classes, image=section.image, path=path)


def expression_figure(st: SectionTensors, probs, genes, path) -> Path:
    """Measured against f's and f + g's predicted (standardised) expression of one section's
    best, median and worst predicted gene (by f + g's Pearson r), beside its H&E."""
    from ..evaluate.regression import regression_metrics
    from ..plot import pick_genes, plot_expression_maps

    f_values, g_values = probs
    rows = pick_genes(regression_metrics(st.targets, g_values, per_gene=True)["pearson"])
    image = st.section.image if st.section is not None else None
    plot_expression_maps(st.graph, st.targets, {"f": f_values, "f+g": g_values}, genes, rows, image=image, path=path)
    return Path(path)
