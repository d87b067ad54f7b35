"""How ``gridgraph predict`` reads a new section: the reader options the model was trained with,
the options given at predict time over them (``--set data.kwargs.KEY=VALUE``), and the image level.

Readers with several image levels (Space Ranger, Visium HD: ``lowres``, ``hires``, a full-resolution
image) read the level asked for; else the level the model was trained on (its checkpoint's
``platform["image_levels"]``, or a level its reader options named) when the input has it; else
the reader's automatic choice. :func:`level_note` says, in one line, which level was read and why.
"""
from __future__ import annotations

import os
from typing import Mapping, Optional

from ..checkpoint import Checkpoint

__all__ = ["LEVELS", "input_paths", "input_options", "level_note"]

#: The image levels a predict may ask for.
LEVELS = ("lowres", "hires", "fullres")
_AUTO = ("auto", None)


def input_paths(reader: str, flag: str, path, values: Mapping) -> dict:
    """``{"path": path, option: value}`` for the registered ``reader`` from predict's per-input
    ``values`` (``{"image": ..., "fullres_image": None, ...}``): an option the reader does not take
    is refused naming the flags that take it (and what this reader takes instead), a required one
    that is missing is refused naming it."""
    from ..io.readers.registry import READERS, flags_taking

    source = READERS.get(reader)
    paths = {"path": path}
    for option, value in values.items():
        name = f"--{option.replace('_', '-')}"
        if value is not None and option not in source.inputs:
            hint = ""
            if option == "image" and "fullres_image" in source.inputs:
                hint = " (its full-resolution image: --fullres-image)"
            elif option == "image" and "image" in (source.option_names() or ()):
                hint = " (its image: --set data.kwargs.image=...)"
            raise ValueError(f"{name} goes with {' / '.join(flags_taking(option)) or 'no input'}, not "
                             f"{flag}{hint}")
        if value is None and source.inputs.get(option):
            raise ValueError(f"{flag} needs {name}")
        if value is not None:
            paths[option] = value
    return paths


def _check_given(reader: str, source, given: Mapping, paths: Mapping) -> None:
    names = source.option_names()
    for key in given:
        if names is not None and key not in names:
            raise ValueError(f"--set data.kwargs.{key}: the {reader} reader has no option {key!r}; its "
                             f"options are {', '.join(names)}")
        taken = [k for k, v in paths.items() if v is not None and source.input_params.get(k, k) == key]
        if taken and key != "path":
            flag = "--" + taken[0].replace("_", "-")
            raise ValueError(f"--set data.kwargs.{key} and {flag} both give the {reader} reader's {key!r}; "
                             "give one")


def trained_level(ckpt: Checkpoint, reader: str) -> Optional[str]:
    """The one image level the model's training sections were read at (``None`` when unknown or
    several): a level its reader options named, else the one its checkpoint recorded."""
    data = ckpt.config.data
    named = data.kwargs.get("image") if data.name == reader else None
    if named in LEVELS:
        return named
    levels = list((ckpt.platform or {}).get("image_levels") or [])
    return levels[0] if len(levels) == 1 else None


def input_options(ckpt: Checkpoint, reader: str, paths: Mapping, given: Optional[Mapping] = None,
                  level: Optional[str] = None) -> tuple[dict, dict, dict]:
    """``(trained options, given options, level choice)`` to read ``paths`` with the registered
    ``reader``: the options the model was trained with (when it was trained with the same reader),
    the ``given`` ones checked against the reader's (``ValueError`` naming the reader and its
    options), and with them the image level: ``level`` (``lowres``, ``hires``, ``fullres``) when
    asked, else the trained one when the input holds it. The choice (``{"asked", "trained",
    "fallback"}``) is what :func:`level_note` reports."""
    from ..io.readers.registry import READERS

    source = READERS.get(reader)
    data = ckpt.config.data
    trained = dict(data.kwargs) if data.name == reader else {}
    given = dict(given or {})
    _check_given(reader, source, given, paths)
    if source.levels is None:
        if level is not None:
            from ..io.readers.registry import flags_with_levels

            raise ValueError(f"--image-level {level}: the {reader} reader has no image levels; --image-level goes "
                             f"with {' / '.join(flags_with_levels())}")
        return trained, given, {}
    full = paths.get("fullres_image") is not None

    def held() -> list:
        try:
            return source.levels(paths["path"], {**source.carried(trained), **given})
        except (OSError, ValueError):  # the reader says what is wrong with the input
            return []

    if level is not None:
        if "image" in given:
            raise ValueError(f"--image-level {level} and --set data.kwargs.image both give the image; give one")
        if level not in LEVELS:
            raise ValueError(f"--image-level {level}: expected one of {', '.join(LEVELS)}")
        if level != "fullres" and full:
            raise ValueError(f"--image-level {level} and --fullres-image: give one image")
        if level == "fullres" and not full and "fullres" not in held():
            if "fullres_image" not in source.inputs:
                raise ValueError(f"--image-level fullres: the {reader} reader has no full-resolution image "
                                 "(its levels: lowres, hires)")
            where = paths["path"] if isinstance(paths["path"], (str, os.PathLike)) else "the input"
            raise ValueError(f"--image-level fullres needs the full-resolution image (--fullres-image); "
                             f"{where} has none of its own")
        if level != "fullres" or not full or "fullres_image" not in source.input_params:
            given["image"] = level  # else the full-resolution image is the reader's image itself
        return trained, given, {"asked": level}
    if "image" in given or full:
        if full and "fullres_image" not in source.input_params:
            given.setdefault("image", "fullres")
        return trained, given, {"asked": given.get("image", "fullres")}
    want = trained_level(ckpt, reader)
    if want is not None:
        if want in held():
            return trained, {**given, "image": want}, {"trained": want}
        trained = {k: v for k, v in trained.items() if k != "image" or v in _AUTO}
        return trained, {**given, "image": "auto"}, {"fallback": want}
    return trained, given, {"fallback": None}


def level_note(section, choice: Mapping) -> Optional[str]:
    """One line saying which image level ``section`` was read at, when predict chose it (the
    training level, or the reader's automatic pick); ``None`` when it was asked for or the reader
    has one image."""
    kind = (section.meta or {}).get("image_kind")
    read = f"read at the {kind} image" if kind else "read without an image"
    if "trained" in choice:
        return f"section {section.name}: {read}, the level the model was trained on"
    if "fallback" not in choice:
        return None
    want = choice["fallback"]
    why = (f"the model was trained on the {want} image, which this input lacks" if want
           else "the model's training level is not recorded")
    return f"section {section.name}: {read}, picked automatically ({why}; --image-level chooses)"
