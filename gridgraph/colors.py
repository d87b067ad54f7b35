"""Class colours, one place for figures and for the colours written into AnnData and exports."""
from __future__ import annotations

import numpy as np

__all__ = ["class_colors"]


def class_colors(num_classes: int) -> np.ndarray:
    """``(K, 4)`` RGBA colours: ``tab10`` up to 10 classes, ``tab20`` up to 20, else ``hsv``."""
    from matplotlib import colormaps

    if num_classes <= 10:
        return np.asarray(colormaps["tab10"].colors[:num_classes], dtype=float).reshape(-1, 3)
    if num_classes <= 20:
        return np.asarray(colormaps["tab20"].colors[:num_classes], dtype=float).reshape(-1, 3)
    return colormaps["hsv"](np.linspace(0, 1, num_classes, endpoint=False))[:, :3]
