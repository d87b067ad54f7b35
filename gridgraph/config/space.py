"""A hyperparameter search space: config keys and the distributions their values are drawn from.

A space file is YAML, one config key per line::

    train.lr: log_uniform(1e-4, 1e-3)     # log(lr) uniform between the bounds
    train.alpha: uniform(0, 0.1)
    train.epochs_g: int(10, 40)           # integers, both bounds included
    g.name: [unet, gcn]                   # one of these values

Every key is checked against the run config (each bound and each choice must give a valid
config), so a misspelt key or an impossible value is refused before anything runs.
"""
from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from .load import make_config, read_yaml
from ..evaluate.selection import PAPER_SEARCH_SPACE
from ..names import Regimen
from .schema import ConfigError, RunConfig

__all__ = ["Uniform", "LogUniform", "IntUniform", "Choice", "SearchSpace", "PAPER_SPACE", "parse_distribution",
           "load_space"]


@dataclasses.dataclass(frozen=True)
class Uniform:
    """A float drawn uniformly from ``[low, high]``."""

    low: float
    high: float
    spelling = "uniform"

    def __post_init__(self):
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or not self.low < self.high:
            raise ValueError(f"{self.spelling}({self.low}, {self.high}): needs finite low < high")
        if not math.isfinite(self.high - self.low):
            raise ValueError(f"{self.spelling}({self.low}, {self.high}): high - low overflows a 64-bit float")

    def bounds(self) -> list:
        return [self.low, self.high]

    def __str__(self) -> str:
        return f"{self.spelling}({self.low:g}, {self.high:g})"


@dataclasses.dataclass(frozen=True)
class LogUniform(Uniform):
    """A float whose logarithm is uniform between ``log(low)`` and ``log(high)`` (``0 < low``)."""

    spelling = "log_uniform"

    def __post_init__(self):
        super().__post_init__()
        if self.low <= 0:
            raise ValueError(f"log_uniform({self.low:g}, {self.high:g}): needs 0 < low")


@dataclasses.dataclass(frozen=True)
class IntUniform:
    """An integer drawn uniformly from ``low..high``, both included."""

    low: int
    high: int

    def __post_init__(self):
        if not self.low < self.high:
            raise ValueError(f"int({self.low}, {self.high}): needs low < high")

    def bounds(self) -> list:
        return [self.low, self.high]

    def __str__(self) -> str:
        return f"int({self.low}, {self.high})"


@dataclasses.dataclass(frozen=True)
class Choice:
    """One of ``options`` (text, numbers, booleans or null)."""

    options: tuple

    def __post_init__(self):
        if len(self.options) < 2:
            raise ValueError(f"a choice needs at least two options, got {list(self.options)}")
        bad = [o for o in self.options if not (o is None or isinstance(o, (str, int, float, bool)))]
        if bad:
            raise ValueError(f"choice options must be plain values (text, numbers, booleans), not {bad[0]!r}")
        if len(set(map(repr, self.options))) != len(self.options):
            raise ValueError(f"choice options repeat: {list(self.options)}")

    def bounds(self) -> list:
        return list(self.options)

    def __str__(self) -> str:
        return "[" + ", ".join(map(str, self.options)) + "]"


Distribution = Union[Uniform, LogUniform, IntUniform, Choice]
_CALL = re.compile(r"^\s*([a-z_]+)\s*\((.*)\)\s*$")
#: The largest int bound: Optuna keeps parameters as 64-bit floats, exact up to 2**53.
MAX_INT = 2 ** 53
_KINDS = {"uniform": Uniform, "log_uniform": LogUniform, "int": IntUniform}


def _number(text: str, kind: type, where: str):
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: {text.strip()!r} is not a number") from None
    if kind is IntUniform:
        if not math.isfinite(value) or abs(value) > MAX_INT:
            raise ValueError(f"{where}: int bounds must be integers within +-2**53 (Optuna stores them as "
                             f"64-bit floats), got {text.strip()}")
        if value != int(value):
            raise ValueError(f"{where}: int bounds must be integers, got {text.strip()}")
        return int(value)
    return value


