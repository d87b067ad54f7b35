"""f over per-node feature vectors (precomputed embeddings, gene expression) and fusions of
several modalities; each follows :class:`~gridgraph.encoders.Encoder`.

Inputs are a :class:`~gridgraph.patches.NodeInputs` (or, for a single-modality f, the
``(B, D_in)`` tensor itself).
"""
from __future__ import annotations

from typing import Callable, Dict, Mapping, Optional, Sequence

import torch
from torch import Tensor, nn

from ..patches.node_inputs import IMAGE, NodeInputs
from .inputs import EMBEDDING, EXPRESSION, encoder_metadata

__all__ = ["FeatureMLP", "FusionEncoder", "feature_mlp", "precomputed", "expression", "fusion"]


#: A fusion branch's encoder when it names none (by the kind its key names; else ``precomputed``).
DEFAULT_BRANCH = {IMAGE: "gridnet_simple", EXPRESSION: "expression", EMBEDDING: "precomputed"}


def _part(x, modality: str) -> Tensor:
    return x[modality] if isinstance(x, NodeInputs) else x


class FeatureMLP(nn.Module):
    """An MLP over one modality's ``(B, in_features)`` float vectors: ``hidden`` layers of
    Linear + LayerNorm + GELU + Dropout give the ``(B, embedding_dim)`` embedding, a linear
    ``classifier`` the ``(B, K)`` logits. ``hidden=()`` makes the embedding the input itself
    (a linear probe on the features).

    ``in_features=-1`` (with ``hidden`` layers) infers the width from the first input, as
    :class:`torch.nn.LazyLinear` does: run one batch (or load a state dict) before making an
    optimizer. The workflows always give the width, from the node-feature state.
    """

    def __init__(self, num_classes: int, in_features: int, modality: str = "embedding",
                 hidden: Sequence[int] = (128,), dropout: float = 0.1):
        super().__init__()
        lazy = int(in_features) == -1
        if int(in_features) < 1 and not lazy:
            raise ValueError(f"{modality} f needs in_features >= 1, got {in_features}")
        if lazy and not len(hidden):
            raise ValueError(f"{modality} f: in_features=-1 (inferred) needs hidden layers; with hidden=() "
                             "the embedding is the input, whose width must be given")
        layers, width = [], int(in_features)
        for h in hidden:
            first = nn.LazyLinear(int(h)) if width == -1 else nn.Linear(width, int(h))
            layers += [first, nn.LayerNorm(int(h)), nn.GELU(), nn.Dropout(dropout)]
            width = int(h)
        self.modality, self._width = modality, int(in_features)
        self.body = nn.Sequential(*layers)
        self.embedding_dim, self.num_classes = width, int(num_classes)
        self.classifier = nn.Linear(width, self.num_classes)

    @property
    def in_features(self) -> int:
        """The input width (``-1`` while an inferred one is not yet known)."""
        if self._width == -1:
            weight = self.body[0].weight
            return -1 if isinstance(weight, nn.parameter.UninitializedParameter) else int(weight.shape[1])
        return self._width

    def embed(self, x) -> Tensor:
        x = _part(x, self.modality).float()
        width = self.in_features
        if x.dim() != 2 or (width != -1 and x.shape[1] != width):
            raise ValueError(f"{self.modality} f expects (B, {width if width != -1 else 'D'}) features, "
                             f"got {tuple(x.shape)}")
        return self.body(x)

    def forward(self, x) -> Tensor:
        return self.classifier(self.embed(x))

    def extra_repr(self) -> str:
        return f"modality={self.modality!r}, in_features={self.in_features}"


class FusionEncoder(nn.Module):
    """f over several modalities: each branch (an :class:`~gridgraph.encoders.Encoder` reading
    its own modality of the :class:`~gridgraph.patches.NodeInputs`) gives an embedding; they are
    concatenated (``(B, sum D_m)``) and one linear ``classifier`` gives the logits.

    ``modality_dropout``: during training, each branch's embedding of each node is zeroed with
    this probability (never all branches of a node), so f learns to use every modality alone.
    """

    def __init__(self, num_classes: int, branches: Mapping[str, nn.Module], modality_dropout: float = 0.0):
        super().__init__()
        if len(branches) < 2:
            raise ValueError(f"a fusion f needs at least two branches, got {list(branches)}")
        if not 0.0 <= modality_dropout < 1.0:
            raise ValueError(f"modality_dropout must lie in [0, 1), got {modality_dropout}")
        self.branches = nn.ModuleDict(dict(branches))
        self.modality_dropout = float(modality_dropout)
        self.embedding_dim = sum(int(b.embedding_dim) for b in self.branches.values())
        self.num_classes = int(num_classes)
        self.classifier = nn.Linear(self.embedding_dim, self.num_classes)

    @property
    def modalities(self) -> list:
        return list(self.branches)

    @property
    def input_mean(self):
        """The image branch's own normalisation, where it states one (timm/torchvision backbones)."""
        return getattr(self.branches[IMAGE], "input_mean", None) if IMAGE in self.branches else None

    @property
    def input_std(self):
        return getattr(self.branches[IMAGE], "input_std", None) if IMAGE in self.branches else None

    def embed(self, x: NodeInputs) -> Tensor:
        parts = [branch.embed(x[name]) for name, branch in self.branches.items()]
        if self.training and self.modality_dropout > 0:
            keep = torch.rand(parts[0].shape[0], len(parts), device=parts[0].device) >= self.modality_dropout
            lost = ~keep.any(1)  # every node keeps at least one modality, drawn at random
            keep[lost, torch.randint(len(parts), (int(lost.sum()),), device=keep.device)] = True
            parts = [p * keep[:, k: k + 1].to(p.dtype) for k, p in enumerate(parts)]
        return torch.cat(parts, dim=1)

    def forward(self, x: NodeInputs) -> Tensor:
        return self.classifier(self.embed(x))

    def extra_repr(self) -> str:
        return f"modalities={self.modalities}, modality_dropout={self.modality_dropout}"


