"""From a config to everything a run needs, in one place: :func:`build_run`.

The CLI, the examples and every benchmark build their runs here, so that a benchmark's
``best.pt`` is the same kind of file as ``gridgraph train``'s: ``g: auto`` settled from the
training sections, the physical scale and the node-feature state recorded.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch

from ..checkpoint import Checkpoint
from ..config import ModuleConfig, RunConfig
from ..config.prediction import prediction_config
from ..config.schema import AUTO
from ..defaults import corrector_for
from ..embeddings import attach_backbone_embeddings, uses_cached_embeddings
from ..encoders import with_widths, without_weights
from ..features import needs_image
from ..features.targets import target_genes
from ..model import GridGraphNet, build_model
from ..train import Trainer, pick_device
from .platform import platform_record
from .sections import load_splits_and_features, training_scale

__all__ = ["Run", "build_run", "resolve_config", "model_from_config", "load_model", "model_for", "with_prediction_settings"]


def resolve_config(cfg: RunConfig, sections: Sequence) -> RunConfig:
    """``cfg`` with ``g: auto`` replaced by the corrector :func:`~gridgraph.defaults.corrector_for`
    picks for the layouts of ``sections`` (the training sections: :class:`~gridgraph.io.Section` s
    or :class:`~gridgraph.patches.SectionTensors`); other configs are returned unchanged."""
    if cfg.g.name != AUTO:
        return cfg
    if not sections:
        raise ValueError("g: 'auto' is chosen from the training sections' layout, but none were given")
    return cfg.model_copy(update={"g": ModuleConfig(**corrector_for([st.graph.layout for st in sections]))})


def model_from_config(cfg: RunConfig, num_classes: int, pretrained: bool = True,
                      features: Optional[dict] = None) -> GridGraphNet:
    """The :class:`GridGraphNet` a config describes (``f``, ``g``, ``model``, ``train.chunk_size``;
    with an expression ``target``, ``num_classes`` is the number of genes and the model regresses).

    ``pretrained=False`` skips the arguments f declares as weights (``weights``, timm's
    ``pretrained``; the weights come from a checkpoint). ``features``: the node-feature state
    (:func:`~gridgraph.workflows.load_splits_and_features`; a checkpoint's ``features``) whose
    ``in_features`` fills the width argument f declares (:func:`~gridgraph.encoders.with_widths`).
    """
    f_kwargs = dict(cfg.f.kwargs)
    if not pretrained:  # the weights come from the checkpoint: no file, no download
        f_kwargs = _without_weights(cfg.f.name, f_kwargs)
    if cfg.g.name == AUTO:
        raise ValueError("g: 'auto' depends on the sections' layout: resolve it first with "
                         "gridgraph.workflows.resolve_config(cfg, training_sections)")
    f_kwargs = with_widths(cfg.f.name, f_kwargs, (features or {}).get("in_features") or {})
    return build_model(num_classes, encoder=cfg.f.name, corrector=cfg.g.name, g_input=str(cfg.model.g_input),
                       g_residual=cfg.model.g_residual, encoder_kwargs=f_kwargs,
                       corrector_kwargs=dict(cfg.g.kwargs), chunk_size=cfg.train.chunk_size,
                       checkpoint=cfg.train.checkpoint, g_ensemble=cfg.model.g_ensemble,
                       f_ensemble=cfg.model.f_ensemble,
                       g_zero_init=cfg.model.g_zero_init, f_tta=cfg.model.f_tta, g_tta=cfg.model.g_tta,
                       regression=cfg.target.expression)


def _without_weights(f_name: str, f_kwargs: dict) -> dict:
    """``f_kwargs`` without the arguments encoder ``f_name`` (or one of its branches) declares as
    pretrained weights (:func:`~gridgraph.encoders.weight_args`)."""
    return without_weights(f_name, f_kwargs)


def load_model(path, device="cpu", overrides: Sequence[str] = ()) -> tuple[GridGraphNet, Checkpoint]:
    """Rebuild a model from a checkpoint file alone; returns ``(model in eval mode, checkpoint)``.

    ``device``: where the model computes, as ``train.device`` says it (``"auto"``: a GPU when there
    is one; ``"cpu"``, ``"cuda"``, ``"cuda:N"``; under torchrun this rank's GPU; see
    :func:`~gridgraph.train.pick_device`); the weights are read on the CPU and moved there, and
    inference moves each chunk of patches to it and its outputs back. ``overrides``:
    ``KEY=VALUE`` settings that change how the trained model runs
    (:func:`~gridgraph.config.prediction.prediction_config`), applied to the returned
    checkpoint's config too.
    """
    where = pick_device(device, setting="device")
    ckpt = with_prediction_settings(Checkpoint.load(path, map_location="cpu"), overrides)
    return model_for(ckpt, path).to(where), ckpt


def with_prediction_settings(ckpt: Checkpoint, overrides: Sequence[str] = ()) -> Checkpoint:
    """``ckpt`` with prediction-time ``KEY=VALUE`` settings applied to its config."""
    return ckpt.replace(config=prediction_config(ckpt.config, overrides)) if overrides else ckpt


def f_input_record(model) -> dict:
    """A backbone f's input as built (``input_size``, ``input_mean``, ``input_std``: what its weights'
    own config may have said), for checkpoints, which rebuild f without its weights file; ``{}``
    for other f's."""
    from ..encoders.backbone import BackboneEncoder

    f = getattr(model, "f", None)
    if not isinstance(f, BackboneEncoder):
        return {}
    return {"input_size": f.input_size, "input_mean": list(f.input_mean), "input_std": list(f.input_std)}


