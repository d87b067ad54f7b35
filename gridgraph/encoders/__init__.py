"""Patch encoders f: ``(B, 3, P, P)`` float -> ``(B, K)`` logits, with an embedding.

Every encoder here follows :class:`Encoder` (``embed(x) -> (B, embedding_dim)``, ``classifier``
``embedding_dim -> K``, ``embedding_dim``, ``num_classes``), so a corrector can take f's features
instead of its logits. Any other ``nn.Module`` with ``(B, 3, P, P) -> (B, K)`` works as f for
logits or probabilities. Build one by name from :data:`ENCODERS` (:func:`build_encoder`).
"""
from .backbone import BackboneEncoder, load_backbone_weights, timm_encoder, torchvision_encoder
from .densenet import DenseNetEncoder, densenet121, densenet_tiny, load_densenet_weights
from .embedding_cache import EmbeddingCache
from .encode import encode, preserve_batchnorm_stats
from .ensemble import EncoderEnsemble
from .feature_mlp import DEFAULT_BRANCH, FeatureMLP, FusionEncoder, expression, feature_mlp, fusion, precomputed
from .gridnet_simple import BasicBlock, GridNetSimple, gridnet_simple
from .inputs import (branch_specs, encoder_metadata, file_args, inputs_of, weight_args, with_input_args, with_widths,
                     without_weights)
from .protocol import Encoder, logits_and_embedding
from .registry import EMBEDDING, ENCODERS, EXPRESSION, available_encoders, build_encoder, encoder_meta, register_encoder

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


__all__ = [
    "EncoderEnsemble",
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
