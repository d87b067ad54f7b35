"""Where a timm backbone comes from, and how its input is normalised.

Model names: a timm registry name (``"vit_large_patch16_224"``), ``"local-dir:FOLDER"`` (a folder as
``timm.models.save_for_hf`` writes it: ``config.json`` with the architecture, its arguments and
``pretrained_cfg``, beside ``model.safetensors`` or ``pytorch_model.bin``) or ``"hf-hub:ORG/NAME"``,
read from the local Hugging Face cache only: nothing is downloaded.

Normalisation (mean, std) and input size: the weights' own config when they have one (the
folder's ``config.json``, or a ``config.json`` beside a ``weights=`` file), else the ``f.kwargs``
(``input_mean``, ``input_std``, ``input_size``), else timm's config of the model where it
describes the weights (timm's own pretrained weights, or none at all). A frozen backbone with
weights of no known normalisation is refused rather than fed patches normalised by a guess.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence, Tuple

__all__ = ["resolve_timm_name", "weights_config", "resolve_normalisation"]

LOCAL, HUB = "local-dir:", "hf-hub:"


def resolve_timm_name(model_name: str) -> Tuple[str, Optional[Path]]:
    """``(name for timm.create_model, local folder or None)``: ``hf-hub:ID`` becomes
    ``local-dir:<its snapshot in the Hugging Face cache>``; ``FileNotFoundError`` when the folder
    (or the cached model) is not there, naming what was looked for."""
    if model_name.startswith(LOCAL):
        folder = Path(model_name[len(LOCAL):]).expanduser()
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"f: {model_name}: no {folder / 'config.json'}; expected a folder as "
                                    "timm.models.save_for_hf writes it (config.json and model.safetensors)")
        return f"{LOCAL}{folder}", folder
    if model_name.startswith(HUB):
        repo = model_name[len(HUB):].split("@")[0]
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            raise ImportError(f"f: {model_name} needs the huggingface_hub package (pip install huggingface_hub)") from None
        found = try_to_load_from_cache(repo_id=repo, filename="config.json")
        if not isinstance(found, str):
            raise FileNotFoundError(f"f: {model_name}: not in the local Hugging Face cache (gridgraph never downloads); "
                                    f"fetch it first (huggingface-cli download {repo}) or give local-dir:FOLDER")
        return resolve_timm_name(f"{LOCAL}{Path(found).parent}")
    return model_name, None


def weights_config(folder: Optional[Path], weights=None) -> Optional[dict]:
    """The ``pretrained_cfg`` of the weights' own ``config.json`` (in ``folder``, else beside the
    ``weights`` file), ``None`` when there is none or it names no mean and std."""
    path = folder / "config.json" if folder is not None else (
        Path(weights).parent / "config.json" if weights is not None else None)
    if path is None or not path.is_file():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{path}: not a JSON file (expected timm's config.json with pretrained_cfg)") from None
    cfg = config.get("pretrained_cfg") if isinstance(config, dict) else None
    if not isinstance(cfg, dict) or "mean" not in cfg or "std" not in cfg:
        return None
    return {**cfg, "file": str(path)}


def _three(values, what: str, source: str) -> tuple:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        out = ()
    if len(out) != 3:
        raise ValueError(f"f: {source}: {what} needs 3 numbers (R, G, B in 0..1 units), got {values!r}")
    return out


def resolve_normalisation(source: str, own: Optional[dict], mean: Optional[Sequence[float]],
                          std: Optional[Sequence[float]], timm_cfg: dict, timm_knows: bool,
                          frozen: bool) -> Tuple[tuple, tuple, str]:
    """``(mean, std, where)``: the weights' own config (``own``; ``mean``/``std`` given too must
    agree), else the given ``mean``/``std`` (both), else timm's config when ``timm_knows`` it
    describes the weights or the backbone trains; a frozen backbone of unknown normalisation is a
    ``ValueError`` naming the settings that give it."""
    if (mean is None) != (std is None):
        raise ValueError(f"f: {source}: give input_mean and input_std together")
    given = None if mean is None else (_three(mean, "input_mean", source), _three(std, "input_std", source))
    if own is not None:
        theirs = (_three(own["mean"], "mean", own["file"]), _three(own["std"], "std", own["file"]))
        if given is not None and any(abs(a - b) > 1e-6 for g, t in zip(given, theirs) for a, b in zip(g, t)):
            raise ValueError(f"f: {source}: input_mean/input_std {given[0]}/{given[1]} differ from the weights' "
                             f"own {theirs[0]}/{theirs[1]} ({own['file']}); leave them out")
        return theirs[0], theirs[1], own["file"]
    if given is not None:
        return given[0], given[1], "f.kwargs"
    if timm_knows or not frozen:
        return tuple(timm_cfg["mean"]), tuple(timm_cfg["std"]), "timm"
    raise ValueError(f"f: {source}: the normalisation of its frozen weights is unknown (no config.json with "
                     "pretrained_cfg beside them); give f.kwargs.input_mean and input_std (e.g. ImageNet's "
                     "[0.485, 0.456, 0.406] and [0.229, 0.224, 0.225], as the weights' model card says) "
                     "or a local-dir: folder with its config.json")