def apply_f_input(model, record: dict) -> None:
    """Give a rebuilt backbone f the input it was trained with (:func:`f_input_record`)."""
    from ..encoders.backbone import BackboneEncoder

    f = getattr(model, "f", None)
    if record and isinstance(f, BackboneEncoder):
        f.input_size = int(record["input_size"])
        f.input_mean = tuple(float(v) for v in record["input_mean"])
        f.input_std = tuple(float(v) for v in record["input_std"])


def model_for(ckpt: Checkpoint, source=None) -> GridGraphNet:
    """The model (in eval mode, on the CPU) a loaded checkpoint describes, with its weights;
    errors name ``source`` (default the checkpoint's path)."""
    path = source or ckpt.path
    try:
        model = model_from_config(ckpt.config, len(ckpt.classes), pretrained=False, features=ckpt.features)
    except (MemoryError, RuntimeError) as err:
        if not isinstance(err, MemoryError) and "alloc" not in str(err):
            raise
        raise ValueError(f"out of memory building the model described in {path} (f {ckpt.config.f.name} "
                         f"{dict(ckpt.config.f.kwargs)}, g {ckpt.config.g.name} {dict(ckpt.config.g.kwargs)}, "
                         f"{len(ckpt.classes)} classes): {str(err).splitlines()[0][:200]}") from err
    apply_f_input(model, ckpt.f_input)
    try:
        model.load_state_dict(ckpt.model)
    except RuntimeError as err:
        raise ValueError(f"{path}: field 'model' does not fit the model its config describes ({err})") from err
    return model.eval()


@dataclasses.dataclass
class Run:
    """A run ready to train: its settled config, its sections, its model and what its checkpoints record.

    Attributes:
        cfg: the config with every automatic choice made (``g: auto`` settled).
        splits: ``{"train" | "val" | "test": [SectionTensors, ...]}``.
        classes: class names shared by every split.
        features: the node-feature state fitted on the training sections.
        model: the untrained :class:`GridGraphNet`, initialised from ``cfg.seed``.
        scale: the physical scale of f's patches (recorded in checkpoints).
        platform: the training sections' graph layouts and node kinds (recorded in checkpoints;
            :func:`~gridgraph.workflows.platform.platform_record`).
    """

    cfg: RunConfig
    splits: dict
    classes: list
    features: dict
    model: GridGraphNet
    scale: dict
    platform: dict = dataclasses.field(default_factory=dict)

    @property
    def meta(self) -> dict:
        """What every checkpoint of the run stores besides config, classes and weights."""
        f_input = f_input_record(self.model)  # a backbone f's input, which its weights' config may say
        return {"scale": self.scale, "features": self.features, "platform": self.platform,
                **({"f_input": f_input} if f_input else {})}

    def trainer(self, out_dir=None, log: Callable[[str], None] = print,
                on_epoch: Optional[Callable[[int, float], None]] = None) -> Trainer:
        return Trainer(self.model, self.cfg, self.classes, out_dir=out_dir, log=log, meta=self.meta,
                       on_epoch=on_epoch)


def build_run(cfg: RunConfig, log: Callable[[str], None] = print, splits: Sequence[str] = ("train", "val", "test"),
              embedding_folder: Optional[Path] = None, sections_of: Optional[Run] = None) -> Run:
    """Read the sections of ``cfg``, settle its automatic choices and build its model.

    A frozen backbone's embeddings are computed once per section into ``embedding_folder``
    (default ``train.embedding_cache``, else ``<output>/embeddings``). ``sections_of``: an
    earlier run on the same data, graph, patches and f inputs, whose sections are reused instead
    of read again (several seeds or correctors on one fold).
    """
    if sections_of is not None:
        same = ("data", "graph", "patches")
        differ = [k for k in same if getattr(sections_of.cfg, k) != getattr(cfg, k)]
        if differ or sections_of.cfg.f.kwargs != cfg.f.kwargs or sections_of.cfg.f.name != cfg.f.name:
            raise ValueError(f"build_run(sections_of=...): the earlier run differs in {differ or ['f']}; "
                             "its sections cannot be reused")
        loaded, classes, features = dict(sections_of.splits), sections_of.classes, sections_of.features
    else:
        loaded, classes, features = load_splits_and_features(cfg, splits, log=log)
    if cfg.target.expression:  # the model's outputs are the target genes, which checkpoints name as "classes"
        classes = target_genes(features)
    if cfg.g.name == AUTO:
        cfg = resolve_config(cfg, loaded["train"])
        log(f"g: auto -> {cfg.g.name} {cfg.g.kwargs} (layout {loaded['train'][0].graph.layout})")
    platform = platform_record(loaded.get("train", []))  # before embeddings replace the patches
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)  # a run's initial weights follow its seed
        model = model_from_config(cfg, len(classes), features=features)
    if uses_cached_embeddings(model):  # a linear probe: the frozen backbone runs once per section
        log("f's backbone is frozen: its embeddings are computed once, from unaugmented patches "
            "(dihedral turns and colour jitter do not reach them)")
        folder = embedding_folder or cfg.train.embedding_cache or Path(cfg.output) / "embeddings"
        loaded = {name: attach_backbone_embeddings(model, split, folder, log) for name, split in loaded.items()}
    image = needs_image(cfg.f.name, cfg.f.kwargs)
    scale = training_scale(loaded.get("train", []), cfg.patches) if image else {}
    return Run(cfg=cfg, splits=loaded, classes=classes, features=features, model=model, scale=scale,
               platform=platform)
