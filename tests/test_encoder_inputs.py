"""What an encoder reads, declared as registry metadata: the built-in encoders' declarations, and
a newly registered encoder reading gene expression carried end to end (features, model, config
paths, checkpoint)."""
import numpy as np
import pytest
import torch
import yaml
from torch import nn

from gridgraph.encoders import (ENCODERS, encoder_meta, encoder_metadata, file_args, inputs_of, register_encoder,
                                weight_args, with_widths, without_weights)
from gridgraph.patches import NodeInputs

from helpers import changed, tiny_config

NAME = "test_expression_probe"

BUILTIN = {  # name -> (reads, files, weights, width, modality, branches)
    "gridnet_simple": ("image", (), (), None, None, None),
    "densenet121": ("image", ("weights",), ("weights",), None, None, None),
    "densenet_tiny": ("image", (), (), None, None, None),
    "timm": ("image", ("weights",), ("weights", "pretrained"), None, None, None),
    "torchvision": ("image", ("weights",), ("weights",), None, None, None),
    "feature_mlp": ("embedding", (), (), "in_features", "modality", None),
    "precomputed": ("embedding", ("path",), (), "in_features", None, None),
    "expression": ("expression", ("counts",), (), "in_features", None, None),
    "fusion": (None, (), (), "in_features", None, "branches"),
}


class ExpressionProbe(nn.Module):
    """A linear embedding of the ``"expression"`` part (no FeatureMLP: nothing but its metadata
    tells the library what it reads)."""

    def __init__(self, num_classes, in_features):
        super().__init__()
        self.body = nn.Linear(int(in_features), 8)
        self.embedding_dim, self.num_classes = 8, int(num_classes)
        self.classifier = nn.Linear(8, self.num_classes)

    def embed(self, x):
        return torch.relu(self.body((x["expression"] if isinstance(x, NodeInputs) else x).float()))

    def forward(self, x):
        return self.classifier(self.embed(x))


def expression_probe(num_classes, counts=None, in_features=0, n_top_genes=2000, id_format=None, weights=None):
    """Reads gene expression from ``counts``; ``weights``: a state dict for ``body`` (must exist)."""
    f = ExpressionProbe(num_classes, in_features)
    if weights is not None:
        f.body.load_state_dict(torch.load(weights))
    return f


@pytest.fixture
def probe():
    register_encoder(NAME, expression_probe, reads="expression", files=("counts", "weights"), weights=("weights",))
    try:
        yield NAME
    finally:
        ENCODERS.remove(NAME)


def test_builtin_encoders_declare_what_they_read():
    assert set(BUILTIN) <= set(ENCODERS.names())
    for name, (reads, files, weights, width, modality, branches) in BUILTIN.items():
        meta = encoder_metadata(name)
        got = (meta["reads"], meta["files"], meta["weights"], meta["width"], meta["modality"], meta["branches"])
        assert got == (reads, files, weights, width, modality, branches), name
        assert ENCODERS.metadata(name)["reads"] == reads and weight_args(name) == weights
    defaults = encoder_metadata("fusion")["branch_defaults"]
    assert defaults == {"image": "gridnet_simple", "expression": "expression", "embedding": "precomputed"}
    assert inputs_of("gridnet_simple", {}) == {"image": {"kind": "image"}}
    assert inputs_of("expression", {"counts": "c"}) == {"expression": {"counts": "c", "kind": "expression"}}
    assert inputs_of("feature_mlp", {"modality": "uni"}) == {"uni": {"modality": "uni", "kind": "embedding"}}
    assert file_args("timm") == [("weights",)] and file_args("gridnet_simple") == []


def test_undeclared_encoders_keep_the_old_defaults():
    def anything(num_classes, **kwargs):
        return kwargs

    def some(num_classes, weights=None, counts=None, in_features=0):
        return None

    ENCODERS.register("test_plain_any", anything)  # the registry itself: no metadata given
    register_encoder("test_plain_some", some)
    try:
        meta = encoder_metadata("test_plain_any")
        assert (meta["reads"], meta["files"], meta["weights"], meta["width"]) == (
            "image", ("weights", "path", "counts"), ("weights", "pretrained"), None)
        meta = encoder_metadata("test_plain_some")
        assert (meta["reads"], meta["files"], meta["weights"], meta["width"]) == (
            "image", ("weights", "counts"), ("weights",), "in_features")
    finally:
        ENCODERS.remove("test_plain_any")
        ENCODERS.remove("test_plain_some")
    with pytest.raises(ValueError, match="an encoder reads one of"):
        encoder_meta("rna")
    with pytest.raises(ValueError, match="an encoder reads one of"):
        register_encoder("test_never", some, reads="rna")
    assert "test_never" not in ENCODERS


