"""The encoder registry: a config names f and its arguments; each entry declares what it reads.

:data:`ENCODERS` maps a name to its builder; :func:`register_encoder` adds one with its
declaration (:func:`encoder_meta`); the built-in encoders are registered by the package.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

from torch import nn

from ..patches.node_inputs import IMAGE
from ..registry import Registry

__all__ = ["ENCODERS", "IMAGE", "EMBEDDING", "EXPRESSION", "KINDS", "encoder_meta", "register_encoder",
           "available_encoders", "build_encoder"]

EMBEDDING, EXPRESSION = "embedding", "expression"
#: The kinds of input an encoder may read.
KINDS = (IMAGE, EMBEDDING, EXPRESSION)

#: name -> builder ``(num_classes, **kwargs) -> nn.Module``; configs name f here. Each entry's
#: metadata (:func:`encoder_meta`) says what it reads.
ENCODERS = Registry("encoder", fixed=("num_classes",))


def register_encoder(name: str, builder=None, *, overwrite: bool = False, reads: Optional[str] = IMAGE,
                     files: Optional[Sequence[str]] = None, weights: Optional[Sequence[str]] = None,
                     width: Optional[str] = None, modality: Optional[str] = None, branches: Optional[str] = None,
                     branch_defaults: Optional[Mapping[str, str]] = None, forwards_to=None):
    """Register ``builder(num_classes, **kwargs) -> nn.Module`` as encoder ``name``, with what it
    reads (see :func:`encoder_meta` for ``reads``, ``files``,
    ``weights``, ``width``, ``modality``, ``branches`` and ``branch_defaults``).

    Used directly or as a decorator; see :class:`~gridgraph.encoders.Encoder` for what ``g_input="features"`` needs
    of the module. An encoder reading ``"expression"`` takes the expression options
    (``counts``, ``genes``, ``n_top_genes``, ``target_sum``, ``id_format``), one reading an
    ``"embedding"`` the embedding file's (``path``, ``key``, ``id_format``); its ``width``
    argument is given the width of its input.

    Example:
        ``register_encoder("my_mlp", my_mlp, reads="expression", files=("counts",))``
    """
    meta = encoder_meta(reads, files=files, weights=weights, width=width, modality=modality, branches=branches,
                        branch_defaults=branch_defaults)
    return ENCODERS.register(name, builder, overwrite=overwrite, forwards_to=forwards_to, meta=meta)


def encoder_meta(reads: Optional[str] = IMAGE, files: Optional[Sequence[str]] = None,
                 weights: Optional[Sequence[str]] = None, width: Optional[str] = None,
                 modality: Optional[str] = None, branches: Optional[str] = None,
                 branch_defaults: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    """Checked registry metadata for an encoder.

    Args:
        reads: the kind of input it reads, one of :data:`KINDS`; ``None`` for an encoder whose
            inputs are its branches' (``branches`` given).
        files: its arguments that are file paths (``None``: those of :data:`~gridgraph.encoders.inputs.DEFAULT_FILES` its
            builder takes).
        weights: its arguments that load pretrained weights, left out when a checkpoint holds
            the weights (``None``: those of :data:`~gridgraph.encoders.inputs.DEFAULT_WEIGHTS` its builder takes).
        width: the argument given its input width from the node-feature state (``None``:
            ``in_features`` when its builder takes it); for a branched encoder it is given
            ``{modality: width}``.
        modality: the argument naming the part of the inputs it reads (default: the kind).
        branches: the argument holding ``{modality: {"name": encoder, "kwargs": {...}}}``.
        branch_defaults: kind -> the encoder of a branch that names none (a key that is no
            kind takes the ``"embedding"`` one).

    Returns:
        The metadata, as :meth:`~gridgraph.registry.Registry.metadata` returns it.

    Raises:
        ValueError: ``reads`` is no kind, or is missing without ``branches``.
    """
    if branches is None and reads not in KINDS:
        raise ValueError(f"an encoder reads one of {list(KINDS)}, got reads={reads!r}")
    meta: Dict[str, Any] = {"reads": None if branches else reads, "modality": modality, "branches": branches,
                            "branch_defaults": dict(branch_defaults or {})}
    for key, value in (("files", files), ("weights", weights)):
        if value is not None:
            meta[key] = (value,) if isinstance(value, str) else tuple(value)
    if width is not None:
        meta["width"] = width
    return meta


def available_encoders() -> List[str]:
    """Sorted names accepted by :func:`build_encoder`."""
    return ENCODERS.names()


def build_encoder(name: str, num_classes: int, **kwargs: Any) -> nn.Module:
    """Build the encoder registered as ``name`` (see ``ENCODERS``) with ``num_classes`` outputs."""
    return ENCODERS.build(name, num_classes, **kwargs)
