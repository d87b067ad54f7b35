"""Tests of gridgraph.plot: PNGs of the expected size, layouts, atomic writes, input checks."""
import os

import numpy as np
import pytest
import torch
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.figure import Figure
from PIL import Image

from gridgraph import plot
from gridgraph.graph import cartesian_graph, hex_graph, knn_graph

CLASSES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def graphs():
    r, c = np.meshgrid(np.arange(6), np.arange(12), indexing="ij")
    hexmask = (r % 2) == (c % 2)
    pts = np.random.default_rng(0).uniform(0, 100, (80, 2))
    return {
        "hex": hex_graph(r[hexmask], c[hexmask]),
        "cartesian": cartesian_graph(r.ravel(), c.ravel()),
        "irregular": knn_graph(pts, k=4),
    }


def _labels(n, seed=0):
    y = np.random.default_rng(seed).integers(0, 3, n)
    y[:3] = -1
    return y


def _probs(n, seed=0):
    return np.random.default_rng(seed).dirichlet(np.ones(3), n)


def _png_size(path):
    assert path.stat().st_size > 0
    with Image.open(path) as im:
        im.load()
        return im.size


@pytest.mark.parametrize("layout, n_vertices", [("hex", 6), ("cartesian", 4), ("irregular", None)])
def test_label_map_per_layout(tmp_path, graphs, layout, n_vertices):
    g = graphs[layout]
    out = tmp_path / f"{layout}.png"
    fig = plot.plot_label_map(g, _labels(g.num_nodes), CLASSES, figsize=(4, 3), dpi=50, path=out)
    assert isinstance(fig, Figure)
    assert _png_size(out) == (200, 150)
    ax = fig.axes[0]
    assert ax.yaxis_inverted()  # image convention: y downwards
    if n_vertices is None:
        assert any(isinstance(c, PathCollection) for c in ax.collections)
    else:
        polys = [c for c in ax.collections if isinstance(c, PolyCollection)]
        assert len(polys) == 1 and len(polys[0].get_paths()) == g.num_nodes
        # closed polygon: n vertices + closing vertex
        assert len(polys[0].get_paths()[0].vertices) in (n_vertices, n_vertices + 1)
    assert no_temp_files(tmp_path)


def no_temp_files(folder):
    return not [p for p in os.listdir(folder) if p.endswith(".tmp")]


def test_label_map_over_image_from_positions(tmp_path):
    pos = torch.tensor([[10.0, 5.0], [30.0, 5.0], [20.0, 25.0]])
    img = np.zeros((40, 50, 3), dtype=np.uint8)
    out = tmp_path / "img.png"
    fig = plot.plot_label_map(pos, torch.tensor([0, 1, 2]), CLASSES, image=img, layout="hex",
                              figsize=(3, 3), dpi=40, path=out)
    assert _png_size(out) == (120, 120)
    assert fig.axes[0].images  # the section image is drawn underneath


def test_side_by_side_and_misclassification(tmp_path, graphs):
    g = graphs["hex"]
    y = _labels(g.num_nodes)
    out = tmp_path / "pred.png"
    fig = plot.plot_predictions(g, y, _probs(g.num_nodes, 1), _probs(g.num_nodes, 2).argmax(1),
                                CLASSES, panel_size=2.0, dpi=50, path=out)
    assert [ax.get_title() for ax in fig.axes] == ["true", "f", "f+g"]
    assert _png_size(out) == (int((2.0 * 3 + 1.5) * 50), 100)
    out = tmp_path / "mis.png"
    probs = {"f": _probs(g.num_nodes, 1), "f+g": _probs(g.num_nodes, 2)}
    fig = plot.plot_misclassification(g, y, probs, panel_size=2.0, dpi=50, path=out)
    assert _png_size(out) == (int((2.0 * 2 + 1.0) * 50), 100)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["f", "f+g"]


def test_matrix_figures(tmp_path, graphs):
    cm = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 0]])
    out = tmp_path / "cm.png"
    plot.plot_confusion_matrix(cm, CLASSES, figsize=(3, 2), dpi=50, path=out)
    assert _png_size(out) == (150, 100)
    plot.plot_confusion_matrix((np.array([0, 1, 2]), np.array([0, 2, 2])), CLASSES, normalize=False,
                               path=tmp_path / "cm2.png", figsize=(3, 2), dpi=50)
    assert _png_size(tmp_path / "cm2.png") == (150, 100)
    g = graphs["cartesian"]
    out = tmp_path / "adj.png"
    plot.plot_class_adjacency(_labels(g.num_nodes), CLASSES, edge_index=g.edge_index,
                               figsize=(3, 2), dpi=50, path=out)
    assert _png_size(out) == (150, 100)
    plot.plot_class_adjacency(np.arange(9).reshape(3, 3), CLASSES, normalize=None,
                              path=tmp_path / "adj2.png", figsize=(3, 2), dpi=50)
    assert _png_size(tmp_path / "adj2.png") == (150, 100)


