"""A content-addressed on-disk cache of per-node embeddings (f's features for a frozen f).

A key is the SHA-256 of a canonical JSON of named parts (what the embeddings depend on: the
image, the node positions, the window, the encoder's state id, ...)::

    cache = EmbeddingCache("runs/emb-cache")
    key = cache.key(image=Path(slide), positions=pos, window=224, **f.cache_parts())
    emb = cache.get_or_compute(key, lambda: embed_all(f, patches))   # (N, D)

How parts are canonicalised (so equal inputs give equal keys, any change a new key):

- ``None``, bools, ints, floats, strings: as JSON (a float by its shortest repr);
- tensors and numpy arrays: dtype name + shape + SHA-256 of the bytes (a tensor and an array of
  the same dtype, shape and values give the same key; the device does not count);
- :class:`os.PathLike` (``pathlib.Path``): resolved path + size + ``mtime_ns`` (a plain ``str``
  is a string, not a path; for a folder, e.g. a zarr store, only the folder's own entry is
  read, so pass the files that change); a missing path raises :class:`FileNotFoundError`;
- lists and tuples (alike), mappings with string keys, enums (their value), ``torch.dtype`` /
  ``torch.device`` (their name), dataclasses and pydantic models (their fields);
- anything else raises :class:`TypeError` naming the part.

Files are ``<root>/<key[:2]>/<key>.pt`` (``torch.save`` of the key and the CPU tensor), written
atomically (:func:`gridgraph.files.atomic.atomic_save`: a temporary file renamed over the target),
so a half-written file is never visible under its name. An unreadable or mismatched file is
reported by a warning naming it, and :meth:`EmbeddingCache.get_or_compute` recomputes and
overwrites it.
"""
from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import os
import re
import warnings
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
from torch import Tensor

from ..files.atomic import atomic_save

__all__ = ["EmbeddingCache", "array_digest"]

FORMAT = 1  # bump when the file layout or the canonical form changes
_KEY = re.compile(r"^[0-9a-f]{16,128}$")


def array_digest(a: Union[Tensor, np.ndarray]) -> str:
    """SHA-256 (hex) of a tensor's or array's raw bytes (C order, native byte order)."""
    if isinstance(a, Tensor):
        if a.is_sparse or a.is_quantized:
            raise TypeError(f"cannot hash a {a.layout}/{a.dtype} tensor; pass a dense one")
        flat = a.detach().to("cpu").contiguous().reshape(-1)
        data = flat.view(torch.uint8).numpy() if flat.numel() else b""
    else:
        if a.dtype.hasobject:
            raise TypeError("cannot hash a numpy array of Python objects")
        data = np.ascontiguousarray(a.astype(a.dtype.newbyteorder("="), copy=False)).view(np.uint8)
    return hashlib.sha256(data).hexdigest()


def _canon(value: Any, where: str) -> Any:
    """``value`` as plain JSON data (see the module docstring)."""
    if value is None or isinstance(value, (bool, int, float, str)) and not isinstance(value, enum.Enum):
        return value
    if isinstance(value, enum.Enum):
        return _canon(value.value, where)
    if isinstance(value, np.generic):
        return _canon(value.item(), where)
    if isinstance(value, Tensor):
        dtype = str(value.dtype).removeprefix("torch.")
        return {"array": [dtype, list(value.shape), array_digest(value)]}
    if isinstance(value, np.ndarray):
        return {"array": [value.dtype.name, list(value.shape), array_digest(value)]}
    if isinstance(value, os.PathLike):
        path = Path(value).resolve()
        try:
            st = path.stat()
        except FileNotFoundError:
            raise FileNotFoundError(f"cache key part {where}: {path} does not exist") from None
        return {"path": [str(path), st.st_size, st.st_mtime_ns]}
    if isinstance(value, (torch.dtype, torch.device)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_canon(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise TypeError(f"cache key part {where}: mapping keys must be strings, got {bad[0]!r}")
        return {k: _canon(v, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return {type(value).__name__: _canon(fields, where)}
    if hasattr(value, "model_dump"):  # pydantic
        return {type(value).__name__: _canon(value.model_dump(mode="json"), where)}
    raise TypeError(f"cache key part {where}: cannot hash a {type(value).__name__}")


class EmbeddingCache:
    """Per-node embeddings ``(N, D)`` (any tensor, in fact) on disk, by content key.

    Args:
        root: the cache folder (created on the first write).

    Attributes:
        hits, misses: counts of :meth:`get` calls that found / did not find a usable file
            (:meth:`get_or_compute` counts through :meth:`get`).
    """

    def __init__(self, root: Union[str, os.PathLike]):
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(**parts: Any) -> str:
        """The 64-hex-digit key of ``parts`` (keyword order does not matter)."""
        if not parts:
            raise ValueError("EmbeddingCache.key() needs at least one part")
        payload = {"format": FORMAT, "parts": {k: _canon(v, k) for k, v in parts.items()}}
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def path(self, key: str) -> Path:
        """Where ``key``'s tensor is stored: ``<root>/<key[:2]>/<key>.pt``."""
        if not isinstance(key, str) or not _KEY.match(key):
            raise ValueError(f"not a cache key (16-128 lowercase hex digits): {key!r}")
        return self.root / key[:2] / f"{key}.pt"

    def get(self, key: str) -> Optional[Tensor]:
        """The stored CPU tensor, or ``None`` (a miss) when absent or unreadable (warns then)."""
        path = self.path(key)
        if not path.is_file():
            self.misses += 1
            return None
        try:
            item = torch.load(path, map_location="cpu", weights_only=True)
            if not (isinstance(item, dict) and item.get("key") == key
                    and isinstance(item.get("embedding"), Tensor)):
                raise ValueError(f"it does not hold the embedding of key {key[:12]}...")
        except Exception as err:  # a truncated, foreign or garbled file
            warnings.warn(f"embedding cache file {path} is unreadable ({err}); "
                          "its embedding will be recomputed", RuntimeWarning, stacklevel=2)
            self.misses += 1
            return None
        self.hits += 1
        return item["embedding"]

    def put(self, key: str, tensor: Tensor) -> Path:
        """Store ``tensor`` (detached, on CPU) under ``key`` atomically; returns the file."""
        if not isinstance(tensor, Tensor):
            raise TypeError(f"EmbeddingCache.put needs a tensor, got {type(tensor).__name__}")
        path = self.path(key)
        t = tensor.detach().to("cpu").contiguous()
        if t.untyped_storage().nbytes() != t.numel() * t.element_size():
            t = t.clone()  # a view: do not write its whole base storage
        atomic_save({"format": FORMAT, "key": key, "embedding": t}, path)
        return path

    def get_or_compute(self, key: str, compute: Callable[[], Tensor]) -> Tensor:
        """The stored tensor (CPU) on a hit; on a miss ``compute()``'s tensor, as returned
        (same device), after storing a CPU copy. A failed write (e.g. a full disk) warns and
        still returns the computed tensor."""
        cached = self.get(key)
        if cached is not None:
            return cached
        out = compute()
        if not isinstance(out, Tensor):
            raise TypeError(f"compute() must return a tensor, got {type(out).__name__}")
        try:
            self.put(key, out)
        except OSError as err:
            warnings.warn(f"could not write embedding cache file {self.path(key)}: {err}",
                          RuntimeWarning, stacklevel=2)
        return out

    def __contains__(self, key: str) -> bool:
        return self.path(key).is_file()

    def __repr__(self) -> str:
        return f"EmbeddingCache(root={str(self.root)!r}, hits={self.hits}, misses={self.misses})"
