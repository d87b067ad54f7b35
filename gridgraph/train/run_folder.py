"""The output folder of a training run: refuse to mix two runs, never overwrite the user's config."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

from ..files.atomic import remove_stale_temp_files
from ..files.locations import check_output_folder

__all__ = ["RUN_FILES", "prepare_run_folder"]

RUN_FILES = ("last.pt", "best.pt", "metrics.jsonl", "test_metrics.json", "config.yaml")


def prepare_run_folder(output: Union[str, os.PathLike], resume: bool = True, overwrite: bool = False,
                       config_file: Optional[Union[str, os.PathLike]] = None) -> Path:
    """Create (or check) the run folder ``output`` and return it.

    A folder holding another run (``last.pt``) is refused unless ``resume`` (the run continues)
    or ``overwrite`` (its run files, :data:`RUN_FILES`, are removed now, so no stale ``best.pt``
    outlives an interrupted new run). The folder may not be where ``config_file`` would be
    written over (``output/config.yaml``). Stale temporary files are removed.
    """
    out = check_output_folder(output, what="output")
    if config_file is not None and (out / "config.yaml").resolve() == Path(config_file).resolve():
        raise ValueError(f"output {out}: the run would write config.yaml over the config file "
                         f"{config_file}; choose another output folder")
    held = [name for name in RUN_FILES[:2] if (out / name).exists()]
    if held and not resume and not overwrite:
        raise ValueError(f"output {out} holds another run ({', '.join(held)}); resume it (drop "
                         "--no-resume), pass --overwrite, or choose another output folder")
    out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
    remove_stale_temp_files(out)
    return out
