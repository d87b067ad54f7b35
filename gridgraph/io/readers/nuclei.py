"""Cell nuclei: a CSV of centroids (``x,y[,label]``) over an image, as an irregular cell graph."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ...graph.spec import GraphSpec, GraphSpecLike
from ..images.image import ImageLike, image_size
from ..section import Section
from ..tables import PathLike, check_inside, read_table
from ..images.open import image_source, open_image
from ..labels import encode_labels


def read_nuclei_csv(
    path: PathLike,
    image: Optional[ImageLike],
    graph: GraphSpecLike = "knn",
    classes: Optional[Sequence[str]] = None,
    name: Optional[str] = None,
) -> Section:
    """Read nucleus centroids and their image (e.g. CRCHistoPhenotypes' ``imgN_nuclei.csv``).

    Args:
        path: CSV with header ``x,y`` and optionally ``label``: pixel centroid (``x`` = column,
            ``y`` = row) of every detected nucleus; an empty label marks a nucleus that is a node
            of the graph without a training label (``-1``).
        image: path, array or :class:`~gridgraph.io.images.image.LazyImage` (``None`` for none).
        graph: the cell graph's rule and arguments, a :class:`~gridgraph.graph.GraphSpec` or
            its plain form: ``"knn"`` (default: symmetric 6-nearest neighbours),
            ``{"name": "knn", "kwargs": {"k": 8}}``, ``{"name": "radius", "kwargs": {"r": 30.0}}`` (pixels).
        classes: class order; default the label names in natural order. Pass it to keep one
            order across images that lack some classes.
        name: section name; default the file name without extension and a ``_nuclei`` suffix.

    Returns:
        A :class:`Section` with an ``"irregular"`` graph whose ``pos`` is the centroids in pixels;
        node ids are the 0-based row numbers of the CSV as strings. A CSV without nuclei
        raises ``ValueError``.
    """
    spec = GraphSpec.parse(graph)
    if spec is None or spec.needs_array:
        raise ValueError(f"nuclei graph must be a point rule ('knn' or 'radius'), got {graph!r}")
    table = read_table(path, names=["x", "y"], header=True, what="nuclei CSV")
    path = table.path
    if len(table) == 0:
        raise ValueError(f"{path}: no nuclei; expected a header x,y[,label] and one row per nucleus")
    pos = np.stack([table.numeric("x"), table.numeric("y")], axis=1)
    ids = [str(i) for i in range(len(table))]
    names = table.text("label") if table.has("label") else [None] * len(table)
    labels, classes = encode_labels(names, classes, f"{path}: column 'label'")
    table.warn_if_cut()
    img = open_image(image, "nuclei image")
    if img is not None:
        where = [f"the nucleus on line {ln}" for ln in table.lines]
        check_inside(pos, image_size(img), f"{path} (in {image_source(img)})", where, kind="nuclei")
    g = spec.build(pos, where=str(path))
    if name is None:
        name = path.stem[: -len("_nuclei")] if path.stem.endswith("_nuclei") else path.stem
    return Section(
        graph=g,
        labels=labels,
        classes=classes,
        barcodes=ids,
        image=img,
        name=name,
        meta={"source": str(path), "graph": spec.to_dict()},
    )
