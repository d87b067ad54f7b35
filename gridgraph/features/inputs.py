"""Which inputs an f needs, and a section's inputs built for it.

Each f reads one or more modalities, as its encoder declares when it is registered
(:mod:`gridgraph.encoders.inputs`): image patches (every patch CNN and image backbone),
per-node embeddings from a file (``path``) or gene counts, normalised (``counts``); an f made
of branches reads its branches' modalities.
:func:`fit_features` fits what depends on the training sections (the gene selection) and
returns the state a checkpoint keeps; :func:`section_inputs` builds one section's inputs from
that state, as a patch tensor (image alone) or a :class:`~gridgraph.patches.NodeInputs`.
"""
from __future__ import annotations

import functools
import os
from typing import Callable, Dict, Mapping, Optional, Sequence

import numpy as np
import torch

from ..encoders.inputs import EMBEDDING, EXPRESSION, IMAGE, SOURCE_ARG, inputs_of, with_input_args
from ..patches.node_inputs import NodeInputs
from .expression import expression_matrix, highly_variable_genes, node_ids, normalize_log1p

__all__ = ["modalities", "needs_image", "image_only", "fit_features", "section_inputs", "in_features",
           "with_sources"]

def modalities(f_name: str, f_kwargs: Mapping) -> Dict[str, dict]:
    """modality (the key of its part in f's inputs) -> the options saying where its data comes
    from, with ``"kind"``: ``"image"``, ``"embedding"`` or ``"expression"``; what f's encoder
    declares it reads (:func:`~gridgraph.encoders.inputs_of`)."""
    return inputs_of(f_name, f_kwargs)


def needs_image(f_name: str, f_kwargs: Mapping) -> bool:
    return any(o["kind"] == IMAGE for o in modalities(f_name, f_kwargs).values())


def image_only(f_name: str, f_kwargs: Mapping) -> bool:
    """Whether f reads image patches alone (its inputs are then a plain patch tensor)."""
    return set(modalities(f_name, f_kwargs)) == {IMAGE}


def _source(options: Mapping, field: str, section, modality: str) -> str:
    path = options.get(field)
    if not path:
        raise ValueError(f"section {section.name}: f needs the {modality!r} modality; give f's kwargs "
                         f"{field!r} (a file path, '{{section}}' standing for the section id)")
    return str(path).format(section=section.name)


def _counts(section, options: Mapping):
    path = _source(options, SOURCE_ARG[EXPRESSION], section, EXPRESSION)
    return (path, *_read_counts_cached(path, *_stamp(path)))


def _stamp(path: str) -> tuple:
    try:
        st = os.stat(path)
    except OSError:  # read_counts names the missing file
        return (None, None)
    return (st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _read_counts_cached(path: str, size, mtime):
    """The counts of ``path`` (read once while the file is unchanged: fitting the gene selection
    and building the inputs read the same training files)."""
    from ..io.readers.features import read_counts

    return read_counts(path)


def fit_features(f_name: str, f_kwargs: Mapping, train_sections: Sequence, log: Callable[[str], None] = print) -> dict:
    """What f's inputs need from the training sections: for ``"expression"``, the genes
    (``genes`` as given, else the ``n_top_genes`` most variable over the training spots) and
    ``target_sum``. ``{}`` for an image-only f."""
    state: dict = {}
    for key, options in modalities(f_name, f_kwargs).items():
        if options["kind"] != EXPRESSION:
            continue
        target_sum = float(options.get("target_sum", 1e4))
        genes = options.get("genes")
        if not genes and not train_sections:
            raise ValueError("f reads gene expression: its gene selection needs training sections (or give f's "
                             "kwargs 'genes')")
        if not genes:
            parts = []  # (gene names, normalised matrix of the section's spots)
            for section in train_sections:
                source, ids, file_genes, counts = _counts(section, options)
                rows = np.flatnonzero(np.isin(np.asarray(ids, dtype=object),
                                              np.asarray(node_ids(section, options.get("id_format")), dtype=object)))
                if not len(rows):
                    raise ValueError(f"{source}: none of section {section.name}'s node ids is in the counts "
                                     f"(e.g. {section.barcodes[0]!r}); expected the same spot ids (or give id_format)")
                parts.append((file_genes, normalize_log1p(counts[rows], target_sum)))
            common = set(parts[0][0]).intersection(*(set(g) for g, _ in parts[1:]))
            names = [g for g in parts[0][0] if g in common]  # the first file's order
            matrices = []
            for file_genes, matrix in parts:
                where = {g: k for k, g in enumerate(file_genes)}
                matrices.append(matrix[:, [where[g] for g in names]])
            genes = highly_variable_genes(matrices, names, int(options.get("n_top_genes", 2000)))
            log(f"expression: {len(genes)} genes selected on {len(train_sections)} training sections")
        state[key] = {"genes": [str(g) for g in genes], "target_sum": target_sum}
    return state


def section_inputs(section, f_name: str, f_kwargs: Mapping, state: Mapping, image: Optional[torch.Tensor] = None):
    """One section's inputs for f: the patch tensor ``image`` when f reads images only, else a
    :class:`NodeInputs` with every modality f reads (``image`` must be given when one is an
    image). ``state``: :func:`fit_features`' result (a checkpoint's ``features``)."""
    wanted = modalities(f_name, f_kwargs)
    if set(wanted) == {IMAGE}:
        return image
    parts: Dict[str, torch.Tensor] = {}
    for modality, options in wanted.items():
        if options["kind"] == IMAGE:
            if image is None:
                raise ValueError(f"section {section.name}: f needs image patches, but the section has no image")
            parts[IMAGE] = image
        elif options["kind"] == EXPRESSION:
            if modality not in state:
                raise ValueError(f"the model has no gene selection for its {modality!r} input (fit_features first)")
            source, ids, file_genes, counts = _counts(section, options)
            kept = state[modality]
            values = expression_matrix(node_ids(section, options.get("id_format")), ids, file_genes, counts,
                                       kept["genes"], kept["target_sum"], source=source)
            parts[modality] = torch.from_numpy(values)
        else:
            from ..io.readers.features import read_node_features

            path = _source(options, SOURCE_ARG[EMBEDDING], section, modality)
            ids = node_ids(section, options.get("id_format"))
            parts[modality] = torch.from_numpy(read_node_features(path, ids, options.get("key"), what=f"{modality} features"))
    return NodeInputs(parts)


def with_sources(f_name: str, f_kwargs: Mapping, sources: Mapping[str, Optional[str]]) -> dict:
    """``f_kwargs`` with the files of some kinds of input replaced (``{"expression": counts path,
    "embedding": features path}``; ``None`` keeps the kwargs' own), e.g. to predict a new
    section with its own files. A kind f does not read is an error naming it."""
    sources = {k: v for k, v in sources.items() if v}
    kinds = {key: o["kind"] for key, o in modalities(f_name, f_kwargs).items()}
    unknown = set(sources) - set(kinds.values())
    if unknown:
        raise ValueError(f"f {f_name!r} reads no {sorted(unknown)} input; it reads {sorted(set(kinds.values()))}")
    return with_input_args(f_name, f_kwargs, {key: {SOURCE_ARG[kind]: sources[kind]}
                                              for key, kind in kinds.items() if kind in sources})


def in_features(inputs) -> Dict[str, int]:
    """modality -> width of each non-image part of a section's inputs."""
    if not isinstance(inputs, NodeInputs):
        return {}
    return {k: int(v.shape[1]) for k, v in inputs.parts.items() if k != IMAGE}
