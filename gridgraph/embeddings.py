"""A frozen image backbone's embeddings, computed once per section and kept on disk.

A linear probe (``f`` a timm/torchvision backbone with ``freeze: true``) trains only f's head
and g, so the backbone's output for a section's (unaugmented) patches never changes; dihedral
turns and colour jitter then do not reach the backbone. :func:`attach_backbone_embeddings`
computes it once, stores it in an :class:`~gridgraph.encoders.EmbeddingCache` keyed by the
section's patch bytes (which fix the slide, the node positions, the window and the colour
handling) and the backbone (its weights, input size and normalisation), and hands f a
:class:`~gridgraph.patches.NodeInputs` whose ``"backbone"`` part it reads instead of running
the backbone again. A second run over the same sections reads the file.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

import torch

from .encoders import encode
from .encoders.backbone import CACHED, BackboneEncoder
from .encoders.embedding_cache import EmbeddingCache
from .patches import IMAGE, NodeInputs, SectionTensors

__all__ = ["attach_backbone_embeddings", "uses_cached_embeddings"]


def uses_cached_embeddings(model) -> bool:
    """Whether ``model``'s f is a frozen image backbone (whose embeddings can be cached)."""
    return isinstance(model.f, BackboneEncoder) and model.f.frozen


def _image(st: SectionTensors) -> torch.Tensor:
    return st.patches[IMAGE] if isinstance(st.patches, NodeInputs) else st.patches


@torch.no_grad()
def attach_backbone_embeddings(model, sections: Sequence[SectionTensors], folder,
                               log: Callable[[str], None] = print) -> list:
    """``sections`` with f's frozen-backbone embeddings ``(N, D)`` attached as the ``"backbone"``
    part of their inputs (read from ``folder`` or computed and stored there); unchanged when f
    is not a frozen :class:`~gridgraph.encoders.BackboneEncoder`."""
    if not uses_cached_embeddings(model):
        return list(sections)
    f, cache = model.f, EmbeddingCache(folder)
    backbone = f.cache_parts()
    was_training = f.training
    f.eval()
    out = []
    try:
        for st in sections:
            image = _image(st)
            key = cache.key(patches=image, **backbone)
            emb = cache.get_or_compute(key, lambda: encode(f.embed, image, chunk_size=model.eval_chunk_size,
                                                           checkpoint=False, transform=model.transform))
            parts = dict(st.patches.parts) if isinstance(st.patches, NodeInputs) else {IMAGE: image}
            out.append(replace(st, patches=NodeInputs({**parts, CACHED: emb.float()})))
    finally:
        f.train(was_training)
    log(f"backbone embeddings: {cache.hits} read from {folder}, {cache.misses} computed")
    return out
