"""gridgraph from Python: typed config objects, two-stage training, and the GNN corrector alone.

    python examples/python_api.py
"""
import torch
from torch_geometric.data import Data

from gridgraph import build_model
from gridgraph.config import DataConfig, PatchConfig, RunConfig
from gridgraph.correctors import build_corrector
from gridgraph.workflows import load_splits
from gridgraph.inference import evaluate_probs, predict_probs
from gridgraph.train import Trainer, TrainConfig

# Sections: four synthetic sections with irregular (kNN) cell graphs, 24 px patches.
data = RunConfig(data=DataConfig(name="synthetic", kwargs={"layout": "irregular", "n_classes": 4},
                                 train=[1, 2], val=[3], test=[4]),
                 patches=PatchConfig(patch_size=24, window_spots=2.0))
splits, classes = load_splits(data)

# f + g, and the trainer with its train settings alone.
model = build_model(len(classes), encoder="gridnet_simple", corrector="gcn",
                    corrector_kwargs={"hidden_channels": 32, "num_layers": 4})
trainer = Trainer(model, TrainConfig(epochs_f=3, epochs_g=30), classes, out_dir="runs/python-api")
trainer.fit(splits["train"], splits["val"])
print(evaluate_probs([s.labels for s in splits["test"]], predict_probs(model, splits["test"])))

# The corrector works on any PyG graph: 100 nodes with 16 features each, on a ring.
ring = torch.stack([torch.arange(100), torch.arange(1, 101) % 100])
graph = Data(x=torch.randn(100, 16), edge_index=torch.cat([ring, ring.flip(0)], 1))
gcn = build_corrector("gcn", num_classes=4, in_channels=16)
print(gcn(graph.x, graph.edge_index).shape)  # torch.Size([100, 4])
