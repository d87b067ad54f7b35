"""DenseNet patch encoders: torchvision's DenseNet with a new classifier and an embedding."""
from __future__ import annotations

import os
import re
from typing import Any, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import DenseNet, WeightsEnum

__all__ = ["DenseNetEncoder", "densenet121", "densenet_tiny", "load_densenet_weights"]

# Old torchvision checkpoints name dense-layer modules "norm.1", "conv.2", ...; today's are "norm1".
_OLD_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\."
    r"([12]\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
)


class DenseNetEncoder(DenseNet):
    """:class:`torchvision.models.DenseNet` with :meth:`embed` and ``embedding_dim``.

    ``(B, 3, P, P)`` float -> ``(B, num_classes)`` logits. Parameter names are torchvision's, so
    torchvision state dicts load unchanged. Takes :class:`~torchvision.models.DenseNet`'s
    arguments.

    Attributes:
        features: the convolutional trunk (torchvision's), ``(B, 3, P, P) -> (B, D, h, w)``.
        classifier: :class:`torch.nn.Linear` ``D -> K``.
        embedding_dim: D.
        num_classes: K.
    """

    def __init__(self, num_classes: int = 1000, **kwargs: Any):
        super().__init__(num_classes=num_classes, **kwargs)
        self.num_classes = int(num_classes)
        self.embedding_dim = self.classifier.in_features

    def embed(self, x: Tensor) -> Tensor:
        """``(B, 3, P, P)`` -> ``(B, embedding_dim)``: trunk, ReLU, global average pool."""
        out = F.relu(self.features(x))
        return torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, 3, P, P)`` -> ``(B, num_classes)`` logits."""
        return self.classifier(self.embed(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier by a fresh ``Linear(embedding_dim, num_classes)``."""
        self.num_classes = int(num_classes)
        self.classifier = nn.Linear(self.embedding_dim, self.num_classes)
        nn.init.constant_(self.classifier.bias, 0)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, embedding_dim={self.embedding_dim}"


def load_densenet_weights(
    model: DenseNetEncoder, weights: Union[WeightsEnum, str, os.PathLike], progress: bool = True
) -> DenseNetEncoder:
    """Load trunk weights into ``model`` (in place) and return it.

    ``weights`` is a torchvision :class:`~torchvision.models.DenseNet121_Weights` (downloaded by
    torchvision, into its cache, when absent), the name of one (``"IMAGENET1K_V1"``), or the path
    of a local state dict (or of a checkpoint holding one under ``"state_dict"``/``"model"``).
    The classifier is loaded only when its shape matches ``model``'s; otherwise it keeps its fresh
    initialisation. Other missing or unexpected keys raise.
    """
    if isinstance(weights, (str, os.PathLike)) and os.path.exists(weights):
        state = torch.load(weights, map_location="cpu", weights_only=True)
        for key in ("state_dict", "model"):
            if isinstance(state, dict) and key in state and isinstance(state[key], dict):
                state = state[key]
    else:
        if isinstance(weights, str):
            from torchvision.models import DenseNet121_Weights

            try:
                weights = DenseNet121_Weights[weights]
            except KeyError:
                raise ValueError(
                    f"weights={weights!r} is neither a file nor a DenseNet121_Weights name "
                    f"({', '.join(w.name for w in DenseNet121_Weights)})"
                ) from None
        state = weights.get_state_dict(progress=progress, check_hash=True)
    state = {_OLD_KEY.sub(r"\1\2", k): v for k, v in state.items()}
    own = model.state_dict()
    for key in ("classifier.weight", "classifier.bias"):
        if key in state and state[key].shape != own[key].shape:
            del state[key]
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise ValueError(f"weights do not fit the model: {err}") from None
    missing = [k for k in missing if not k.startswith("classifier.")]
    if missing or unexpected:
        raise ValueError(
            f"weights do not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    return model


def densenet121(
    num_classes: int,
    weights: Optional[Union[WeightsEnum, str, os.PathLike]] = None,
    progress: bool = True,
    bn_size: int = 4,
    drop_rate: float = 0.0,
    memory_efficient: bool = False,
) -> DenseNetEncoder:
    """DenseNet-121 patch classifier with a ``num_classes`` classifier (embedding 1024).

    Args:
        num_classes: K.
        weights: ``None`` (default: random initialisation, nothing downloaded), torchvision
            weights (e.g. ``DenseNet121_Weights.IMAGENET1K_V1`` or its name), or a local file;
            see :func:`load_densenet_weights`. The classifier is always new unless the file
            holds one of the right shape.
        progress: show torchvision's download progress bar (default ``True``).
        bn_size, drop_rate, memory_efficient: :class:`torchvision.models.DenseNet`'s options
            (defaults 4, 0.0, ``False``, torchvision's).
    """
    model = DenseNetEncoder(
        num_classes, growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64,
        bn_size=bn_size, drop_rate=drop_rate, memory_efficient=memory_efficient,
    )
    if weights is not None:
        load_densenet_weights(model, weights, progress)
    return model


def densenet_tiny(
    num_classes: int,
    growth_rate: int = 4,
    block_config: Sequence[int] = (2, 2),
    num_init_features: int = 8,
    bn_size: int = 2,
    drop_rate: float = 0.0,
    memory_efficient: bool = False,
) -> DenseNetEncoder:
    """A very small DenseNet (defaults: growth 4, blocks (2, 2), 8 initial features, bottleneck
    2; embedding 16). Arguments are :class:`torchvision.models.DenseNet`'s.

    Same code path as :func:`densenet121`, including batch-norm: meant for tests and smoke runs.
    """
    return DenseNetEncoder(
        num_classes, growth_rate=growth_rate, block_config=tuple(block_config),
        num_init_features=num_init_features, bn_size=bn_size, drop_rate=drop_rate,
        memory_efficient=memory_efficient,
    )
