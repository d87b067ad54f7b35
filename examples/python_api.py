"""gridgraph from Python: synthetic sections, two-stage training, and the GNN corrector alone.

    python examples/python_api.py
"""
import torch
from torch_geometric.data import Data

from gridgraph.config import make_config
from gridgraph.correctors import build_corrector
from gridgraph.datasets import load_splits
from gridgraph.pipeline import evaluate_sections, model_from_config, predict_probs
from gridgraph.train import Trainer

cfg = make_config({
    "output": "runs/python-api",
    "data": {"reader": "synthetic", "options": {"layout": "irregular", "n_classes": 4},
             "train": [1, 2], "val": [3], "test": [4]},
    "patches": {"patch_size": 24, "window_spots": 2.0},
    "g": {"name": "gcn", "kwargs": {"hidden_channels": 32, "num_layers": 4}},
    "train": {"epochs_f": 3, "epochs_g": 30},
})
splits, classes = load_splits(cfg)
model = model_from_config(cfg, len(classes))
Trainer(model, cfg, classes, out_dir=cfg["output"]).fit(splits["train"], splits["val"])
print(evaluate_sections([s.labels for s in splits["test"]], predict_probs(model, splits["test"])))

# The corrector works on any PyG graph: 100 nodes with 16 features each, on a ring.
ring = torch.stack([torch.arange(100), torch.arange(1, 101) % 100])
data = Data(x=torch.randn(100, 16), edge_index=torch.cat([ring, ring.flip(0)], 1))
gcn = build_corrector("gcn", num_classes=4, in_channels=16)
print(gcn(data.x, data.edge_index).shape)  # torch.Size([100, 4])
