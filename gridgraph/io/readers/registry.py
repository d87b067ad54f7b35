"""The reader registry: how a config's ``data.reader`` and a section id become a :class:`Section`.

Each entry of :data:`READERS` is a :class:`SectionSource`: a reader function and the naming rule
that turns ``(root, section_id)`` into its file arguments. Its signature is the reader's own
options (what ``data.options`` may hold), so configs are checked against it before anything runs.
The CLI's ``predict`` uses the same entries through :meth:`SectionSource.from_paths`.
"""
from __future__ import annotations

import glob
import inspect
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

from ...registry import Registry
from .nuclei import read_nuclei_csv
from ..section import Section
from .spaceranger import image_levels as spaceranger_levels, read_spaceranger
from .spot_table import read_spot_table
from .st_tsv import read_st_tsv
from .visium_hd import image_levels as visium_hd_levels, read_visium_hd
from .visium_hd_cells import cell_levels, read_visium_hd_cells
from .xenium import read_xenium
from ..tables import natural_sorted

__all__ = ["READERS", "SectionSource", "predict_flags", "flags_taking", "flags_with_levels"]

READERS = Registry("reader")


class SectionSource:
    """A reader and its file-naming rule.

    Args:
        reader: the reader function (``read_spaceranger``, ...).
        path_params: the reader's parameters that this source fills from ``(root, section_id)``.
        locate: ``(root, section_id, options) -> {param: value}`` for those parameters; default
            ``root / section_id`` as the first one.
        suffixes: for readers whose section ids are file stems: ``{param: default suffix}``; the
            options ``<param>_suffix`` override them, and ids may be globs (``"train/*"``).
        path_options: options that name files (resolved against ``root``; not carried over to
            another section at predict time) ...
        keep_values: ... except these values, which are choices rather than files
            (``{"image": ("auto", "lowres", ...)}``).
        flag: ``gridgraph predict``'s input flag for this reader (default: the registered name).
        help: what the flag's path is, for ``gridgraph predict --help``.
        inputs: the further predict options this reader takes, ``{option: required}`` (options
            are ``image``, ``fullres_image``, ``alignment``, ``library_id``).
        input_params: the reader parameter of an input option when it is not the option's own name
            (Visium HD: ``{"fullres_image": "image"}``).
        levels: for readers with several image levels, ``(path, options) -> [level, ...]``, the
            levels (``lowres``, ``hires``) a section's files hold.
    """

    def __init__(self, reader: Callable[..., Section], path_params: Sequence[str] = ("path",),
                 suffixes: Optional[Mapping[str, str]] = None, path_options: Sequence[str] = (),
                 keep_values: Optional[Mapping[str, Sequence]] = None, flag: Optional[str] = None,
                 help: str = "", inputs: Optional[Mapping[str, bool]] = None,
                 input_params: Optional[Mapping[str, str]] = None, levels: Optional[Callable] = None):
        self.reader = reader
        self.input_params = dict(input_params or {})
        self.levels = levels
        self.flag = flag
        self.help = help
        self.inputs = dict(inputs or {})
        self.path_params = tuple(path_params)
        self.suffixes = dict(suffixes or {})
        self.path_options = tuple(path_options)
        self.keep_values = {k: tuple(v) for k, v in (keep_values or {}).items()}
        sig = inspect.signature(reader)
        params = [p for p in sig.parameters.values() if p.name not in self.path_params]
        params += [inspect.Parameter(f"{k}_suffix", inspect.Parameter.KEYWORD_ONLY, default=v)
                   for k, v in self.suffixes.items()]
        self.__signature__ = sig.replace(parameters=params)

    def _split(self, root: Path, options: Mapping) -> tuple[dict, dict]:
        opts = dict(options)
        suffixes = {k: opts.pop(f"{k}_suffix", v) for k, v in self.suffixes.items()}
        for key in self.path_options:
            value = opts.get(key)
            if isinstance(value, Mapping) and isinstance(value.get("path"), str):  # an image with options
                opts[key] = {**value, "path": _under(root, value["path"])}
            elif isinstance(value, str):
                opts[key] = _under(root, value)
        return opts, suffixes

    def expand(self, root: Path, ids: Sequence, options: Mapping) -> list:
        """Section ids of a split; for stem readers a glob such as ``"train/*"`` expands to stems."""
        if not self.suffixes:
            return list(ids)
        suffix = self._split(root, options)[1][self.path_params[0]]
        out = []
        for sid in map(str, ids):
            if any(ch in sid for ch in "*?["):
                found = sorted(glob.glob(str(root / f"{sid}{suffix}")))
                if not found:
                    raise FileNotFoundError(f"no file matches {root / (sid + suffix)}")
                out += [str(Path(p).relative_to(root))[: -len(suffix)] for p in found]
            else:
                out.append(sid)
        return natural_sorted(out)

    def __call__(self, root: Path, section_id: Any, **options: Any) -> Section:
        """Read section ``section_id`` below ``root`` with the reader's ``options``."""
        opts, suffixes = self._split(Path(root), options)
        if self.suffixes:
            files = {k: Path(root) / f"{section_id}{s}" for k, s in suffixes.items()}
            return self.reader(**files, name=str(section_id), **opts)
        return self.reader(Path(root) / str(section_id), **opts)

    def option_names(self) -> Optional[list]:
        """The reader options ``data.kwargs`` may hold; ``None`` when it takes any (``**options``)."""
        params = self.__signature__.parameters.values()
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            return None
        return [p.name for p in params]

    def carried(self, options: Mapping) -> dict:
        """The training run's ``options`` that carry over to another section: less those that
        name its files."""
        return {k: v for k, v in options.items() if not k.endswith("_suffix") and (
            k not in self.path_options or v in self.keep_values.get(k, ()))}

    def from_paths(self, paths: Mapping[str, Any], options: Mapping, given: Optional[Mapping] = None) -> Section:
        """Read one section from explicit files (``{"path": ..., "image": ...}``) with the
        training run's ``options`` less those that name its files (:meth:`carried`), and the
        options ``given`` at predict time over them."""
        opts = {**self.carried(options), **(given or {})}
        paths = {self.input_params.get(k, k): v for k, v in paths.items()}
        if "path" in paths and self.path_params[0] != "path":
            paths[self.path_params[0]] = paths.pop("path")
        opts = {k: v for k, v in opts.items() if k not in paths}
        return self.reader(**paths, **opts)

    def __repr__(self) -> str:
        return f"SectionSource({self.reader.__name__})"


