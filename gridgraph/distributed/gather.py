"""Collecting per-rank results: objects, indexed items in one global order, sums, buffers.

Each function is the identity (or a plain copy) in a one-process run and never calls
:mod:`torch.distributed` then.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from .context import is_distributed, world_size

__all__ = ["all_gather_objects", "gather_indexed", "sum_over_ranks", "average_buffers"]


def _cpu(obj: Any) -> Any:
    """Tensors moved to the CPU inside tuples, lists and dicts (pickled objects travel on the CPU)."""
    if torch.is_tensor(obj):
        return obj.detach().cpu()
    if isinstance(obj, tuple):
        return tuple(_cpu(o) for o in obj)
    if isinstance(obj, list):
        return [_cpu(o) for o in obj]
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    return obj


def all_gather_objects(obj: Any) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank; tensors inside come back on the CPU."""
    if not is_distributed():
        return [obj]
    out = [None] * world_size()
    torch.distributed.all_gather_object(out, _cpu(obj))
    return out


def gather_indexed(local: Mapping[int, Any], n: int) -> list:
    """Every rank's ``{position: item}`` merged into one list of ``n`` items, on every rank.

    Each position ``0 .. n-1`` must be given by exactly one rank (e.g. from
    :func:`~gridgraph.distributed.sampler.shard_positions`), so the result is in the same order
    as one process would produce it (pooled metrics then equal one process's bit for bit).
    """
    if not is_distributed():
        merged = dict(local)
    else:
        merged = {}
        for part in all_gather_objects(dict(local)):
            for k, v in part.items():
                if k in merged:
                    raise RuntimeError(f"position {k} was computed by two ranks")
                merged[k] = v
    missing = [k for k in range(n) if k not in merged]
    if missing or len(merged) != n:
        raise RuntimeError(f"gathered {len(merged)} of {n} items (missing positions {missing[:5]})")
    return [merged[k] for k in range(n)]


def sum_over_ranks(*values: float) -> tuple:
    """The sums of the scalars ``values`` over ranks (float64), e.g. loss totals and counts."""
    if not is_distributed():
        return tuple(float(v) for v in values)
    backend = torch.distributed.get_backend()
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return tuple(t.cpu().tolist())


@torch.no_grad()
def average_buffers(module: nn.Module) -> None:
    """Average the floating-point buffers of ``module`` (batch-norm running mean and variance)
    over ranks, and take rank 0's integer ones (``num_batches_tracked``), so that every rank
    validates and saves the same model. DDP runs with ``broadcast_buffers=False`` (see
    :mod:`.ddp`): each rank's statistics come from its own data until this is called at the end
    of each training epoch."""
    if not is_distributed():
        return
    world = world_size()
    for buf in module.buffers():
        if buf.is_floating_point():
            torch.distributed.all_reduce(buf)
            buf.div_(world)
        else:
            torch.distributed.broadcast(buf, src=0)
