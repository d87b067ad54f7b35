"""Building a :class:`RunConfig`: from a mapping, a YAML file and ``key=value`` overrides, with
errors that name the key, the value and what was expected."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Union

import yaml
from pydantic import ValidationError

from ..files.yaml_file import YamlError, load_yaml_text
from .legacy import legacy_config, respell, respell_key
from .schema import ConfigError, RunConfig

__all__ = ["make_config", "load_config", "read_yaml", "parse_override", "dump_config", "PATH_KEYS", "legacy_config"]


def _describe(err: dict) -> str:
    loc = [str(p) for p in err["loc"] if not str(p).startswith(("function-", "constrained-"))]
    key = ".".join(loc)
    if err["type"] == "extra_forbidden":
        return f"unknown key {key!r}"
    msg = err["msg"].removeprefix("Value error, ")
    field, sep, rest = msg.partition(": ")
    if key and sep and field.isidentifier():  # a section's validator naming one of its fields
        return f"{key}.{field}: {rest}"
    if err["type"].startswith(("model_", "dict_type")) and not key:
        return msg
    value = err.get("input")
    shown = "" if isinstance(value, Mapping) or err["type"] == "missing" else f", got {value!r}"
    return f"{key}: {msg}{shown}" if key else f"{msg}{shown}"


def _validate(cls: type, data: Mapping, source: str):
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        raise ConfigError(f"{source}: {_describe(first)}") from None


def parse_override(text: str) -> tuple[list, Any]:
    """``"train.lr=1e-4"`` -> ``(["train", "lr"], 0.0001)``; the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    key, raw = text.split("=", 1)
    if not key.strip() or any(not k for k in key.strip().split(".")):
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = load_yaml_text(raw, f"override {text!r}") if raw.strip() else None
    except YamlError as err:
        raise ConfigError(str(err)) from None
    return key.strip().split("."), value


def _merge(base: Mapping, update: Mapping) -> dict:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _apply_override(raw: dict, text: str) -> dict:
    keys, value = parse_override(text)
    keys = respell_key(keys)
    if keys[0] == "patches" and len(keys) == 2 and keys[1].startswith("window_"):
        patches = {k: v for k, v in dict(raw.get("patches") or {}).items() if not k.startswith("window_")}
        raw = {**raw, "patches": patches}  # a window given on the command line replaces the file's
    for k in reversed(keys):
        value = {k: value}
    return _merge(raw, value)


def make_config(update: Union[Mapping, RunConfig, None] = None, overrides: Iterable[str] = (),
                source: str = "config") -> RunConfig:
    """Defaults, updated by a mapping (a YAML file's content), then by ``key=value`` overrides."""
    raw = update.to_dict() if isinstance(update, RunConfig) else dict(update or {})
    try:
        raw = respell(raw)
    except ValueError as err:
        raise ConfigError(f"{source}: {err}") from None
    for text in overrides:
        raw = _apply_override(raw, text)
    for name, default in (("f", RunConfig().f.name), ("g", RunConfig().g.name)):
        if isinstance(raw.get(name), Mapping) and "name" not in raw[name]:
            raw[name] = {"name": default, **raw[name]}  # a section naming no builder keeps the default
    try:
        return _validate(RunConfig, raw, source)
    except ValueError as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"{source}: {err}") from None


def _resolve(value: Optional[str], folder: Path) -> Optional[str]:
    if value is None or Path(value).is_absolute():
        return value
    return str((folder / value).resolve())


def read_yaml(path: Union[str, os.PathLike], what: str) -> Any:
    """The YAML content of the file ``path`` (``what`` names it in errors: ``"config file"``);
    a missing file is a :class:`FileNotFoundError`, a malformed one a :class:`ConfigError`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return load_yaml_text(path.read_bytes(), str(path))
    except YamlError as err:
        raise ConfigError(str(err)) from None


def load_config(path: Union[str, os.PathLike], overrides: Iterable[str] = ()) -> RunConfig:
    """Read a YAML config file, then apply ``key=value`` overrides.

    Relative paths in the file (``data.root``, ``output``, ``train.init_from``,
    ``train.cache_dir``, and f's file arguments as its encoder declares them) resolve against
    the file's folder; relative paths given as overrides resolve against the working directory.
    """
    path = Path(path)
    raw = read_yaml(path, "config file")
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(raw).__name__}")
    raw = _resolve_paths(raw, path.parent)
    cfg = make_config(raw, overrides, source=str(path))
    return _resolve_paths_typed(cfg, Path.cwd())


#: Where a config holds paths, resolved relative to its file; f's file arguments (backbone
#: weights, embeddings, gene counts, a fusion's branches' files) are added from what its encoder
#: declares (:func:`gridgraph.encoders.file_args`).
PATH_KEYS = (("output",), ("data", "root"), ("train", "init_from"), ("train", "cache_dir"), ("train", "embedding_cache"),
             ("target", "counts"))


def _f_file_keys(raw: Mapping) -> list:
    """Where ``raw``'s f kwargs hold file paths, as ``PATH_KEYS`` entries."""
    f = raw.get("f")
    if not isinstance(f, Mapping) or not isinstance(f.get("kwargs"), Mapping):
        return []
    from ..encoders import file_args

    name = f.get("name") or RunConfig().f.name
    try:
        keys = file_args(str(name), f["kwargs"])
    except (TypeError, ValueError, AttributeError):  # malformed kwargs: validation names the problem
        return []
    return [("f", "kwargs", *k) for k in keys]


def _resolve_paths(raw: Mapping, folder: Path) -> dict:
    out = dict(raw)
    for keys in (*PATH_KEYS, *_f_file_keys(raw)):
        _resolve_at(out, keys, folder)
    return out


def _resolve_at(node: dict, keys: tuple, folder: Path) -> None:
    """Resolve the string at ``keys`` below ``node`` in place (``"*"``: every key there)."""
    head, rest = keys[0], keys[1:]
    names = list(node) if head == "*" else [head]
    for name in names:
        value = node.get(name)
        if not rest:
            if isinstance(value, str):
                node[name] = _resolve(value, folder)
        elif isinstance(value, Mapping):
            node[name] = dict(value)
            _resolve_at(node[name], rest, folder)


def _resolve_paths_typed(cfg: RunConfig, folder: Path) -> RunConfig:
    data = _resolve_paths(cfg.to_dict(), folder)
    return RunConfig.model_validate(data) if data != cfg.to_dict() else cfg


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
