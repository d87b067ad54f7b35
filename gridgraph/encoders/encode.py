"""Chunked, checkpointed passes of a patch encoder f over all the node patches of a section.

This is the GridNet paper's memory-saving training step, written with PyTorch's non-reentrant
activation checkpointing instead of hand-written loops:

1. forward every chunk of ``chunk_size`` patches through f, keeping only its output
   (:func:`torch.utils.checkpoint.checkpoint` stores the chunk's input, not its activations);
2. concatenate the outputs (N, K) and run the corrector g on them;
3. backward through g, which yields the gradient of the loss with respect to f's outputs;
4. for each chunk, autograd recomputes its forward pass and backpropagates the chunk's slice of
   that gradient, accumulating into f's parameters;
5. one optimizer step.

Peak activation memory is that of one chunk (plus the (N, K) outputs), not of N patches, and the
gradients equal plain backpropagation up to float rounding.

Batch-norm: recomputation re-runs f in training mode, which would update the running statistics of
every batch-norm layer a second time. :func:`encode` snapshots those buffers before each
recomputation and restores them after it (through checkpoint's ``context_fn``), so they are
updated exactly once per chunk, as without checkpointing. Dropout draws the same masks in both
passes (``preserve_rng_state=True``). Note that with batch-norm in training mode, batch statistics
are per chunk, so results depend on ``chunk_size`` (not on ``checkpoint``).
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Optional, Sequence, Union

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint as _checkpoint

from ..patches.node_inputs import NodeInputs, num_inputs
from ..patches.transforms import normalize

__all__ = ["encode", "preserve_batchnorm_stats"]

Outputs = Union[Tensor, tuple]


def _module_of(f) -> Optional[nn.Module]:
    if isinstance(f, nn.Module):
        return f
    owner = getattr(f, "__self__", None)  # bound method such as model.embed
    return owner if isinstance(owner, nn.Module) else None


def _first_param(module: Optional[nn.Module]) -> Optional[Tensor]:
    if module is None:
        return None
    for t in module.parameters():
        return t
    for t in module.buffers():
        return t
    return None


@contextlib.contextmanager
def preserve_batchnorm_stats(module: Optional[nn.Module]) -> Iterator[None]:
    """Restore the running statistics of ``module``'s batch-norm layers on exit.

    Used around checkpoint recomputation so a re-run of f in training mode leaves
    ``running_mean``, ``running_var`` and ``num_batches_tracked`` as the first pass left them.
    """
    saved = []
    if module is not None:
        for m in module.modules():
            if isinstance(m, _BatchNorm) and m.training and m.track_running_stats:
                bufs = (m.running_mean, m.running_var, m.num_batches_tracked)
                saved.append((bufs, [b.clone() if b is not None else None for b in bufs]))
    try:
        yield
    finally:
        with torch.no_grad():
            for bufs, copies in saved:
                for b, c in zip(bufs, copies):
                    if b is not None:
                        b.copy_(c)


def _cat(outs: Sequence[Outputs]) -> Outputs:
    if isinstance(outs[0], Tensor):
        return torch.cat(outs)
    return type(outs[0])(torch.cat(parts) for parts in zip(*outs))


def encode(
    f: Callable[[Tensor], Outputs],
    patches: Tensor,
    chunk_size: Optional[int] = 32,
    checkpoint: bool = True,
    transform: Optional[Callable[[Tensor], Tensor]] = normalize,
    device: Optional[Union[torch.device, str]] = None,
) -> Outputs:
    """Run f over ``(N, 3, P, P)`` patches in chunks; return ``(N, K)`` (or a tuple of such).

    Args:
        f: an :class:`torch.nn.Module` (or a bound method of one, e.g. ``model.embed``, or a
            function returning a tuple of ``(B, ...)`` tensors) mapping ``(B, 3, P, P)`` float
            to ``(B, K)``.
        patches: ``(N, 3, P, P)`` node patches, uint8 (normalised here) or float, or a
            :class:`~gridgraph.patches.NodeInputs` of several modalities (``transform`` acts on
            its image part); on any device, each chunk is moved to f's device just before use.
        chunk_size: patches per chunk (default 32); ``None`` or ``<= 0`` runs all at once.
        checkpoint: when gradients are needed (grad mode on and f has trainable parameters --
            always assumed for a function that is not a module or one of its bound methods --
            or float patches that require grad), run each chunk under non-reentrant
            :func:`torch.utils.checkpoint.checkpoint` so activation memory is O(chunk).
            Ignored otherwise: without gradients no activations are kept anyway.
        transform: applied to each chunk on the device (default: ImageNet
            :func:`~gridgraph.patches.transforms.normalize`); ``None`` for no transform.
        device: where f runs; by default the device of f's first parameter (else of patches).

    Returns:
        The concatenation of f's outputs over the chunks, in the order of ``patches``.
    """
    if not isinstance(patches, NodeInputs) and patches.dim() < 2:
        raise ValueError(f"patches must have shape (N, C, P, P) or (N, D), got {tuple(patches.shape)}")
    module = _module_of(f)
    if device is None:
        p = _first_param(module)
        device = p.device if p is not None else patches.device
    n = num_inputs(patches)
    if n == 0:
        raise ValueError("encode() needs at least one patch")
    step = n if chunk_size is None or chunk_size <= 0 else int(chunk_size)

    def run(chunk: Tensor, *anchor: Tensor) -> Outputs:
        x = chunk.to(device, non_blocking=True)
        return f(transform(x) if transform is not None else x)

    # Chunks wait on the host and move to f's device inside the checkpointed function, so torch
    # would see no tensor on that device and save no RNG state of it: an empty tensor there
    # makes it stash the device's RNG, so dropout draws the same masks when recomputed.
    anchor = () if torch.device(device).type == "cpu" else (torch.empty(0, device=device),)

    # A bare function may close over parameters we cannot see: assume it is trainable.
    trainable = module is None or any(p.requires_grad for p in module.parameters())
    need_grad = torch.is_grad_enabled() and (trainable or patches.requires_grad)
    use_ckpt = checkpoint and need_grad

    def contexts():
        return contextlib.nullcontext(), preserve_batchnorm_stats(module)

    outs = []
    for start in range(0, n, step):
        chunk = patches[start : start + step]
        if use_ckpt:
            out = _checkpoint(
                run, chunk, *anchor, use_reentrant=False, preserve_rng_state=True, context_fn=contexts
            )
        else:
            out = run(chunk)
        outs.append(out)
    return outs[0] if len(outs) == 1 else _cat(outs)
