"""Run configuration: one typed, frozen model per section, read from YAML and ``key=value`` lists.

A run has the sections ``data`` (reader name + kwargs, the sections of each split), ``graph``
(optional rebuild of each section's graph), ``patches`` (window and size), ``f`` and ``g``
(builder name + kwargs), ``model`` (what g reads of f), ``train`` (regimen and its settings),
``target`` (class labels, the default, or gene expression), plus ``seed`` and ``output``. Every value is checked before anything runs or is written: ranges,
types, names against the registries, and builder kwargs against the builders' signatures.
Errors are :class:`ConfigError` s naming the key, the value and what was expected.

From Python, build the sections directly::

    RunConfig(data=DataConfig(name="synthetic", train=[1, 2], val=[3]),
              train=TrainConfig(epochs_f=3, epochs_g=30))

:mod:`.schema` holds the models, :mod:`.load` reading and overrides, :mod:`.prediction` the
few settings ``gridgraph predict --set`` may change.
"""
from .load import PATH_KEYS, dump_config, legacy_config, load_config, make_config, parse_override
from .schema import (ConfigError, DataConfig, GraphConfig, ModelConfig, ModuleConfig, PatchConfig, RunConfig,
                     TargetConfig, TrainConfig)

__all__ = [
    "ConfigError",
    "RunConfig",
    "DataConfig",
    "GraphConfig",
    "PatchConfig",
    "ModuleConfig",
    "ModelConfig",
    "TrainConfig",
    "TargetConfig",
    "make_config",
    "load_config",
    "parse_override",
    "dump_config",
    "legacy_config",
    "PATH_KEYS",
]