def _under(root: Path, value: str) -> str:
    """``value`` relative to ``root`` when that names an existing file, else as given."""
    return str(root / value) if not Path(value).is_absolute() and (root / value).exists() else value


def _synthetic(seed, name=None, **options):
    from .synthetic import make_section

    try:
        seed = int(seed)
    except (TypeError, ValueError):
        raise ValueError(f"synthetic section ids are integer seeds, got {seed!r}") from None
    return make_section(seed=seed, name=name or f"synthetic-{seed}", **options)


class _SyntheticSource(SectionSource):
    def __init__(self):
        from .synthetic import make_section

        super().__init__(make_section, path_params=("seed", "name"), help="seed of a synthetic section")

    def __call__(self, root, section_id, **options) -> Section:
        return _synthetic(section_id, **options)

    def from_paths(self, paths, options, given=None) -> Section:
        return _synthetic(paths["path"], **{**options, **(given or {})})


class _AnnDataSource(SectionSource):
    """``root/<id>.h5ad`` per section, or with ``file=`` one ``.h5ad`` whose libraries
    (``obs['library_id']``) are the section ids."""

    def __init__(self):
        from .anndata import read_anndata
        from .libraries import anndata_levels

        super().__init__(read_anndata, path_params=("adata", "library_id"), flag="h5ad",
                         help="AnnData file (scanpy/squidpy layout); also writes predictions.h5ad",
                         inputs={"library_id": False}, levels=anndata_levels)
        params = list(self.__signature__.parameters.values())
        params.append(inspect.Parameter("file", inspect.Parameter.KEYWORD_ONLY, default=None))
        self.__signature__ = self.__signature__.replace(parameters=params)

    def __call__(self, root, section_id, file=None, **options) -> Section:
        from dataclasses import replace

        if file is not None:
            return self.reader(Path(root) / file, library_id=str(section_id), **options)
        section = self.reader(Path(root) / f"{section_id}.h5ad", **options)
        return replace(section, name=str(section_id))

    def from_paths(self, paths, options, given=None) -> Section:
        opts = {k: v for k, v in {**options, **(given or {})}.items() if k not in ("file", "library_id")}
        return self.reader(paths["path"], library_id=paths.get("library_id"), **opts)


