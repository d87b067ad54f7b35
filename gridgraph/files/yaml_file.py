"""YAML text with gridgraph's rules: safe types only, duplicate keys refused, errors name the source."""
from __future__ import annotations

from typing import Any, Union

import yaml

__all__ = ["YamlError", "load_yaml_text"]


class YamlError(ValueError):
    """YAML that cannot be read: not text, not valid YAML, or a key given twice."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping holding the same key twice (YAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                line = key_node.start_mark.line + 1
                raise YamlError(f"key {key!r} is given twice (second time on line {line})")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml_text(text: Union[str, bytes], source: str) -> Any:
    """Parse ``text`` (bytes must be UTF-8) as YAML; errors are :class:`YamlError` naming ``source``."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise YamlError(f"{source}: not a YAML text file (not UTF-8 text)") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except YamlError as err:
        raise YamlError(f"{source}: {err}") from None
    except yaml.YAMLError as err:
        raise YamlError(f"{source}: not valid YAML ({' '.join(str(err).split())})") from None
    except RecursionError:
        raise YamlError(f"{source}: not valid YAML for gridgraph (nested too deeply)") from None