def parse_distribution(spec: Any, where: str = "space") -> Distribution:
    """``"log_uniform(1e-4, 1e-3)"``, ``"uniform(0, 0.1)"``, ``"int(1, 4)"`` or a list of options."""
    if isinstance(spec, (Uniform, IntUniform, Choice)):
        return spec
    try:
        return _parse(spec, where)
    except ValueError as err:
        message = str(err)
        raise ValueError(message if message.startswith(f"{where}: ") else f"{where}: {message}") from None


def _parse(spec: Any, where: str) -> Distribution:
    if isinstance(spec, (list, tuple)):
        return Choice(tuple(spec))
    match = _CALL.match(spec) if isinstance(spec, str) else None
    if match is None:
        raise ValueError(f"{where}: {spec!r} is not a distribution; use log_uniform(low, high), uniform(low, high), "
                         "int(low, high) or a list of options")
    name, args = match.group(1), [a for a in match.group(2).split(",")]
    if name not in _KINDS:
        raise ValueError(f"{where}: unknown distribution {name!r}; known: {', '.join(_KINDS)} and lists of options")
    if len(args) != 2:
        raise ValueError(f"{where}: {name} takes (low, high), got {spec!r}")
    kind = _KINDS[name]
    return kind(*(_number(a, kind, where) for a in args))


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """Config keys (``"train.lr"``) and their distributions, checked against the run config."""

    params: dict
    source: str = "space"

    @classmethod
    def from_mapping(cls, data: Mapping, base: Optional[Mapping] = None, source: str = "space") -> "SearchSpace":
        """Parse and check ``{key: distribution}``; ``base`` is the config dict the keys apply to
        (default the defaults), each bound and option of which must give a valid config."""
        if not isinstance(data, Mapping) or not data:
            raise ConfigError(f"{source}: a search space maps config keys to distributions, e.g. "
                              "'train.lr: log_uniform(1e-4, 1e-3)'; got " + (repr(data) if not data else
                                                                              type(data).__name__))
        params = {}
        for key, spec in data.items():
            where = f"{source}: {key}"
            if not isinstance(key, str) or not key.strip() or any(not k for k in key.split(".")):
                raise ConfigError(f"{source}: key {key!r} is not a config key like train.lr")
            try:
                dist = parse_distribution(spec, where)
            except ValueError as err:
                raise ConfigError(str(err)) from None
            for value in dist.bounds():
                try:
                    make_config(base, [f"{key}={_yaml(value)}"], source=f"{source}: {key}={value!r}")
                except ConfigError as err:
                    raise ConfigError(f"{err} (from the search space)") from None
            params[key] = dist
        return cls(params=params, source=source)

    def config(self, base: Mapping, values: Mapping) -> RunConfig:
        """The run config ``base`` with the drawn ``values`` (``{key: value}``) set."""
        return make_config(base, [f"{k}={_yaml(v)}" for k, v in values.items()], source=self.source)

    def __str__(self) -> str:
        return ", ".join(f"{k}: {d}" for k, d in self.params.items())


def _yaml(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _from_selection(spec: tuple) -> Distribution:
    kind, low, high = spec
    return LogUniform(10.0 ** low, 10.0 ** high) if kind == "log10_uniform" else Uniform(float(low), float(high))


#: The GridNet paper's random search (:data:`gridgraph.evaluate.PAPER_SEARCH_SPACE`) as config keys:
#: ``log10(train.lr) ~ U(-4, -3)`` and ``train.alpha ~ U(0, 0.1)``.
PAPER_SPACE = {f"train.{name}": _from_selection(spec) for name, spec in PAPER_SEARCH_SPACE.items()}


def load_space(path: Union[str, Path, None], base: Optional[Mapping] = None) -> SearchSpace:
    """The search space of a YAML file, checked against ``base``; ``None``: :data:`PAPER_SPACE`
    (``train.alpha`` only where it is used: regimen ``at_once``)."""
    if path is None:
        regimen = make_config(base).train.regimen
        space = {k: d for k, d in PAPER_SPACE.items() if k != "train.alpha" or regimen == Regimen.AT_ONCE}
        return SearchSpace.from_mapping(space, base, source="the paper's search space")
    return SearchSpace.from_mapping(read_yaml(path, "search space file"), base, source=str(path))
