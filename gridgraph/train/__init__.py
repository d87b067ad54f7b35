"""Training: one :class:`Trainer` for the two-stage, at-once and fine-tune regimens."""
from .checkpoint import load_checkpoint, save_checkpoint
from .optim import joint_optimizer, make_adam
from .trainer import STAGES, Trainer, masked_cross_entropy, pick_device

__all__ = [
    "Trainer",
    "STAGES",
    "masked_cross_entropy",
    "pick_device",
    "joint_optimizer",
    "make_adam",
    "save_checkpoint",
    "load_checkpoint",
]
