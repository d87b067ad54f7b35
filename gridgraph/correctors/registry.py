"""The corrector registry: a config names the spatial corrector g and its arguments."""
from __future__ import annotations

from typing import Any, Callable, List, Optional

from torch import nn

from ..registry import Registry

__all__ = ["CORRECTORS", "register_corrector", "build_corrector", "available_correctors"]

#: name -> builder ``(num_classes, in_channels=None, **kwargs) -> nn.Module``.
CORRECTORS = Registry("corrector", fixed=("num_classes", "in_channels"))


def register_corrector(name: str, builder: Optional[Callable[..., nn.Module]] = None, *,
                       overwrite: bool = False):
    """Register ``builder(num_classes, in_channels=None, **kwargs) -> nn.Module`` as ``name``.

    Usable directly (``register_corrector("mine", MyCorrector)``) or as a decorator
    (``@register_corrector("mine")``). Re-registering a name raises unless ``overwrite=True``.
    The corrector must map node features ``(N, in_channels)`` and a
    :class:`~gridgraph.graph.SpotGraph` to node logits ``(N, num_classes)``.
    """
    return CORRECTORS.register(name, builder, overwrite=overwrite)


def available_correctors() -> List[str]:
    """Sorted names accepted by :func:`build_corrector`."""
    return CORRECTORS.names()


def build_corrector(name: str, num_classes: int, in_channels: Optional[int] = None,
                    **kwargs: Any) -> nn.Module:
    """Build the corrector registered as ``name``.

    Args:
        name: one of :func:`available_correctors` (built in: ``"conv2d"``, ``"hexconv"``,
            ``"gcn"``, ``"gat"``, ``"sage"``, ``"unet"``).
        num_classes: K, width of the output node logits.
        in_channels: width of the input node features (default K: f's logits or probabilities).
        **kwargs: the corrector's own options (e.g. ``hidden_channels``, ``batch_norm``).
    """
    return CORRECTORS.build(name, num_classes, in_channels=in_channels, **kwargs)