def test_bad_input_raises_value_error(graphs):
    g = graphs["hex"]
    with pytest.raises(ValueError, match="shape"):
        plot.plot_label_map(g, np.zeros(g.num_nodes + 1, dtype=int), CLASSES)
    with pytest.raises(ValueError, match="probabilities"):
        plot.plot_label_map(g, np.full((g.num_nodes, 2), 0.5), CLASSES)
    with pytest.raises(ValueError, match="-1..2"):
        plot.plot_label_map(g, np.full(g.num_nodes, 5), CLASSES)
    with pytest.raises(ValueError, match="probs 'f'"):
        plot.plot_misclassification(g, _labels(g.num_nodes), {"f": np.ones((3, 3))})
    with pytest.raises(ValueError, match="layout"):
        plot.plot_label_map(np.zeros((2, 2)), [0, 1], CLASSES, layout="triangle")
    with pytest.raises(ValueError, match="pos"):
        plot.plot_label_map(np.zeros((2, 3)), [0, 1], CLASSES)
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        plot.plot_confusion_matrix(np.zeros((2, 2)), CLASSES)


def test_failed_drawing_leaves_no_file(tmp_path, monkeypatch):
    fig = plot.plot_confusion_matrix(np.eye(3, dtype=int), CLASSES, figsize=(2, 2), dpi=30)
    target = tmp_path / "cm.png"

    # an artist that fails while being drawn
    class Boom(Exception):
        pass

    text = fig.axes[0].text(0, 0, "x")
    monkeypatch.setattr(text, "draw", lambda renderer: (_ for _ in ()).throw(Boom()))
    with pytest.raises(Boom):
        plot.save_figure(fig, target)
    assert not target.exists() and os.listdir(tmp_path) == []

    # a failure after part of the PNG was written keeps the previous file intact
    target.write_bytes(b"old")

    def partial(self, fh, **kwargs):
        fh.write(b"\x89PNG partial")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", partial)
    with pytest.raises(OSError):
        plot.plot_confusion_matrix(np.eye(3, dtype=int), CLASSES, path=target)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["cm.png"]


def test_backend_and_pyplot_left_alone(tmp_path):
    import inspect

    import matplotlib

    source = inspect.getsource(plot)
    for forbidden in ("matplotlib.pyplot", "import pyplot", "matplotlib.use("):
        assert forbidden not in source
    before = matplotlib.get_backend()
    plot.plot_confusion_matrix(np.eye(2, dtype=int), ["a", "b"], path=tmp_path / "x.png")
    assert matplotlib.get_backend() == before


def test_node_raster_paints_each_node_square():
    from gridgraph.plot.nodes import node_raster

    pos = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    colors = np.array([[1.0, 0, 0, 1], [0, 1.0, 0, 1], [0, 0, 1.0, 1]])
    img, extent = node_raster(pos, colors, spacing=2.0, shape=(8, 8))
    assert img.shape == (9, 9, 4) and extent == (-2.0, 7.0, 7.0, -2.0)
    # cell = 1 data unit; each node a 2x2 square from (pos - lo) - 1
    assert (img[1:3, 1:3] == colors[0]).all() and (img[1:3, 5:7] == colors[1]).all()
    assert (img[5:7, 1:3] == colors[2]).all()
    assert img[..., 3].sum() == 3 * 4  # nothing else painted


def test_large_sections_are_rasterised(tmp_path):
    import time

    from gridgraph.graph import cartesian_graph
    from gridgraph.plot import RASTER_MIN_NODES, plot_label_map

    side = int(np.ceil(np.sqrt(RASTER_MIN_NODES * 5)))  # 100,000 bins
    rows, cols = np.divmod(np.arange(side * side), side)
    graph = cartesian_graph(rows, cols)
    labels = (cols * 4 // side).astype(np.int64)
    t0 = time.perf_counter()
    fig = plot_label_map(graph, labels, ["a", "b", "c", "d"], path=tmp_path / "big.png")
    assert time.perf_counter() - t0 < 30
    ax = fig.axes[0]
    assert len(ax.images) == 1 and len(ax.collections) == 0  # one image, no shape per node
    assert (tmp_path / "big.png").stat().st_size > 0
