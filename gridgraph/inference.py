"""The one inference path: f's and f + g's class probabilities for prepared sections.

For a regression model (``model.regression``: an expression target) the "probabilities" are the
predicted values themselves (no softmax), scored by
:func:`~gridgraph.evaluate.regression.regression_metrics` against the sections' ``targets``.

Validation during training, ``gridgraph evaluate``, ``gridgraph predict`` and the benchmarks all
call :func:`predict_probs`, so a model scores the same wherever it is run.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Iterable, Iterator, Optional, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .evaluate import compute_metrics
from .evaluate.regression import regression_metrics
from .patches import SectionTensors

__all__ = ["autocast", "showing_progress", "f_outputs", "g_probs", "predict_probs", "predict_stream",
           "NonFiniteOutput", "check_finite", "evaluate_probs", "flat_metrics", "truth", "score", "node_embeddings"]

_PROGRESS = contextvars.ContextVar("gridgraph_inference_progress", default=False)


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA when ``enabled``; a no-op context elsewhere."""
    if not enabled or device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


@contextlib.contextmanager
def showing_progress(enabled: bool = True) -> Iterator[None]:
    """Within it, :func:`predict_stream` shows a progress bar on stderr over f's chunks, counted
    in nodes (``gridgraph predict`` turns it on when stderr is a terminal, or with ``--progress``)."""
    token = _PROGRESS.set(bool(enabled))
    try:
        yield
    finally:
        _PROGRESS.reset(token)


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _activate(model, out: Tensor) -> Tensor:
    """Class probabilities of logits; a regression model's values unchanged."""
    return out if getattr(model, "regression", False) else out.softmax(-1)


def truth(model, st: SectionTensors) -> Tensor:
    """What ``model``'s outputs are scored against: the section's ``labels``, or for a regression
    model its ``targets`` (an error naming the section when it has none)."""
    if not getattr(model, "regression", False):
        return st.labels
    if st.targets is None:
        raise ValueError(f"section {st.name}: the model predicts expression but the section has no targets "
                         "(counts read as the run's target)")
    return st.targets


def score(y: Tensor, pred: Tensor) -> dict:
    """The metrics of predictions ``pred`` against ``y``: class metrics of ``(N,)`` labels, or
    regression metrics of ``(N, G)`` float targets."""
    if y.dim() == 2 and y.is_floating_point():
        return regression_metrics(y, pred)
    return compute_metrics(y, pred)


@torch.no_grad()
def f_outputs(model, st: SectionTensors, amp: bool = False) -> tuple[Tensor, Tensor]:
    """f in eval mode on one section: its probabilities ``(N, K)`` on the CPU and g's input
    ``(N, C)`` on the model's device, both float32."""
    model.eval()
    with autocast(_device(model), amp):
        f_logits, g_in = model.f_outputs(st.patches)
    return _activate(model, f_logits.float()).cpu(), g_in.float()


@torch.no_grad()
def g_probs(model, g_in: Tensor, st: SectionTensors) -> Tensor:
    """g in eval mode on g's input for one section: probabilities ``(N, K)`` on the CPU."""
    model.eval()
    return _activate(model, model.g_outputs(g_in, st.graph.to(_device(model))).float()).cpu()


def predict_probs(model, sections: Sequence[SectionTensors], f_cache: Optional[Sequence] = None,
                  amp: bool = False) -> list:
    """``[(f_probs, g_probs), ...]``: per section, ``(N, K)`` float CPU tensors.

    ``f_cache``: per section ``(f_probs, g_in)`` already computed with this f (e.g. while f is
    frozen in two-stage training); f is then not run.
    """
    out = []
    for k, st in enumerate(sections):
        f_prob, g_in = f_cache[k] if f_cache is not None else f_outputs(model, st, amp)
        out.append((f_prob, g_probs(model, g_in, st)))
    return out


