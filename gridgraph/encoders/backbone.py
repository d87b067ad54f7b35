"""Any timm model or torchvision classification model as the patch encoder f.

:func:`timm_encoder` and :func:`torchvision_encoder` (``ENCODERS`` names ``"timm"`` and
``"torchvision"``) build a :class:`BackboneEncoder`: the named model with its classification head
replaced by ``nn.Identity`` (the *backbone*; its output, the pooled features, is the embedding)
and a new ``nn.Linear(D, K)`` classifier.

Weights: ``weights`` is a local file -- a state dict saved by ``torch.save`` (or a checkpoint
holding one under ``"state_dict"``/``"model"``, or a ``.safetensors`` file) of the full model or
of the backbone; the head's keys are dropped, anything else must match exactly
(:func:`load_backbone_weights`). Nothing is downloaded unless ``pretrained=True`` is passed to
the timm builder.

Input: ``embed`` takes float patches normalised with the model's own ``input_mean`` and
``input_std`` (0..1 units: ``(x / 255 - mean) / std``, i.e.
``gridgraph.patches.transforms.normalize(p, f.input_mean, f.input_std)``). Patches whose side is
not ``input_size`` are resized to ``input_size`` inside ``embed`` (bilinear, antialiased); since
normalisation is per channel and affine, resizing after it equals resizing before it.
"""
from __future__ import annotations

import contextlib
import difflib
import hashlib
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..patches.node_inputs import IMAGE, NodeInputs
from ..patches.transforms import IMAGENET_MEAN, IMAGENET_STD

from .embedding_cache import array_digest

__all__ = ["BackboneEncoder", "load_backbone_weights", "timm_encoder", "torchvision_encoder"]

PathLike = Union[str, os.PathLike]


#: The part of a NodeInputs holding a frozen backbone's precomputed embeddings.
CACHED = "backbone"


