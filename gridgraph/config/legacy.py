"""Configs as older versions wrote them, brought to today's spelling and meaning.

Two kinds of change are undone here, and only here:

- **spelling**: every section that names a registry entry is ``{name, kwargs}`` today; earlier
  configs wrote ``data: {reader, options}`` and ``graph: {builder, <its arguments>}``
  (:func:`respell`, also applied to ``--set`` keys by :func:`respell_key`);
- **settings added later**: a stored config lacking one gets the value that reproduces what it
  did then (:data:`LEGACY_VALUES`), not today's default (:func:`legacy_config`).
"""
from __future__ import annotations

from typing import Mapping, Optional

__all__ = ["LEGACY_VALUES", "respell", "respell_key", "legacy_config"]

#: Settings added after checkpoints were first written, with the value that reproduces what such
#: a checkpoint did (a config written before a setting existed gets this, not today's default).
LEGACY_VALUES = {("model", "g_ensemble"): 1, ("model", "g_zero_init"): False, ("model", "f_tta"): False,
                 ("model", "g_tta"): False, ("train", "label_smoothing"): 0.0, ("train", "cross_fit"): 0,
                 ("train", "cross_fit_block"): 1, ("train", "pretrain_epochs"): 0,
                 ("train", "pretrain_batch_size"): 256}

_DATA_SPELLING = {"reader": "name", "options": "kwargs"}


def _clash(section: str, old: str, new: str) -> ValueError:
    return ValueError(f"{section}: both {old!r} (the older spelling) and {new!r} are given; keep {new!r}")


def respell(raw: Mapping) -> dict:
    """``raw`` (plain config data) with the older spellings of ``data`` and ``graph`` rewritten."""
    out = dict(raw)
    data = out.get("data")
    if isinstance(data, Mapping) and any(k in data for k in _DATA_SPELLING):
        data = dict(data)
        for old, new in _DATA_SPELLING.items():
            if old in data:
                if new in data:
                    raise _clash("data", old, new)
                data[new] = data.pop(old)
        out["data"] = data
    graph = out.get("graph")
    if isinstance(graph, Mapping) and "builder" in graph:
        if "name" in graph:
            raise _clash("graph", "builder", "name")
        extra = {k: v for k, v in graph.items() if k not in ("builder", "kwargs")}
        out["graph"] = {"name": graph["builder"], "kwargs": {**dict(graph.get("kwargs") or {}), **extra}}
    return out


def respell_key(keys: list) -> list:
    """A ``--set`` key path in today's spelling (``data.reader`` -> ``data.name``, ``graph.k`` ->
    ``graph.kwargs.k``, ``graph.builder`` -> ``graph.name``)."""
    if len(keys) >= 2 and keys[0] == "data" and keys[1] in _DATA_SPELLING:
        return ["data", _DATA_SPELLING[keys[1]], *keys[2:]]
    if len(keys) >= 2 and keys[0] == "graph":
        if keys[1] == "builder":
            return ["graph", "name", *keys[2:]]
        if keys[1] not in ("name", "kwargs"):
            return ["graph", "kwargs", *keys[1:]]
    return list(keys)


def legacy_config(config: Mapping, like: Optional[Mapping] = None) -> dict:
    """A stored config (plain data) in today's spelling with every setting added since it was
    written set as it was then (:data:`LEGACY_VALUES`), so that it validates, builds the same
    model and compares equal to a current run with the same settings; with ``like``, only the
    settings ``like`` has."""
    out = respell(config)
    for (section, key), value in LEGACY_VALUES.items():
        if like is not None and key not in (like.get(section) or {}):
            continue
        if isinstance(out.get(section), Mapping) and key not in out[section]:
            out[section] = {**out[section], key: value}
    return out
