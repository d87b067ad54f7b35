"""Building a :class:`GridGraphNet` from registry names, with the defaults of :mod:`gridgraph.defaults`."""
from __future__ import annotations

import warnings
from typing import Any, Dict, Optional

from .. import defaults
from ..correctors import build_corrector
from ..correctors.base import zero_output_layer
from ..correctors.ensemble import CorrectorEnsemble
from ..encoders import BackboneEncoder, EncoderEnsemble, FeatureMLP, build_encoder
from ..names import GInput
from ..patches.transforms import Normalize
from .net import GridGraphNet

__all__ = ["build_model"]


def build_model(
    num_classes: int,
    encoder: str = defaults.ENCODER,
    corrector: str = defaults.CORRECTOR,
    g_input: str = defaults.G_INPUT,
    encoder_kwargs: Optional[Dict[str, Any]] = None,
    corrector_kwargs: Optional[Dict[str, Any]] = None,
    g_ensemble: int = defaults.G_ENSEMBLE,
    f_ensemble: int = 1,
    g_zero_init: bool = defaults.G_ZERO_INIT,
    g_residual: bool = defaults.G_RESIDUAL,
    layout: Optional[str] = None,
    regression: bool = False,
    **kwargs: Any,
) -> GridGraphNet:
    """Build a :class:`GridGraphNet` from names (for configs).

    Args:
        num_classes: K.
        encoder: name in :data:`gridgraph.encoders.ENCODERS` (``"gridnet_simple"``,
            ``"densenet121"``, ``"densenet_tiny"``).
        corrector: name in :func:`~gridgraph.correctors.available_correctors`, or ``"auto"``
            (the default, as in configs): the corrector :func:`gridgraph.defaults.corrector_for`
            picks for ``layout`` (U-Net on grids, residual GCN on irregular graphs), with
            ``corrector_kwargs`` updating its arguments.
        g_input: ``"softmax"``, ``"logits"`` or ``"features"``; g's ``in_channels`` is set to
            match (K, or f's ``embedding_dim``).
        encoder_kwargs, corrector_kwargs: extra arguments of the two builders.
        g_ensemble: ``M`` > 1 builds a :class:`~gridgraph.correctors.CorrectorEnsemble` of M
            correctors (default :data:`gridgraph.defaults.G_ENSEMBLE`; 1 is a single g).
        f_ensemble: ``M`` > 1 builds an :class:`~gridgraph.encoders.EncoderEnsemble` of M f's
            (image or feature f's, not frozen backbones; ``g_input`` softmax or logits), averaged
            before g.
        g_residual: g corrects f's log-probabilities instead of predicting the logits outright.
        layout: the sections' graph layout (``"hex"``, ``"cartesian"``, ``"irregular"``), needed
            by ``corrector="auto"`` only.
        regression: f and g output one value per target (``num_classes`` genes) instead of
            class logits (see :class:`GridGraphNet`'s ``regression``).
        g_zero_init: with ``g_residual=True``, zero g's output layer so that f + g starts
            exactly at f (default ``True``; a warning if g does not name its output layer).
        **kwargs: :class:`GridGraphNet` options (``chunk_size``, ``checkpoint``, ``transform``;
            by default the normalisation f states in ``input_mean``/``input_std``, as image
            backbones from timm or torchvision do, else ImageNet's).
    """
    if corrector == defaults.AUTO:
        if layout is None:
            raise ValueError("corrector='auto' picks g from the sections' layout: pass layout= (e.g. "
                             "section.graph.layout) or name a corrector")
        chosen = defaults.corrector_for([layout])
        corrector, corrector_kwargs = chosen["name"], {**chosen["kwargs"], **(corrector_kwargs or {})}
    f = build_encoder(encoder, num_classes, **(encoder_kwargs or {}))
    if int(f_ensemble) > 1:
        if regression:
            raise ValueError("model.f_ensemble > 1 averages f's class probabilities: it is for class targets, "
                             "not an expression target")
        f = _f_ensemble(f, lambda: build_encoder(encoder, num_classes, **(encoder_kwargs or {})), int(f_ensemble),
                        g_input)
    if "transform" not in kwargs and isinstance(f.members[0] if isinstance(f, EncoderEnsemble) else f, FeatureMLP):
        kwargs["transform"] = None  # feature vectors, not image patches
    elif "transform" not in kwargs and getattr(f, "input_mean", None) is not None:
        kwargs["transform"] = Normalize(f.input_mean, f.input_std)  # the backbone's own normalisation
    in_channels = f.embedding_dim if g_input == GInput.FEATURES else num_classes
    def build_g():
        return build_corrector(corrector, num_classes, in_channels=in_channels, **(corrector_kwargs or {}))

    g = build_g() if int(g_ensemble) == 1 else CorrectorEnsemble(build_g, int(g_ensemble))
    if g_residual and g_zero_init and not zero_output_layer(g):
        warnings.warn(f"corrector {corrector!r} does not name its output layer (Corrector.output_layer): "
                      "the residual g starts from random weights, not from f", stacklevel=2)
    return GridGraphNet(f, g, g_input=g_input, g_residual=g_residual, regression=regression, **kwargs)


def _f_ensemble(first, build, size: int, g_input: str) -> EncoderEnsemble:
    """``size`` f's: ``first`` and ``size - 1`` more from ``build``."""
    if g_input == GInput.FEATURES:
        raise ValueError("model.f_ensemble > 1 averages f's class probabilities; with g_input 'features' g would "
                         "read one embedding per member: use g_input softmax or logits")
    if isinstance(first, BackboneEncoder) and first.frozen:
        raise ValueError("model.f_ensemble > 1 with a frozen backbone: the members would share one frozen "
                         "backbone and differ only in their heads; train the backbone or use f_ensemble 1")
    pending = [first]
    return EncoderEnsemble(lambda: pending.pop() if pending else build(), size)
