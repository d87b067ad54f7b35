"""Run configuration: one typed, frozen model per section, read from YAML and ``key=value`` lists.

A run has the sections ``data`` (reader, its options, the sections of each split), ``graph``
(optional rebuild of each section's graph), ``patches`` (window and size), ``f`` and ``g``
(builder name + kwargs), ``model`` (what g reads of f), ``train`` (regimen and its settings), plus
``seed`` and ``output``. Every value is checked before anything runs or is written: ranges,
types, names against the registries, and builder kwargs against the builders' signatures.
Errors are :class:`ConfigError` s naming the key, the value and what was expected.

From Python, build the sections directly::

    RunConfig(data=DataConfig(reader="synthetic", train=[1, 2], val=[3]),
              train=TrainConfig(epochs_f=3, epochs_g=30))
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Iterable, Mapping, Optional, Union

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from pydantic import ValidationError, model_validator

from .names import GInput, GraphRule, Metric, Regimen
from .io.yaml_file import YamlError, load_yaml_text

__all__ = [
    "ConfigError", "RunConfig", "DataConfig", "GraphConfig", "PatchConfig", "ModuleConfig",
    "ModelConfig", "TrainConfig", "make_config", "load_config", "parse_override", "dump_config",
]


class ConfigError(ValueError):
    """A config file or override that does not fit the schema."""


def _number(value: Any) -> Any:
    """Numbers as floats; numeric strings too (YAML 1.1 reads ``1e-4`` as a string); no bools."""
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ValueError("expected a number") from None
    return value


Number = Annotated[float, BeforeValidator(_number), Field(allow_inf_nan=False)]
PositiveNumber = Annotated[Number, Field(gt=0)]
SectionId = Union[StrictInt, StrictStr]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class DataConfig(_Section):
    """Which reader reads which sections: ``reader`` (a name in ``gridgraph.datasets.READERS``),
    ``root`` (folder the ids are relative to), reader ``options``, an optional class order and
    the ids of each split (``test`` may be empty)."""

    reader: StrictStr = "synthetic"
    root: Optional[StrictStr] = None
    options: dict[str, Any] = {}
    classes: Optional[list[StrictStr]] = None
    train: list[SectionId] = Field(default=[0, 1, 2, 3], min_length=1)
    val: list[SectionId] = Field(default=[4], min_length=1)
    test: list[SectionId] = [5]


class GraphConfig(_Section):
    """``builder``: ``None`` keeps each reader's graph; else a rule of
    :class:`~gridgraph.names.GraphRule` whose keyword arguments are the other keys
    (``{builder: knn, k: 8}``)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    builder: Optional[GraphRule] = None

    @property
    def kwargs(self) -> dict:
        return dict(self.model_extra or {})


class PatchConfig(_Section):
    """``patch_size`` px side of f's input; the window cut around each node, in exactly one unit
    (``window_spots`` spot diameters, default 1; ``window_px``; ``window_um``), resized to the
    patch; ``standardize``: one linear colour map per section."""

    patch_size: StrictInt = Field(default=32, gt=0, le=4096)
    window_spots: Optional[PositiveNumber] = None
    window_px: Optional[PositiveNumber] = None
    window_um: Optional[PositiveNumber] = None
    standardize: StrictBool = False

    @model_validator(mode="before")
    @classmethod
    def _one_window(cls, values: Any) -> Any:
        if not isinstance(values, Mapping):
            return values
        given = [k for k in ("window_spots", "window_px", "window_um") if values.get(k) is not None]
        if len(given) > 1:
            raise ValueError(f"set exactly one of window_spots, window_px, window_um (got {given})")
        return values if given else {**values, "window_spots": 1.0}

    def window(self) -> dict:
        """The window keyword arguments of :func:`~gridgraph.patches.section_patches`."""
        return {"window_spots": self.window_spots, "window_px": self.window_px,
                "window_um": self.window_um}


class ModuleConfig(_Section):
    """A builder ``name`` in a registry and its keyword arguments."""

    name: StrictStr
    kwargs: dict[str, Any] = {}


class ModelConfig(_Section):
    """What g reads of f (``g_input``) and whether g corrects f's log-probabilities
    (``g_residual``) instead of predicting the logits outright."""

    g_input: GInput = GInput.SOFTMAX
    g_residual: StrictBool = False


