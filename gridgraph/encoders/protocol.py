"""What a gridgraph patch encoder offers, and f's embedding for modules that do not offer it."""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

__all__ = ["Encoder", "embedding_and_logits"]


@runtime_checkable
class Encoder(Protocol):
    """A patch encoder f: ``embed(x)`` maps ``(B, 3, P, P)`` float to ``(B, embedding_dim)``,
    ``classifier`` maps that embedding to ``(B, num_classes)`` logits, and ``f(x)`` equals
    ``classifier(embed(x))``. Every encoder in :data:`~gridgraph.encoders.ENCODERS` is one."""

    embedding_dim: int
    num_classes: int
    classifier: nn.Module

    def embed(self, x: Tensor) -> Tensor: ...


def _hooked(f: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """A foreign module: run it and read the input of its ``classifier`` submodule."""
    seen = []
    handle = f.classifier.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    try:
        logits = f(x)
    finally:
        handle.remove()
    if not seen:
        raise RuntimeError("f's forward did not call f.classifier")
    return logits, torch.flatten(seen[-1], 1)


def embedding_and_logits(f: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """f's logits ``(B, K)`` and embedding ``(B, D)`` from one pass over ``x``.

    Encoders following :class:`Encoder` run ``embed`` then ``classifier``; any other module with a
    ``classifier`` submodule runs its own forward, and the embedding is read at the classifier's
    input by a forward hook.
    """
    if isinstance(f, Encoder):
        emb = f.embed(x)
        return f.classifier(emb), emb
    return _hooked(f, x)
