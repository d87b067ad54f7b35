"""A frozen backbone is stored once in last.pt (not again in its best states), and resuming works."""
from pathlib import Path

import pytest
import torch

from gridgraph.train.state import snapshot
from gridgraph.workflows import run_training

from helpers import tiny_config

timm = pytest.importorskip("timm")
FROZEN = {"name": "timm", "kwargs": {"model_name": "test_resnet", "freeze": True,
                                     "input_mean": [0.5, 0.5, 0.5], "input_std": [0.25, 0.25, 0.25]}}


def _frozen_cfg(tmp_path, **train):
    cfg = tiny_config(tmp_path, **train).to_dict()
    cfg["f"] = FROZEN
    from gridgraph.config import make_config

    return make_config(cfg)


def test_snapshot_shares_only_a_frozen_backbones_tensors():
    from gridgraph.encoders import build_encoder

    f = build_encoder("timm", 3, **FROZEN["kwargs"])
    snap, state = snapshot(f), f.state_dict()
    backbone = [k for k in state if k.startswith("backbone.")]
    assert backbone and all(snap[k].data_ptr() == state[k].data_ptr() for k in backbone)
    others = [k for k in state if not k.startswith("backbone.")]
    assert others and all(snap[k].data_ptr() != state[k].data_ptr() for k in others)
    assert all(torch.equal(snap[k], state[k]) for k in state)


def test_last_pt_holds_a_frozen_backbone_once_and_resumes(tmp_path):
    cfg = _frozen_cfg(tmp_path, epochs_f=1, epochs_g=1)
    run_training(cfg, figures=False, log=lambda line: None)
    run = Path(cfg.output)
    backbone_bytes = sum(v.numel() * v.element_size() for k, v in
                         torch.load(run / "best.pt", weights_only=True)["model"].items() if ".backbone." in k)
    last = (run / "last.pt").stat().st_size
    assert backbone_bytes > 0 and last < (run / "best.pt").stat().st_size + backbone_bytes // 2  # not 3x
    lines = []
    more = cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs_g": 2})})
    run_training(more, figures=False, log=lines.append)  # resumes from last.pt
    assert any("resuming from" in line for line in lines)
    assert (run / "last.pt").stat().st_size < (run / "best.pt").stat().st_size + backbone_bytes // 2  # still once
