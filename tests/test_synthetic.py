import numpy as np
import pytest
import torch

from gridgraph.io.readers.synthetic import make_dataset, make_section


@pytest.mark.parametrize("layout", ["hex", "cartesian", "irregular"])
def test_deterministic_per_seed_and_different_across_seeds(layout):
    a, b, c = make_section(layout, seed=3), make_section(layout, seed=3), make_section(layout, seed=4)
    assert np.array_equal(a.load_image(), b.load_image())
    assert torch.equal(a.labels, b.labels) and torch.equal(a.graph.edge_index, b.graph.edge_index)
    assert not np.array_equal(a.load_image(), c.load_image())
    assert a.graph.layout == layout


@pytest.mark.parametrize("layout", ["hex", "cartesian", "irregular"])
def test_every_class_present_and_nodes_inside_image(layout):
    s = make_section(layout, n_classes=5, seed=0)
    assert (s.class_counts() > 0).all()
    w, h = s.image_size()
    pos = s.pixel_pos
    assert (pos[:, 0] >= 0).all() and (pos[:, 0] < w).all()
    assert (pos[:, 1] >= 0).all() and (pos[:, 1] < h).all()
    assert s.load_image().dtype == np.uint8 and s.load_image().shape == (h, w, 3)


def test_bands_are_spatially_contiguous():
    # Most edges join nodes of the same class, and a class only borders the next or previous one.
    s = make_section("hex", n_classes=5, seed=0, unlabeled_fraction=0.0)
    src, dst = s.graph.edge_index
    la, lb = s.labels[src], s.labels[dst]
    assert (la == lb).float().mean() > 0.85
    assert ((la - lb).abs() <= 1).all()


def test_classes_overlap_in_colour_but_differ_on_average():
    s = make_section("cartesian", n_classes=4, seed=1)
    img = s.load_image().astype(float)
    xy = s.pixel_pos.round().long().numpy()
    colour = img[xy[:, 1], xy[:, 0]].sum(1)
    lab = s.labels.numpy()
    means = [colour[lab == k].mean() for k in range(4)]
    assert all(np.diff(means) < 0), "deeper bands are darker on average"
    sd = colour[lab == 1].std()
    assert sd > abs(means[1] - means[2]) / 2, "neighbouring classes overlap"


def test_bad_arguments():
    with pytest.raises(ValueError, match="layout"):
        make_section("square")
    with pytest.raises(ValueError, match="n_classes"):
        make_section(n_classes=1)


def test_make_dataset_seeds():
    ds = make_dataset(3, layout="cartesian", seed=10)
    assert [s.meta["seed"] for s in ds] == [10, 11, 12]
    assert len({s.name for s in ds}) == 3