class BackboneEncoder(nn.Module):
    """A headless backbone plus a new linear classifier; follows :class:`~.protocol.Encoder`.

    ``(B, 3, H, W)`` float -> ``(B, num_classes)`` logits; ``embed``: ``(B, embedding_dim)``.

    Attributes:
        backbone: the model without its head, ``(B, 3, S, S) -> (B, D)`` pooled features.
        classifier: ``nn.Linear(D, K)``, freshly initialised.
        embedding_dim, num_classes: D, K.
        input_size: S, the side (px) the model was pretrained at; other sizes are resized.
        input_mean, input_std: the model's normalisation, 3-tuples in 0..1 units.
        frozen: backbone parameters do not train (``requires_grad_(True)`` on the whole module
            leaves them off) and the backbone stays in eval mode (``train()`` leaves it off).
        source: what was built, e.g. ``"timm:resnet18"``, ``"timm:test_vit(img_size=32)"``.
    """

    def __init__(self, backbone: nn.Module, embedding_dim: int, num_classes: int, input_size: int,
                 input_mean: Sequence[float] = IMAGENET_MEAN,
                 input_std: Sequence[float] = IMAGENET_STD, freeze: bool = False, source: str = ""):
        super().__init__()
        self.backbone = backbone
        self.embedding_dim, self.num_classes = int(embedding_dim), int(num_classes)
        self.classifier = nn.Linear(self.embedding_dim, self.num_classes)
        self.input_size = int(input_size)
        self.input_mean = tuple(float(v) for v in input_mean)
        self.input_std = tuple(float(v) for v in input_std)
        if len(self.input_mean) != 3 or len(self.input_std) != 3:
            raise ValueError(f"input_mean/input_std need 3 values, got {input_mean}, {input_std}")
        self.source = source
        self.set_frozen(freeze)

    def set_frozen(self, frozen: bool = True) -> "BackboneEncoder":
        """Freeze (linear probe) or unfreeze the backbone; the classifier always trains."""
        self.frozen = bool(frozen)
        self.backbone.requires_grad_(not self.frozen)
        return self.train(self.training)

    def train(self, mode: bool = True) -> "BackboneEncoder":
        """As ``nn.Module.train``, but a frozen backbone stays in eval mode (batch-norm
        statistics never move, dropout is off)."""
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    def requires_grad_(self, requires_grad: bool = True) -> "BackboneEncoder":
        """As ``nn.Module.requires_grad_``, but a frozen backbone keeps ``requires_grad=False``
        (e.g. through ``GridGraphNet.freeze_f(False)``); unfreeze with :meth:`set_frozen`."""
        super().requires_grad_(requires_grad)
        if self.frozen:
            self.backbone.requires_grad_(False)
        return self

    def embed(self, x: Tensor) -> Tensor:
        """``(B, 3, H, W)`` normalised float -> ``(B, embedding_dim)`` pooled features.

        ``H, W`` other than ``input_size`` are resized first (bilinear, antialiased). A frozen
        backbone runs without autograd unless ``x`` requires grad. Of a
        :class:`~gridgraph.patches.NodeInputs`, a frozen backbone returns its ``"backbone"``
        part (embeddings computed once, see :mod:`gridgraph.embeddings`) where it has one, and
        embeds its ``"image"`` part otherwise.
        """
        if isinstance(x, NodeInputs):
            if self.frozen and CACHED in x:
                return x[CACHED].float()
            x = x[IMAGE]
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"patches must have shape (B, 3, H, W), got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"embed() takes normalised float patches, got {x.dtype} "
                            "(normalise with input_mean/input_std first)")
        s = self.input_size
        if tuple(x.shape[-2:]) != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        quiet = self.frozen and not x.requires_grad
        with torch.no_grad() if quiet else contextlib.nullcontext():
            out = self.backbone(x)
        if isinstance(out, (tuple, list)):  # e.g. a model that also returns auxiliary logits
            out = out[0]
        if out.dim() != 2 or out.shape[1] != self.embedding_dim:
            raise RuntimeError(f"{self.source}: backbone returned {tuple(out.shape)}, expected "
                               f"pooled features (B, {self.embedding_dim})")
        return out

    def forward(self, x: Tensor) -> Tensor:
        """``(B, 3, H, W)`` -> ``(B, num_classes)`` logits: ``classifier(embed(x))``."""
        return self.classifier(self.embed(x))

    def backbone_state_id(self) -> str:
        """16 hex digits of SHA-256 over the backbone's state dict (sorted names, dtypes, shapes,
        bytes): equal weights give equal ids. A cache key part (see :meth:`cache_parts`)."""
        h = hashlib.sha256()
        for name, t in sorted(self.backbone.state_dict().items()):
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|{array_digest(t)}\n".encode())
        return h.hexdigest()[:16]

    def cache_parts(self) -> Dict[str, Any]:
        """What the embeddings depend on besides the patches: model, weights, input handling.
        Pass to :meth:`~.embedding_cache.EmbeddingCache.key` (``key(**f.cache_parts(), ...)``)."""
        return {"encoder": self.source, "backbone_state": self.backbone_state_id(),
                "input_size": self.input_size, "input_mean": self.input_mean,
                "input_std": self.input_std}

    def extra_repr(self) -> str:
        return (f"source={self.source!r}, embedding_dim={self.embedding_dim}, "
                f"num_classes={self.num_classes}, input_size={self.input_size}, "
                f"frozen={self.frozen}")


# ---------------------------------------------------------------------------- weights files

def _read_state(path: Path) -> Dict[str, Tensor]:
    """A flat ``name -> tensor`` dict from a weights file (see :func:`load_backbone_weights`)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except ImportError:
        raise ImportError(f"reading {path} needs the safetensors package "
                          "(pip install safetensors)") from None
    except Exception as err:
        raise ValueError(f"weights file {path} is not a readable state dict ({err}); save "
                         "model.state_dict() with torch.save or safetensors") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"weights file {path} does not hold a state dict of tensors")
    if state and all(k.startswith("module.") for k in state):  # saved from DataParallel/DDP
        state = {k[len("module."):]: v for k, v in state.items()}
    if any(k.startswith("backbone.") for k in state) and all(
            k.startswith(("backbone.", "classifier.")) for k in state):  # a BackboneEncoder's
        state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    return state


def _listed(keys: List[str], limit: int = 8) -> str:
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_backbone_weights(backbone: nn.Module, path: PathLike,
                          head_prefixes: Iterable[str] = ()) -> List[str]:
    """Load a weights file into ``backbone`` (in place); returns the head keys it dropped.

    Keys under a ``head_prefixes`` module (e.g. ``"fc"``) that ``backbone`` lacks are dropped
    (the old classifier). Every other key must match ``backbone``'s names and shapes exactly.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: unreadable file, or missing / unexpected keys or shape mismatches (named).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} not found (weights are read from local "
                                "files only; nothing is downloaded)")
    state = _read_state(path)
    own = backbone.state_dict()
    heads = tuple(f"{p}." for p in head_prefixes)
    dropped = sorted(k for k in state if k not in own and heads and k.startswith(heads))
    state = {k: v for k, v in state.items() if k not in dropped}
    problems = []
    missing = sorted(k for k in own if k not in state and not k.endswith("num_batches_tracked"))
    unexpected = sorted(k for k in state if k not in own)
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
              for k, v in own.items() if k in state and state[k].shape != v.shape]
    if missing:
        problems.append(f"missing keys: {_listed(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listed(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches (file vs model): {_listed(shapes)}")
    if problems:
        raise ValueError(f"weights file {path} does not fit the backbone: " + "; ".join(problems))
    backbone.load_state_dict(state, strict=False)  # only num_batches_tracked may be absent
    return dropped


