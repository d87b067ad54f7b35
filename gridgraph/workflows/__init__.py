"""End-to-end jobs, shared by the CLI, the examples and the benchmarks.

config -> sections (``sections.py``) -> :func:`build_run` (``build.py``: settled config, model,
what checkpoints record) -> training (``train.py``), evaluation (``evaluate.py``), prediction
(``predict.py``) -> files and figures (``figures.py``).
"""
from .build import Run, build_run, load_model, model_from_config, resolve_config
from .evaluate import SPLITS, evaluate_checkpoints
from .figures import prediction_figure, section_figures, training_figures
from .predict import predict_anndata, predict_probabilities, predict_section, predict_spatialdata, provenance, \
    read_as_trained, trained_window
from .sections import (expand_ids, load_section, load_splits, load_splits_and_features, prepare, rebuild_graph,
                       training_scale, unify_classes)
from .train import run_training, write_json

__all__ = ["Run", "build_run", "load_model", "model_from_config", "resolve_config", "SPLITS", "evaluate_checkpoints",
           "prediction_figure", "section_figures", "training_figures", "predict_anndata", "predict_probabilities",
           "predict_section", "predict_spatialdata", "provenance", "read_as_trained", "trained_window", "expand_ids", "load_section",
           "load_splits", "load_splits_and_features", "prepare", "rebuild_graph", "training_scale", "unify_classes",
           "run_training", "write_json"]
