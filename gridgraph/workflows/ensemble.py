"""Several trained models that predict as one: an ``ensemble.pt`` (``gridgraph tune`` writes the
K best trials) or checkpoints given together (``gridgraph predict a.pt b.pt ...``).

Each member reads a section with its own graph and patch settings and predicts f's and f + g's
class probabilities; the ensemble combines them node by node. ``mean`` (the default) averages
the probabilities; ``vote`` is the GridNet paper's unweighted vote: each member votes for its
most probable class, the "probabilities" are the fractions of votes and ties go to the class of
highest mean probability. Mean is the default because it keeps probabilities that AUROC, the
confidence columns and the figures can use (five votes give only six levels per class, and ties
are frequent with five or more classes); both are reported by ``gridgraph evaluate``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from ..checkpoint import ENSEMBLE_METHODS, Checkpoint, EnsembleFile, load_trained
from ..evaluate import ensemble as combine_probs
from ..features import modalities
from ..model import GridGraphNet
from ..train import pick_device
from .build import model_for, with_prediction_settings

__all__ = ["Ensemble", "combine_probabilities", "load_predictor", "member_checkpoints"]


def _kinds(ckpt: Checkpoint) -> list:
    return sorted({o["kind"] for o in modalities(ckpt.config.f.name, ckpt.config.f.kwargs).values()})


def _reader(ckpt: Checkpoint) -> tuple:
    return ckpt.config.data.name, ckpt.config.data.kwargs


class Ensemble:
    """Trained models (``members``: ``(model, checkpoint)`` pairs) that predict as one.

    Args:
        members: at least one ``(model, checkpoint)``; all predict the same classes in the same
            order, read their sections with the same reader settings and take the same kinds of
            input (image, expression, embeddings); graph and patch settings may differ.
        method: ``"mean"`` or ``"vote"`` (see the module's description).
        path: the ``ensemble.pt`` it was read from, if any.
        sources: a name per member, as provenance records it.
    """

    def __init__(self, members: Sequence[tuple], method: str = "mean", path=None,
                 sources: Optional[Sequence[str]] = None):
        if not members:
            raise ValueError("an ensemble needs at least one member")
        if method not in ENSEMBLE_METHODS:
            raise ValueError(f"ensemble method must be one of {', '.join(ENSEMBLE_METHODS)}, got {method!r}")
        self.members = list(members)
        self.method = method
        self.path = Path(path).resolve() if path is not None else None
        self.sources = [str(s) for s in sources] if sources else [str(c.path) for _, c in self.members]
        first_name, first = self.sources[0], self.members[0][1]
        kinds = {bool(getattr(m, "regression", False)) for m, _ in self.members}
        if len(kinds) > 1:
            raise ValueError("an ensemble's members must all predict classes or all predict expression")
        if self.regression and method == "vote":
            raise ValueError("an ensemble of expression models averages their values: method 'vote' is for classes")
        for name, (_, ckpt) in zip(self.sources[1:], self.members[1:]):
            if ckpt.classes != first.classes:
                raise ValueError(f"{name}: classes {ckpt.classes} differ from {first_name}'s {first.classes}: "
                                 "an ensemble's members must predict the same classes in the same order")
            if _reader(ckpt) != _reader(first):
                raise ValueError(f"{name}: trained on reader {_reader(ckpt)[0]!r} {_reader(ckpt)[1]}, "
                                 f"{first_name} on {_reader(first)[0]!r} {_reader(first)[1]}: an ensemble "
                                 "reads each section once, with one reader's settings")
            if _kinds(ckpt) != _kinds(first):
                raise ValueError(f"{name}: f reads {_kinds(ckpt)}, {first_name}'s f reads {_kinds(first)}: "
                                 "an ensemble's members must take the same kinds of input")

    @property
    def classes(self) -> list:
        return self.members[0][1].classes

    @property
    def regression(self) -> bool:
        """True for members that predict expression (values are averaged, not voted)."""
        return bool(getattr(self.members[0][0], "regression", False))

    @property
    def checkpoints(self) -> list:
        return [c for _, c in self.members]

    @property
    def use_g(self) -> torch.Tensor:
        """True when any member uses its g (the ensemble's f + g column then differs from f's)."""
        return torch.tensor(any(bool(m.use_g) for m, _ in self.members))

    def __len__(self) -> int:
        return len(self.members)

    def __repr__(self) -> str:
        fs = sorted({c.config.f.name for c in self.checkpoints})
        gs = sorted({c.config.g.name for c in self.checkpoints})
        return (f"Ensemble({len(self)} members, method={self.method!r}, f={'/'.join(fs)}, g={'/'.join(gs)}, "
                f"classes={len(self.classes)})")

    def to(self, device) -> "Ensemble":
        for model, _ in self.members:
            model.to(device)
        return self

    def combine(self, probs: Sequence) -> torch.Tensor:
        """The members' probabilities combined by the ensemble's method (:func:`combine_probabilities`)."""
        return combine_probabilities(probs, self.method)

    def provenance(self) -> dict:
        """What :func:`~gridgraph.io.writers.predictions.prediction_provenance` records of an ensemble."""
        from ..io.writers.predictions import prediction_provenance

        cks = self.checkpoints
        g_used = bool(self.use_g)
        g = "/".join(sorted({c.config.g.name for (m, c) in self.members if bool(m.use_g)})) if g_used else None
        where = self.path if self.path is not None else cks[0].path
        return prediction_provenance(where, "/".join(sorted({c.config.f.name for c in cks})), g,
                                     ensemble_method=self.method, members=list(self.sources),
                                     trained_with=dict(cks[0].versions))


def combine_probabilities(probs: Sequence, method: str = "mean") -> torch.Tensor:
    """``M x (N, K)`` member probabilities -> the ensemble's ``(N, K)`` float32 scores, whose
    argmax is the ensemble's label: ``mean`` their mean; ``vote`` the fractions of votes, where
    in a tied row the winner (:func:`~gridgraph.evaluate.majority_vote`) is raised by one ulp."""
    labels, scores = combine_probs([torch.as_tensor(p).double() for p in probs], method=method)
    scores = scores.astype(np.float32)
    if method == "vote":
        rows = np.flatnonzero((scores == scores.max(axis=1, keepdims=True)).sum(axis=1) > 1)
        scores[rows, labels[rows]] = np.nextafter(scores[rows, labels[rows]], np.float32(np.inf))
    return torch.from_numpy(scores)


def member_checkpoints(paths: Sequence, map_location="cpu") -> tuple[list, list, Optional[EnsembleFile]]:
    """``(checkpoints, their names, the ensemble file if one was given)`` of checkpoint and
    ensemble files; an ensemble file is expanded into its members (``file member i``)."""
    ckpts, names, ens = [], [], None
    for p in paths:
        loaded = load_trained(p, map_location=map_location)
        if isinstance(loaded, EnsembleFile):
            ens = loaded if len(paths) == 1 else None
            ckpts += loaded.members
            names += [f"{p} member {i} ({s})" if s else f"{p} member {i}"
                      for i, s in enumerate(loaded.sources or [""] * len(loaded.members))]
        else:
            ckpts.append(loaded)
            names.append(str(p))
    return ckpts, names, ens


def load_predictor(paths: Union[str, Path, Sequence], method: Optional[str] = None, device="cpu",
                   overrides: Sequence[str] = ()) -> tuple[Union[GridGraphNet, Ensemble], Checkpoint]:
    """``(model, checkpoint)`` for one checkpoint file (as :func:`~gridgraph.workflows.load_model`);
    ``(Ensemble, its first member's checkpoint)`` for an ``ensemble.pt`` or several files
    (ensembles inside are expanded). ``method``: ``mean`` or ``vote`` (default the ensemble
    file's, else ``mean``); ``device`` and ``overrides`` as :func:`~gridgraph.workflows.load_model`'s,
    for every member. The checkpoint returned says how sections are read (every member reads
    them alike)."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not paths:
        raise ValueError("give at least one checkpoint")
    where = pick_device(device, setting="device")
    ckpts, names, ens = member_checkpoints(paths)
    ckpts = [with_prediction_settings(c, overrides) for c in ckpts]
    if len(ckpts) == 1 and ens is None:
        if method is not None:
            raise ValueError(f"--ensemble-method {method}: one checkpoint is not an ensemble")
        return model_for(ckpts[0], paths[0]).to(where), ckpts[0]
    members = [(model_for(c, n).to(where), c) for c, n in zip(ckpts, names)]
    ensemble = Ensemble(members, method or (ens.method if ens is not None else "mean"),
                        path=ens.path if ens is not None else None, sources=names)
    return ensemble, ckpts[0]
