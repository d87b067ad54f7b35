"""Patch encoders f: ``(B, 3, P, P)`` float -> ``(B, K)`` logits, with an embedding.

Every encoder here exposes ``embed(x) -> (B, embedding_dim)``, ``classifier`` (``embedding_dim``
-> K) and the attributes ``embedding_dim`` and ``num_classes``, so a corrector can take f's
features instead of its logits. Any other ``nn.Module`` with ``(B, 3, P, P) -> (B, K)`` works as f
for logits or probabilities.
"""
from typing import Any

from torch import nn
from torchvision.models import DenseNet

from ..registry import Registry

from .densenet import DenseNetEncoder, densenet121, densenet_tiny, load_densenet_weights
from .encode import encode, preserve_batchnorm_stats
from .gridnet_simple import BasicBlock, GridNetSimple, gridnet_simple
from .protocol import Encoder, embedding_and_logits

ENCODERS = Registry("encoder", fixed=("num_classes",))
ENCODERS.register("gridnet_simple", gridnet_simple, forwards_to=lambda: [GridNetSimple])
ENCODERS.register("densenet121", densenet121, forwards_to=lambda: [DenseNet])
ENCODERS.register("densenet_tiny", densenet_tiny, forwards_to=lambda: [DenseNet])


def register_encoder(name: str, builder=None, *, overwrite: bool = False):
    """Register ``builder(num_classes, **kwargs) -> nn.Module`` as encoder ``name`` (directly or
    as a decorator); see :class:`Encoder` for what ``g_input="features"`` needs of it."""
    return ENCODERS.register(name, builder, overwrite=overwrite)


def available_encoders() -> list:
    """Sorted names accepted by :func:`build_encoder`."""
    return ENCODERS.names()


def build_encoder(name: str, num_classes: int, **kwargs: Any) -> nn.Module:
    """Build the encoder registered as ``name`` (see ``ENCODERS``) with ``num_classes`` outputs."""
    return ENCODERS.build(name, num_classes, **kwargs)


__all__ = [
    "BasicBlock",
    "DenseNetEncoder",
    "ENCODERS",
    "Encoder",
    "embedding_and_logits",
    "register_encoder",
    "available_encoders",
    "GridNetSimple",
    "build_encoder",
    "densenet121",
    "densenet_tiny",
    "encode",
    "gridnet_simple",
    "load_densenet_weights",
    "preserve_batchnorm_stats",
]
