"""This process's place in a torchrun job: rank, world size, device; init, barrier, shutdown.

``torchrun`` describes the job in environment variables (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``); :func:`init_from_env` joins it with the NCCL
backend when this rank trains on a GPU and gloo on the CPU. Without those variables (or with
``WORLD_SIZE=1``) nothing is initialised and every function answers for a world of one, so a
one-process run never needs :mod:`torch.distributed`.
"""
from __future__ import annotations

import datetime
import os
from typing import Callable, Optional, TypeVar

import torch

__all__ = ["launched", "init_from_env", "shutdown", "is_distributed", "rank", "world_size", "local_rank",
           "is_main", "barrier", "device_for", "on_main"]

T = TypeVar("T")
_REQUIRED_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def _dist():
    import torch.distributed as dist

    return dist


def launched() -> bool:
    """Whether the environment describes a job of more than one process (``WORLD_SIZE > 1``)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        raise ValueError(f"environment variable WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number") from None


def is_distributed() -> bool:
    """Whether a process group of more than one rank is initialised."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return False
    return torch.distributed.get_world_size() > 1


def rank() -> int:
    return torch.distributed.get_rank() if is_distributed() else 0


def world_size() -> int:
    return torch.distributed.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    """This rank's index on its machine (torchrun's ``LOCAL_RANK``; 0 in a one-process run)."""
    return int(os.environ.get("LOCAL_RANK", "0")) if is_distributed() else 0


def is_main() -> bool:
    """Rank 0: the one process that writes checkpoints, logs, figures and progress bars."""
    return rank() == 0


def barrier() -> None:
    """Wait for every rank (a no-op in a one-process run)."""
    if is_distributed():
        dist = _dist()
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def device_for(name: str = "auto", setting: str = "train.device") -> torch.device:
    """The device this rank computes on for a device setting (``train.device``, ``--device``).

    ``auto``: a GPU when there is one, else the CPU. Under torchrun a CUDA setting (``cuda`` or
    ``cuda:N``) becomes ``cuda:LOCAL_RANK``: one GPU per process, as torchrun starts one process
    per GPU. A CUDA setting without CUDA, or a GPU index this machine lacks, is a
    :class:`ValueError` naming ``setting``.
    """
    asked = str(name)
    if asked == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"{setting} {asked}: expected auto, cpu, cuda or cuda:N") from None
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise ValueError(f"{setting} {asked}: no CUDA device is available")
    count = torch.cuda.device_count()
    if launched():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= count:
            raise ValueError(f"LOCAL_RANK={local} but this machine has {count} GPU(s); start at most one "
                             f"process per GPU (torchrun --nproc_per_node) or compute on the CPU ({setting} cpu)")
        return torch.device("cuda", local)
    if device.index is not None and device.index >= count:
        raise ValueError(f"{setting} {asked}: this machine has {count} CUDA device(s) (cuda:0 .. cuda:{count - 1})")
    return device


def init_from_env(device: str = "auto", timeout_s: float = 1800.0) -> bool:
    """Join the torchrun job the environment describes; returns whether this call initialised it.

    A no-op (``False``) without ``WORLD_SIZE > 1`` or when a process group already exists (e.g.
    one set up by a test). The backend is NCCL when :func:`device_for` ``(device)`` is a GPU,
    else gloo; on a GPU the current CUDA device is set to ``cuda:LOCAL_RANK``.
    """
    if not launched():
        return False
    if not torch.distributed.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    dist = _dist()
    if dist.is_initialized():
        return False
    missing = [k for k in _REQUIRED_ENV if k not in os.environ]
    if missing:
        raise ValueError(f"WORLD_SIZE > 1 but the environment lacks {', '.join(missing)}; "
                         "start several processes with torchrun (e.g. torchrun --standalone --nproc_per_node=2)")
    where = device_for(device)
    if where.type == "cuda":
        torch.cuda.set_device(where)
    dist.init_process_group(backend="nccl" if where.type == "cuda" else "gloo",
                            timeout=datetime.timedelta(seconds=timeout_s))
    return True


def shutdown(wait: bool = True) -> None:
    """Leave the process group (if any), after a last barrier (``wait``) so no rank exits while
    another still needs it; ``wait=False`` after an error, when other ranks may never arrive."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        if wait:
            barrier()
        torch.distributed.destroy_process_group()


def on_main(fn: Callable[[], T]) -> Optional[T]:
    """Run ``fn`` on rank 0 only; every rank returns its result or raises its error.

    Used for file-system work that only rank 0 may do (preparing the run folder): without it an
    error on rank 0 would leave the other ranks waiting forever at the next collective.
    """
    if not is_distributed():
        return fn()
    outcome = [None, None]
    if is_main():
        try:
            outcome = [fn(), None]
        except Exception as err:  # noqa: BLE001 - re-raised on every rank below
            outcome = [None, err]
    _dist().broadcast_object_list(outcome, src=0)
    if outcome[1] is not None:
        raise outcome[1]
    return outcome[0]
