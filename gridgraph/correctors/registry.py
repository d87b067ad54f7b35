"""Corrector registry: a config names the spatial corrector g and its arguments."""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from torch import Tensor, nn

from ..registry import Registry

__all__ = ["CORRECTORS", "Corrector", "register_corrector", "build_corrector", "available_correctors"]


class Corrector(nn.Module):
    """Base class of the correctors.

    Maps node features ``(N, in_channels)`` + a graph to node logits ``(N, num_classes)``;
    ``in_channels`` defaults to ``num_classes`` (g fed with f's probabilities or logits).
    """

    def __init__(self, num_classes: int, in_channels: Optional[int] = None):
        super().__init__()
        self.num_classes = int(num_classes)
        self.in_channels = int(num_classes if in_channels is None else in_channels)

    def _check_features(self, x: Tensor, num_nodes: Optional[int]) -> None:
        if x.dim() != 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} expects node features (N, {self.in_channels}), "
                f"got {tuple(x.shape)}"
            )
        if num_nodes is not None and x.shape[0] != num_nodes:
            raise ValueError(f"x has {x.shape[0]} rows but the graph has {num_nodes} nodes")

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, num_classes={self.num_classes}"


CORRECTORS = Registry("corrector", fixed=("num_classes", "in_channels"))
_CORRECTORS: Dict[str, Callable[..., nn.Module]] = CORRECTORS._entries


def register_corrector(name: str, builder: Optional[Callable[..., nn.Module]] = None, *,
                       overwrite: bool = False):
    """Register ``builder(num_classes, in_channels=None, **kwargs) -> nn.Module`` as ``name``.

    Usable directly (``register_corrector("mine", MyCorrector)``) or as a decorator
    (``@register_corrector("mine")``). Re-registering a name raises unless ``overwrite=True``.
    The corrector must map node features ``(N, in_channels)`` and a
    :class:`~gridgraph.graph.SpotGraph` to node logits ``(N, num_classes)``.
    """

    def add(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if not callable(fn):
            raise TypeError(f"corrector builder for {name!r} must be callable, got {fn!r}")
        if name in _CORRECTORS and not overwrite and _CORRECTORS[name] is not fn:
            raise ValueError(f"a corrector named {name!r} is already registered")
        _CORRECTORS[name] = fn
        return fn

    return add if builder is None else add(builder)


def available_correctors() -> List[str]:
    """Sorted names accepted by :func:`build_corrector`."""
    return sorted(_CORRECTORS)


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
    try:
        builder = _CORRECTORS[name]
    except KeyError:
        raise ValueError(
            f"unknown corrector {name!r}; available: {available_correctors()}"
        ) from None
    return builder(num_classes, in_channels=in_channels, **kwargs)