@torch.no_grad()
def predict_stream(model, chunks: Iterable, graph, amp: bool = False) -> tuple[Tensor, Tensor]:
    """f then g over a section whose patches arrive in chunks, e.g. read from a slide while f
    runs: only one chunk of patches and the ``(N, C)`` f outputs are held.

    ``chunks``: ``(n, 3, P, P)`` patch tensors in node order, or ``(node indices, patches)``
    pairs in any order (as :func:`~gridgraph.patches.slide.iter_slide_patches` yields them).
    Returns ``(f_probs, g_probs)``, ``(N, K)`` float CPU tensors, equal to :func:`predict_probs`.
    On a GPU model only f's chunk and outputs and g's input and graph are on the device.
    """
    model.eval()
    device, n = _device(model), graph.num_nodes
    f_probs = g_in = None
    seen = torch.zeros(n, dtype=torch.bool)
    at = 0
    with tqdm(total=n, desc="f", unit="node", disable=not _PROGRESS.get()) as bar:
        for chunk in chunks:
            idx, patches = chunk if isinstance(chunk, tuple) else (torch.arange(at, at + len(chunk)), chunk)
            at += len(patches)
            if idx.numel() and int(idx.max()) >= n:
                raise ValueError(f"got patches for node {int(idx.max())}, the graph has {n} nodes")
            with autocast(device, amp):
                f_logits, g_part = model.f_outputs(patches)  # the chunk moves to f's device there
            if f_probs is None:
                f_probs = torch.full((n, f_logits.shape[1]), float("nan"))
                g_in = torch.zeros((n, g_part.shape[1]), device=g_part.device)
            f_probs[idx] = _activate(model, f_logits.float()).cpu()
            g_in[idx.to(g_in.device)] = g_part.float()
            seen[idx] = True
            bar.update(len(patches))
    if f_probs is None or not bool(seen.all()):
        covered = int(seen.sum())
        raise ValueError(f"predict_stream() got patches for {covered} of the graph's {n} nodes"
                         + (f" (first without: node {int((~seen).nonzero()[0])})" if covered else ""))
    check_finite("f", f_probs)
    check_finite("f's output to g", g_in)
    g_logits = model.g_outputs(g_in, graph.to(device))
    g_probs = _activate(model, g_logits.float()).cpu()
    check_finite("g", g_probs)
    return f_probs, g_probs


class NonFiniteOutput(ValueError):
    """A model's output holds NaN or Inf for finite inputs (e.g. weights so large that float32
    overflows): nothing is written from it."""


def check_finite(head: str, values: Tensor) -> None:
    """Raise :class:`NonFiniteOutput` naming ``head`` (``"f"``, ``"g"``) and how many of the
    ``(N, K)`` rows of ``values`` hold NaN or Inf."""
    bad = ~torch.isfinite(values).all(dim=1) if values.dim() > 1 else ~torch.isfinite(values)
    if bool(bad.any()):
        count, first = int(bad.sum()), int(bad.nonzero()[0])
        raise NonFiniteOutput(f"{head} produced non-finite values (NaN or Inf) for {count} of the {len(values)} "
                              f"nodes (first: node {first}); the model overflows on this input (weights or inputs "
                              "too large for float32), so nothing was written")


def evaluate_probs(labels: Sequence[Tensor], probs: Sequence) -> dict:
    """Pooled metrics of f alone and of f + g: ``{"f": {...}, "f+g": {...}}`` (``labels``: each
    section's labels, or its ``(N, G)`` targets for a regression model; see :func:`score`)."""
    y = torch.cat(list(labels))
    return {
        "f": score(y, torch.cat([p[0] for p in probs])),
        "f+g": score(y, torch.cat([p[1] for p in probs])),
    }


@torch.no_grad()
def node_embeddings(model, st: SectionTensors, amp: bool = False) -> Tensor:
    """f's embedding ``(N, D)`` of every node of a section, float32 CPU, in eval mode (e.g. for a
    ridge baseline, :func:`~gridgraph.evaluate.ridge.fit_ridge`); chunked as f's passes are."""
    model.eval()
    with autocast(_device(model), amp):
        _, emb = model._encode(model._logits_and_embedding, st.patches, _device(model))
    return emb.float().cpu()


def flat_metrics(result: dict) -> dict:
    """``{"f": m1, "f+g": m2}`` -> ``{"f_<key>": ..., "<key>": ...}`` as in ``metrics.jsonl``."""
    return {**{f"f_{k}": v for k, v in result["f"].items()}, **result["f+g"]}
