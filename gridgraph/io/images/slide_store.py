"""The storage side of a whole-slide TIFF: a bounded cache of decoded tiles, and windows of one
pyramid level read as ``(h, w, k)`` arrays whatever the file's axis order.

tifffile's zarr store decodes a tile (JPEG, JPEG 2000, LZW, deflate, ... through imagecodecs)
each time zarr asks for it; :func:`cached_store` keeps the decoded tiles in a
:class:`TileCache` (least recently used out first, bounded in bytes), so the tiles shared by
neighbouring windows or read again for a figure are decoded once. :class:`PlaneReader` maps a
level's axes (``YXS`` contiguous RGB, ``SYX`` planar RGB, ``CYX`` OME channels, ...) to windows.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

__all__ = ["TileCache", "cached_store", "PlaneReader", "plane_axes", "usable_cores"]


def usable_cores(limit: int = 8) -> int:
    """The CPU cores this process may run on (its affinity mask), from 1 to ``limit``."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(int(limit), cores))


class TileCache:
    """Decoded tiles keyed by ``(level, zarr key)``, at most ``max_bytes`` in all (default 64 MiB;
    0 disables it). Thread-safe; ``hits`` and ``misses`` count lookups."""

    def __init__(self, max_bytes: int = 64 << 20):
        self.max_bytes = max(int(max_bytes), 0)
        self._tiles: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.nbytes = self.hits = self.misses = 0

    def get(self, key) -> Optional[bytes]:
        with self._lock:
            tile = self._tiles.get(key)
            if tile is None:
                self.misses += 1
                return None
            self._tiles.move_to_end(key)
            self.hits += 1
            return tile

    def put(self, key, tile: bytes) -> None:
        if len(tile) > self.max_bytes:
            return
        with self._lock:
            if key in self._tiles:
                return
            self._tiles[key] = tile
            self.nbytes += len(tile)
            while self.nbytes > self.max_bytes:
                _, old = self._tiles.popitem(last=False)
                self.nbytes -= len(old)

    def clear(self) -> None:
        with self._lock:
            self._tiles.clear()
            self.nbytes = 0


def _is_metadata(key: str) -> bool:
    return key.endswith(("zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata"))


_CACHED_STORE = None


def cached_store(store, cache: TileCache, tag):
    """``store`` (tifffile's zarr store, which returns decoded tiles) with its chunk reads going
    through ``cache`` under ``tag`` (e.g. the pyramid level). zarr is imported on first use."""
    global _CACHED_STORE
    if _CACHED_STORE is None:
        from zarr.storage import WrapperStore

        class CachedStore(WrapperStore):
            def __init__(self, inner, tiles: TileCache, key_tag):
                super().__init__(inner)
                self._cache, self._tag = tiles, key_tag

            def _with_store(self, inner):
                return type(self)(inner, self._cache, self._tag)

            async def get(self, key, prototype, byte_range=None):
                if byte_range is not None or _is_metadata(key) or not self._cache.max_bytes:
                    return await self._store.get(key, prototype, byte_range)
                tile = self._cache.get((self._tag, key))
                if tile is not None:
                    return prototype.buffer.from_bytes(tile)
                found = await self._store.get(key, prototype, byte_range)
                if found is not None:
                    self._cache.put((self._tag, key), found.to_bytes())
                return found

        _CACHED_STORE = CachedStore
    return _CACHED_STORE(store, cache, tag)


def plane_axes(axes: str, shape: Sequence[int], path: Union[str, Path]) -> tuple:
    """``(y, x, c)`` positions of the row, column and channel axes in tifffile ``axes`` (``c``
    ``None`` for one channel). Any other axis of length > 1 (Z, T, ...) raises ``ValueError``."""
    extra = [(a, n) for a, n in zip(axes, shape) if a not in "YXCS" and n > 1]
    channel = [i for i, (a, n) in enumerate(zip(axes, shape)) if a in "CS" and n > 1]
    if "Y" not in axes or "X" not in axes or extra or len(channel) > 1:
        raise ValueError(f"{path}: expected a 2-D image (axes Y, X and at most one channel axis C or S), "
                         f"got axes {axes} of shape {tuple(shape)}; save one plane of it")
    return axes.index("Y"), axes.index("X"), channel[0] if channel else None


class PlaneReader:
    """Windows of one level (a zarr array with tifffile ``axes``) as ``(h, w, k)`` raw arrays of
    the chosen ``channels`` (indices into the channel axis; ``k = len(channels)``)."""

    def __init__(self, array, axes: str, channels: Sequence[int], path: Union[str, Path]):
        self.array = array
        self.y, self.x, self.c = plane_axes(axes, array.shape, path)
        count = 1 if self.c is None else array.shape[self.c]
        self.channels = list(channels)
        self._all = self.channels == list(range(count))
        self._contig = self.c is None or self.c > max(self.y, self.x)  # samples inside each tile

    def read(self, ys: slice, xs: slice) -> np.ndarray:
        """Raw pixels of rows ``ys`` and columns ``xs`` (steps allowed), ``(h, w, k)``."""
        index = [0] * self.array.ndim
        index[self.y], index[self.x] = ys, xs
        if self.c is not None:
            index[self.c] = slice(None)
        if self.c is not None and not self._contig and not self._all:
            index[self.c] = self.channels  # planar: read only the chosen planes
            raw = np.asarray(self.array.oindex[tuple(index)])
        else:
            raw = np.asarray(self.array[tuple(index)])
        kept = [a for a in (self.y, self.x, self.c) if a is not None]  # integer-indexed axes dropped
        order = sorted(kept)
        raw = raw.transpose([order.index(a) for a in kept])
        if self.c is None:
            return raw[:, :, None]
        if self._all or not self._contig:
            return raw
        return raw[:, :, self.channels]
