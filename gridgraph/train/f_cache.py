"""f's outputs for every section, computed once while f is frozen (stage g of two-stage)."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Optional, Sequence

import torch
from tqdm.auto import tqdm

from .. import distributed as dist
from ..inference import f_outputs
from ..patches import SectionTensors

__all__ = ["FOutputCache"]


class FOutputCache:
    """Context manager holding ``(f_probs, g_in)`` per section, in memory or on disk.

    Args:
        model: the :class:`~gridgraph.model.GridGraphNet` whose (frozen) f is run once per section.
        sections: the prepared sections.
        cache_dir: ``None`` keeps the outputs in memory; a folder keeps them in a private
            temporary subfolder of it, removed on exit.
        amp: bf16 autocast on CUDA.
        progress: show a progress bar.

    ``cache[k]`` is section ``k``'s ``(f_probs (N, K) CPU, g_in (N, C) on the model's device)``.

    Distributed: each rank runs f on its share of the sections
    (:func:`~gridgraph.distributed.shard_positions`) and the outputs are gathered, so every rank
    holds all of them (ranks train on different sections each epoch) after one pass of f per
    section in the whole job.
    """

    def __init__(self, model, sections: Sequence[SectionTensors], cache_dir: Optional[str] = None,
                 amp: bool = False, progress: bool = False):
        self.model, self.sections = model, list(sections)
        self.cache_dir, self.amp, self.progress = cache_dir, amp, progress
        self._items: list = []
        self._folder: Optional[Path] = None

    def __enter__(self) -> "FOutputCache":
        if self.cache_dir:
            Path(self.cache_dir).mkdir(parents=True, exist_ok=True)
            self._folder = Path(tempfile.mkdtemp(prefix="f-outputs-", dir=self.cache_dir))
        try:
            world = dist.world_size()
            mine = dist.shard_positions(len(self.sections), dist.rank(), world)
            local = {}
            for k in tqdm(mine, desc="cache f", leave=False, disable=not self.progress):
                item = f_outputs(self.model, self.sections[k], self.amp)
                # one process: stored at once (on disk, g_in leaves the device section by section)
                local[k] = item if world > 1 else self._store(k, item)
            if world > 1:
                local = dict(enumerate(self._store(k, item) for k, item in
                                       enumerate(dist.gather_indexed(local, len(self.sections)))))
            self._items = [local[k] for k in range(len(self.sections))]
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _store(self, k: int, item: tuple) -> tuple:
        """Section ``k``'s ``(f_prob, g_in)`` as held: g_in on the model's device (gathered
        outputs arrive on the CPU) or, with a cache folder, the path of its file."""
        f_prob, g_in = item
        if self._folder is None:
            return f_prob, g_in.to(next(self.model.parameters()).device)
        path = self._folder / f"{k:05d}.pt"
        torch.save(g_in.cpu(), path)
        return f_prob, path

    def __exit__(self, *exc) -> None:
        self._items = []
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, k: int):
        f_prob, g_in = self._items[k]
        if isinstance(g_in, Path):
            g_in = torch.load(g_in, map_location=next(self.model.parameters()).device, weights_only=True)
        return f_prob, g_in
