"""Several processes, GPUs or machines: torch.distributed + DistributedDataParallel under torchrun.

One concept per module: :mod:`.context` (rank, world size, device, init, barrier),
:mod:`.sampler` (which items each rank takes at each optimizer step), :mod:`.gather` (collecting
per-rank results in one order), :mod:`.ddp` (the model wrapped for gradient all-reduce) and
:mod:`.predict` (splitting prediction inputs over ranks).

A one-process run never touches :mod:`torch.distributed`: every function here answers for a
world of one without it.
"""
from .context import (barrier, device_for, init_from_env, is_distributed, is_main, launched, local_rank,
                      on_main, rank, shutdown, world_size)
from .ddp import DDP_OPTIONS, Replica
from .gather import all_gather_objects, average_buffers, gather_indexed, sum_over_ranks
from .predict import expand_inputs, shard_inputs
from .sampler import Step, shard_positions, step_plan

__all__ = [
    "launched", "init_from_env", "shutdown", "is_distributed", "rank", "world_size", "local_rank",
    "is_main", "barrier", "device_for", "on_main",
    "Step", "step_plan", "shard_positions",
    "all_gather_objects", "gather_indexed", "sum_over_ranks", "average_buffers",
    "Replica", "DDP_OPTIONS",
    "shard_inputs", "expand_inputs",
]
