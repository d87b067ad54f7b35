"""Training: one :class:`Trainer` for the two-stage, at-once and fine-tune regimens.

Where things live: :mod:`.regimen` (stages and their optimizers), :mod:`.loops` (epoch loops and
the loss), :mod:`.state` (progress and best models), :mod:`.checkpoint` (files of a run folder),
:mod:`.f_cache` (f's outputs computed once), :mod:`.optim` (Adam of the regimens),
:mod:`.pretrain` (self-supervised epochs of f before its stage), :mod:`.cross_fit` (g's inputs
from f's trained without each section).
"""
from ..config import TrainConfig
from .checkpoint import CheckpointManager, load_checkpoint, save_checkpoint
from .f_cache import FOutputCache
from .loops import PatchAugment, masked_cross_entropy, patch_epoch, section_epoch
from .optim import joint_optimizer, make_adam
from .pretrain import pretrain_f
from .regimen import StagePlan, make_optimizer, plan_stages
from .state import TrainingState
from .objective import score_key
from .trainer import Trainer, pick_device

__all__ = [
    "Trainer",
    "TrainConfig",
    "TrainingState",
    "StagePlan",
    "plan_stages",
    "make_optimizer",
    "CheckpointManager",
    "FOutputCache",
    "PatchAugment",
    "patch_epoch",
    "section_epoch",
    "masked_cross_entropy",
    "pick_device",
    "score_key",
    "joint_optimizer",
    "make_adam",
    "pretrain_f",
    "save_checkpoint",
    "load_checkpoint",
]
