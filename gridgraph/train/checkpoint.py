"""Checkpoint files: everything needed to resume a run or to predict with nothing else."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import torch

from ..io.atomic import atomic_save

FORMAT = "gridgraph-checkpoint"
VERSION = 1


def save_checkpoint(path: Union[str, os.PathLike], payload: dict) -> Path:
    """Write ``payload`` (plus format tags) atomically with ``torch.save``."""
    payload = {"format": FORMAT, "version": VERSION, **payload}
    atomic_save(payload, path)
    return Path(path)


def load_checkpoint(path: Union[str, os.PathLike], map_location="cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`, checking that it is one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for foreign or truncated files
        raise ValueError(f"{path}: not a readable checkpoint ({err})") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path}: not a gridgraph checkpoint (field 'format' != {FORMAT!r})")
    for key in ("config", "classes", "model"):
        if key not in ckpt:
            raise ValueError(f"{path}: checkpoint lacks the field {key!r}")
    return ckpt