# ---------------------------------------------------------------------------- builders

def _side(size: Any) -> int:
    """An int side from ``224``, ``(224, 224)`` or ``(3, 224, 224)`` (the larger of H, W)."""
    if isinstance(size, int):
        return size
    return int(max(tuple(size)[-2:]))


def _source(kind: str, name: str, kwargs: Dict[str, Any]) -> str:
    """``"timm:test_vit(img_size=32)"``: what was built, for messages and cache keys."""
    args = ", ".join(f"{k}={v!r}" for k, v in sorted(kwargs.items()))
    return f"{kind}:{name}" + (f"({args})" if args else "")


def _unknown(kind: str, name: str, known: Sequence[str]) -> ValueError:
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
    return ValueError(f"unknown {kind} model {name!r}" + (f"; close: {', '.join(close)}" if close else ""))


def timm_encoder(num_classes: int, model_name: str, weights: Optional[PathLike] = None,
                 freeze: bool = False, pretrained: bool = False,
                 input_size: Optional[int] = None, input_mean: Optional[Sequence[float]] = None,
                 input_std: Optional[Sequence[float]] = None, **model_kwargs: Any) -> BackboneEncoder:
    """Any timm model as f (needs the ``timm`` package: ``pip install 'gridgraph[timm]'``).

    Args:
        num_classes: K.
        model_name: a timm name, e.g. ``"resnet50"``, ``"vit_small_patch16_224.augreg_in21k"``;
            ``"local-dir:FOLDER"`` (timm's ``save_for_hf`` layout: its weights are loaded) or
            ``"hf-hub:ORG/NAME"`` from the local Hugging Face cache only
            (:mod:`~gridgraph.encoders.timm_source`).
        weights: a local file (``.pt``/``.pth`` state dict or ``.safetensors``), default none.
        freeze: linear probe: only the classifier trains (default ``False``).
        pretrained: let timm download its pretrained weights (default ``False``: never).
        input_size: override the side the model runs at (default: ``img_size`` when given in
            ``model_kwargs``, else the weights' own config, else the model's timm config).
        input_mean, input_std: the normalisation (0..1 units) when the weights' own config
            (``config.json`` of the folder or beside ``weights``) does not say it.
        **model_kwargs: passed to ``timm.create_model`` (e.g. ``drop_path_rate``, ``img_size``).

    Mean and std: the weights' own config, else ``input_mean``/``input_std``, else timm's
    ``resolve_data_config`` of the model where that describes the weights (timm's pretrained
    ones, or none); a frozen backbone with weights of no known normalisation is refused.
    """
    from .timm_source import resolve_normalisation, resolve_timm_name, weights_config

    try:
        import timm
    except ImportError:
        raise ImportError("encoder 'timm' needs the timm package: pip install 'gridgraph[timm]'") from None
    if pretrained and weights is not None:
        raise ValueError("pass either pretrained=True (download) or weights=<local file>, not both")
    name, folder = resolve_timm_name(model_name)
    if folder is None and not timm.is_model(model_name):
        raise _unknown("timm", model_name, timm.list_models())
    if folder is not None and weights is not None:
        raise ValueError(f"f: {model_name} brings its weights; weights={weights} too: give one")
    backbone = timm.create_model(name, pretrained=bool(pretrained) or folder is not None, num_classes=0,
                                 **model_kwargs)
    cfg = timm.data.resolve_data_config({}, model=backbone)
    own = weights_config(folder, weights)
    if input_size is None:
        input_size = _side(model_kwargs.get("img_size", (own or cfg)["input_size"]))
    source = _source("timm", model_name, model_kwargs)
    mean, std, _ = resolve_normalisation(source, own, input_mean, input_std, cfg,
                                         timm_knows=bool(pretrained) or "pretrained_cfg_overlay" in model_kwargs
                                         or weights is None and folder is None,
                                         frozen=freeze)
    dim = getattr(backbone, "head_hidden_size", None) or backbone.num_features
    if weights is not None:
        head = backbone.pretrained_cfg.get("classifier") or ()
        heads = [head] if isinstance(head, str) else list(head)
        load_backbone_weights(backbone, weights, heads + ["head", "fc", "classifier"])
    return BackboneEncoder(backbone, dim, num_classes, input_size, mean, std, freeze=freeze, source=source)


