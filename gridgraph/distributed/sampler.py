"""Which items each rank takes at each optimizer step, so that N ranks train as one process.

An epoch draws one global order of its items (sections, or labeled patches in stage f) from the
epoch's generator, identically on every rank. The order is cut into *steps* of
``per_rank * world`` consecutive items (the last step may be shorter) -- exactly the optimizer
steps one process takes with ``per_rank * world`` items per step. Each step is split into
``world`` contiguous, balanced parts; rank ``r`` takes part ``r``. Each item's loss is scaled by
``world / step.size`` so that DDP's gradient average over ranks is the mean over the step's
items, as in one process.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Step", "step_plan", "shard_positions"]


@dataclass(frozen=True)
class Step:
    """One optimizer step: ``index`` (0, 1, ...), ``start``/``size`` (its positions
    ``start .. start + size - 1`` in the epoch's order) and ``mine`` (this rank's part of them,
    possibly empty when ``size < world``)."""

    index: int
    start: int
    size: int
    mine: range

    @property
    def positions(self) -> range:
        return range(self.start, self.start + self.size)


def _part(n: int, rank: int, world: int) -> range:
    """Rank ``rank``'s contiguous part of ``range(n)`` split into ``world`` balanced parts."""
    return range(rank * n // world, (rank + 1) * n // world)


def step_plan(n: int, per_rank: int, rank: int = 0, world: int = 1) -> list:
    """The :class:`Step` s of an epoch of ``n`` items, ``per_rank * world`` per step.

    ``step_plan(5, 1, r, 2)`` -> steps of 2 positions ``[0, 1]``, ``[2, 3]``, ``[4]``; rank 0
    takes ``0``, ``2`` and nothing in the last step, rank 1 takes ``1``, ``3``, ``4``.
    """
    if per_rank < 1:
        raise ValueError(f"items per rank and step must be >= 1, got {per_rank}")
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is outside a world of {world}")
    size = per_rank * world
    steps = []
    for index, start in enumerate(range(0, n, size)):
        count = min(size, n - start)
        part = _part(count, rank, world)
        steps.append(Step(index, start, count, range(start + part.start, start + part.stop)))
    return steps


def shard_positions(n: int, rank: int = 0, world: int = 1) -> list:
    """Positions ``0 .. n-1`` of rank ``rank`` for work without steps (validation, f's cache,
    prediction): every ``world``-th one from ``rank``, so long and short items spread evenly."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is outside a world of {world}")
    return list(range(rank, n, world))
