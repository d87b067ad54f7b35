"""A checkpoint file as a typed value: what ``best.pt`` holds and what predicting needs of it.

Files are written by :func:`save_checkpoint` (``torch.save`` of plain data, atomically) and
read by :func:`load_checkpoint` (the raw dict, for resuming) or :meth:`Checkpoint.load` (every
field checked by type, weights checked to be finite, the config parsed). Checkpoints written
before a field existed load with that field empty.
"""
from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any, Optional, Union

import torch

from .config import RunConfig, legacy_config, make_config
from .files.atomic import atomic_save

__all__ = ["FORMAT", "VERSION", "Checkpoint", "save_checkpoint", "load_checkpoint", "versions"]

FORMAT = "gridgraph-checkpoint"
VERSION = 1

# field -> (type it must have, what the error calls it); "config", "classes" and "model" are required
_FIELDS = {
    "config": (dict, "a mapping (the run config)"),
    "classes": (list, "a list of class names"),
    "model": (dict, "a mapping of tensor names to tensors"),
    "scale": (dict, "a mapping (the physical scale trained at)"),
    "platform": (dict, "a mapping (the layouts and node kinds trained on)"),
    "features": (dict, "a mapping (the node-feature state)"),
    "metrics": (dict, "a mapping of validation metrics"),
    "history": (list, "a list of epoch records"),
    "versions": (dict, "a mapping of package versions"),
}
REQUIRED = ("config", "classes", "model")


def versions() -> dict:
    """The versions a checkpoint records of the packages that wrote it."""
    from . import __version__

    return {"gridgraph": str(__version__), "torch": str(torch.__version__)}


def save_checkpoint(path: Union[str, os.PathLike], payload: dict) -> Path:
    """Write ``payload`` (plus the format tags and the writers' versions) atomically."""
    atomic_save({"format": FORMAT, "version": VERSION, "versions": versions(), **payload}, path)
    return Path(path)


def load_checkpoint(path: Union[str, os.PathLike], map_location="cpu") -> dict:
    """The raw dict of a checkpoint written by :func:`save_checkpoint`, its fields type-checked."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for foreign or truncated files
        raise ValueError(f"{path}: not a readable checkpoint ({err})") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path}: not a gridgraph checkpoint (field 'format' != {FORMAT!r})")
    for key in REQUIRED:
        if key not in ckpt:
            raise ValueError(f"{path}: checkpoint lacks the field {key!r}")
    for key, (kind, what) in _FIELDS.items():
        value = ckpt.get(key)
        if value is not None and not isinstance(value, kind):
            raise ValueError(f"{path}: field {key!r} must be {what}, not {type(value).__name__}")
    bad = [c for c in ckpt["classes"] if not isinstance(c, str)]
    if bad:
        raise ValueError(f"{path}: field 'classes' must hold class names (text), not {bad[0]!r}")
    return ckpt


def _check_weights(state: dict, path) -> None:
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{path}: field 'model' entry {name!r} is {type(value).__name__}, not a tensor")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            count = int((~torch.isfinite(value)).sum())
            raise ValueError(f"{path}: weight {name!r} holds {count} non-finite values (NaN or Inf); "
                             "the checkpoint was written by a diverged or damaged run")


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """What a trained model's file holds.

    Attributes:
        config: the run config the model was built and trained with.
        classes: class names, in the order of the model's outputs.
        model: the weights (``state_dict``).
        scale: the physical scale trained at (``window_um``, ``patch_um_per_px`` or an automatic
            ``window_px``); empty when unknown.
        platform: the graph layouts and node kinds (spots, cells) of the training sections
            (:func:`gridgraph.workflows.platform.platform_record`); empty when unknown.
        features: the node-feature state (gene lists, normalisation, input widths).
        metrics: validation metrics of the selected epoch.
        history: the epoch records.
        versions: the package versions that wrote it (empty for older files).
        path: the file it was read from, absolute.
    """

    config: RunConfig
    classes: list
    model: dict
    scale: dict = dataclasses.field(default_factory=dict)
    platform: dict = dataclasses.field(default_factory=dict)
    features: dict = dataclasses.field(default_factory=dict)
    metrics: dict = dataclasses.field(default_factory=dict)
    history: list = dataclasses.field(default_factory=list)
    versions: dict = dataclasses.field(default_factory=dict)
    path: Optional[Path] = None

    @classmethod
    def load(cls, path: Union[str, os.PathLike], map_location="cpu") -> "Checkpoint":
        raw = load_checkpoint(path, map_location=map_location)
        _check_weights(raw["model"], path)
        try:
            config = make_config(legacy_config(raw["config"]), source=f"{path}: field 'config'")
        except (TypeError, AttributeError) as err:
            raise ValueError(f"{path}: field 'config' is not a run config ({err})") from err
        return cls(config=config, classes=list(raw["classes"]), model=raw["model"],
                   **{k: raw.get(k) or _FIELDS[k][0]() for k in ("scale", "platform", "features", "metrics",
                                                                   "history", "versions")},
                   path=Path(path).resolve())

    def replace(self, **changes: Any) -> "Checkpoint":
        return dataclasses.replace(self, **changes)

    def metric_summary(self) -> dict:
        """The validation metrics that are plain finite numbers."""
        return {k: v for k, v in self.metrics.items()
                if isinstance(v, float) and math.isfinite(v)}
