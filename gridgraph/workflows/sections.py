"""From a run config's ``data``/``graph``/``patches`` sections to prepared sections of each split."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

import torch

from ..config import DataConfig, GraphConfig, ModuleConfig, PatchConfig, RunConfig
from ..features import fit_features, image_only, in_features, needs_image, section_inputs
from ..features.targets import TARGET_KEY, fit_target, section_targets
from ..graph import GraphSpec
from ..io import Section
from ..io.readers.registry import READERS
from ..io.tables import natural_sorted
from ..patches import SectionTensors, prepare_section
from ..patches.window import Window

__all__ = ["READERS", "load_section", "expand_ids", "unify_classes", "rebuild_graph", "prepare",
           "load_splits", "training_scale"]


def _root(data: DataConfig) -> Path:
    return Path(data.root) if data.root else Path(".")


def expand_ids(data: DataConfig, ids: Sequence) -> list:
    """Section ids of a split; for stem readers a glob such as ``"train/*"`` expands to stems."""
    return READERS.get(data.name).expand(_root(data), ids, data.kwargs)


def load_section(data: DataConfig, section_id, graph: GraphConfig | GraphSpec | dict | None = None) -> Section:
    """Read one section named by ``section_id`` with the config's reader and options.

    A graph spec (``graph.name`` set) goes to readers that take one (``graph=``); the others'
    graphs are rebuilt after reading.
    """
    spec = GraphSpec.parse(graph.model_dump(mode="json") if isinstance(graph, GraphConfig) else graph)
    source = READERS.get(data.name)
    options = dict(data.kwargs)
    if spec is not None and "graph" in (READERS.parameters(data.name) or ()):
        return source(_root(data), section_id, **{**options, "graph": spec})
    return rebuild_graph(source(_root(data), section_id, **options), spec)


def unify_classes(sections: Sequence[Section], classes: Optional[Sequence[str]] = None) -> list:
    """Give every section the same class list (the natural-sorted union unless given)."""
    if classes is None:
        classes = natural_sorted({c for s in sections for c in s.classes})
    classes = list(classes)
    index = {c: i for i, c in enumerate(classes)}
    out = []
    for s in sections:
        missing = [c for c in s.classes if c not in index]
        if missing:
            raise ValueError(f"section {s.name}: classes {missing} are not in {classes}")
        remap = torch.tensor([index[c] for c in s.classes] + [-1], dtype=torch.long)
        out.append(replace(s, labels=remap[s.labels], classes=classes))
    return out


def rebuild_graph(section: Section, graph: GraphConfig | GraphSpec | dict | None) -> Section:
    """Replace a section's graph following a graph spec (``None`` / no builder keeps the reader's)."""
    if isinstance(graph, GraphConfig):
        graph = graph.model_dump(mode="json")
    spec = GraphSpec.parse(graph)
    if spec is None:
        return section
    new = spec.build(section.pixel_pos.numpy(), section.array_row, section.array_col,
                     where=f"section {section.name}")
    return replace(section, graph=new)


def prepare(section: Section, patches: PatchConfig, keep_section: bool = True, f: Optional[ModuleConfig] = None,
            features: Optional[dict] = None) -> SectionTensors:
    """:func:`~gridgraph.patches.prepare_section` with a config's ``patches`` settings
    (:meth:`Window.from_config <gridgraph.patches.window.Window.from_config>`); for an ``f`` that
    reads other modalities than images (see :mod:`gridgraph.features`), its
    :class:`~gridgraph.patches.NodeInputs`, built with ``features`` (:func:`fit_features`' state)."""
    window = Window.from_config(patches)
    if f is None or image_only(f.name, f.kwargs):
        return prepare_section(section, patches.patch_size, standardize=patches.standardize,
                               keep_section=keep_section, window=window)
    if section.graph.num_nodes == 0:
        raise ValueError(f"section {section.name}: has no nodes (no spots or nuclei were read)")
    image = None
    if needs_image(f.name, f.kwargs):
        image = prepare_section(section, patches.patch_size, standardize=patches.standardize,
                                keep_section=False, window=window).patches
    inputs = section_inputs(section, f.name, f.kwargs, features or {}, image)
    return SectionTensors(name=section.name, patches=inputs, graph=section.graph, labels=section.labels,
                          section=section if keep_section else None)


def training_scale(sections: Sequence[SectionTensors], patches: PatchConfig) -> dict:
    """What a checkpoint records of the physical scale it was trained at
    (:meth:`Window.record <gridgraph.patches.window.Window.record>` of the sections that keep
    their :class:`~gridgraph.io.Section`)."""
    known = [st.section for st in sections if st.section is not None]
    return Window.from_config(patches).record(known, patches.patch_size)


def load_splits(cfg: RunConfig, splits: Sequence[str] = ("train", "val", "test"),
                classes: Optional[Sequence[str]] = None, features: Optional[dict] = None) -> tuple[dict, list]:
    """Read the sections of each split, rebuild graphs, share one class list, cut patches.

    Returns ``({split: [SectionTensors, ...]}, classes)``. Classes are ``classes``, else
    ``data.classes``, else the natural-sorted union over every split (so that labels mean the same
    in train, val and test). ``features``: the node-feature state a checkpoint keeps (default:
    fitted on the train split, see :func:`load_splits_and_features`).
    """
    out, names, _ = load_splits_and_features(cfg, splits, classes, features)
    return out, names


def load_splits_and_features(cfg: RunConfig, splits: Sequence[str] = ("train", "val", "test"),
                             classes: Optional[Sequence[str]] = None, features: Optional[dict] = None,
                             log=lambda line: None) -> tuple[dict, list, dict]:
    """:func:`load_splits` and the node-feature state of f's inputs: fitted on the ``train``
    split (:func:`~gridgraph.features.fit_features`) unless ``features`` is given, with the
    width of each feature modality (``in_features``) that the model is built with. With an
    expression target (``cfg.target``) the state's ``"target"`` holds its genes and normalisation
    (:func:`~gridgraph.features.targets.fit_target`, fitted on ``train`` unless ``features`` has
    it; ``top_variable`` picks among the genes every split's sections measure) and each
    section's ``targets`` its values."""
    data = cfg.data
    ids = {split: expand_ids(data, getattr(data, split)) for split in splits}
    loaded = {split: [load_section(data, sid, cfg.graph) for sid in ids[split]]
              for split in splits}
    everything = unify_classes([s for split in splits for s in loaded[split]], classes or data.classes)
    names = everything[0].classes if everything else list(classes or [])
    if features is None:
        start = sum(len(loaded[s]) for s in splits[: list(splits).index("train")]) if "train" in loaded else 0
        fit_on = everything[start: start + len(loaded.get("train", []))]
        features = fit_features(cfg.f.name, cfg.f.kwargs, fit_on, log=log)
    target = cfg.target.model_dump(mode="json")
    if cfg.target.expression and TARGET_KEY not in features:
        start = sum(len(loaded[s]) for s in splits[: list(splits).index("train")]) if "train" in loaded else 0
        n_train = len(loaded.get("train", []))
        others = everything[:start] + everything[start + n_train:]  # their gene names only
        fitted = fit_target(target, everything[start: start + n_train], features, log=log, measured_in=others)
        features = {**features, TARGET_KEY: fitted}
    out, at = {}, 0
    for split in splits:
        n = len(loaded[split])
        out[split] = [prepare(s, cfg.patches, f=cfg.f, features=features) for s in everything[at: at + n]]
        if cfg.target.expression:
            out[split] = [replace(st, targets=section_targets(s, target, features[TARGET_KEY]))
                          for st, s in zip(out[split], everything[at: at + n])]
        at += n
    widths = {st.name: in_features(st.patches) for split in splits for st in out[split]}
    if len({tuple(sorted(w.items())) for w in widths.values()}) > 1:
        raise ValueError(f"the sections' node features differ in width: {widths}")
    features = {**features, "in_features": next(iter(widths.values()), {})}
    return out, names, features