# torchvision models whose defaults need care: no auxiliary heads (their outputs are unused by f).
_TORCHVISION_DEFAULTS = {
    "inception_v3": {"aux_logits": False, "init_weights": True},
    "googlenet": {"aux_logits": False, "init_weights": True},
}
_AUX_HEADS = ["AuxLogits", "aux1", "aux2"]


def _torchvision_head(model: nn.Module, name: str) -> Tuple[str, nn.Linear]:
    """The dotted name and module of a torchvision classifier's final ``nn.Linear``."""
    for attr in ("fc", "classifier", "head", "heads"):
        module = getattr(model, attr, None)
        if isinstance(module, nn.Linear):
            return attr, module
        if isinstance(module, nn.Module):
            linears = [(n, m) for n, m in module.named_modules() if isinstance(m, nn.Linear)]
            if linears:
                return f"{attr}.{linears[-1][0]}", linears[-1][1]
    raise ValueError(f"torchvision model {name!r} has no final nn.Linear classifier "
                     "(under fc, classifier, head or heads), so it cannot serve as f")


def _torchvision_input(models: Any, name: str) -> Tuple[int, Sequence[float], Sequence[float]]:
    """Crop size, mean and std of the model's default weights' transforms (ImageNet 224 else)."""
    try:
        preset = models.get_model_weights(name).DEFAULT.transforms()
        return _side(preset.crop_size[0]), tuple(preset.mean), tuple(preset.std)
    except (ValueError, AttributeError, KeyError, TypeError, IndexError):
        return 224, IMAGENET_MEAN, IMAGENET_STD


def torchvision_encoder(num_classes: int, model_name: str, weights: Optional[PathLike] = None,
                        freeze: bool = False, input_size: Optional[int] = None,
                        **model_kwargs: Any) -> BackboneEncoder:
    """Any torchvision classification model as f (nothing is ever downloaded).

    The model's final ``nn.Linear`` (``fc``, or the last one under ``classifier``/``head``/
    ``heads``) becomes ``nn.Identity``: the embedding is that layer's input -- the pooled
    features for most models, the pretrained hidden layer for heads that have one (MobileNetV3,
    VGG, MaxViT). ``inception_v3``/``googlenet`` are built without auxiliary heads.

    Args:
        num_classes: K.
        model_name: a ``torchvision.models.list_models(module=torchvision.models)`` name.
        weights: a local state dict file (e.g. torchvision's downloaded ``resnet18-*.pth``);
            the old classifier's and auxiliary heads' keys are dropped. Default none (random).
        freeze: linear probe: only the classifier trains (default ``False``).
        input_size: override the side the model runs at (default: the model's ``image_size``
            where it has one (ViT), else the crop size of its default weights' transforms).
        **model_kwargs: passed to ``torchvision.models.get_model`` (e.g. ``dropout``).
    """
    from torchvision import models

    known = models.list_models(module=models)
    if model_name not in known:
        raise _unknown("torchvision", model_name, known)
    kwargs = {**_TORCHVISION_DEFAULTS.get(model_name, {}), **model_kwargs}
    backbone = models.get_model(model_name, weights=None, **kwargs)
    head_name, head = _torchvision_head(backbone, model_name)
    parent, _, leaf = head_name.rpartition(".")
    setattr(backbone.get_submodule(parent), leaf, nn.Identity())
    size, mean, std = _torchvision_input(models, model_name)
    fixed = getattr(backbone, "image_size", None)  # torchvision ViTs run at one size only
    if input_size is None:
        input_size = fixed if isinstance(fixed, int) else size
    if weights is not None:
        load_backbone_weights(backbone, weights, [head_name] + _AUX_HEADS)
    return BackboneEncoder(backbone, head.in_features, num_classes, input_size, mean, std,
                           freeze=freeze, source=_source("torchvision", model_name, model_kwargs))
