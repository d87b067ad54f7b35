"""Checkpoint files and the run folder: ``last.pt``, ``best.pt``, ``metrics.jsonl``.

A checkpoint holds everything needed to resume a run (``last.pt``) or to predict with nothing
else (``best.pt``): the run config as plain data, the class names and the weights.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Sequence, Union

from ..checkpoint import load_checkpoint, save_checkpoint
from ..config import RunConfig, legacy_config
from ..files.atomic import atomic_write

__all__ = ["CheckpointManager", "MODEL_SECTIONS"]

MODEL_SECTIONS = ("f", "g", "model", "patches", "graph", "target")
RESUME_SECTIONS = MODEL_SECTIONS + ("data", "seed", "train")
# train settings a resumed run may change (they do not alter what was already trained)
MUTABLE_TRAIN_KEYS = ("progress", "device", "cache_dir", "embedding_cache", "epochs_f", "epochs_g", "epochs_joint",
                      "channels_last", "pin_memory", "compile_f")


def _section(config: dict, name: str, ignore: Sequence[str] = ()):
    value = config.get(name)
    if isinstance(value, dict) and ignore:
        return {k: v for k, v in value.items() if k not in ignore}
    return value


class CheckpointManager:
    """The files of one run folder.

    Args:
        out_dir: the run folder.
        config: the run config as plain data (stored in every checkpoint; ``None`` for runs
            built from Python objects alone, then only the classes are checked on resume).
        classes: class names.
        meta: more plain data stored in every checkpoint (e.g. the training scale).
    """

    def __init__(self, out_dir: Union[str, os.PathLike], config: Optional[dict], classes: Sequence[str],
                 meta: Optional[dict] = None):
        self.out_dir = Path(out_dir)
        self.config = config or {}
        self.classes = list(classes)
        self.meta = dict(meta or {})

    @property
    def last(self) -> Path:
        return self.out_dir / "last.pt"

    @property
    def best(self) -> Path:
        return self.out_dir / "best.pt"

    @property
    def metrics(self) -> Path:
        return self.out_dir / "metrics.jsonl"

    def write_metrics(self, history: Sequence[dict]) -> None:
        with atomic_write(self.metrics) as fh:
            fh.write("".join(json.dumps(r) + "\n" for r in history))

    def save_last(self, model_state: dict, state: dict, optimizer, stages: Sequence[str]) -> Path:
        return save_checkpoint(self.last, {
            **self.meta, "config": self.config, "classes": self.classes, "model": model_state,
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "stages": [str(s) for s in stages], **state,
        })

    def save_best(self, model_state: dict, metrics: dict, history: Sequence[dict], path=None) -> Path:
        """``best.pt`` (or ``path``): all that ``predict`` needs."""
        return save_checkpoint(self.best if path is None else path, {
            **self.meta, "config": self.config, "classes": self.classes, "model": model_state,
            "metrics": metrics, "history": list(history),
        })

    def load_resume(self, stages: Sequence[str], map_location="cpu") -> Optional[dict]:
        """``last.pt`` if the folder has one written by a compatible run, else ``None``."""
        if not self.last.is_file():
            return None
        ckpt = load_checkpoint(self.last, map_location=map_location)
        if ckpt.get("stages") != [str(s) for s in stages]:
            raise ValueError(f"{self.last}: written for stages {ckpt.get('stages')}, this run has "
                             f"{[str(s) for s in stages]}; use another output folder or --no-resume")
        self.check_compatible(ckpt, self.last, RESUME_SECTIONS)
        return ckpt

    def check_resumable(self, accept: Optional[dict] = None) -> None:
        """Before anything is written: refuse a ``last.pt`` whose run settings differ from this
        run's (classes are checked later, once the sections are read). ``accept``: sections this
        run has not settled yet, each with the values it may settle on (e.g. an automatic g); the
        stored section must be one of them."""
        if not (self.last.is_file() and self.config):
            return
        stored = load_checkpoint(self.last)["config"]
        accept = accept or {}
        self.check_config(stored, self.last, [s for s in RESUME_SECTIONS if s not in accept])
        for name, values in accept.items():
            if stored.get(name) not in values:
                raise ValueError(f"{self.last}: written with {name}={stored.get(name)!r}, this run has "
                                 f"{name}={self.config.get(name)!r}; use another output folder or --no-resume")

    def check_compatible(self, ckpt: dict, path, sections: Sequence[str]) -> None:
        """Refuse a checkpoint whose classes or model-defining config differ from this run's."""
        if list(ckpt["classes"]) != self.classes:
            raise ValueError(f"{path}: written for classes {ckpt['classes']}, this run has {self.classes}")
        self.check_config(ckpt["config"], path, sections)

    def check_config(self, config: dict, path, sections: Sequence[str]) -> None:
        if not self.config:
            return
        ckpt = {"config": legacy_config(config, like=self.config)}
        for name in sections:
            ignore = MUTABLE_TRAIN_KEYS if name == "train" else ()
            old, new = _section(ckpt["config"], name, ignore), _section(self.config, name, ignore)
            if name == "target":  # a config without one (written before targets existed): class labels
                labels = RunConfig().target.model_dump(mode="json")
                old, new = old or labels, new or labels
            if old != new:
                changed = _first_difference(old, new, name)
                raise ValueError(f"{path}: written with {changed[0]}={changed[1]!r}, this run has "
                                 f"{changed[0]}={changed[2]!r}; use another output folder or --no-resume")


def _first_difference(old, new, name: str) -> tuple:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(old) + [k for k in new if k not in old]:
            if old.get(key) != new.get(key):
                return _first_difference(old.get(key), new.get(key), f"{name}.{key}")
    return name, old, new
