"""Cross-fitted f outputs for training g: each training section seen by an f that never trained
on it, so g learns to correct f's errors on unseen tissue rather than on its training sections.
"""
from __future__ import annotations

import copy
from typing import Callable, Sequence

from ..inference import f_outputs
from ..patches import SectionTensors

__all__ = ["cross_fit_groups", "cross_fitted_outputs"]


def cross_fit_groups(n: int, folds: int, block: int = 1) -> list:
    """Group of each of ``n`` training sections: consecutive blocks of ``block`` sections (e.g.
    2 for adjacent section pairs, which must not predict each other) dealt round-robin to
    ``folds`` groups. ``ValueError`` when a group would be empty."""
    if folds < 2 or block < 1:
        raise ValueError(f"cross-fitting needs folds >= 2 and block >= 1, got {folds}, {block}")
    groups = [(i // block) % folds for i in range(n)]
    if len(set(groups)) < folds:
        raise ValueError(f"train.cross_fit={folds} with cross_fit_block={block} needs at least "
                         f"{folds * block} training sections, got {n}")
    return groups


def cross_fitted_outputs(model, f_init: dict, train: Sequence[SectionTensors], val: Sequence[SectionTensors],
                         groups: Sequence[int], fit_f: Callable, amp: bool = False,
                         log: Callable[[str], None] = print) -> list:
    """``(f_probs, g_in)`` of every training section from an f trained without its group.

    For each group: a copy of ``model`` with f reset to ``f_init`` is trained by
    ``fit_f(copy, sections, val, group)`` (stage f alone, best epoch by validation) on the other
    groups' sections, then predicts the group's sections. Returns the outputs in section order,
    g_in on the model's device.
    """
    out: list = [None] * len(train)
    device = next(model.parameters()).device
    for group in sorted(set(groups)):
        held = [k for k, gr in enumerate(groups) if gr == group]
        rest = [st for k, st in enumerate(train) if groups[k] != group]
        fold = copy.deepcopy(model)
        fold.f.load_state_dict(f_init)
        log(f"cross-fit {group + 1}/{len(set(groups))}: f trained on {len(rest)} sections predicts "
            f"{', '.join(train[k].name for k in held)}")
        fit_f(fold, rest, val, group)
        for k in held:
            f_prob, g_in = f_outputs(fold, train[k], amp)
            out[k] = (f_prob, g_in.to(device))
        del fold
    return out
