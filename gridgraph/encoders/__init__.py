"""Patch encoders f: ``(B, 3, P, P)`` float -> ``(B, K)`` logits, with an embedding.

Every encoder here follows :class:`Encoder` (``embed(x) -> (B, embedding_dim)``, ``classifier``
``embedding_dim -> K``, ``embedding_dim``, ``num_classes``), so a corrector can take f's features
instead of its logits. Any other ``nn.Module`` with ``(B, 3, P, P) -> (B, K)`` works as f for
logits or probabilities. Build one by name from :data:`ENCODERS` (:func:`build_encoder`).
"""
from typing import Any, List, Mapping, Optional, Sequence

from torch import nn

from ..registry import Registry
from .backbone import BackboneEncoder, load_backbone_weights, timm_encoder, torchvision_encoder
from .densenet import DenseNetEncoder, densenet121, densenet_tiny, load_densenet_weights
from .embedding_cache import EmbeddingCache
from .encode import encode, preserve_batchnorm_stats
from .feature_mlp import DEFAULT_BRANCH, FeatureMLP, FusionEncoder, expression, feature_mlp, fusion, precomputed
from .gridnet_simple import BasicBlock, GridNetSimple, gridnet_simple
from .inputs import (EMBEDDING, EXPRESSION, IMAGE, branch_specs, encoder_meta, encoder_metadata, file_args,
                     inputs_of, weight_args, with_input_args, with_widths, without_weights)
from .protocol import Encoder, logits_and_embedding

#: name -> builder ``(num_classes, **kwargs) -> nn.Module``; configs name f here. Each entry's
#: metadata (:func:`~gridgraph.encoders.inputs.encoder_meta`) says what it reads.
ENCODERS = Registry("encoder", fixed=("num_classes",))


def register_encoder(name: str, builder=None, *, overwrite: bool = False, reads: Optional[str] = IMAGE,
                     files: Optional[Sequence[str]] = None, weights: Optional[Sequence[str]] = None,
                     width: Optional[str] = None, modality: Optional[str] = None, branches: Optional[str] = None,
                     branch_defaults: Optional[Mapping[str, str]] = None, forwards_to=None):
    """Register ``builder(num_classes, **kwargs) -> nn.Module`` as encoder ``name``, with what it
    reads (see :func:`~gridgraph.encoders.inputs.encoder_meta` for ``reads``, ``files``,
    ``weights``, ``width``, ``modality``, ``branches`` and ``branch_defaults``).

    Used directly or as a decorator; see :class:`Encoder` for what ``g_input="features"`` needs
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


register_encoder("gridnet_simple", gridnet_simple, forwards_to=lambda: [GridNetSimple], files=(), weights=())
register_encoder("densenet121", densenet121, files=("weights",), weights=("weights",))
register_encoder("densenet_tiny", densenet_tiny, files=(), weights=())
register_encoder("timm", timm_encoder, files=("weights",), weights=("weights", "pretrained"))
register_encoder("torchvision", torchvision_encoder, files=("weights",), weights=("weights",))
register_encoder("feature_mlp", feature_mlp, reads=EMBEDDING, modality="modality", files=(), weights=(),
                 width="in_features")
register_encoder("precomputed", precomputed, reads=EMBEDDING, files=("path",), weights=(), width="in_features")
register_encoder("expression", expression, reads=EXPRESSION, files=("counts",), weights=(), width="in_features")
register_encoder("fusion", fusion, reads=None, branches="branches", branch_defaults=DEFAULT_BRANCH, files=(),
                 weights=(), width="in_features")


def available_encoders() -> List[str]:
    """Sorted names accepted by :func:`build_encoder`."""
    return ENCODERS.names()


def build_encoder(name: str, num_classes: int, **kwargs: Any) -> nn.Module:
    """Build the encoder registered as ``name`` (see ``ENCODERS``) with ``num_classes`` outputs."""
    return ENCODERS.build(name, num_classes, **kwargs)


__all__ = [
    "BackboneEncoder",
    "BasicBlock",
    "DenseNetEncoder",
    "FeatureMLP",
    "FusionEncoder",
    "feature_mlp",
    "precomputed",
    "expression",
    "fusion",
    "ENCODERS",
    "EmbeddingCache",
    "Encoder",
    "logits_and_embedding",
    "register_encoder",
    "encoder_meta",
    "encoder_metadata",
    "inputs_of",
    "branch_specs",
    "file_args",
    "weight_args",
    "without_weights",
    "with_widths",
    "with_input_args",
    "available_encoders",
    "GridNetSimple",
    "build_encoder",
    "densenet121",
    "densenet_tiny",
    "encode",
    "gridnet_simple",
    "load_backbone_weights",
    "load_densenet_weights",
    "preserve_batchnorm_stats",
    "timm_encoder",
    "torchvision_encoder",
]
