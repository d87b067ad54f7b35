"""ResNet-34-Seg baseline."""
import numpy as np
import pytest
import torch
from torch import nn

from gridgraph.model import ResNetSeg, resnet34_seg, stitch_patches
from gridgraph.encoders.gridnet_simple import BasicBlock
from gridgraph.graph import cartesian_graph, collate, knn_graph
from gridgraph.patches.transforms import normalize


K, P = 3, 8


def _graph():
    return cartesian_graph(np.array([0, 0, 1, 2, 2]), np.array([0, 3, 1, 2, 3]))  # grid (3, 4)


def test_architecture():
    m = resnet34_seg(K, (3, 4))
    assert isinstance(m, ResNetSeg)
    stages = [s for s in m.features if isinstance(s, nn.Sequential)]
    assert [len(s) for s in stages] == [3, 4, 6, 3]
    assert all(isinstance(b, BasicBlock) for s in stages for b in s)
    assert [s[0].conv1.out_channels for s in stages] == [16, 32, 64, 128]
    assert isinstance(m.pool, nn.AdaptiveAvgPool2d) and m.pool.output_size == (3, 4)
    assert m.classifier.kernel_size == (1, 1) and m.classifier.out_channels == K
    assert any(isinstance(x, nn.BatchNorm2d) for x in m.modules())


def test_stitch_patches():
    graph = _graph()
    patches = torch.randint(0, 256, (5, 3, P, P), dtype=torch.uint8)
    img = stitch_patches(patches, graph)
    assert img.shape == (1, 3, 3 * P, 4 * P)
    norm = normalize(patches)
    for i, (r, c) in enumerate(graph.grid_index.tolist()):
        torch.testing.assert_close(img[0, :, r * P : (r + 1) * P, c * P : (c + 1) * P], norm[i])
    assert img[0, :, 0:P, P : 2 * P].abs().sum() == 0  # background cell (0, 1)
    with pytest.raises(ValueError, match="grid layout"):
        stitch_patches(patches, knn_graph(torch.rand(5, 2), k=2))


def test_forward_dense_and_nodes():
    torch.manual_seed(0)
    a = _graph()
    b = cartesian_graph(np.array([0, 1, 2]), np.array([1, 1, 0]))
    batch = collate([a, b])
    m = resnet34_seg(K, batch.grid_shape).eval()
    patches = torch.randint(0, 256, (batch.num_nodes, 3, P, P), dtype=torch.uint8)
    img = stitch_patches(patches, batch)
    assert img.shape == (2, 3, 3 * P, 4 * P)
    with torch.no_grad():
        dense = m(img)
        assert dense.shape == (2, K, 3, 4)
        nodes = m.forward_patches(patches, batch)
    assert nodes.shape == (batch.num_nodes, K)
    nb, gi = batch.batch, batch.grid_index
    torch.testing.assert_close(nodes, dense[nb, :, gi[:, 0], gi[:, 1]])
    with pytest.raises(ValueError, match="grid_shape"):
        resnet34_seg(K, (5, 5)).forward_patches(patches, batch)
