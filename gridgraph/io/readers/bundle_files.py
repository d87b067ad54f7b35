"""The image files of an instrument's output bundle, found by themselves.

A user points at the bundle folder; the readers find the images 10x writes there:

- Visium HD: the full-resolution microscope image, ``outs/microscope_image/<one file>`` (Space
  Ranger 4), else ``outs/*tissue_image.*`` (the image given to Space Ranger, copied).
- Xenium: the H&E image registered in Xenium Explorer, ``*he_image.ome.tif``, with its alignment
  CSV (``*he_imagealignment.csv``, as Xenium Explorer names it, or ``*he_image_alignment.csv``);
  the morphology image, ``morphology_focus/ch0000_dapi.ome.tif`` (Xenium 3+),
  ``morphology_focus/morphology_focus_0000.ome.tif`` (2.x) or ``morphology_focus.ome.tif`` (1.x).

Missing or ambiguous files are a ``FileNotFoundError`` / ``ValueError`` listing what was looked for.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

__all__ = ["microscope_image", "xenium_he_image", "xenium_morphology_image", "he_alignment"]

_HE_SUFFIX = "he_image.ome.tif"
_MORPHOLOGY = ("morphology_focus/ch0000_dapi.ome.tif", "morphology_focus/morphology_focus_0000.ome.tif",
               "morphology_focus.ome.tif")


def _listing(paths) -> str:
    return ", ".join(sorted(p.name for p in paths))


def microscope_image(outs: Optional[Path], required: bool = True) -> Optional[Path]:
    """The full-resolution microscope image of a Visium HD ``outs`` folder (``None`` when absent and
    not ``required``); several candidates are a ``ValueError`` naming them."""
    looked = "microscope_image/<image> or *tissue_image.* (the full-resolution image)"
    if outs is None:
        if required:
            raise FileNotFoundError(f"no outs folder above the bin folder to look for {looked}; give --fullres-image")
        return None
    folder = outs / "microscope_image"
    found = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")) if folder.is_dir() \
        else sorted(p for p in outs.glob("*tissue_image.*") if p.is_file())
    if len(found) > 1:
        raise ValueError(f"{folder if folder.is_dir() else outs}: several full-resolution images "
                         f"({_listing(found)}); give one with --fullres-image")
    if not found and required:
        raise FileNotFoundError(f"{outs}: no full-resolution image; looked for {looked}; give --fullres-image")
    return found[0] if found else None


def xenium_he_image(folder: Path, required: bool = True) -> Optional[Path]:
    """The one ``*he_image.ome.tif`` of a Xenium bundle (``None`` when absent and not ``required``)."""
    found = sorted(p for p in folder.glob(f"*{_HE_SUFFIX}") if p.is_file())
    if len(found) > 1:
        raise ValueError(f"{folder}: several registered H&E images ({_listing(found)}); give one with image=")
    if not found and required:
        raise FileNotFoundError(f"{folder}: no registered H&E image; looked for *{_HE_SUFFIX} (Xenium Explorer's "
                                "export)")
    return found[0] if found else None


def he_alignment(image: Path) -> Path:
    """The alignment CSV beside a registered H&E image (``X_he_image.ome.tif`` ->
    ``X_he_imagealignment.csv`` or ``X_he_image_alignment.csv``)."""
    stem = image.name[: -len(".ome.tif")] if image.name.endswith(".ome.tif") else image.stem
    names = (f"{stem}alignment.csv", f"{stem}_alignment.csv")
    for name in names:
        if (image.parent / name).is_file():
            return image.parent / name
    raise FileNotFoundError(f"{image}: no alignment CSV beside it; looked for {' or '.join(names)} (Xenium "
                            "Explorer's H&E -> Xenium pixels matrix); give alignment=")


def xenium_morphology_image(folder: Path) -> Path:
    """The morphology (DAPI) focus image of a Xenium bundle."""
    for name in _MORPHOLOGY:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{folder}: no morphology image; looked for {', '.join(_MORPHOLOGY)}")