def feature_mlp(num_classes: int, in_features: int, modality: str = "embedding", hidden: Sequence[int] = (128,),
                dropout: float = 0.1) -> FeatureMLP:
    """f over one modality's ``(B, in_features)`` feature vectors (see :class:`FeatureMLP`;
    ``in_features=-1`` infers the width from the first input), for use in Python; configs name
    ``precomputed`` or ``expression``, which say where the data is."""
    return FeatureMLP(num_classes, in_features, modality=modality, hidden=hidden, dropout=dropout)


def precomputed(num_classes: int, path: str, key: Optional[str] = None, in_features: int = 0,
                hidden: Sequence[int] = (128,), dropout: float = 0.1, id_format: Optional[str] = None) -> FeatureMLP:
    """f over per-node embeddings computed elsewhere (modality ``"embedding"``).

    ``path`` (``{section}`` stands for the section id) and ``key`` say where the data side reads
    them (:func:`~gridgraph.io.features.read_node_features`: ``.npy``, ``.npz``, parquet/CSV with
    an id column, or an ``.h5ad`` ``obsm`` key), matched to node ids (the barcodes, or
    ``id_format``, see :func:`~gridgraph.features.node_ids`); ``in_features`` is filled from the
    data. ``hidden=()`` trains a linear head on the embeddings.
    """
    return FeatureMLP(num_classes, in_features, modality="embedding", hidden=hidden, dropout=dropout)


def expression(num_classes: int, counts: Optional[str] = None, id_format: Optional[str] = None, in_features: int = 0,
               n_top_genes: int = 2000, genes: Optional[Sequence[str]] = None, target_sum: float = 1e4,
               hidden: Sequence[int] = (256,), dropout: float = 0.2) -> FeatureMLP:
    """f over each spot's gene expression (modality ``"expression"``), read from ``counts`` (a
    counts table, 10x ``.h5``, Matrix Market folder or ``.h5ad``; ``{section}`` stands for the
    section id; see :func:`~gridgraph.io.readers.features.read_counts`): counts normalised to
    ``target_sum`` per spot and ``log1p``'d, on ``genes`` or the ``n_top_genes`` most variable
    genes of the training sections (see :mod:`gridgraph.features.expression`); ``in_features``
    is the number of genes kept, filled from the data."""
    return FeatureMLP(num_classes, in_features, modality="expression", hidden=hidden, dropout=dropout)


def fusion(num_classes: int, branches: Mapping[str, Mapping], modality_dropout: float = 0.0,
           build: Optional[Callable[..., nn.Module]] = None,
           in_features: Optional[Dict[str, int]] = None) -> FusionEncoder:
    """A :class:`FusionEncoder` from ``branches``: modality -> ``{name, kwargs}`` of an encoder
    in :data:`~gridgraph.encoders.ENCODERS` (``"image"`` -> an image encoder such as
    ``gridnet_simple``; ``"expression"``/``"embedding"`` -> ``expression``/``precomputed``, the
    defaults of a branch naming none, see :data:`DEFAULT_BRANCH`). ``in_features`` (modality ->
    width) fills the width argument of the branches reading feature vectors, and a branch whose
    encoder names its part (``feature_mlp``'s ``modality``) reads its key's. ``build`` is the
    registry's builder (given by :func:`~gridgraph.encoders.build_encoder`)."""
    if build is None:
        from .registry import build_encoder as build
    built = {}
    for modality, spec in branches.items():
        spec = dict(spec)
        kwargs = dict(spec.get("kwargs") or {})
        name = spec.get("name") or DEFAULT_BRANCH.get(modality, DEFAULT_BRANCH[EMBEDDING])
        meta = encoder_metadata(name)
        if meta["reads"] in (EMBEDDING, EXPRESSION):
            if meta["modality"]:
                kwargs.setdefault(meta["modality"], modality)
            if in_features and modality in in_features and meta["width"]:
                kwargs[meta["width"]] = in_features[modality]
        built[modality] = build(name, num_classes, **kwargs)
    return FusionEncoder(num_classes, built, modality_dropout=modality_dropout)
