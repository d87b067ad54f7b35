"""Node patches: extraction (uint8, foreground only) and batch-time transforms."""
from .extract import extract_patches, iter_section_patches, section_patches, window_for_resolution
from .node_inputs import IMAGE, NodeInputs, map_image, num_inputs
from .section_tensors import SectionTensors, prepare_section
from .stain import apply_stain_table, section_stain_table, stain_table
from .transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Normalize,
    RandomColorJitter,
    RandomDihedral,
    adjust_color,
    dihedral,
    normalize,
    random_color_jitter,
    random_dihedral,
    standardize_stain,
)

__all__ = [
    "extract_patches",
    "section_patches",
    "iter_section_patches",
    "window_for_resolution",
    "SectionTensors",
    "NodeInputs",
    "IMAGE",
    "map_image",
    "num_inputs",
    "prepare_section",
    "normalize",
    "Normalize",
    "dihedral",
    "random_dihedral",
    "RandomDihedral",
    "adjust_color",
    "random_color_jitter",
    "RandomColorJitter",
    "standardize_stain",
    "stain_table",
    "apply_stain_table",
    "section_stain_table",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]