def test_a_fusion_branch_reads_what_its_encoder_declares(probe):
    kwargs = {"branches": {"image": {}, "rna": {"name": probe, "kwargs": {"counts": "c.tsv", "weights": "w.pt"}}}}
    assert inputs_of("fusion", kwargs) == {"image": {"kind": "image"},
                                          "rna": {"counts": "c.tsv", "weights": "w.pt", "kind": "expression"}}
    assert file_args("fusion", kwargs) == [("branches", "rna", "kwargs", "counts"),
                                           ("branches", "rna", "kwargs", "weights")]
    assert without_weights("fusion", kwargs)["branches"]["rna"] == {"name": probe, "kwargs": {"counts": "c.tsv"}}
    assert with_widths("fusion", kwargs, {"rna": 4})["in_features"] == {"rna": 4}
    assert with_widths(probe, {"counts": "c"}, {"expression": 4}) == {"counts": "c", "in_features": 4}
    with pytest.raises(ValueError, match="fusion branch 'other' reads images"):
        inputs_of("fusion", {"branches": {"other": {"name": "gridnet_simple"}, "rna": {"name": probe}}})
    torch.manual_seed(0)
    f = ENCODERS.build("fusion", 3, branches={"image": {"kwargs": {"stage_channels": [4], "blocks": [1]}},
                                              "rna": {"name": probe}}, in_features={"rna": 5})
    assert isinstance(f.branches["rna"], ExpressionProbe) and f.branches["rna"].body.in_features == 5


def _write_counts(cfg, folder, genes=8):
    """A counts table per synthetic section whose marker gene follows the node's class."""
    from gridgraph.workflows import load_section

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"G{k}" for k in range(genes)]
    for sid in (0, 1, 2, 3, 4):
        s = load_section(cfg.data, sid, cfg.graph)
        counts = rng.poisson(2.0, (s.num_nodes, genes))
        counts[np.arange(s.num_nodes), s.labels.numpy().clip(0)] += 30  # gene k marks class k
        lines = ["\t" + "\t".join(names)] + [f"{b}\t" + "\t".join(map(str, r)) for b, r in zip(s.barcodes, counts)]
        (folder / f"{s.name}.tsv").write_text("\n".join(lines) + "\n")


def test_a_registered_expression_encoder_runs_end_to_end(tmp_path, probe):
    from gridgraph.config import load_config
    from gridgraph.workflows import build_run, load_model, run_training

    folder = tmp_path / "configs"
    base = tiny_config(tmp_path, epochs_f=2, epochs_g=1, epochs_joint=0)
    _write_counts(base, folder / "counts")
    torch.save(nn.Linear(5, 8).state_dict(), folder / "w.pt")  # body weights for 5 genes
    raw = changed(base, f={"name": probe, "kwargs": {"counts": "counts/{section}.tsv", "weights": "w.pt",
                                                     "n_top_genes": 5}}).to_dict()
    (folder / "run.yaml").write_text(yaml.safe_dump(raw))

    cfg = load_config(folder / "run.yaml")  # its file arguments resolve against the config's folder
    assert cfg.f.kwargs["counts"] == str((folder / "counts" / "{section}.tsv").resolve())
    assert cfg.f.kwargs["weights"] == str((folder / "w.pt").resolve()) and cfg.f.kwargs["n_top_genes"] == 5

    run = build_run(cfg, log=lambda line: None, splits=("train",))
    assert set(run.features) == {"expression", "in_features"} and len(run.features["expression"]["genes"]) == 5
    assert run.features["in_features"] == {"expression": 5} and run.scale == {}  # no image read
    first = run.splits["train"][0].patches
    assert isinstance(first, NodeInputs) and list(first.parts) == ["expression"] and first["expression"].shape[1] == 5
    assert isinstance(run.model.f, ExpressionProbe) and run.model.f.body.in_features == 5
    assert torch.equal(run.model.f.body.weight, torch.load(folder / "w.pt")["weight"])

    run_training(cfg, log=lambda line: None, figures=False)
    (folder / "w.pt").unlink()  # from a checkpoint, the weights argument is dropped: the file is not read
    model, ckpt = load_model(tmp_path / "run" / "best.pt")
    assert ckpt.config.f.kwargs["weights"] == str((folder / "w.pt").resolve())
    assert isinstance(model.f, ExpressionProbe) and model.f.body.in_features == 5
    with pytest.raises(FileNotFoundError):
        ENCODERS.build(probe, 3, **ckpt.config.f.kwargs, in_features=5)  # kept, it would be read


def test_feature_encoders_may_infer_their_width_and_old_state_dicts_still_load():
    from gridgraph.encoders import build_encoder

    torch.manual_seed(0)
    lazy = build_encoder("feature_mlp", 3, in_features=-1, modality="expression", hidden=[8])
    assert lazy.in_features == -1 and lazy.embedding_dim == 8 and "in_features=-1" in repr(lazy)
    x = NodeInputs({"expression": torch.randn(4, 6)})
    assert lazy(x).shape == (4, 3) and lazy.in_features == 6 and type(lazy.body[0]) is nn.Linear
    with pytest.raises(ValueError, match=r"expects \(B, 6\) features"):
        lazy(torch.randn(4, 5))
    with pytest.raises(ValueError, match="needs hidden layers"):
        build_encoder("feature_mlp", 3, in_features=-1, hidden=[])
    with pytest.raises(ValueError, match="needs in_features >= 1, got 0"):
        build_encoder("expression", 3)  # a width left unfilled is still an error

    explicit = build_encoder("expression", 3, in_features=6, hidden=[8]).eval()  # as checkpoints hold it
    state = explicit.state_dict()
    again = build_encoder("expression", 3, in_features=6, hidden=[8])
    again.load_state_dict(state)
    fresh = build_encoder("feature_mlp", 3, in_features=-1, modality="expression", hidden=[8])
    fresh.load_state_dict(state)  # loading materialises the inferred width
    assert fresh.in_features == 6
    with torch.no_grad():
        assert torch.equal(again.eval()(x), explicit(x)) and torch.equal(fresh.eval()(x), explicit(x))
