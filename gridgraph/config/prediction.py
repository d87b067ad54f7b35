"""What ``gridgraph predict --set`` may change: how a trained model is run, never the model.

A checkpoint's config says what was trained; a few of its settings only say how the trained
model runs (:data:`PREDICT_SETTINGS`) and may change at prediction time. Everything else is
refused with the reason: it is part of the trained model (``f``, ``g``, ``model``, ``patches``,
``graph``, the classes), a training setting that prediction does not read, or said by a flag.
"""
from __future__ import annotations

from typing import Iterable

from .legacy import respell_key
from .load import make_config, parse_override
from .schema import RunConfig

__all__ = ["PREDICT_SETTINGS", "prediction_config"]

#: The settings a prediction may change, with what each does (the test-time averages of f and g).
PREDICT_SETTINGS = {
    "model.f_tta": "f averages the 8 flips and turns of each patch",
    "model.g_tta": "g averages the lattice symmetries of grid sections",
}
_MODEL_SECTIONS = ("f", "g", "model", "patches", "graph")
_FLAGS = {"train.device": "--device", "train.progress": "--progress"}


def _trained_value(cfg: RunConfig, keys: list):
    value = cfg.to_dict()
    for k in keys:
        if not isinstance(value, dict) or k not in value:
            return None
        value = value[k]
    return value


def _refusal(cfg: RunConfig, text: str, keys: list) -> str:
    key = ".".join(keys)
    allowed = f"--set may change {', '.join(PREDICT_SETTINGS)}"
    if key in _FLAGS:
        return f"--set {text}: say it with {_FLAGS[key]}"
    if keys[0] in _MODEL_SECTIONS or key == "data.classes":
        trained = _trained_value(cfg, keys)
        was = f" (trained with {trained!r})" if trained is not None else ""
        return f"--set {text}: {key} is part of the trained model{was}; retrain to change it ({allowed})"
    if keys[0] in ("train", "data", "seed", "output"):
        return f"--set {text}: {key} is a training setting that predict does not use ({allowed})"
    return f"--set {text}: unknown key {key!r} ({allowed})"


def prediction_config(cfg: RunConfig, overrides: Iterable[str]) -> RunConfig:
    """``cfg`` (a checkpoint's config) with ``KEY=VALUE`` ``overrides`` of :data:`PREDICT_SETTINGS`
    applied; any other key is a :class:`ValueError` naming it and why it cannot change."""
    overrides = list(overrides)
    for text in overrides:
        keys = respell_key(parse_override(text)[0])
        if ".".join(keys) not in PREDICT_SETTINGS:
            raise ValueError(_refusal(cfg, text, keys))
    return make_config(cfg, overrides, source="--set") if overrides else cfg
