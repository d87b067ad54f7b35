"""Node patches: extraction (uint8, foreground only) and batch-time transforms.

Modules, lowest first (none imports one above it): ``window`` (the :class:`Window` and its
platform default), ``stain`` (colour-table math), ``cut`` (corners, reading order, cutting and
resizing windows), ``slide`` (whole-slide images, block by block), ``extract`` (a section's
patches), ``plan`` (:class:`SectionPatchPlan`: window -> colour table -> patches),
``section_tensors`` (:func:`prepare_section`); ``node_inputs`` and ``transforms`` (batch time).
"""
from .extract import extract_patches, iter_section_patches, section_patches
from .node_inputs import IMAGE, NodeInputs, map_image, num_inputs
from .plan import SectionPatchPlan, section_stain_table
from .section_tensors import SectionTensors, prepare_section
from .stain import apply_stain_table, stain_table
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
)
from .window import Window

__all__ = [
    "extract_patches",
    "section_patches",
    "iter_section_patches",
    "Window",
    "SectionPatchPlan",
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
    "stain_table",
    "apply_stain_table",
    "section_stain_table",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]
