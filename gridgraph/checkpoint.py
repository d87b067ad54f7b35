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
from .names import EnsembleMethod

__all__ = ["FORMAT", "VERSION", "ENSEMBLE_FORMAT", "ENSEMBLE_METHODS", "Checkpoint", "EnsembleFile",
           "save_checkpoint", "load_checkpoint", "save_ensemble", "load_trained", "versions"]

FORMAT = "gridgraph-checkpoint"
VERSION = 1
ENSEMBLE_FORMAT = "gridgraph-ensemble"
#: How an ensemble combines its members' class probabilities (see :func:`gridgraph.evaluate.ensemble`).
ENSEMBLE_METHODS = EnsembleMethod.values()

# field -> (type it must have, what the error calls it); "config", "classes" and "model" are required
_FIELDS = {
    "config": (dict, "a mapping (the run config)"),
    "classes": (list, "a list of class names"),
    "model": (dict, "a mapping of tensor names to tensors"),
    "scale": (dict, "a mapping (the physical scale trained at)"),
    "platform": (dict, "a mapping (the layouts and node kinds trained on)"),
    "features": (dict, "a mapping (the node-feature state)"),
    "f_input": (dict, "a mapping (f's input size and normalisation)"),
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


def _read(path: Path, map_location) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for foreign or truncated files
        raise ValueError(f"{path}: not a readable checkpoint ({_why_unreadable(path, err)})") from err


def _why_unreadable(path: Path, err: Exception) -> str:
    """One short reason a file did not load: empty, not (or no longer) a zip archive, or the
    first line of torch's message."""
    import zipfile

    size = path.stat().st_size
    if size == 0:
        return "the file is empty"
    if not zipfile.is_zipfile(path):
        return (f"{size} bytes that are not a torch.save archive: truncated, or another kind of file; "
                "expected a checkpoint or ensemble that gridgraph wrote")
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return f"{type(err).__name__}: {first[:200]}"


def load_checkpoint(path: Union[str, os.PathLike], map_location="cpu") -> dict:
    """The raw dict of a checkpoint written by :func:`save_checkpoint`, its fields type-checked."""
    path = Path(path)
    ckpt = _read(path, map_location)
    if isinstance(ckpt, dict) and ckpt.get("format") == ENSEMBLE_FORMAT:
        raise ValueError(f"{path}: is an ensemble of {len(ckpt.get('members') or [])} checkpoints, not one "
                         "checkpoint (gridgraph predict and evaluate take it; resuming and init_from do not)")
    return _checked(ckpt, path)


def _checked(ckpt: Any, path) -> dict:
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path}: not a gridgraph checkpoint (holds {type(ckpt).__name__}, expected a mapping "
                         f"with field 'format' = {FORMAT!r})")
    if ckpt.get("format") != FORMAT:
        found = "is missing" if "format" not in ckpt else f"is {ckpt['format']!r}"
        other = "" if ckpt.get("format") == ENSEMBLE_FORMAT else f" or {ENSEMBLE_FORMAT!r}"
        raise ValueError(f"{path}: not a gridgraph checkpoint (field 'format' {found}, expected {FORMAT!r}{other})")
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
        f_input: a pretrained backbone f's input as trained (``input_size``, ``input_mean``,
            ``input_std``), which its weights' own config may have said; empty when unknown.
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
    f_input: dict = dataclasses.field(default_factory=dict)
    metrics: dict = dataclasses.field(default_factory=dict)
    history: list = dataclasses.field(default_factory=list)
    versions: dict = dataclasses.field(default_factory=dict)
    path: Optional[Path] = None

    @classmethod
    def load(cls, path: Union[str, os.PathLike], map_location="cpu") -> "Checkpoint":
        return cls.from_dict(load_checkpoint(path, map_location=map_location), path)

    @classmethod
    def from_dict(cls, raw: dict, path, source: Optional[str] = None) -> "Checkpoint":
        """A checkpoint from the raw dict of ``path`` (``source``: how errors name it, default
        the path; an ensemble's member is ``"<file> member <i>"``)."""
        source = source or str(path)
        raw = _checked(raw, source)
        _check_weights(raw["model"], source)
        try:
            config = make_config(legacy_config(raw["config"]), source=f"{source}: field 'config'")
        except (TypeError, AttributeError) as err:
            raise ValueError(f"{source}: field 'config' is not a run config ({err})") from err
        return cls(config=config, classes=list(raw["classes"]), model=raw["model"],
                   **{k: raw.get(k) or _FIELDS[k][0]() for k in ("scale", "platform", "features", "f_input",
                                                                   "metrics", "history", "versions")},
                   path=Path(path).resolve())

    def replace(self, **changes: Any) -> "Checkpoint":
        return dataclasses.replace(self, **changes)

    def metric_summary(self) -> dict:
        """The validation metrics that are plain finite numbers."""
        return {k: v for k, v in self.metrics.items()
                if isinstance(v, float) and math.isfinite(v)}


