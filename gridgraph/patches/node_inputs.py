"""f's per-node inputs when they are more than image patches: one tensor per modality.

A :class:`NodeInputs` stands where a ``(N, 3, P, P)`` patch stack stands (a
:class:`~gridgraph.patches.SectionTensors`' ``patches``, a chunk of
:func:`~gridgraph.encoders.encode`, a minibatch of f): it is sliced, indexed, concatenated
(``torch.cat``) and moved between devices as one, and the image transforms
(normalisation, dihedral turns, colour jitter) apply to its ``"image"`` part only.
"""
from __future__ import annotations

from typing import Callable, Dict, Iterator, Mapping

import torch
from torch import Tensor

__all__ = ["NodeInputs", "IMAGE", "map_image", "num_inputs"]

#: The modality name of image patches.
IMAGE = "image"


class NodeInputs:
    """Named per-node tensors with the same first dimension ``N``.

    ``parts``: modality name -> tensor, e.g. ``{"image": (N, 3, P, P) uint8,
    "expression": (N, G) float32, "embedding": (N, D) float32}``.

    ``inputs["expression"]`` is one part; ``inputs[10:20]`` or ``inputs[index_tensor]`` the
    same nodes of every part; ``len(inputs)`` is ``N``.
    """

    def __init__(self, parts: Mapping[str, Tensor]):
        if not parts:
            raise ValueError("NodeInputs needs at least one modality")
        sizes = {name: int(t.shape[0]) for name, t in parts.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"NodeInputs parts disagree on the number of nodes: {sizes}")
        self.parts: Dict[str, Tensor] = dict(parts)

    def __len__(self) -> int:
        return int(next(iter(self.parts.values())).shape[0])

    def __contains__(self, name: str) -> bool:
        return name in self.parts

    def __iter__(self) -> Iterator[str]:
        return iter(self.parts)

    def keys(self):
        return self.parts.keys()

    def __getitem__(self, index):
        if isinstance(index, str):
            if index not in self.parts:
                raise KeyError(f"f needs the {index!r} modality, but the inputs hold only {sorted(self.parts)}")
            return self.parts[index]
        return NodeInputs({k: v[index] for k, v in self.parts.items()})

    @property
    def device(self) -> torch.device:
        return next(iter(self.parts.values())).device

    @property
    def requires_grad(self) -> bool:
        return any(t.requires_grad for t in self.parts.values())

    def to(self, *args, **kwargs) -> "NodeInputs":
        return NodeInputs({k: v.to(*args, **kwargs) for k, v in self.parts.items()})

    def pin_memory(self) -> "NodeInputs":
        return NodeInputs({k: v.pin_memory() for k, v in self.parts.items()})

    def map(self, name: str, fn: Callable[[Tensor], Tensor]) -> "NodeInputs":
        """A copy with ``fn`` applied to part ``name`` (unchanged when absent)."""
        if name not in self.parts:
            return self
        return NodeInputs({**self.parts, name: fn(self.parts[name])})

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func is torch.cat:
            kwargs = kwargs or {}
            items = args[0] if args else kwargs["tensors"]
            dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
            if dim != 0 or not all(isinstance(x, NodeInputs) for x in items):
                raise ValueError("NodeInputs concatenate along nodes only (dim 0), with other NodeInputs")
            names = list(items[0].parts)
            if any(list(x.parts) != names for x in items):
                raise ValueError("cannot concatenate NodeInputs with different modalities")
            return NodeInputs({k: torch.cat([x.parts[k] for x in items]) for k in names})
        return NotImplemented

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={tuple(v.shape)}" for k, v in self.parts.items())
        return f"NodeInputs({shapes})"


def map_image(inputs, fn: Callable[[Tensor], Tensor]):
    """``fn(inputs)`` for a patch tensor; ``fn`` applied to the image part of a
    :class:`NodeInputs` (which passes unchanged when it has none)."""
    if isinstance(inputs, NodeInputs):
        return inputs.map(IMAGE, fn)
    return fn(inputs)


def num_inputs(inputs) -> int:
    """The number of nodes of a patch tensor or :class:`NodeInputs`."""
    return len(inputs) if isinstance(inputs, NodeInputs) else int(inputs.shape[0])
