"""Optimizers of the three regimens (Adam throughout)."""
from __future__ import annotations

from typing import Iterable, Optional

import torch
from torch import nn


def make_adam(params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float = 0.0):
    return torch.optim.Adam(list(params), lr=lr, weight_decay=weight_decay)


def joint_optimizer(
    f: nn.Module,
    g: nn.Module,
    lr: float,
    alpha: float,
    weight_decay: float = 0.0,
    g_state: Optional[dict] = None,
) -> torch.optim.Adam:
    """Adam with two parameter groups: g at ``lr``, f at ``alpha * lr``.

    ``g_state``: the ``state_dict()`` of an Adam over ``g.parameters()`` alone (stage 2 of a
    two-stage run). Its per-parameter moments and step counts are carried over to g's group, so
    g continues where it stopped while f starts with fresh state (the fine-tune regimen).
    """
    g_params, f_params = list(g.parameters()), list(f.parameters())
    opt = torch.optim.Adam(
        [
            {"params": g_params, "lr": lr, "name": "g"},
            {"params": f_params, "lr": alpha * lr, "name": "f"},
        ],
        weight_decay=weight_decay,
    )
    if g_state is not None:
        saved = g_state["state"]
        ids = g_state["param_groups"][0]["params"]
        if len(ids) != len(g_params):
            raise ValueError(
                f"g optimizer state holds {len(ids)} parameters, g has {len(g_params)}"
            )
        for pid, p in zip(ids, g_params):
            if pid in saved:
                opt.state[p] = {k: v.clone() if torch.is_tensor(v) else v for k, v in saved[pid].items()}
    return opt
