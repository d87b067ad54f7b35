"""Where outputs go: one safe, distinct folder name per input, and output folders checked before
anything is written.

:func:`output_folder_names` derives a folder name from what an input path names, lexically
(``fx/sr_base/spatial/..`` is ``sr_base``, ``sample/outs`` is ``sample``, ``s1.h5ad`` is ``s1``);
names are sanitised (never empty, ``.``, ``..``, hidden, absolute or holding a path separator) and
made distinct: the second input named ``s1`` gets ``s1-2``, the third ``s1-3``, in input order.
:func:`check_output_folder` refuses an output folder that exists as a file (or lies under one),
naming it; :func:`output_folders` gives the checked folders of one or several inputs.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence, Union

__all__ = ["input_name", "safe_name", "output_folder_names", "check_output_folder", "output_folders"]

PathLike = Union[str, os.PathLike]

#: Last path components that say how a tool lays its outputs out, not which sample they are
#: (Space Ranger's ``<sample>/outs``): the name is taken from the folder above.
GENERIC_FOLDERS = ("outs",)
#: Suffixes of input files dropped from their names (``sample.h5ad`` -> ``sample``).
INPUT_SUFFIXES = (".h5ad", ".h5", ".zarr", ".csv", ".tsv", ".txt", ".parquet", ".json", ".gz")
#: Longest folder name made (characters), well below the 255 bytes file systems allow.
MAX_NAME = 100
#: The name of an input whose path names nothing usable (``/``, ``...``, ``%%%``).
FALLBACK = "input"


def safe_name(text: str) -> str:
    """``text`` as one folder name: characters other than letters, digits, ``-``, ``_`` and ``.``
    become ``_`` (separators, spaces, control characters), runs of ``_`` shrink to one, leading
    ``.``, ``-`` and ``_`` and trailing ``.``, ``_`` are removed (no hidden names, nothing read as
    an option, no ``.``/``..``), at most :data:`MAX_NAME` characters; :data:`FALLBACK` when nothing
    is left."""
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(text))
    name = re.sub(r"_+", "_", name).lstrip(".-_")[:MAX_NAME].rstrip("._")
    return name or FALLBACK


def input_name(path: PathLike) -> str:
    """The name an input path means, before sanitising: the last component of the normalised
    absolute path (``..`` and ``.`` resolved lexically, symbolic links not followed), the folder
    above a :data:`GENERIC_FOLDERS` one, with :data:`INPUT_SUFFIXES` dropped."""
    text = os.fspath(path)
    parts = list(Path(os.path.abspath(os.path.expanduser(text))).parts[1:])  # the root names nothing
    while len(parts) > 1 and parts[-1].lower() in GENERIC_FOLDERS:
        parts.pop()
    name = parts[-1] if parts else ""
    while True:
        stem, suffix = os.path.splitext(name)
        if not stem or suffix.lower() not in INPUT_SUFFIXES:
            return name
        name = stem


def output_folder_names(inputs: Sequence[PathLike]) -> list:
    """One folder name per input (see :func:`input_name`, :func:`safe_name`), all distinct
    ignoring case (file systems that fold case would merge ``S1`` and ``s1``): the first input
    of a name keeps it, later ones get ``<name>-2``, ``<name>-3``, ..., the smallest number no
    other input's name takes. The same input given twice gets two names as well."""
    names = [safe_name(input_name(p)) for p in inputs]
    taken, out = set(), []
    firsts = {}
    for k, name in enumerate(names):
        firsts.setdefault(name.lower(), k)
    reserved = {n.lower() for n in names}
    for k, name in enumerate(names):
        if firsts[name.lower()] == k:
            taken.add(name.lower())
            out.append(name)
            continue
        n = 2
        while f"{name}-{n}".lower() in taken or f"{name}-{n}".lower() in reserved:
            n += 1
        taken.add(f"{name}-{n}".lower())
        out.append(f"{name}-{n}")
    return out


def check_output_folder(path: PathLike, what: str = "output folder") -> Path:
    """``Path(path)`` when it is a folder or can be made one; otherwise an ``OSError`` naming
    ``what``, the path and the file in the way: ``NotADirectoryError`` when ``path`` or a folder
    above it exists as a file (or a link to nothing), ``PermissionError`` when the nearest
    existing folder cannot be written. Nothing is created; call it before writing anything."""
    path = Path(path)
    for place in (path, *path.parents):
        if place.is_dir():
            if not os.access(place, os.W_OK | os.X_OK):
                why = "it is not writable" if place == path else f"{place} is not writable"
                raise PermissionError(f"{what} {path} cannot be used: {why}")
            return path
        if place.is_symlink() and not place.exists():
            raise NotADirectoryError(f"{what} {path}: {place} is a link to nothing; give another "
                                     f"{what} or remove the link")
        if place.exists():
            where = "it is a file" if place == path else f"{place} is a file"
            raise NotADirectoryError(f"{what} {path} cannot be used: {where}, not a folder; give another "
                                     f"{what} or move the file")
    return path  # relative path with no existing part: made in the working folder


def output_folders(out: PathLike, inputs: Sequence[PathLike], what: str = "output folder") -> list:
    """The checked folders the outputs of ``inputs`` go to: ``[out]`` for one input, else
    ``out / name`` per input (:func:`output_folder_names`). Raises as :func:`check_output_folder`
    for the first that cannot be used, before any is made."""
    out = check_output_folder(out, what)
    if len(inputs) == 1:
        return [out]
    return [check_output_folder(out / name, what) for name in output_folder_names(inputs)]
