"""Node patches: extraction (uint8, foreground only) and batch-time transforms."""
from .extract import extract_patches, section_patches
from .transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Normalize,
    RandomDihedral,
    dihedral,
    normalize,
    random_dihedral,
    standardize_stain,
)

__all__ = [
    "extract_patches",
    "section_patches",
    "normalize",
    "Normalize",
    "dihedral",
    "random_dihedral",
    "RandomDihedral",
    "standardize_stain",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]