class TrainConfig(_Section):
    """Settings of :class:`~gridgraph.train.Trainer`; see the README's regimens."""

    regimen: Regimen = Regimen.TWO_STAGE
    epochs_f: StrictInt = Field(default=5, ge=0)
    epochs_g: StrictInt = Field(default=20, ge=0)
    epochs_joint: StrictInt = Field(default=5, ge=0)
    lr: PositiveNumber = 1e-3
    alpha: Annotated[Number, Field(ge=0, le=1)] = 0.1
    weight_decay: Annotated[Number, Field(ge=0)] = 0.0
    batch_size: StrictInt = Field(default=64, gt=0)
    chunk_size: StrictInt = Field(default=32, gt=0)
    checkpoint: StrictBool = True
    accumulate: StrictInt = Field(default=1, gt=0)
    augment: StrictBool = True
    color_jitter: Annotated[Number, Field(ge=0)] = 0.0
    augment_sections: StrictBool = False
    metric: Metric = Metric.ACCURACY
    device: StrictStr = "auto"
    amp: StrictBool = False
    init_from: Optional[StrictStr] = None
    cache_dir: Optional[StrictStr] = None
    progress: Optional[StrictBool] = None  # None: on when stderr is a terminal

    @model_validator(mode="after")
    def _consistent(self) -> "TrainConfig":
        if self.init_from is not None and self.regimen != Regimen.FINE_TUNE:
            raise ValueError("init_from: is only used by regimen fine_tune")
        if self.device != "auto":
            import torch

            try:
                torch.device(self.device)
            except (RuntimeError, TypeError):
                raise ValueError(f"device: must be auto, cpu, cuda or cuda:N, got {self.device!r}") from None
        return self


class RunConfig(_Section):
    """A whole run; every section has defaults (a small synthetic run)."""

    seed: StrictInt = 0
    output: StrictStr = "runs/gridgraph"
    data: DataConfig = DataConfig()
    graph: GraphConfig = GraphConfig()
    patches: PatchConfig = PatchConfig()
    f: ModuleConfig = ModuleConfig(name="gridnet_simple")
    g: ModuleConfig = ModuleConfig(name="gcn")
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()

    @model_validator(mode="after")
    def _names_and_kwargs(self) -> "RunConfig":
        from .correctors import CORRECTORS
        from .io.sources import READERS
        from .encoders import ENCODERS
        from .graph import GRAPH_BUILDERS

        checks = [(ENCODERS, self.f.name, self.f.kwargs, "f"), (CORRECTORS, self.g.name, self.g.kwargs, "g"),
                  (READERS, self.data.reader, self.data.options, "data.reader")]
        if self.graph.builder is not None:
            checks.append((GRAPH_BUILDERS, str(self.graph.builder), self.graph.kwargs, "graph.builder"))
        elif self.graph.kwargs:
            raise ValueError(f"graph.{sorted(self.graph.kwargs)[0]} is set but graph.builder is null "
                             "(the reader's graph is kept)")
        for registry, name, kwargs, where in checks:
            if name not in registry:
                raise ValueError(f"{where if '.' in where else where + '.name'}: unknown {registry.kind} "
                                 f"{name!r}; known: {', '.join(registry.names())}")
            section = where.split(".")[0]
            registry.check_kwargs(name, kwargs, {"f": "f.kwargs", "g": "g.kwargs", "data": "data.options",
                                                 "graph": "graph"}[section])
        return self

    def to_dict(self) -> dict:
        """Plain YAML/JSON data (enums as strings), as stored in ``config.yaml`` and checkpoints."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Mapping, source: str = "config") -> "RunConfig":
        return make_config(data, source=source)


# ----------------------------------------------------------------------------- errors
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


# ----------------------------------------------------------------------------- building
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


def load_config(path: Union[str, os.PathLike], overrides: Iterable[str] = ()) -> RunConfig:
    """Read a YAML config file, then apply ``key=value`` overrides.

    Relative paths in the file (``data.root``, ``output``, ``train.init_from``,
    ``train.cache_dir``) resolve against the file's folder; relative paths given as overrides
    resolve against the working directory.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        raw = load_yaml_text(path.read_bytes(), str(path))
    except YamlError as err:
        raise ConfigError(str(err)) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(raw).__name__}")
    raw = _resolve_paths(raw, path.parent)
    cfg = make_config(raw, overrides, source=str(path))
    return _resolve_paths_typed(cfg, Path.cwd())


PATH_KEYS = (("output",), ("data", "root"), ("train", "init_from"), ("train", "cache_dir"))


def _resolve_paths(raw: Mapping, folder: Path) -> dict:
    out = dict(raw)
    for keys in PATH_KEYS:
        parent = out
        for k in keys[:-1]:
            if not isinstance(parent.get(k), Mapping):
                parent = None
                break
            parent[k] = dict(parent[k])
            parent = parent[k]
        if parent is not None and isinstance(parent.get(keys[-1]), str):
            parent[keys[-1]] = _resolve(parent[keys[-1]], folder)
    return out


def _resolve_paths_typed(cfg: RunConfig, folder: Path) -> RunConfig:
    data = _resolve_paths(cfg.to_dict(), folder)
    return RunConfig.model_validate(data) if data != cfg.to_dict() else cfg


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