class _SpatialDataSource(SectionSource):
    """``root/<id>`` (a ``.zarr`` store) per section; ``from_paths`` maps ``path`` to ``sdata``."""

    def __init__(self):
        from .spatialdata import read_spatialdata

        super().__init__(read_spatialdata, path_params=("sdata",), flag="zarr",
                         help="SpatialData .zarr store (as spatialdata-io writes it; needs the spatialdata "
                              "extra); the predictions are also written into it as the table 'gridgraph'")

    def from_paths(self, paths, options, given=None) -> Section:
        paths = dict(paths)
        opts = {k: v for k, v in {**options, **(given or {})}.items() if k not in paths}
        return self.reader(paths.pop("path"), **paths, **opts)


READERS.register("synthetic", _SyntheticSource())
READERS.register("spatialdata", _SpatialDataSource())
READERS.register("anndata", _AnnDataSource())
READERS.register("spaceranger", SectionSource(
    read_spaceranger, path_options=("labels", "image", "fullres_image"),
    keep_values={"image": ("auto", "hires", "lowres", "fullres")},
    help="Space Ranger spatial/ folder or its parent", inputs={"fullres_image": False},
    levels=spaceranger_levels))
READERS.register("nuclei", SectionSource(
    read_nuclei_csv, path_params=("path", "image", "name"),
    suffixes={"path": "_nuclei.csv", "image": ".png"},
    help="nuclei CSV (x, y[, label]); needs --image", inputs={"image": True}))
READERS.register("spot_table", SectionSource(
    read_spot_table, path_params=("path", "image", "name"),
    suffixes={"path": "_spots.tsv", "image": "_HE.jpg"}, path_options=("label_names",),
    help="per-spot table; needs --image", inputs={"image": True}))
READERS.register("visium_hd", SectionSource(
    read_visium_hd, path_options=("labels", "image"),
    keep_values={"image": ("auto", "hires", "lowres", "fullres", None)},
    help="Visium HD square_XXXum folder (or binned_outputs / outs)", inputs={"fullres_image": False},
    input_params={"fullres_image": "image"}, levels=visium_hd_levels))
READERS.register("visium_hd_cells", SectionSource(
    read_visium_hd_cells, path_options=("labels", "image"),
    keep_values={"image": ("auto", "hires", "lowres", "fullres", None)},
    help="Visium HD cells: Space Ranger 4 outs (or its segmented_outputs)", inputs={"fullres_image": False},
    input_params={"fullres_image": "image"}, levels=cell_levels))
READERS.register("xenium", SectionSource(
    read_xenium, path_options=("labels", "image", "alignment"),
    keep_values={"image": ("auto", "he", "morphology", None)},
    help="Xenium output folder; --image (+ --alignment) for an H&E image",
    inputs={"image": False, "alignment": False}))
READERS.register("st_tsv", SectionSource(
    read_st_tsv, path_params=("annotation_tsv", "image", "name"),
    suffixes={"annotation_tsv": "_annotations.tsv", "image": ".jpg"},
    help="classic-ST annotation TSV (one-hot region columns); needs --image", inputs={"image": True}))


def predict_flags() -> dict:
    """``{flag: reader name}`` of every registered reader, for ``gridgraph predict`` (flags
    spelled with dashes: ``st-tsv`` -> ``--st-tsv``)."""
    return {(READERS.get(name).flag or name).replace("_", "-"): name for name in READERS.names()}



def flags_taking(option: str) -> list:
    """``gridgraph predict``'s input flags whose reader takes the per-input ``option`` (``image``,
    ``fullres_image``, ``alignment``, ``library_id``): ``["--nuclei", ...]``."""
    return [f"--{flag}" for flag, reader in predict_flags().items() if option in READERS.get(reader).inputs]


def flags_with_levels() -> list:
    """``gridgraph predict``'s input flags whose reader has several image levels (``--image-level``)."""
    return [f"--{flag}" for flag, reader in predict_flags().items() if READERS.get(reader).levels is not None]
