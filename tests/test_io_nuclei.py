"""Nuclei CSV reader on the real CRCHistoPhenotypes image img10 and on synthetic points."""
import csv

import numpy as np
import pytest
import torch

from gridgraph.io import read_nuclei_csv

CRC_CLASSES = ["epithelial", "fibroblast", "inflammatory", "others"]


@pytest.mark.realdata
def test_crchisto_img10_counts_and_graph(crchisto_dir):
    path = crchisto_dir / "train" / "img10_nuclei.csv"
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    s = read_nuclei_csv(path, crchisto_dir / "train" / "img10.png")
    assert s.num_nodes == len(rows) == 348
    assert int((s.labels == -1).sum()) == sum(1 for r in rows if not r["label"]) == 26
    assert s.classes == CRC_CLASSES
    assert s.class_counts().tolist() == [sum(r["label"] == c for r in rows) for c in CRC_CLASSES]
    assert s.label_names() == [r["label"] or None for r in rows]
    expect = np.array([[float(r["x"]), float(r["y"])] for r in rows])
    np.testing.assert_allclose(s.pixel_pos.numpy(), expect, rtol=1e-6)
    assert s.name == "img10" and s.image.size == (500, 500)
    assert s.graph.layout == "irregular"
    ei = s.graph.edge_index
    assert (torch.bincount(ei[0], minlength=s.num_nodes) >= 6).all()
    pairs = set(map(tuple, ei.t().tolist()))
    assert all((b, a) in pairs for a, b in pairs)  # symmetric
    assert s.barcodes[:3] == ["0", "1", "2"]


@pytest.mark.realdata
def test_crchisto_radius_and_fixed_classes(crchisto_dir):
    path = crchisto_dir / "train" / "img1_nuclei.csv"
    s = read_nuclei_csv(path, crchisto_dir / "train" / "img1.png", graph={"builder": "radius", "r": 40.0}, classes=CRC_CLASSES)
    assert s.num_nodes == 29 and int((s.labels == -1).sum()) == 9
    assert s.classes == CRC_CLASSES and s.class_counts()[0] == 0  # no epithelial nuclei here
    pos = s.pixel_pos.double()
    d = torch.cdist(pos, pos)
    expected = int(((d < 40.0) & (d > 0)).sum())
    assert s.graph.num_edges == expected


def test_nuclei_without_label_column_and_knn_k(tmp_path):
    rng = np.random.default_rng(1)
    pts = rng.uniform(0, 100, (50, 2))
    path = tmp_path / "cells.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["x", "y"])
        w.writerows(pts.tolist())
    s = read_nuclei_csv(path, np.zeros((100, 100, 3), dtype=np.uint8), graph={"builder": "knn", "k": 4})
    assert s.num_nodes == 50 and (s.labels == -1).all() and s.classes == []
    assert (torch.bincount(s.graph.edge_index[0], minlength=50) >= 4).all()
    none = read_nuclei_csv(path, None)
    assert none.image is None and none.name == "cells"
    with pytest.raises(ValueError, match="graph rule 'radius' needs r"):
        read_nuclei_csv(path, None, graph="radius")
    with pytest.raises(ValueError, match="graph rule must be one of"):
        read_nuclei_csv(path, None, graph="delaunay")
    with pytest.raises(ValueError, match="a point rule"):
        read_nuclei_csv(path, None, graph="hex")
