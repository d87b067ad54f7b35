"""GridGraphNet: a patch encoder f followed by a spatial corrector g on the section's graph."""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from .. import defaults
from ..correctors.ensemble import combine_members
from ..encoders import Encoder, FeatureMLP, encode, logits_and_embedding
from ..graph.spot_graph import SpotGraph
from ..graph.symmetry import lattice_symmetry, num_symmetries
from ..names import GInput, Layout, choices
from ..patches.node_inputs import IMAGE, NodeInputs, map_image, num_inputs
from ..patches.transforms import dihedral, normalize

__all__ = ["GridGraphNet", "GridGraphOutput"]


class GridGraphOutput(NamedTuple):
    """Both stages' node logits, each ``(N, K)``."""

    f_logits: Tensor
    g_logits: Tensor


class GridGraphNet(nn.Module):
    """GridNet generalised to graphs: ``g(h(f(patches)), graph)``.

    f classifies each node's patch on its own; g corrects the node predictions from their
    spatial neighbourhood. Only node patches go through f (one per node, in node order): grid
    cells without a spot never reach it, and dense correctors fill them with zeros afterwards.

    Args:
        f: patch encoder, ``(B, 3, P, P)`` float -> ``(B, K)`` logits. For
            ``g_input="features"`` f follows :class:`~gridgraph.encoders.Encoder` (``embed`` +
            ``classifier``, as every gridgraph encoder), or has a submodule ``f.classifier``
            mapping the embedding ``(B, D)`` to the logits (most torchvision classifiers), whose
            input is then read by a forward hook. Counting f's passes: an Encoder's features
            come from ``f.embed`` + ``f.classifier`` without calling ``f.forward``, so hooks on
            ``f`` itself see no pass with ``g_input="features"``; a forward hook on
            ``f.classifier`` sees every pass of f (once per chunk) whatever ``g_input``.
            Checkpoint recomputations during backward stop once f's saved activations are
            rebuilt, before the classifier, so neither hook counts them.
        g: corrector, ``(N, C)`` node features + :class:`~gridgraph.graph.SpotGraph` ->
            ``(N, K)`` node logits (see :mod:`gridgraph.correctors`).
        g_input: what g sees: ``"softmax"`` (default, f's class probabilities, as the paper),
            ``"logits"`` (f's logits) or ``"features"`` (f's embedding, width D).
        chunk_size: patches per pass of f (default 32; ``None`` for all at once).
        checkpoint: checkpoint each chunk when training, so f's activation memory is O(chunk)
            (default ``True``); see :func:`~gridgraph.encoders.encode`.
        transform: per-chunk patch transform on f's device (default ImageNet normalisation).
        eval_chunk_size: patches per pass of f when gradients are off (inference, caching f's
            outputs): default 256 patches of up to 64 px, proportionally fewer of larger ones
            (the same pixels per pass), since then only one chunk's activations exist at a time.
        g_residual: g predicts a correction added to f's log-probabilities (``False``, the
            paper's g, predicts the logits outright). The correction is computed from g's input
            alone, so it works with cached f outputs.

        f_tta: without gradients (validation, prediction, f's cached outputs), f's output is the
            mean over the 8 flips and quarter turns of each patch: its probabilities averaged
            (logits: their log; ``g_input="logits"`` hands g these log-probabilities), or for
            ``g_input="features"`` its embedding averaged and classified. 8 passes of f; inputs
            without an image part and training passes are unchanged.
        g_tta: without gradients, g's output on a single grid-layout section is the mean
            probability over the lattice's symmetries (12 on hex, 8 on square grids: the section
            turned and mirrored, nodes in the same order); for a g trained on sections seen under
            random symmetries (``train.augment_sections``). Irregular graphs are unchanged.

        regression: f and g output one value per target (e.g. per gene: expression) instead of
            class logits: a residual g corrects f's values (``g_input="logits"``) or f's head on
            its embedding (``"features"``), and ensembles and test-time augmentation average the
            values themselves. The "logits" and "probabilities" below are then these values.

    g may be a :class:`~gridgraph.correctors.CorrectorEnsemble` (``(M, N, K)`` member logits):
    :meth:`g_member_logits` gives each member's logits (trained with the sum of their losses),
    :meth:`g_outputs` their combination (the mean of their probabilities).

    The boolean buffer ``use_g`` (``True``) is saved with the weights: when training finds f alone
    better than f + g on validation it keeps g switched off, and "f + g" outputs are f's own
    log-probabilities (checkpoints written before this buffer load with ``use_g = True``).

    Inputs of :meth:`forward`: ``patches`` ``(N, 3, P, P)`` uint8 (or float), one per node of
    ``graph`` (a single section or a :func:`~gridgraph.graph.collate` d batch, patches
    concatenated in the same order). Output: g's node logits ``(N, K)``.

    The halves are also available alone: :meth:`f_outputs` (f's logits and g's input),
    :meth:`g_outputs` (g on a given input, e.g. cached for two-stage training) and
    :meth:`forward_f` (f's logits only).
    """

    def __init__(
        self,
        f: nn.Module,
        g: nn.Module,
        g_input: str = defaults.G_INPUT,
        chunk_size: Optional[int] = defaults.CHUNK_SIZE,
        checkpoint: bool = True,
        transform: Optional[Callable[[Tensor], Tensor]] = normalize,
        eval_chunk_size: Optional[int] = defaults.EVAL_CHUNK_SIZE,
        g_residual: bool = defaults.G_RESIDUAL,
        f_tta: bool = False,
        g_tta: bool = False,
        regression: bool = False,
    ):
        super().__init__()
        if g_input not in GInput.values():
            raise ValueError(f"g_input must be {choices(GInput)}, got {g_input!r}")
        g_input = GInput(g_input).value  # stored as a plain string
        if regression and g_input == GInput.SOFTMAX:
            raise ValueError("regression: g reads f's predicted values (g_input='logits') or its embedding "
                             "('features'), not a softmax of them")
        width = self._f_width(f, g_input)
        g_in = getattr(g, "in_channels", None)
        if width is not None and g_in is not None and int(width) != int(g_in):
            raise ValueError(
                f"g takes {g_in} input channels but f gives {width} with g_input={g_input!r}"
            )
        self.f = f
        self.g = g
        self.g_input = g_input
        self.chunk_size = chunk_size
        self.checkpoint = checkpoint
        self.transform = transform
        self.eval_chunk_size = eval_chunk_size
        self.g_residual = bool(g_residual)
        self.f_tta = bool(f_tta)
        self.g_tta = bool(g_tta)
        self.regression = bool(regression)
        self.register_buffer("use_g", torch.tensor(True))
        self.register_load_state_dict_pre_hook(_default_use_g)

    @staticmethod
    def _f_width(f: nn.Module, g_input: str) -> Optional[int]:
        """Width of what g reads of f (``None`` when f does not say)."""
        if g_input != GInput.FEATURES:
            return getattr(f, "num_classes", None)
        if isinstance(f, Encoder):
            return f.embedding_dim
        if not isinstance(getattr(f, "classifier", None), nn.Module):
            raise ValueError(
                "g_input='features' needs an f following gridgraph.encoders.Encoder (embed + "
                "classifier, e.g. gridnet_simple or densenet121) or with a submodule f.classifier "
                "that maps its embedding to the logits"
            )
        return getattr(f.classifier, "in_features", None)

    def _encode(self, fn, patches: Tensor, device=None, transform=None):
        # Without gradients no activations are kept, so larger chunks only cost transient memory;
        # large patches get proportionally fewer per chunk (the budget of 256 patches of 64 px).
        size = self.chunk_size
        if isinstance(patches, NodeInputs):
            image = patches[IMAGE] if IMAGE in patches else None
        else:
            image = patches
        if not torch.is_grad_enabled() and self.eval_chunk_size:
            pixels = image.shape[-1] * image.shape[-2] if image is not None and image.dim() == 4 else 1
            size = max(1, min(self.eval_chunk_size, self.eval_chunk_size * 64 * 64 // max(pixels, 1)))
        return encode(fn, patches, size, self.checkpoint, transform or self.transform, device)

    def _tta(self, patches) -> bool:
        if isinstance(patches, NodeInputs) and IMAGE not in patches:
            return False  # feature vectors only (e.g. cached embeddings): nothing to turn
        return self.f_tta and not torch.is_grad_enabled() and not isinstance(self.f, FeatureMLP)

    def _turned(self, k: int) -> Callable:
        """The patch transform of dihedral view ``k`` (0..7): turns, then f's own transform."""
        base = self.transform

        def transform(x):
            x = map_image(x, lambda p: dihedral(p, k % 4, k >= 4))
            return base(x) if base is not None else x

        return transform

    def _logits_and_embedding(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """One pass of f on a chunk: its logits and its embedding (see
        :func:`~gridgraph.encoders.logits_and_embedding`). A bound method of this module, so
        :func:`~gridgraph.encoders.encode` finds f's device and batch-norm layers through it."""
        return logits_and_embedding(self.f, x)

    def forward_f(self, patches: Tensor) -> Tensor:
        """f's logits alone, ``(N, 3, P, P)`` -> ``(N, K)`` (f-only evaluation or training)."""
        if self._tta(patches):
            return self.f_outputs(patches)[0]
        return self._encode(self.f, patches)

    def forward(
        self, patches: Tensor, graph: SpotGraph, return_f: bool = False
    ) -> Union[Tensor, GridGraphOutput]:
        """g's node logits ``(N, K)``; with ``return_f`` a :class:`GridGraphOutput` of both."""
        if num_inputs(patches) != graph.num_nodes:
            raise ValueError(
                f"got {num_inputs(patches)} patches for {graph.num_nodes} nodes: f takes exactly "
                "one patch per node, in node order (no background cells)"
            )
        f_logits, x = self.f_outputs(patches)
        g_logits = self.g_outputs(x, graph)
        return GridGraphOutput(f_logits, g_logits) if return_f else g_logits

    def f_outputs(self, patches: Tensor) -> Tuple[Tensor, Tensor]:
        """f's logits ``(N, K)`` and g's input (``(N, K)`` or ``(N, D)`` per ``g_input``).

        Chunked and checkpointed like :meth:`forward`.
        """
        if self._tta(patches):
            return self._f_outputs_tta(patches)
        if self.g_input == GInput.FEATURES:
            device = next(self.f.parameters()).device
            return self._encode(self._logits_and_embedding, patches, device)
        f_logits = self._encode(self.f, patches)
        return f_logits, f_logits.softmax(-1) if self.g_input == GInput.SOFTMAX else f_logits

    def _f_outputs_tta(self, patches: Tensor) -> Tuple[Tensor, Tensor]:
        """:meth:`f_outputs` averaged over the 8 dihedral views of every patch."""
        device = next(self.f.parameters()).device
        if self.g_input == GInput.FEATURES:  # the mean embedding, and f's logits of it
            embedding = sum(self._encode(self._logits_and_embedding, patches, device, self._turned(k))[1]
                            for k in range(8)) / 8
            return self._f_term(embedding), embedding
        f_logits = self._combine(torch.stack([self._encode(self.f, patches, transform=self._turned(k))
                                              for k in range(8)]))
        return f_logits, f_logits.softmax(-1) if self.g_input == GInput.SOFTMAX else f_logits

    def g_outputs(self, g_in: Tensor, graph: SpotGraph) -> Tensor:
        """g's node logits ``(N, K)`` from g's input (e.g. f's cached outputs in two-stage
        training); an ensemble's members combined by :func:`~gridgraph.correctors.combine_members`."""
        if self.g_tta and not torch.is_grad_enabled() and bool(self.use_g) and graph.batch is None \
                and graph.layout != Layout.IRREGULAR:
            views = [self._g_once(g_in, lattice_symmetry(graph, k // 2, flip=bool(k % 2)))
                     for k in range(num_symmetries(graph.layout))]
            return self._combine(torch.stack(views))
        return self._g_once(g_in, graph)

    def _combine(self, members: Tensor) -> Tensor:
        """``(M, N, K)`` -> ``(N, K)``: the mean probability's logits, or for regression the mean value."""
        return members.float().mean(0) if self.regression else combine_members(members)

    def _g_once(self, g_in: Tensor, graph: SpotGraph) -> Tensor:
        out = self.g_member_logits(g_in, graph)
        return out[0] if out.shape[0] == 1 else self._combine(out)

    def g_member_logits(self, g_in: Tensor, graph: SpotGraph) -> Tensor:
        """``(M, N, K)``: the logits of each of g's ``M`` members (``M = 1`` for a single g);
        with ``use_g`` off, f's log-probabilities (or logits) once."""
        if not bool(self.use_g):
            return self._f_term(g_in)[None]
        out = self.g(g_in, graph)
        if out.dim() == 2:
            out = out[None]
        return out + self._f_term(g_in)[None] if self.g_residual else out

    def _f_term(self, g_in: Tensor) -> Tensor:
        """What g's input says of f's prediction, as logits (the base a residual g corrects)."""
        if self.g_input == GInput.SOFTMAX:
            return torch.log(g_in.clamp_min(1e-8))
        if self.g_input == GInput.LOGITS:
            return g_in
        return self.f.classifier(g_in)

    def freeze_f(self, frozen: bool = True) -> "GridGraphNet":
        """Stop (or restart) training f: toggles ``requires_grad`` of f's parameters.

        With f frozen, its passes keep no activations at all (two-stage training of g).
        """
        self.f.requires_grad_(not frozen)
        return self

    def extra_repr(self) -> str:
        return (
            f"g_input={self.g_input!r}, g_residual={self.g_residual}, f_tta={self.f_tta}, "
            f"g_tta={self.g_tta}, chunk_size={self.chunk_size}, checkpoint={self.checkpoint}"
            + (", regression=True" if self.regression else "")
        )


def _default_use_g(module, state_dict, prefix, *args) -> None:
    """Checkpoints from before ``use_g`` existed used g: load them with ``use_g = True``."""
    state_dict.setdefault(prefix + "use_g", torch.tensor(True))
