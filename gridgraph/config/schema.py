"""The run config's schema: one typed, frozen pydantic model per section.

See :mod:`gridgraph.config` for the sections; values are range-checked here.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Mapping, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from pydantic import model_validator

from .. import defaults
from ..defaults import AUTO
from ..names import GInput, Metric, Regimen

__all__ = ["AUTO", "ConfigError", "RunConfig", "DataConfig", "GraphConfig", "PatchConfig", "ModuleConfig",
           "ModelConfig", "TrainConfig", "TargetConfig"]




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
    """Which reader reads which sections: ``name`` (a reader in
    :data:`gridgraph.io.readers.READERS`) and its ``kwargs``, ``root`` (folder the ids are
    relative to), an optional class order and the ids of each split (``test`` may be empty).
    (Configs written before this spelling, ``reader`` / ``options``, still load.)"""

    name: StrictStr = "synthetic"
    kwargs: dict[str, Any] = {}
    root: Optional[StrictStr] = None
    classes: Optional[list[StrictStr]] = None
    train: list[SectionId] = Field(default=[0, 1, 2, 3], min_length=1)
    val: list[SectionId] = Field(default=[4], min_length=1)
    test: list[SectionId] = [5]


class GraphConfig(_Section):
    """``name``: ``None`` keeps each reader's graph; else a builder in
    :data:`gridgraph.graph.GRAPH_BUILDERS` with its ``kwargs`` (``{name: knn, kwargs: {k: 8}}``).
    (Configs written before this spelling, ``{builder: knn, k: 8}``, still load.)"""

    name: Optional[StrictStr] = None
    kwargs: dict[str, Any] = {}


class PatchConfig(_Section):
    """``patch_size`` px side of f's input; the window cut around each node, in at most one unit
    (``window_spots`` spot diameters; ``window_px``; ``window_um``), resized to the patch. None
    given: each section's platform default (:meth:`Window.resolve
    <gridgraph.patches.window.Window.resolve>`: 200 µm on spot arrays, 32 µm on cells and bins,
    32 px when the µm scale is unknown). ``standardize``: one linear colour map per section
    (default on). Data only: what the window means on a section is
    :class:`~gridgraph.patches.window.Window` (``Window.from_config(cfg.patches)``)."""

    patch_size: StrictInt = Field(default=32, gt=0, le=4096)
    window_spots: Optional[PositiveNumber] = None
    window_px: Optional[PositiveNumber] = None
    window_um: Optional[PositiveNumber] = None
    standardize: StrictBool = True

    @model_validator(mode="before")
    @classmethod
    def _one_window(cls, values: Any) -> Any:
        if not isinstance(values, Mapping):
            return values
        given = [k for k in ("window_spots", "window_px", "window_um") if values.get(k) is not None]
        if len(given) > 1:
            raise ValueError(f"set at most one of window_spots, window_px, window_um (got {given})")
        return values

    @property
    def auto_window(self) -> bool:
        """No window unit given: each section gets its platform's default."""
        return self.window_spots is None and self.window_px is None and self.window_um is None

    def window(self, section=None) -> dict:
        """The three window fields, as the window is for ``section`` (an automatic window needs
        it): ``Window.from_config(self).resolve(section).fields()``."""
        from ..patches.window import Window

        return Window.from_config(self).resolve(section).fields()


class ModuleConfig(_Section):
    """A builder ``name`` in a registry and its keyword arguments."""

    name: StrictStr
    kwargs: dict[str, Any] = {}


class ModelConfig(_Section):
    """What g reads of f (``g_input``); whether g corrects f's log-probabilities (``g_residual``,
    default on) instead of predicting the logits outright (the paper's g); whether that
    correction starts at zero (``g_zero_init``: f + g starts exactly at f); ``g_ensemble``: how
    many g's, each from its own initial weights, are trained side by side and averaged;
    ``f_ensemble``: likewise for f (each trained with its own loss in stage f), averaged before g;
    ``f_tta``: f's predictions outside training average the 8 flips and turns of each patch;
    ``g_tta``: g's average the lattice symmetries of grid sections (with
    ``train.augment_sections``)."""

    g_input: GInput = GInput(defaults.G_INPUT)
    g_residual: StrictBool = defaults.G_RESIDUAL
    g_zero_init: StrictBool = defaults.G_ZERO_INIT
    g_ensemble: StrictInt = Field(default=defaults.G_ENSEMBLE, ge=1, le=64)
    f_ensemble: StrictInt = Field(default=1, ge=1, le=16)
    f_tta: StrictBool = False
    g_tta: StrictBool = False


class TrainConfig(_Section):
    """Settings of :class:`~gridgraph.train.Trainer`; see the README's regimens.

    Under torchrun, ``batch_size`` (stage f patches) and ``accumulate`` (sections) are per
    process: an optimizer step takes ``batch_size * N`` patches / ``accumulate * N`` sections
    on N processes. GPU options: ``amp`` (bf16 autocast), ``channels_last`` (f's memory format),
    ``pin_memory`` (page-locked host patches, asynchronous copies), ``compile_f``
    (``torch.compile`` of f, off by default). ``amp`` and ``pin_memory`` do nothing on the CPU.
    ``cross_fit``: k >= 2 trains stage g on cross-fitted f outputs: the training sections are
    dealt to k groups (consecutive blocks of ``cross_fit_block`` sections, round-robin) and each
    group's f outputs come from an extra f trained on the other groups (k more stage-f runs).
    ``embedding_cache``: folder of the content-addressed embeddings of a frozen image backbone
    (``f: {name: timm, kwargs: {freeze: true}}``), computed once per section and reused by every
    run that shares the folder (default: ``<output>/embeddings``).
    ``pretrain_epochs``: > 0 first trains f's embedding self-supervised (SimCLR-style, labels
    unused) on the training sections' patches for that many epochs at ``lr``, ``pretrain_batch_size``
    patches per step (:func:`~gridgraph.train.pretrain.pretrain_f`); off by default. Every
    process of a torchrun job runs them alike on all training sections.
    """

    regimen: Regimen = Regimen.TWO_STAGE
    epochs_f: StrictInt = Field(default=5, ge=0)
    epochs_g: StrictInt = Field(default=20, ge=0)
    epochs_joint: StrictInt = Field(default=5, ge=0)
    lr: PositiveNumber = 1e-3
    alpha: Annotated[Number, Field(ge=0, le=1)] = 0.1
    weight_decay: Annotated[Number, Field(ge=0)] = 0.0
    batch_size: StrictInt = Field(default=64, gt=0)
    chunk_size: StrictInt = Field(default=defaults.CHUNK_SIZE, gt=0)
    checkpoint: StrictBool = True
    accumulate: StrictInt = Field(default=1, gt=0)
    augment: StrictBool = True
    color_jitter: Annotated[Number, Field(ge=0)] = 0.1
    label_smoothing: Annotated[Number, Field(ge=0, lt=1)] = 0.0
    cross_fit: StrictInt = Field(default=0, ge=0)
    cross_fit_block: StrictInt = Field(default=1, ge=1)
    pretrain_epochs: StrictInt = Field(default=0, ge=0)
    pretrain_batch_size: StrictInt = Field(default=256, ge=2)
    augment_sections: StrictBool = False
    metric: Metric = Metric.AUROC
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
        if self.cross_fit == 1:
            raise ValueError("cross_fit: 0 (off) or the number of groups (>= 2), got 1")
        if self.cross_fit and self.regimen == Regimen.AT_ONCE:
            raise ValueError("cross_fit: trains g on f's cached outputs, which regimen at_once has not")
        if self.cross_fit and self.epochs_f == 0:
            raise ValueError("cross_fit: its f's train for epochs_f epochs, which is 0 (an f trained "
                             "elsewhere has seen every section: nothing would be cross-fitted)")
        if self.pretrain_epochs and (self.regimen == Regimen.FINE_TUNE and self.init_from or
                                     self.regimen == Regimen.TWO_STAGE and self.epochs_f == 0):
            raise ValueError("pretrain_epochs: pretrains an f that this run then trains, but its f "
                             "is not trained here (init_from, or epochs_f 0)")
        if self.device != "auto":
            import torch

            try:
                torch.device(self.device)
            except (RuntimeError, TypeError):
                raise ValueError(f"device: must be auto, cpu, cuda or cuda:N, got {self.device!r}") from None
        return self


class TargetConfig(_Section):
    """What f and g predict: ``kind: labels`` (the sections' classes, the default) or ``kind:
    expression``: one value per gene, the counts normalised per spot total and log1p'd (as f's
    expression inputs are), optionally standardised per gene (``standardize``; mean and SD of
    the training sections, stored in the checkpoint). Genes: ``genes`` (a list), else the
    ``top_variable`` most variable genes of the training sections. Counts: ``counts`` (a file
    per section, ``{section}`` standing for its id, with ``id_format`` naming its rows as for
    f's expression inputs), else the counts a reader attached to the section
    (``meta["counts"]``, e.g. the synthetic reader's ``expression_genes``). ``loss``: a
    regression loss by name (:data:`gridgraph.model.losses.LOSSES`: ``mse``, ``huber``,
    ``l1``, ``smooth_l1``); ``target_sum``: the per-spot total counts are scaled to."""

    kind: Literal["labels", "expression"] = "labels"
    genes: Optional[list[StrictStr]] = None
    top_variable: Optional[StrictInt] = Field(default=None, gt=0)
    standardize: StrictBool = True
    loss: StrictStr = "mse"
    counts: Optional[StrictStr] = None
    id_format: Optional[StrictStr] = None
    target_sum: PositiveNumber = 1e4

    @model_validator(mode="after")
    def _consistent(self) -> "TargetConfig":
        from ..model.losses import LOSSES

        if self.kind == "labels":
            given = [k for k in ("genes", "top_variable", "counts", "id_format") if getattr(self, k) is not None]
            if given:
                raise ValueError(f"{given[0]}: only used by kind expression (kind is labels)")
            return self
        if (self.genes is None) == (self.top_variable is None):
            raise ValueError("kind expression: give exactly one of genes (a list) or top_variable (a number)")
        if self.genes is not None:
            if not self.genes:
                raise ValueError("genes: the list is empty")
            repeated = sorted({g for g in self.genes if self.genes.count(g) > 1})
            if repeated:
                raise ValueError(f"genes: {repeated[0]!r} is listed twice")
        if self.loss not in LOSSES:
            raise ValueError(f"loss: unknown regression loss {self.loss!r}; known: {', '.join(LOSSES)}")
        return self

    @property
    def expression(self) -> bool:
        return self.kind == "expression"


class RunConfig(_Section):
    """A whole run; every section has defaults (a small synthetic run)."""

    seed: StrictInt = 0
    output: StrictStr = "runs/gridgraph"
    data: DataConfig = DataConfig()
    graph: GraphConfig = GraphConfig()
    patches: PatchConfig = PatchConfig()
    f: ModuleConfig = ModuleConfig(name=defaults.ENCODER)
    g: ModuleConfig = ModuleConfig(name=defaults.CORRECTOR)
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    target: TargetConfig = TargetConfig()

    @model_validator(mode="after")
    def _names_and_kwargs(self) -> "RunConfig":
        from ..correctors import CORRECTORS
        from ..encoders import ENCODERS
        from ..graph import GRAPH_BUILDERS
        from ..io.readers.registry import READERS

        checks = [(ENCODERS, self.f.name, self.f.kwargs, "f"), (READERS, self.data.name, self.data.kwargs, "data")]
        if self.g.name != AUTO:
            checks.append((CORRECTORS, self.g.name, self.g.kwargs, "g"))
        elif self.g.kwargs:
            raise ValueError(f"g.kwargs: g.name is {AUTO!r} (chosen from the sections' layout), whose "
                             "arguments are fixed; name a corrector to give arguments")
        if self.graph.name is not None:
            checks.append((GRAPH_BUILDERS, self.graph.name, self.graph.kwargs, "graph"))
        elif self.graph.kwargs:
            raise ValueError(f"graph.kwargs.{sorted(self.graph.kwargs)[0]} is set but graph.name is null "
                             "(the reader's graph is kept)")
        for registry, name, kwargs, where in checks:
            if name not in registry:
                raise ValueError(f"{where}.name: unknown {registry.kind} {name!r}; known: {', '.join(registry.names())}")
            registry.check_kwargs(name, kwargs, f"{where}.kwargs")
        if self.target.expression and self.model.g_input == GInput.SOFTMAX:
            raise ValueError("target.kind expression: g cannot read class probabilities of f's gene values; set "
                             "model.g_input to logits (f's predicted values) or features (f's embedding)")
        if self.target.expression and self.train.label_smoothing:
            raise ValueError("train.label_smoothing: smooths class labels; target.kind is expression")
        return self

    def to_dict(self) -> dict:
        """Plain YAML/JSON data (enums as strings), as stored in ``config.yaml`` and checkpoints."""
        return self.model_dump(mode="json")