@dataclasses.dataclass(frozen=True)
class EnsembleFile:
    """What ``ensemble.pt`` holds: several trained models that predict as one.

    Attributes:
        members: the members' checkpoints, each whole (weights, config, classes, scale).
        method: how their probabilities are combined, one of :data:`ENSEMBLE_METHODS`.
        sources: where each member came from (e.g. ``trials/trial_0003/best.pt``), as written.
        info: plain data about how the members were chosen (a study's trials and scores).
        path: the file it was read from, absolute.
    """

    members: list
    method: str = "mean"
    sources: list = dataclasses.field(default_factory=list)
    info: dict = dataclasses.field(default_factory=dict)
    path: Optional[Path] = None


def save_ensemble(path: Union[str, os.PathLike], members: list, method: str = "mean",
                  info: Optional[dict] = None, sources: Optional[list] = None) -> Path:
    """Write ``ensemble.pt``: the checkpoint files ``members`` copied in whole (so the ensemble
    is one self-contained file), the combining ``method``, ``info`` and the members' names
    (``sources``, default their paths), atomically."""
    if method not in ENSEMBLE_METHODS:
        raise ValueError(f"ensemble method must be one of {', '.join(ENSEMBLE_METHODS)}, got {method!r}")
    if not members:
        raise ValueError("an ensemble needs at least one member checkpoint")
    raws = []
    for m in members:
        raw = load_checkpoint(m)
        Checkpoint.from_dict(raw, m)  # every member checked before anything is written
        raws.append(raw)
    classes = [list(r["classes"]) for r in raws]
    for m, c in zip(members, classes):
        if c != classes[0]:
            raise ValueError(f"{m}: classes {c} differ from {members[0]}'s {classes[0]}: "
                             "an ensemble's members must predict the same classes in the same order")
    atomic_save({"format": ENSEMBLE_FORMAT, "version": VERSION, "versions": versions(), "method": method,
                 "members": raws, "sources": [str(m) for m in (sources or members)], "info": dict(info or {})}, path)
    return Path(path)


def load_trained(path: Union[str, os.PathLike], map_location="cpu") -> Union[Checkpoint, EnsembleFile]:
    """A checkpoint file (:class:`Checkpoint`) or an ensemble file (:class:`EnsembleFile`)."""
    path = Path(path)
    raw = _read(path, map_location)
    if not (isinstance(raw, dict) and raw.get("format") == ENSEMBLE_FORMAT):
        return Checkpoint.from_dict(raw, path)
    members, method = raw.get("members"), raw.get("method", "mean")
    if not isinstance(members, list) or not members:
        raise ValueError(f"{path}: field 'members' must be a non-empty list of checkpoints")
    if method not in ENSEMBLE_METHODS:
        raise ValueError(f"{path}: field 'method' must be one of {', '.join(ENSEMBLE_METHODS)}, not {method!r}")
    loaded = [Checkpoint.from_dict(m, path, source=f"{path} member {i}") for i, m in enumerate(members)]
    sources, info = raw.get("sources") or [], raw.get("info") or {}
    if not (isinstance(sources, list) and all(isinstance(s, str) for s in sources)) or \
            len(sources) not in (0, len(members)):
        raise ValueError(f"{path}: field 'sources' must be a list of {len(members)} member names (text), "
                         f"not {type(sources).__name__} {repr(sources)[:60]}")
    if not isinstance(info, dict):
        raise ValueError(f"{path}: field 'info' must be a mapping, not {type(info).__name__}")
    return EnsembleFile(members=loaded, method=method, sources=list(sources), info=dict(info), path=path.resolve())
