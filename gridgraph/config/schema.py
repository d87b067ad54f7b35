"""The run config's schema: one typed, frozen pydantic model per section.

See :mod:`gridgraph.config` for the sections; values are range-checked here.
"""
from __future__ import annotations

from typing import Annotated, Any, Mapping, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from pydantic import model_validator

from ..names import GInput, GraphRule, Metric, Regimen

__all__ = ["ConfigError", "RunConfig", "DataConfig", "GraphConfig", "PatchConfig", "ModuleConfig",
           "ModelConfig", "TrainConfig"]


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
    """Settings of :class:`~gridgraph.train.Trainer`; see the README's regimens.

    Under torchrun, ``batch_size`` (stage f patches) and ``accumulate`` (sections) are per
    process: an optimizer step takes ``batch_size * N`` patches / ``accumulate * N`` sections
    on N processes. GPU options: ``amp`` (bf16 autocast), ``channels_last`` (f's memory format),
    ``pin_memory`` (page-locked host patches, asynchronous copies), ``compile_f``
    (``torch.compile`` of f, off by default). ``amp`` and ``pin_memory`` do nothing on the CPU.
    ``embedding_cache``: folder of the content-addressed embeddings of a frozen image backbone
    (``f: {name: timm, kwargs: {freeze: true}}``), computed once per section and reused by every
    run that shares the folder (default: ``<output>/embeddings``).
    """

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
    embedding_cache: Optional[StrictStr] = None
    progress: Optional[StrictBool] = None  # None: on when stderr is a terminal
    channels_last: StrictBool = False
    pin_memory: StrictBool = True
    compile_f: StrictBool = False

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
        from ..correctors import CORRECTORS
        from ..encoders import ENCODERS
        from ..graph import GRAPH_BUILDERS
        from ..io.sources import READERS

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
        from .load import make_config

        return make_config(data, source=source)
