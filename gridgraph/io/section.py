"""The :class:`Section`: one tissue section with its graph, labels and image."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from ..graph import SpotGraph
from .images.image import ImageLike, as_array, image_size


@dataclass
class Section:
    """One tissue section.

    Attributes:
        graph: :class:`~gridgraph.graph.SpotGraph` over the in-tissue spots or nuclei; its ``pos``
            is the pixel ``(x, y)`` of each node in ``image``.
        labels: ``(N,)`` int64, ``-1`` for unlabeled nodes; label ``i`` means ``classes[i]``.
        classes: class names.
        barcodes: ``N`` node ids (spot barcodes, or generated ids for nuclei).
        image: ``(H, W, 3)`` uint8 array, a :class:`~gridgraph.io.images.image.LazyImage`, a
            :class:`~gridgraph.io.images.slide.SlideImage` (read window by window), or ``None``.
        spot_diameter_px: spot diameter in image pixels, where known.
        spot_diameter_um: physical spot diameter in micrometres (Visium 55, classic ST 100).
        array_row, array_col: ``(N,)`` array coordinates for grid layouts.
        name: section id.
    """

    graph: SpotGraph
    labels: torch.Tensor
    classes: list
    barcodes: list
    image: Optional[ImageLike] = None
    spot_diameter_px: Optional[float] = None
    spot_diameter_um: Optional[float] = None
    array_row: Optional[np.ndarray] = None
    array_col: Optional[np.ndarray] = None
    name: str = "section"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = torch.as_tensor(np.asarray(self.labels), dtype=torch.long).reshape(-1)
        n = self.graph.num_nodes
        if self.labels.numel() != n:
            raise ValueError(f"section {self.name}: {self.labels.numel()} labels for {n} nodes")
        if len(self.barcodes) != n:
            raise ValueError(f"section {self.name}: {len(self.barcodes)} barcodes for {n} nodes")
        if n and (self.labels.max() >= len(self.classes) or self.labels.min() < -1):
            raise ValueError(
                f"section {self.name}: labels must lie in -1..{len(self.classes) - 1}"
            )
        self.classes = list(self.classes)
        self.barcodes = list(self.barcodes)

    @property
    def num_nodes(self) -> int:
        return self.graph.num_nodes

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def pixel_pos(self) -> torch.Tensor:
        """``(N, 2)`` pixel ``(x, y)`` of each node in :attr:`image`."""
        return self.graph.pos

    @property
    def labeled(self) -> torch.Tensor:
        """``(N,)`` bool, true where a node has a label."""
        return self.labels >= 0

    @property
    def microns_per_px(self) -> Optional[float]:
        """µm per pixel of the section's image: from the spot diameter in µm and in pixels, else
        from the image itself (a slide's OME metadata or resolution tags), else ``None``."""
        if self.spot_diameter_px and self.spot_diameter_um:
            return self.spot_diameter_um / self.spot_diameter_px
        return getattr(self.image, "microns_per_pixel", None)

    @property
    def microns_per_pixel(self) -> Optional[float]:
        """The same as :attr:`microns_per_px` (the name slides and Space Ranger use)."""
        return self.microns_per_px

    def load_image(self) -> np.ndarray:
        """``(H, W, 3)`` uint8 pixels of the section's image."""
        if self.image is None:
            raise ValueError(f"section {self.name} has no image")
        return as_array(self.image)

    def image_size(self) -> tuple[int, int]:
        """``(width, height)`` of the image without decoding it."""
        if self.image is None:
            raise ValueError(f"section {self.name} has no image")
        return image_size(self.image)

    def label_names(self) -> list:
        """Class name of each node (``None`` where unlabeled)."""
        return [self.classes[i] if i >= 0 else None for i in self.labels.tolist()]

    def class_counts(self) -> np.ndarray:
        """``(K,)`` number of labeled nodes per class."""
        lab = self.labels[self.labels >= 0]
        return np.bincount(lab.numpy(), minlength=self.num_classes)

    def summary(self) -> str:
        counts = ", ".join(f"{c}={k}" for c, k in zip(self.classes, self.class_counts()))
        unl = int((self.labels < 0).sum())
        return (
            f"{self.name}: {self.num_nodes} nodes ({self.graph.layout}), "
            f"{self.graph.num_edges // 2} edges, {unl} unlabeled; {counts}"
        )

    def __repr__(self) -> str:
        return (
            f"Section(name={self.name!r}, num_nodes={self.num_nodes}, "
            f"layout={self.graph.layout!r}, classes={self.classes})"
        )
