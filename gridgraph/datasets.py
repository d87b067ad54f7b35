"""From a config's ``data``/``graph``/``patches`` sections to sections and their patch tensors."""
from __future__ import annotations

import glob
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence

import torch

from .graph import SpotGraph, cartesian_graph, hex_graph, knn_graph, radius_graph
from .io import Section, read_nuclei_csv, read_spaceranger, read_spot_table, read_st_tsv
from .io.image import LazyImage
from .io.tables import natural_sorted
from .patches import section_patches, standardize_stain

# reader: (file suffix of the table, file suffix of the image) for readers whose ids are stems
_STEM_READERS = {
    "nuclei": ("_nuclei.csv", ".png"),
    "spot_table": ("_spots.tsv", "_HE.jpg"),
    "st_tsv": ("_annotations.tsv", ".jpg"),
}
READERS = ("synthetic", "spaceranger") + tuple(_STEM_READERS)


@dataclass
class SectionTensors:
    """What training needs of one section: ``(N, 3, P, P)`` uint8 patches, graph and labels."""

    name: str
    patches: torch.Tensor
    graph: SpotGraph
    labels: torch.Tensor
    section: Optional[Section] = None

    @property
    def num_nodes(self) -> int:
        return self.graph.num_nodes

    def __repr__(self) -> str:
        return (
            f"SectionTensors({self.name!r}, num_nodes={self.num_nodes}, "
            f"patches={tuple(self.patches.shape)}, labeled={int((self.labels >= 0).sum())})"
        )


def _root(data_cfg: dict) -> Path:
    return Path(data_cfg["root"]) if data_cfg.get("root") else Path(".")


def _resolve(root: Path, value):
    if isinstance(value, str) and not Path(value).is_absolute() and (root / value).exists():
        return str(root / value)
    return value


def expand_ids(data_cfg: dict, ids: Sequence) -> list:
    """Section ids of a split; for stem readers a glob such as ``"train/*"`` expands to stems."""
    reader = data_cfg["reader"]
    if reader not in _STEM_READERS:
        return list(ids)
    suffix = data_cfg.get("options", {}).get("table_suffix", _STEM_READERS[reader][0])
    root = _root(data_cfg)
    out = []
    for sid in ids:
        sid = str(sid)
        if any(ch in sid for ch in "*?["):
            found = sorted(glob.glob(str(root / f"{sid}{suffix}")))
            if not found:
                raise FileNotFoundError(f"no file matches {root / (sid + suffix)}")
            out += [str(Path(p).relative_to(root))[: -len(suffix)] for p in found]
        else:
            out.append(sid)
    return natural_sorted(out)


def load_section(data_cfg: dict, section_id) -> Section:
    """Read one section named by ``section_id`` with the config's reader and options."""
    reader = data_cfg["reader"]
    opts = dict(data_cfg.get("options") or {})
    root = _root(data_cfg)
    if reader == "synthetic":
        from .synthetic import make_section

        try:
            seed = int(section_id)
        except (TypeError, ValueError):
            raise ValueError(f"synthetic section ids are integer seeds, got {section_id!r}") from None
        return make_section(seed=seed, name=f"synthetic-{seed}", **opts)
    if reader == "spaceranger":
        for key in ("labels", "image", "fullres_image"):
            if key in opts:
                opts[key] = _resolve(root, opts[key])
        return read_spaceranger(root / str(section_id), **opts)
    if reader in _STEM_READERS:
        table_suffix = opts.pop("table_suffix", _STEM_READERS[reader][0])
        image_suffix = opts.pop("image_suffix", _STEM_READERS[reader][1])
        table = root / f"{section_id}{table_suffix}"
        image = root / f"{section_id}{image_suffix}"
        name = str(section_id)
        if reader == "nuclei":
            return read_nuclei_csv(table, image, name=name, **opts)
        if reader == "spot_table":
            return read_spot_table(table, image=image, name=name, **opts)
        return read_st_tsv(table, image, **opts)
    raise ValueError(f"data.reader must be one of {READERS}, got {reader!r}")


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


def rebuild_graph(section: Section, graph_cfg: dict) -> Section:
    """Replace a section's graph following ``graph.builder`` (``None`` keeps the reader's)."""
    cfg = dict(graph_cfg or {})
    builder = cfg.pop("builder", None)
    if builder is None:
        return section
    pos = section.pixel_pos.numpy()
    if builder == "knn":
        graph = knn_graph(pos, **cfg)
    elif builder == "radius":
        graph = radius_graph(pos, **cfg)
    elif builder in ("hex", "cartesian"):
        if section.array_row is None:
            raise ValueError(f"section {section.name}: graph.builder={builder} needs array coordinates")
        make = hex_graph if builder == "hex" else cartesian_graph
        graph = make(section.array_row, section.array_col, pos=pos, **cfg)
    else:
        raise ValueError(f"graph.builder must be hex, cartesian, knn or radius, got {builder!r}")
    return replace(section, graph=graph)


def prepare(section: Section, patch_cfg: dict, keep_section: bool = True) -> SectionTensors:
    """Cut the section's node patches (uint8) and pair them with its graph and labels."""
    patches = section_patches(
        section,
        patch_size=patch_cfg["patch_size"],
        window_px=patch_cfg.get("window_px"),
        window_um=patch_cfg.get("window_um"),
        window_spots=patch_cfg.get("window_spots"),
    )
    if patch_cfg.get("standardize"):
        patches = standardize_stain(patches)
    if isinstance(section.image, LazyImage):
        section.image.release()
    return SectionTensors(
        name=section.name,
        patches=patches,
        graph=section.graph,
        labels=section.labels,
        section=section if keep_section else None,
    )


def load_splits(
    cfg: dict, splits: Sequence[str] = ("train", "val", "test"), classes: Optional[Sequence[str]] = None
) -> tuple[dict, list]:
    """Read the sections of each split, rebuild graphs, share one class list, cut patches.

    Returns ``({split: [SectionTensors, ...]}, classes)``. Classes are ``classes``, else
    ``data.classes``, else the natural-sorted union over every split (so that labels mean the same
    in train, val and test).
    """
    data = cfg["data"]
    ids = {split: expand_ids(data, data.get(split) or []) for split in splits}
    loaded = {
        split: [rebuild_graph(load_section(data, sid), cfg.get("graph")) for sid in ids[split]]
        for split in splits
    }
    everything = unify_classes([s for split in splits for s in loaded[split]], classes or data.get("classes"))
    names = everything[0].classes if everything else list(classes or [])
    out, at = {}, 0
    for split in splits:
        n = len(loaded[split])
        out[split] = [prepare(s, cfg["patches"]) for s in everything[at : at + n]]
        at += n
    return out, names
