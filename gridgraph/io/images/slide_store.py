"""The storage side of a whole-slide TIFF: a bounded cache of decoded tiles, and windows of one
pyramid level read as ``(h, w, k)`` arrays whatever the file's axis order.

tifffile's zarr store decodes a tile (JPEG, JPEG 2000, LZW, deflate, ... through imagecodecs)
each time zarr asks for it; :func:`cached_store` keeps the decoded tiles in a
:class:`TileCache` (least recently used out first, bounded in bytes), so the tiles shared by
neighbouring windows or read again for a figure are decoded once. :class:`PlaneReader` maps a
level's axes (``YXS`` contiguous RGB, ``SYX`` planar RGB, ``CYX`` OME channels, ...) to windows.

A tile that cannot be decoded (corrupt bytes, a truncated file) never raises inside zarr's
concurrent reader, where the failure would leave zarr's other pending reads behind (asyncio's
"Task was destroyed but it is pending!"): the store records it and returns the tile as missing,
zarr completes the read, and :class:`PlaneReader` raises one ``ValueError``,
``"<file>: tile at (x, y) of level L cannot be decoded (<reason>)"``, for any window touching it.
"""
from __future__ import annotations

import itertools
import os
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

__all__ = ["TileCache", "cached_store", "PlaneReader", "plane_axes", "usable_cores", "first_touched"]


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


#: Orders decode failures and reads: a read raises for the failures recorded after it began (its
#: own, or a concurrent read's of a tile it shares), never for an old one that a retry has fixed.
_SEQUENCE = itertools.count()


def _is_metadata(key: str) -> bool:
    return key.endswith(("zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata"))


_CACHED_STORE = None


def cached_store(store, cache: TileCache, tag, failures: Optional[dict] = None):
    """``store`` (tifffile's zarr store, which returns decoded tiles) with its chunk reads going
    through ``cache`` under ``tag`` (e.g. the pyramid level). zarr is imported on first use.

    With ``failures`` (a dict), a chunk whose decode raises is recorded there as
    ``{key: (sequence number, "<error type>: <message>")}`` and read as missing, so the read in
    progress ends normally; the caller raises for it (see :meth:`PlaneReader.read`). Without it,
    the error propagates."""
    global _CACHED_STORE
    if _CACHED_STORE is None:
        from zarr.storage import WrapperStore

        class CachedStore(WrapperStore):
            def __init__(self, inner, tiles: TileCache, key_tag, failed: Optional[dict]):
                super().__init__(inner)
                self._cache, self._tag, self._failed = tiles, key_tag, failed

            def _with_store(self, inner):
                return type(self)(inner, self._cache, self._tag, self._failed)

            async def _decode(self, key, prototype):
                try:
                    return await self._store.get(key, prototype, None)
                except Exception as err:  # noqa: BLE001 - any codec's error: recorded, raised by the reader
                    if self._failed is None:
                        raise
                    reason = f"{type(err).__name__}: {' '.join(str(err).split())}"[:300]
                    self._failed[key] = (next(_SEQUENCE), reason)
                    return None

            async def get(self, key, prototype, byte_range=None):
                if byte_range is not None or _is_metadata(key):
                    return await self._store.get(key, prototype, byte_range)
                if not self._cache.max_bytes:
                    return await self._decode(key, prototype)
                tile = self._cache.get((self._tag, key))
                if tile is not None:
                    return prototype.buffer.from_bytes(tile)
                found = await self._decode(key, prototype)
                if found is not None:
                    self._cache.put((self._tag, key), found.to_bytes())
                return found

        _CACHED_STORE = CachedStore
    return _CACHED_STORE(store, cache, tag, failures)


def first_touched(index: slice, size: int, lo: int, hi: int) -> Optional[int]:
    """The first position in ``lo..hi-1`` that ``index`` (a slice, steps allowed, of an axis of
    ``size``) selects, or ``None``."""
    start, stop, step = index.indices(size)
    if step <= 0:
        return None
    first = start if lo <= start else start + -(-(lo - start) // step) * step
    return first if first < min(hi, stop) else None


def _chunk_index(key: str) -> Optional[tuple]:
    """Chunk coordinates from a zarr chunk key (``"1.0.0"``, ``"0/1.0.0"``, ``"c/1/0/0"``)."""
    parts = re.split(r"[./]", key)
    if parts and parts[0] == "c":
        parts = parts[1:]
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        return None


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

    def __init__(self, array, axes: str, channels: Sequence[int], path: Union[str, Path], level: int = 0,
                 failures: Optional[dict] = None):
        self.array = array
        self.path, self.level = path, int(level)
        self.failures = {} if failures is None else failures
        self.y, self.x, self.c = plane_axes(axes, array.shape, path)
        count = 1 if self.c is None else array.shape[self.c]
        self.channels = list(channels)
        self._all = self.channels == list(range(count))
        self._contig = self.c is None or self.c > max(self.y, self.x)  # samples inside each tile

    def check_decoded(self, ys: slice, xs: slice, since: int = -1) -> None:
        """``ValueError`` naming the file, the tile's top-left pixel ``(x, y)`` in the level's
        pixels and the level, when a tile that rows ``ys`` and columns ``xs`` touch failed to
        decode after sequence number ``since`` (the first such tile in row order, and how many
        others there are)."""
        chunks, shape = self.array.chunks, self.array.shape
        planes = None if self.c is None or self._contig or self._all else set(self.channels)
        bad = []
        for key, (seq, reason) in list(self.failures.items()):
            if seq <= since:
                continue
            at = _chunk_index(key)
            if at is None or len(at) < len(shape):  # a key of unknown form: never read as fill
                raise ValueError(f"{self.path}: a tile of level {self.level} (zarr key {key!r}) cannot be "
                                 f"decoded ({reason})")
            at = at[-len(shape):]
            y0, x0 = at[self.y] * chunks[self.y], at[self.x] * chunks[self.x]
            if first_touched(ys, shape[self.y], y0, y0 + chunks[self.y]) is None or \
                    first_touched(xs, shape[self.x], x0, x0 + chunks[self.x]) is None:
                continue
            if planes is not None:
                c0 = at[self.c] * chunks[self.c]
                if not planes & set(range(c0, c0 + chunks[self.c])):
                    continue
            bad.append((y0, x0, reason))
        if bad:
            y0, x0, reason = min(bad)
            others = len(bad) - 1
            more = f"; {others} more tile{'s' if others > 1 else ''} of this window fail too" if others else ""
            raise ValueError(f"{self.path}: tile at ({x0}, {y0}) of level {self.level} cannot be decoded "
                             f"({reason}){more}")

    def read(self, ys: slice, xs: slice) -> np.ndarray:
        """Raw pixels of rows ``ys`` and columns ``xs`` (steps allowed), ``(h, w, k)``."""
        began = next(_SEQUENCE)
        index = [0] * self.array.ndim
        index[self.y], index[self.x] = ys, xs
        if self.c is not None:
            index[self.c] = slice(None)
        if self.c is not None and not self._contig and not self._all:
            index[self.c] = self.channels  # planar: read only the chosen planes
            raw = np.asarray(self.array.oindex[tuple(index)])
        else:
            raw = np.asarray(self.array[tuple(index)])
        if self.failures:
            self.check_decoded(ys, xs, began)
        kept = [a for a in (self.y, self.x, self.c) if a is not None]  # integer-indexed axes dropped
        order = sorted(kept)
        raw = raw.transpose([order.index(a) for a in kept])
        if self.c is None:
            return raw[:, :, None]
        if self._all or not self._contig:
            return raw
        return raw[:, :, self.channels]
