"""Run configuration: a YAML file, defaults for every key, ``key.sub=value`` overrides, checks.

A config is a nested dict with these sections (see ``DEFAULTS`` and ``examples/*.yaml``):
``data`` (reader, its arguments and the sections of each split), ``graph`` (optional rebuild of
each section's graph), ``patches`` (window and size), ``f`` and ``g`` (builder name + kwargs),
``model`` (what g reads from f), ``train`` (regimen, epochs, lr, alpha, ...), ``seed``, ``output``.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Union

import yaml

DEFAULTS: dict = {
    "seed": 0,
    "output": "runs/gridgraph",
    "data": {
        "reader": "synthetic",  # synthetic | spaceranger | spot_table | nuclei | st_tsv
        "root": None,  # folder the section ids are relative to
        "options": {},  # reader keyword arguments (labels=..., layout=..., ...)
        "classes": None,  # class order; default: natural-sorted union of the sections' classes
        "train": [0, 1, 2, 3],
        "val": [4],
        "test": [5],
    },
    "graph": {"builder": None},  # None keeps the reader's graph; else hex|cartesian|knn|radius
    "patches": {
        "patch_size": 32,
        "window_spots": 1.0,
        "window_px": None,
        "window_um": None,
        "standardize": False,  # per-section colour standardisation (stain differences)
    },
    "f": {"name": "gridnet_simple", "kwargs": {}},
    "g": {"name": "gcn", "kwargs": {}},
    "model": {"g_input": "softmax", "g_residual": False},
    "train": {
        "regimen": "two_stage",  # two_stage | at_once | fine_tune
        "epochs_f": 5,
        "epochs_g": 20,
        "epochs_joint": 5,
        "lr": 1e-3,
        "alpha": 0.1,
        "weight_decay": 0.0,
        "batch_size": 64,
        "chunk_size": 32,
        "checkpoint": True,
        "accumulate": 1,
        "augment": True,  # random dihedral transforms of f's patches
        "color_jitter": 0.0,  # strength of random colour changes of f's training patches (0: off)
        "augment_sections": False,  # stages g/joint: random lattice symmetries of whole sections
        "metric": "accuracy",  # accuracy | auroc
        "device": "auto",
        "amp": False,
        "init_from": None,  # fine_tune: a two-stage checkpoint to start from
        "cache_dir": None,  # two_stage: keep f's outputs on disk instead of memory
        "progress": True,
    },
}

REGIMENS = ("two_stage", "at_once", "fine_tune")
METRICS = ("accuracy", "auroc")
G_INPUTS = ("softmax", "logits", "features")
OPEN_KEYS = {("data", "options"), ("graph",), ("f", "kwargs"), ("g", "kwargs")}


class ConfigError(ValueError):
    """A config file or override that does not fit the schema."""


def _merge_open(base: dict, update: Mapping) -> dict:
    """Merge into a free-form section (builder kwargs): nested mappings merge, values replace."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge_open(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _merge(base: dict, update: Mapping, where: tuple, source: str) -> dict:
    if where in OPEN_KEYS:
        return _merge_open(base, update)
    out = copy.deepcopy(base)
    for key, value in update.items():
        path = where + (key,)
        if path in OPEN_KEYS and not isinstance(value, Mapping):
            raise ConfigError(f"{source}: {'.'.join(path)} must be a mapping, got {value!r}")
        elif key not in base:
            known = ", ".join(sorted(base))
            raise ConfigError(f"{source}: unknown key {'.'.join(path)!r} (known here: {known})")
        elif isinstance(base[key], dict):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: {'.'.join(path)} must be a mapping, got {value!r}")
            out[key] = _merge(base[key], value, path, source)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(text: str) -> tuple[list, Any]:
    """``"train.lr=1e-4"`` -> ``(["train", "lr"], 0.0001)``; the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    key, raw = text.split("=", 1)
    if not key.strip():
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({err})") from err
    return key.strip().split("."), value


def _nest(keys: list, value: Any) -> dict:
    for k in reversed(keys):
        value = {k: value}
    return value


def check_config(cfg: dict, source: str = "config") -> dict:
    """Raise :class:`ConfigError` naming the key for values of the wrong kind."""
    t = cfg["train"]
    if t["regimen"] not in REGIMENS:
        raise ConfigError(f"{source}: train.regimen must be one of {REGIMENS}, got {t['regimen']!r}")
    if t["metric"] not in METRICS:
        raise ConfigError(f"{source}: train.metric must be one of {METRICS}, got {t['metric']!r}")
    if cfg["model"]["g_input"] not in G_INPUTS:
        raise ConfigError(f"{source}: model.g_input must be one of {G_INPUTS}")
    if not isinstance(cfg["model"]["g_residual"], bool):
        raise ConfigError(f"{source}: model.g_residual must be true or false")
    for key in ("epochs_f", "epochs_g", "epochs_joint", "batch_size", "chunk_size", "accumulate"):
        v = t[key]
        if not isinstance(v, int) or isinstance(v, bool) or v < (1 if key != "epochs_f" else 0):
            raise ConfigError(f"{source}: train.{key} must be a positive integer, got {v!r}")
    for key in ("lr", "alpha", "weight_decay", "color_jitter"):
        v = t[key]
        if isinstance(v, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
            try:
                v = t[key] = float(v)
            except ValueError:
                pass
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
            raise ConfigError(f"{source}: train.{key} must be a non-negative number, got {v!r}")
    for key in ("amp", "augment", "augment_sections", "checkpoint", "progress"):
        if not isinstance(t[key], bool):
            raise ConfigError(f"{source}: train.{key} must be true or false, got {t[key]!r}")
    if t["init_from"] is not None and t["regimen"] != "fine_tune":
        raise ConfigError(f"{source}: train.init_from is only used by regimen fine_tune")
    try:
        import torch

        if t["device"] != "auto":
            torch.device(t["device"])
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"{source}: train.device must be auto, cpu, cuda or cuda:N ({err})") from None
    builder = cfg["graph"].get("builder")
    if builder not in (None, "hex", "cartesian", "knn", "radius"):
        raise ConfigError(f"{source}: graph.builder must be null, hex, cartesian, knn or radius, got {builder!r}")
    if builder is None and len(cfg["graph"]) > 1:
        extra = sorted(k for k in cfg["graph"] if k != "builder")
        raise ConfigError(f"{source}: graph.{extra[0]} is set but graph.builder is null (the reader's graph is kept)")
    if not isinstance(cfg["seed"], int):
        raise ConfigError(f"{source}: seed must be an integer, got {cfg['seed']!r}")
    for name in ("f", "g"):
        if not isinstance(cfg[name]["name"], str):
            raise ConfigError(f"{source}: {name}.name must be a string")
        if not isinstance(cfg[name]["kwargs"], Mapping):
            raise ConfigError(f"{source}: {name}.kwargs must be a mapping")
    p = cfg["patches"]
    if sum(p[k] is not None for k in ("window_px", "window_um", "window_spots")) != 1:
        raise ConfigError(f"{source}: set exactly one of patches.window_px/window_um/window_spots")
    for split in ("train", "val"):
        if not cfg["data"][split]:
            raise ConfigError(f"{source}: data.{split} lists no sections")
    return cfg


def make_config(update: Mapping | None = None, overrides: Iterable[str] = (), source="config") -> dict:
    """Defaults, updated by a mapping, then by ``key=value`` overrides; checked."""
    cfg = _merge(DEFAULTS, update or {}, (), source)
    for text in overrides:
        keys, value = parse_override(text)
        cfg = _merge(cfg, _nest(keys, value), (), f"override {text!r}")
    # A window given by override replaces the default one.
    p = cfg["patches"]
    given = [k for k in ("window_px", "window_um") if p[k] is not None]
    if given and p["window_spots"] == DEFAULTS["patches"]["window_spots"]:
        explicit = (update or {}).get("patches", {}).get("window_spots") is not None or any(
            o.startswith("patches.window_spots=") for o in overrides
        )
        if not explicit:
            p["window_spots"] = None
    return check_config(cfg, source)


def load_config(path: Union[str, os.PathLike], overrides: Iterable[str] = ()) -> dict:
    """Read a YAML config file; relative ``data.root`` resolves against the file's folder."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    cfg = make_config(raw, overrides, source=str(path))
    root = cfg["data"]["root"]
    if root is not None and not Path(root).is_absolute():
        cfg["data"]["root"] = str((path.parent / root).resolve())
    return cfg


def dump_config(cfg: dict) -> str:
    return yaml.safe_dump(cfg, sort_keys=False)
