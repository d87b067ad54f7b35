"""One registry mechanism: a name -> builder table with listing, lookup and argument checks.

Encoders (f), correctors (g), graph builders and section readers each keep one
:class:`Registry`; configs name an entry and pass keyword arguments, which
:meth:`Registry.check_kwargs` checks against the builder's signature before anything runs.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional

__all__ = ["Registry"]


class Registry:
    """Builders registered by name.

    Args:
        kind: what the entries are, for messages (``"corrector"``, ``"encoder"``, ...).
        fixed: leading positional parameters every builder takes that a config never sets
            (e.g. ``("num_classes", "in_channels")``); they are left out of kwargs checks.

    ``register(name, fn)`` or ``@register(name)`` adds a builder; ``get(name)`` returns it, and an
    unknown name raises :class:`ValueError` listing the known ones; ``names()`` lists them;
    ``metadata(name)`` returns what the entry was registered with as ``meta``.
    """

    def __init__(self, kind: str, fixed: Iterable[str] = ()):
        self.kind = kind
        self.fixed = tuple(fixed)
        self._entries: Dict[str, Callable[..., Any]] = {}
        self._forwards: Dict[str, Callable[[], Iterable[Callable]]] = {}
        self._meta: Dict[str, Dict[str, Any]] = {}

    def register(self, name: str, fn: Optional[Callable[..., Any]] = None, *, overwrite: bool = False,
                 forwards_to: Optional[Callable[[], Iterable[Callable]]] = None,
                 meta: Optional[Mapping[str, Any]] = None):
        """Add ``fn`` as ``name`` (directly, or as a decorator when ``fn`` is omitted).

        Args:
            name: the name configs give.
            fn: the builder; omitted, ``register`` returns a decorator.
            overwrite: replace an entry of that name instead of refusing it.
            forwards_to: for a builder whose ``**kwargs`` go on to other callables (a GNN
                corrector's to its PyG convolution), a function returning those callables; their
                named parameters are then what ``**kwargs`` may hold.
            meta: facts about the entry that code elsewhere reads instead of testing its name
                (an encoder's inputs, say); :meth:`metadata` returns them.
        """

        def add(builder: Callable[..., Any]) -> Callable[..., Any]:
            if not callable(builder):
                raise TypeError(f"{self.kind} builder for {name!r} must be callable, got {builder!r}")
            if name in self._entries and not overwrite and self._entries[name] is not builder:
                raise ValueError(f"a {self.kind} named {name!r} is already registered")
            if meta is not None or self._entries.get(name) is not builder:  # a new builder: its own meta
                self._meta[str(name)] = dict(meta or {})
            self._entries[str(name)] = builder
            if forwards_to is not None:
                self._forwards[str(name)] = forwards_to
            return builder

        return add if fn is None else add(fn)

    def remove(self, name: str) -> None:
        """Forget ``name`` (no error if it is not registered)."""
        self._entries.pop(name, None)
        self._forwards.pop(name, None)
        self._meta.pop(name, None)

    def metadata(self, name: str) -> Dict[str, Any]:
        """A copy of the ``meta`` ``name`` was registered with (``{}``: none given).

        Raises:
            ValueError: ``name`` is not registered.
        """
        self.get(name)
        return dict(self._meta.get(name, {}))

    def names(self) -> List[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str) -> Callable[..., Any]:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}") from None

    def build(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self.get(name)(*args, **kwargs)

    def parameters(self, name: str) -> Optional[List[str]]:
        """Keyword arguments ``name``'s builder accepts (``None``: any, it takes ``**kwargs``)."""
        keep = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        params = list(inspect.signature(self.get(name)).parameters.values())
        names = [p.name for p in params if p.kind in keep and p.name not in self.fixed]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names
        if name not in self._forwards:
            return None
        for target in self._forwards[name]():
            forwarded = inspect.signature(target).parameters.values()
            names += [p.name for p in forwarded if p.kind in keep and p.name not in names
                      and p.name not in ("self", "in_channels", "out_channels", *self.fixed)]
        return names

    def required(self, name: str) -> List[str]:
        """Keyword arguments ``name``'s builder needs (no default), leaving out ``fixed`` ones."""
        params = inspect.signature(self.get(name)).parameters.values()
        keep = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return [p.name for p in params
                if p.kind in keep and p.default is p.empty and p.name not in self.fixed]

    def check_kwargs(self, name: str, kwargs: Mapping[str, Any], where: str) -> None:
        """Raise :class:`ValueError` naming ``where.key`` for a keyword ``name`` does not take."""
        accepted = self.parameters(name)
        if accepted is None:
            return
        for key in kwargs:
            if key not in accepted:
                raise ValueError(
                    f"{where}.{key}: {self.kind} {name!r} takes no argument {key!r} "
                    f"(it takes: {', '.join(accepted) or 'none'})"
                )

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"
