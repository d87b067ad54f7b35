"""What a gridgraph patch encoder f offers, and f's embedding for modules that do not offer it.

Counting f's passes: :func:`logits_and_embedding` calls ``f.embed`` and ``f.classifier`` of an
:class:`Encoder`, not ``f.forward``, so a forward hook on ``f`` itself sees only the passes made
through ``f(x)`` (``g_input`` ``"softmax"`` or ``"logits"``). A forward hook on ``f.classifier``
sees every pass of f, by either path and whatever ``g_input`` (checkpoint recomputations during
backward stop before the classifier, so they are not counted).
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

__all__ = ["Encoder", "logits_and_embedding"]


@runtime_checkable
class Encoder(Protocol):
    """A gridgraph patch encoder f.

    - ``embed(x)``: ``(B, 3, P, P)`` float -> ``(B, embedding_dim)`` embedding;
    - ``classifier``: module, ``(B, embedding_dim)`` -> ``(B, num_classes)`` logits;
    - ``embedding_dim`` (D) and ``num_classes`` (K): ints;
    - ``f(x)`` equals ``classifier(embed(x))``.

    Every encoder in :data:`~gridgraph.encoders.ENCODERS` is one (``isinstance(f, Encoder)``
    checks the members' presence only).
    """

    embedding_dim: int
    num_classes: int
    classifier: nn.Module

    def embed(self, x: Tensor) -> Tensor: ...


def _hooked(f: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """A foreign module: run ``f(x)`` and read the input of its ``classifier`` submodule."""
    seen = []
    handle = f.classifier.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    try:
        logits = f(x)
    finally:
        handle.remove()
    if not seen:
        raise RuntimeError("f's forward did not call f.classifier")
    return logits, torch.flatten(seen[-1], 1)


def logits_and_embedding(f: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """f's logits ``(B, K)`` and embedding ``(B, D)`` from one pass over ``x`` ``(B, 3, P, P)``.

    An :class:`Encoder` runs ``f.embed`` then ``f.classifier`` (``f.forward`` is not called).
    Any other module with a ``classifier`` submodule (most torchvision classifiers) runs its own
    forward, and the embedding is the classifier's input, read by a forward hook and flattened
    to ``(B, D)``. Both paths give the same numbers for an :class:`Encoder`.
    """
    if isinstance(f, Encoder):
        emb = f.embed(x)
        return f.classifier(emb), emb
    return _hooked(f, x)
