"""What each encoder reads, declared when it is registered, and what follows from it.

An encoder's registry metadata (:func:`encoder_meta`, given to
:func:`~gridgraph.encoders.register_encoder`) says which kind of input it reads (``"image"``
patches, ``"expression"`` counts or an ``"embedding"`` file), which of its arguments are file
paths (resolved against a config's folder) or pretrained weights (dropped when the weights
come from a checkpoint), which argument takes its input width, and, for an encoder made of
branches (``fusion``), which argument holds them. The node-feature side
(:mod:`gridgraph.features`), the model builder and the config loader read these facts here
(:func:`inputs_of`, :func:`file_args`, :func:`without_weights`, :func:`with_widths`) instead of
testing encoder names.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

from .registry import EMBEDDING, ENCODERS, EXPRESSION, IMAGE, KINDS, encoder_meta

__all__ = ["IMAGE", "EMBEDDING", "EXPRESSION", "KINDS", "SOURCE_ARG", "encoder_meta", "encoder_metadata", "inputs_of",
           "branch_specs", "file_args", "weight_args", "without_weights", "with_widths", "with_input_args"]

#: The argument naming the data file of a feature kind (``{section}`` standing for the section id).
SOURCE_ARG = {EMBEDDING: "path", EXPRESSION: "counts"}
#: Undeclared, an encoder's files and weights are those of these arguments its builder takes.
DEFAULT_FILES = ("weights", "path", "counts")
DEFAULT_WEIGHTS = ("weights", "pretrained")
WIDTH = "in_features"


def encoder_metadata(name: str) -> Dict[str, Any]:
    """Encoder ``name``'s metadata with every field filled (see :func:`encoder_meta`).

    Args:
        name: an encoder name. An unknown one, or one registered without metadata, reads
            images; its files, weights and width are the default arguments its builder takes
            (all of them for an unknown name), as before encoders declared them.

    Returns:
        ``{"reads", "files", "weights", "width", "modality", "branches", "branch_defaults"}``.
    """
    registry = ENCODERS
    known = name in registry
    meta = {**encoder_meta(), **(registry.metadata(name) if known else {})}
    accepted = registry.parameters(name) if known else None
    for key, default in (("files", DEFAULT_FILES), ("weights", DEFAULT_WEIGHTS)):
        if key not in meta:
            meta[key] = tuple(a for a in default if accepted is None or a in accepted)
    if "width" not in meta:
        meta["width"] = WIDTH if accepted is not None and WIDTH in accepted else None
    return meta


def branch_specs(name: str, kwargs: Mapping) -> Dict[str, Tuple[str, dict]]:
    """modality -> ``(encoder name, kwargs)`` of each branch of a branched encoder (``{}``: none)."""
    meta = encoder_metadata(name)
    if not meta["branches"]:
        return {}
    defaults, specs = meta["branch_defaults"], kwargs.get(meta["branches"]) or {}
    if not isinstance(specs, Mapping):
        return {}
    out = {}
    for key, spec in specs.items():
        spec = dict(spec or {})
        out[key] = (spec.get("name") or defaults.get(key) or defaults.get(EMBEDDING), dict(spec.get("kwargs") or {}))
    return out


def inputs_of(name: str, kwargs: Mapping) -> Dict[str, dict]:
    """What encoder ``name`` with ``kwargs`` reads.

    Returns:
        modality (the key of its part in f's inputs) -> the options saying where its data comes
        from (the reading encoder's kwargs), with ``"kind"``: one of :data:`KINDS`.

    Raises:
        ValueError: a branch reads images under another key than ``"image"``.
    """
    meta = encoder_metadata(name)
    if meta["branches"]:
        out: Dict[str, dict] = {}
        for key, (branch, branch_kwargs) in branch_specs(name, kwargs).items():
            kind = encoder_metadata(branch)["reads"] or IMAGE
            if kind == IMAGE and key != IMAGE:
                raise ValueError(f"{name} branch {key!r} reads images: name it {IMAGE!r} (the image transforms "
                                 "act on that part)")
            out[key] = {"kind": kind} if kind == IMAGE else {**branch_kwargs, "kind": kind}
        return out
    kind = meta["reads"]
    if kind == IMAGE:
        return {IMAGE: {"kind": IMAGE}}
    key = kwargs.get(meta["modality"], kind) if meta["modality"] else kind
    return {key: {**dict(kwargs), "kind": kind}}


def weight_args(name: str) -> Tuple[str, ...]:
    """Encoder ``name``'s arguments that load pretrained weights."""
    return encoder_metadata(name)["weights"]


def file_args(name: str, kwargs: Optional[Mapping] = None) -> List[Tuple[str, ...]]:
    """Where encoder ``name``'s kwargs hold file paths: key paths below the kwargs, e.g.
    ``[("counts",)]``, or ``[("branches", "expression", "kwargs", "counts")]`` for a branch."""
    meta = encoder_metadata(name)
    out = [(arg,) for arg in meta["files"]]
    for key, (branch, _) in branch_specs(name, kwargs or {}).items():
        out += [(meta["branches"], key, "kwargs", arg) for arg in encoder_metadata(branch)["files"]]
    return out


def without_weights(name: str, kwargs: Mapping) -> dict:
    """``kwargs`` without encoder ``name``'s (and its branches') weight arguments."""
    drop = set(weight_args(name))
    out = {k: v for k, v in kwargs.items() if k not in drop}
    specs = branch_specs(name, kwargs)
    if specs:
        arg = encoder_metadata(name)["branches"]
        out[arg] = {key: {**dict(kwargs[arg][key] or {}), "kwargs": without_weights(branch, branch_kwargs)}
                    for key, (branch, branch_kwargs) in specs.items()}
    return out


def with_widths(name: str, kwargs: Mapping, widths: Mapping[str, int]) -> dict:
    """``kwargs`` with encoder ``name``'s width argument filled from ``widths`` (modality -> width
    of each feature part, the node-feature state's ``in_features``): a branched encoder is given
    them all, another the (only) one, when there is one."""
    meta, out = encoder_metadata(name), dict(kwargs)
    if meta["width"] is None:
        return out
    if meta["branches"]:
        out[meta["width"]] = dict(widths)
    elif widths:
        out[meta["width"]] = next(iter(widths.values()))
    return out


def with_input_args(name: str, kwargs: Mapping, args: Mapping[str, Mapping[str, Any]]) -> dict:
    """``kwargs`` with arguments set on what reads each modality: ``args`` is modality ->
    ``{argument: value}``, set on the branch reading it, or on the encoder itself."""
    out = dict(kwargs)
    meta = encoder_metadata(name)
    if not meta["branches"]:
        for values in args.values():
            out.update(values)
        return out
    arg = meta["branches"]
    branches = {key: dict(spec or {}) for key, spec in dict(out.get(arg) or {}).items()}
    for key, values in args.items():
        branches[key]["kwargs"] = {**dict(branches[key].get("kwargs") or {}), **values}
    out[arg] = branches
    return out
