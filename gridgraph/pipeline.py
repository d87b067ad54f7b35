"""End-to-end steps shared by the CLI, the examples and the benchmarks.

config -> sections -> model -> :class:`~gridgraph.train.Trainer` -> evaluation -> files.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from .config import ConfigError, dump_config
from .datasets import SectionTensors, load_splits, prepare, rebuild_graph, unify_classes
from .evaluate import accuracy, compute_metrics, confusion_matrix, ensemble, format_comparison, mean_std
from .io.atomic import atomic_write
from .model import GridGraphNet, build_model
from .train import Trainer, load_checkpoint


def model_from_config(cfg: dict, num_classes: int, pretrained: bool = True) -> GridGraphNet:
    """The :class:`GridGraphNet` a config describes (``f``, ``g``, ``model``, ``train.chunk_size``).

    ``pretrained=False`` skips f's ``weights`` argument (the weights come from a checkpoint).
    """
    f_kwargs = dict(cfg["f"]["kwargs"])
    if not pretrained:
        f_kwargs.pop("weights", None)
    try:
        return build_model(
            num_classes,
            encoder=cfg["f"]["name"],
            corrector=cfg["g"]["name"],
            g_input=cfg["model"]["g_input"],
            g_residual=cfg["model"].get("g_residual", False),
            encoder_kwargs=f_kwargs,
            corrector_kwargs=dict(cfg["g"]["kwargs"]),
            chunk_size=cfg["train"]["chunk_size"],
            checkpoint=cfg["train"]["checkpoint"],
        )
    except TypeError as err:  # a misspelt keyword in f.kwargs or g.kwargs
        raise ConfigError(f"f.kwargs / g.kwargs: {err}") from None


def load_model(path, map_location="cpu") -> tuple[GridGraphNet, dict]:
    """Rebuild a model from a checkpoint file alone; returns ``(model, checkpoint)``."""
    ckpt = load_checkpoint(path, map_location=map_location)
    model = model_from_config(ckpt["config"], len(ckpt["classes"]), pretrained=False)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        raise ValueError(f"{path}: field 'model' does not fit the model its config describes ({err})") from err
    return model.eval(), ckpt


@torch.no_grad()
def predict_probs(model: GridGraphNet, sections: Sequence[SectionTensors], device=None) -> list:
    """``[(f_probs, g_probs), ...]`` per section, ``(N, K)`` float CPU tensors."""
    device = device or next(model.parameters()).device
    model.eval()
    out = []
    for st in sections:
        f_logits, g_in = model.f_outputs(st.patches)
        g_logits = model.g_outputs(g_in, st.graph.to(device))
        out.append((f_logits.float().softmax(-1).cpu(), g_logits.float().softmax(-1).cpu()))
    return out


def evaluate_sections(labels: Sequence[torch.Tensor], probs: Sequence) -> dict:
    """Pooled metrics of f alone and of f + g: ``{"f": {...}, "f+g": {...}}``."""
    y = torch.cat(list(labels))
    return {
        "f": compute_metrics(y, torch.cat([p[0] for p in probs])),
        "f+g": compute_metrics(y, torch.cat([p[1] for p in probs])),
    }


def write_json(path, obj) -> None:
    with atomic_write(path) as fh:
        json.dump(obj, fh, indent=2, default=float)


def section_figures(st: SectionTensors, probs, classes, out_dir: Path, prefix: str = "") -> list:
    """true / f / f+g label maps and misclassification maps of one section, as PNGs."""
    from .plot import plot_misclassification, plot_predictions

    f_prob, g_prob = probs
    y = st.labels.numpy()
    image = st.section.load_image() if st.section is not None and st.section.image is not None else None
    paths = [out_dir / f"{prefix}{st.name.replace('/', '_')}_labels.png",
             out_dir / f"{prefix}{st.name.replace('/', '_')}_misclassification.png"]
    plot_predictions(st.graph, y, f_prob.numpy(), g_prob.numpy(), classes, image=image, path=paths[0])
    plot_misclassification(st.graph, y, {"f": f_prob.numpy(), "f+g": g_prob.numpy()}, image=image, path=paths[1])
    return paths


def run_training(cfg: dict, resume: bool = True, log: Callable[[str], None] = print,
                 figures: bool = True) -> dict:
    """Train as ``cfg`` says, evaluate the best model on the test split, write everything.

    Writes into ``cfg["output"]``: ``config.yaml``, ``last.pt``, ``best.pt``, ``metrics.jsonl``,
    ``test_metrics.json`` and, with ``figures``, maps of the first test (else validation) section
    and the test confusion matrix. Returns ``{"val": ..., "test": ..., "classes": ...}``.
    """
    from .plot import plot_confusion_matrix

    out = Path(cfg["output"])
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "config.yaml") as fh:
        fh.write(dump_config(cfg))
    torch.manual_seed(cfg["seed"])
    np.random.seed(cfg["seed"] % 2**32)
    splits, classes = load_splits(cfg)
    for split in ("train", "val", "test"):
        n = sum(st.num_nodes for st in splits[split])
        log(f"{split}: {len(splits[split])} sections, {n} nodes")
    first = splits["train"][0]
    if first.section is not None:
        log(first.section.summary())
        if figures:
            from .plot import plot_label_map

            image = first.section.load_image() if first.section.image is not None else None
            plot_label_map(first.graph, first.labels.numpy(), classes, image=image,
                           title=f"{first.name}: labels", path=out / "train_labels.png")
    model = model_from_config(cfg, len(classes))
    trainer = Trainer(model, cfg, classes, out_dir=out, log=log)
    trainer.fit(splits["train"], splits["val"], resume=resume)
    result, probs = {"classes": classes}, {}
    for split in ("val", "test"):
        if splits[split]:
            probs[split] = predict_probs(model, splits[split])
            result[split] = evaluate_sections([st.labels for st in splits[split]], probs[split])
    write_json(out / "test_metrics.json", result)
    which = "test" if splits["test"] else "val"
    shown, probs = splits[which], probs[which]
    log(f"\n{which} split, best model:\n" + format_comparison(result[which]))
    if figures:
        section_figures(shown[0], probs[0], classes, out)
        y = torch.cat([st.labels for st in shown]).numpy()
        pred = torch.cat([p[1] for p in probs]).argmax(1).numpy()
        plot_confusion_matrix(confusion_matrix(y, pred, num_classes=len(classes)), classes,
                              title=f"f+g, {which}", path=out / f"confusion_{which}.png")
    return result


def load_data_like(ckpt_cfg: dict, data_cfg: Optional[dict], split: str, classes) -> list:
    """Sections of ``split`` read with ``data_cfg`` (or the checkpoint's own data settings),
    the checkpoint's graph and patch settings, and its classes."""
    cfg = dict(ckpt_cfg)
    if data_cfg is not None:
        cfg = {**cfg, "data": data_cfg}
    splits, _ = load_splits(cfg, splits=(split,), classes=classes)
    return splits[split]


def evaluate_checkpoints(paths: Sequence, data_cfg: Optional[dict] = None, split: str = "test",
                         log: Callable[[str], None] = print) -> dict:
    """Each checkpoint's metrics on ``split`` plus the mean-softmax and majority-vote ensembles."""
    models = [load_model(p) for p in paths]
    classes = models[0][1]["classes"]
    for p, (_, ck) in zip(paths, models):
        if ck["classes"] != classes:
            raise ValueError(f"{p}: classes {ck['classes']} differ from {paths[0]}'s {classes}")
    sections = load_data_like(models[0][1]["config"], data_cfg, split, classes)
    if not sections:
        raise ValueError(f"data split {split!r} lists no sections")
    y = torch.cat([st.labels for st in sections])
    per_model, stacked = {}, {"f": [], "f+g": []}
    for p, (model, _) in zip(paths, models):
        probs = predict_probs(model, sections)
        res = evaluate_sections([st.labels for st in sections], probs)
        per_model[str(p)] = res
        stacked["f"].append(torch.cat([q[0] for q in probs]).numpy())
        stacked["f+g"].append(torch.cat([q[1] for q in probs]).numpy())
    result = {"classes": classes, "split": split, "models": per_model}
    if len(paths) > 1:
        for head in ("f", "f+g"):
            stack = np.stack(stacked[head])
            for method in ("mean", "vote"):
                labels, scores = ensemble(stack, method=method)
                metrics = compute_metrics(y, scores)
                metrics["accuracy"] = accuracy(y, labels)
                result[f"ensemble_{method}_{head}"] = metrics
            spread = mean_std([m[head]["accuracy"] for m in per_model.values()])
            result[f"accuracy_over_models_{head}"] = {"mean": spread.mean, "sd": spread.std}
    return result


def predict_section(model: GridGraphNet, ckpt: dict, section, out_dir, figures: bool = True) -> dict:
    """Predict one raw :class:`~gridgraph.io.Section` with a loaded checkpoint and write
    ``predictions.csv`` (id, label, class probabilities), ``predictions_loupe.csv`` (for spots
    with barcodes) and ``predictions.png``. Returns the paths."""
    from .io import write_loupe_csv, write_predictions
    from .plot import plot_label_maps

    cfg, classes = ckpt["config"], ckpt["classes"]
    section = rebuild_graph(section, cfg.get("graph"))
    if section.classes and section.labels.ge(0).any():
        section = unify_classes([section], classes)[0]
    st = prepare(section, cfg["patches"])
    (f_prob, g_prob), = predict_probs(model, [st])
    out_dir = Path(out_dir)
    names = [classes[i] for i in g_prob.argmax(1).tolist()]
    paths = {"table": write_predictions(out_dir / "predictions.csv", section.barcodes, names,
                                        g_prob.numpy(), classes)}
    paths["loupe"] = write_loupe_csv(out_dir / "predictions_loupe.csv", section.barcodes, names,
                                     category="gridgraph")
    if figures:
        image = section.load_image() if section.image is not None else None
        panels = {"f": f_prob.numpy(), "f+g": g_prob.numpy()}
        if section.labels.ge(0).any():
            panels = {"true": section.labels.numpy(), **panels}
        paths["figure"] = out_dir / "predictions.png"
        plot_label_maps(st.graph, panels, classes, image=image, path=paths["figure"])
    return paths
