"""Patch encoders f: ``(B, 3, P, P)`` float -> ``(B, K)`` logits, with an embedding.

Every encoder here follows :class:`Encoder` (``embed(x) -> (B, embedding_dim)``, ``classifier``
``embedding_dim -> K``, ``embedding_dim``, ``num_classes``), so a corrector can take f's features
instead of its logits. Any other ``nn.Module`` with ``(B, 3, P, P) -> (B, K)`` works as f for
logits or probabilities. Build one by name from :data:`ENCODERS` (:func:`build_encoder`).
"""
from typing import Any, List

from torch import nn

from ..registry import Registry
from .backbone import BackboneEncoder, load_backbone_weights, timm_encoder, torchvision_encoder
from .densenet import DenseNetEncoder, densenet121, densenet_tiny, load_densenet_weights
from .embedding_cache import EmbeddingCache
from .encode import encode, preserve_batchnorm_stats
from .feature_mlp import FeatureMLP, FusionEncoder, expression, feature_mlp, fusion, precomputed
from .gridnet_simple import BasicBlock, GridNetSimple, gridnet_simple
from .protocol import Encoder, logits_and_embedding

#: name -> builder ``(num_classes, **kwargs) -> nn.Module``; configs name f here.
ENCODERS = Registry("encoder", fixed=("num_classes",))
ENCODERS.register("gridnet_simple", gridnet_simple, forwards_to=lambda: [GridNetSimple])
ENCODERS.register("densenet121", densenet121)
ENCODERS.register("densenet_tiny", densenet_tiny)
ENCODERS.register("timm", timm_encoder)
ENCODERS.register("torchvision", torchvision_encoder)
ENCODERS.register("feature_mlp", feature_mlp)
ENCODERS.register("precomputed", precomputed)
ENCODERS.register("expression", expression)
ENCODERS.register("fusion", fusion)


def register_encoder(name: str, builder=None, *, overwrite: bool = False):
    """Register ``builder(num_classes, **kwargs) -> nn.Module`` as encoder ``name`` (directly or
    as a decorator); see :class:`Encoder` for what ``g_input="features"`` needs of it."""
    return ENCODERS.register(name, builder, overwrite=overwrite)


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
