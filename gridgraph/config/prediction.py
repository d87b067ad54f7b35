"""What ``gridgraph predict --set`` may change: how a trained model is run, never the model.

A checkpoint's config says what was trained; a few of its settings only say how the trained
model runs (:data:`PREDICT_SETTINGS`) and may change at prediction time, and ``data.kwargs.KEY``
are the options of the reader that reads the input (a Visium HD bin size, a Space Ranger image
level), merged over those the model was trained with (:func:`reader_options`). Everything else is
refused with the reason: it is part of the trained model (``f``, ``g``, ``model``, ``patches``,
``graph``, the classes), a training setting that prediction does not read, or said by a flag.
"""
from __future__ import annotations

from typing import Iterable

from .legacy import respell_key
from .load import make_config, parse_override
from .schema import RunConfig

__all__ = ["PREDICT_SETTINGS", "READER_OPTIONS", "prediction_config", "reader_options"]

#: The settings a prediction may change, with what each does (the test-time averages of f and g).
PREDICT_SETTINGS = {
    "model.f_tta": "f averages the 8 flips and turns of each patch",
    "model.g_tta": "g averages the lattice symmetries of grid sections",
}
#: The prefix of the input reader's options (``data.kwargs.bin_size_um=8``; ``data.options.*`` too).
READER_OPTIONS = "data.kwargs.*"
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
    allowed = f"--set may change {', '.join([*PREDICT_SETTINGS, READER_OPTIONS])}"
    if key in _FLAGS:
        return f"--set {text}: say it with {_FLAGS[key]}"
    if keys[0] in _MODEL_SECTIONS or key == "data.classes":
        trained = _trained_value(cfg, keys)
        was = f" (trained with {trained!r})" if trained is not None else ""
        return f"--set {text}: {key} is part of the trained model{was}; retrain to change it ({allowed})"
    if keys[0] in ("train", "data", "seed", "output"):
        return f"--set {text}: {key} is a training setting that predict does not use ({allowed})"
    return f"--set {text}: unknown key {key!r} ({allowed})"


def _is_reader_option(keys: list) -> bool:
    return len(keys) == 3 and keys[:2] == ["data", "kwargs"]


def reader_options(overrides: Iterable[str]) -> dict:
    """``{option: value}`` of the ``data.kwargs.KEY=VALUE`` ``overrides`` (values parsed as YAML):
    the input reader's options, applied over the trained ones by
    :func:`~gridgraph.workflows.predict.read_as_trained`; other keys are left out."""
    out = {}
    for text in overrides:
        keys, value = parse_override(text)
        keys = respell_key(keys)
        if _is_reader_option(keys):
            out[keys[2]] = value
    return out


def prediction_config(cfg: RunConfig, overrides: Iterable[str]) -> RunConfig:
    """``cfg`` (a checkpoint's config) with ``KEY=VALUE`` ``overrides`` of :data:`PREDICT_SETTINGS`
    applied; ``data.kwargs.KEY`` (reader options, :func:`reader_options`) are let through unchanged
    (the input may be read by another reader than the training one); any other key is a
    :class:`ValueError` naming it and why it cannot change."""
    settings = []
    for text in overrides:
        keys = respell_key(parse_override(text)[0])
        if _is_reader_option(keys):
            continue
        if ".".join(keys) not in PREDICT_SETTINGS:
            raise ValueError(_refusal(cfg, text, keys))
        settings.append(text)
    return make_config(cfg, settings, source="--set") if settings else cfg
