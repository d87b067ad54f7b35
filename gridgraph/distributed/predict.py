"""Prediction over several inputs: expand globs and list files, split over ranks.

Every rank predicts whole inputs (sections), so each output equals a one-process run's byte for
byte; outputs are written atomically by each rank into its own folders, never shared.
"""
from __future__ import annotations

import glob
from pathlib import Path
from typing import Sequence

from .context import rank, world_size
from .sampler import shard_positions

__all__ = ["expand_inputs", "shard_inputs"]

_GLOB = set("*?[")


def expand_inputs(values: Sequence[str]) -> list:
    """Predict's input arguments as a list of inputs, in the order given.

    ``@FILE``: a text file listing one input per line (blank lines and ``#`` comments skipped;
    relative paths are relative to the file's folder); a value with ``*``, ``?`` or ``[``: a
    glob pattern, its matches sorted (none is an error); anything else: one input as given.
    Repeated inputs are an error (their outputs would collide).
    """
    out: list = []
    for value in values:
        if value.startswith("@"):
            listing = Path(value[1:])
            if not listing.is_file():
                raise ValueError(f"{value}: list file {listing} not found")
            for line in listing.read_text(encoding="utf-8").splitlines():
                line = line.split("#", 1)[0].strip()
                if line:
                    path = Path(line)
                    out.append(str(path if path.is_absolute() else listing.parent / path))
        elif _GLOB & set(value):
            matches = sorted(glob.glob(value))
            if not matches:
                raise ValueError(f"{value}: no file or folder matches this pattern")
            out.extend(matches)
        else:
            out.append(value)
    if not out:
        raise ValueError("no input to predict (an empty list file?)")
    seen = set()
    for value in out:
        key = str(Path(value).resolve()) if Path(value).exists() else value
        if key in seen:
            raise ValueError(f"input {value} is given twice")
        seen.add(key)
    return out


def shard_inputs(n: int) -> list:
    """Positions of the ``n`` inputs this rank predicts (all of them in a one-process run)."""
    return shard_positions(n, rank(), world_size())
