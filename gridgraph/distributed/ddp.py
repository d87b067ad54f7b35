"""The model as the training loops call it: through DistributedDataParallel when several ranks
train, directly otherwise.

The loops do not call ``model(...)`` but model methods (``f_outputs``, ``g_outputs``,
:func:`~gridgraph.encoders.encode` over ``model.f``). DDP only all-reduces gradients of work that
went through its ``forward``, so :class:`Replica` wraps the model in a one-line module whose
``forward(fn)`` returns ``fn(model)``: any method call becomes a DDP forward.

Settings (:data:`DDP_OPTIONS`) and why:

* ``find_unused_parameters=False``: the trainer freezes what a stage does not train (g in stage
  f, f in stage g) *before* wrapping, so every parameter DDP sees gets a gradient in every
  backward; searching the graph for unused ones would cost a traversal per step for nothing.
* ``static_graph=False``: f runs over a section in a varying number of chunks, each under
  *non-reentrant* activation checkpointing (:mod:`gridgraph.encoders.encode`). Non-reentrant
  checkpointing recomputes inside the one backward and accumulates every chunk's contribution
  into the same ``AccumulateGrad`` node, so each parameter's DDP hook fires once per backward as
  DDP expects -- no static-graph assumption is needed (it is for reentrant checkpointing, which
  runs a nested backward per chunk and which gridgraph does not use).
* ``broadcast_buffers=False``: with gradient accumulation a step has several forwards; DDP's
  default would overwrite every rank's batch-norm statistics with rank 0's before each one.
  Instead each rank updates its own and :func:`~gridgraph.distributed.gather.average_buffers`
  averages them at the end of each epoch. Batch-norm is never synchronised per chunk
  (SyncBatchNorm would deadlock: ranks run different numbers of chunks).
* ``gradient_as_bucket_view=True``: gradients live in DDP's communication buckets instead of a
  second copy (saves one model's worth of gradient memory).
* ``bucket_cap_mb=25`` (DDP's default): DenseNet-121's 7 M parameters (28 MB in fp32) fill about
  two buckets, so the all-reduce of the first overlaps the backward of the rest; smaller buckets
  only add launch overhead for the tiny GridNet f.
* ``device_ids=None``: a single-device module; inputs are moved by the loops themselves (a
  ``SpotGraph`` is not a tensor DDP could move).

Gradient accumulation: :meth:`Replica.accumulating` wraps every forward and backward of a step
but its last in ``no_sync()``, so gradients are all-reduced once per optimizer step.
"""
from __future__ import annotations

import contextlib
from typing import Callable, ContextManager, TypeVar

from torch import nn

from .context import is_distributed, rank, world_size

__all__ = ["Replica", "DDP_OPTIONS"]

T = TypeVar("T")

DDP_OPTIONS = dict(find_unused_parameters=False, static_graph=False, broadcast_buffers=False,
                   gradient_as_bucket_view=True, bucket_cap_mb=25)


def _options() -> dict:
    """:data:`DDP_OPTIONS` in this torch's words: newer releases name ``broadcast_buffers``
    ``forward_sync_buffers`` (buffers are still synchronised once, at construction)."""
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    options = dict(DDP_OPTIONS)
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters:
        options["forward_sync_buffers"] = options.pop("broadcast_buffers")
    return options


class _Call(nn.Module):
    """``forward(fn) = fn(model)``: any use of the model as one DDP forward."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, fn: Callable[[nn.Module], T]) -> T:
        return fn(self.model)


class Replica:
    """``model`` replicated over the ranks of the current process group (or alone).

    Create it after freezing what the stage does not train: DDP registers the parameters that
    require gradients at construction, and broadcasts rank 0's parameters and buffers so every
    rank starts the stage from the same weights.

    ``replica(fn)`` runs ``fn(model)`` (through DDP when distributed); ``rank`` / ``world``
    say where this process stands.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.rank, self.world = rank(), world_size()
        self.ddp = None
        if is_distributed() and any(p.requires_grad for p in model.parameters()):
            from torch.nn.parallel import DistributedDataParallel

            self.ddp = DistributedDataParallel(_Call(model), device_ids=None, **_options())

    def __call__(self, fn: Callable[[nn.Module], T]) -> T:
        return self.ddp(fn) if self.ddp is not None else fn(self.model)

    def accumulating(self, last: bool) -> ContextManager:
        """Around a forward + backward: ``no_sync()`` unless ``last`` (the step's final one)."""
        if self.ddp is None or last:
            return contextlib.nullcontext()
        return self.ddp.no_sync()
