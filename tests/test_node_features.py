"""Node features beyond image patches: NodeInputs, feature readers, expression preprocessing,
feature and fusion encoders, and a run trained and predicted on gene expression."""
import gzip
import warnings

import numpy as np
import pytest
import torch
from scipy import sparse

from gridgraph.encoders import FusionEncoder, build_encoder
from gridgraph.features import expression_matrix, highly_variable_genes, normalize_log1p
from gridgraph.io.readers.features import read_counts, read_node_features
from gridgraph.patches import NodeInputs, normalize, random_dihedral

from helpers import changed, tiny_config


def test_node_inputs_slice_cat_and_image_transforms():
    image = torch.arange(4 * 3 * 2 * 2, dtype=torch.uint8).reshape(4, 3, 2, 2)
    expr = torch.arange(8, dtype=torch.float32).reshape(4, 2)
    x = NodeInputs({"image": image, "expression": expr})
    assert len(x) == 4 and "image" in x and repr(x) == "NodeInputs(image=(4, 3, 2, 2), expression=(4, 2))"
    part = x[torch.tensor([3, 1])]
    assert torch.equal(part["expression"], expr[[3, 1]]) and torch.equal(part["image"], image[[3, 1]])
    joined = torch.cat([x[:1], x[2:]])
    assert torch.equal(joined["expression"], expr[[0, 2, 3]])
    normed = normalize(x)
    assert torch.equal(normed["expression"], expr) and torch.allclose(normed["image"], normalize(image))
    turned = random_dihedral(x, torch.Generator().manual_seed(0))
    assert torch.equal(turned["expression"], expr)
    assert torch.equal(turned["image"], random_dihedral(image, torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="disagree"):
        NodeInputs({"a": torch.zeros(2, 1), "b": torch.zeros(3, 1)})
    with pytest.raises(KeyError, match="'embedding' modality"):
        x["embedding"]


def test_normalize_log1p_exact():
    counts = sparse.csr_matrix(np.array([[1, 3, 0], [0, 0, 0], [2, 2, 4]], dtype=np.float32))
    got = normalize_log1p(counts, target_sum=4).toarray()
    want = np.log1p(np.array([[1, 3, 0], [0, 0, 0], [1, 1, 2]], dtype=np.float64))
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_highly_variable_genes_pick_the_varying_ones():
    rng = np.random.default_rng(0)
    flat = np.full((60, 4), 5.0)
    varying = np.stack([np.where(np.arange(60) % 2, 20.0, 0.5), np.where(np.arange(60) < 30, 15.0, 1.0)], axis=1)
    noise = rng.poisson(5, (60, 4)).astype(float) * 0 + flat
    matrix = normalize_log1p(np.hstack([noise[:, :2], varying[:, :1], noise[:, 2:], varying[:, 1:]]))
    genes = ["a", "b", "V1", "c", "d", "V2"]
    assert highly_variable_genes([matrix[:30], matrix[30:]], genes, 2, bins=1) == ["V1", "V2"]
    assert highly_variable_genes([matrix], genes, 10) == genes
    never = sparse.csr_matrix(np.zeros((3, 2)))
    assert highly_variable_genes([never], ["x", "y"], 1) == []


def test_expression_matrix_matches_ids_and_genes():
    counts = sparse.csr_matrix(np.array([[1, 1, 2], [3, 0, 1]], dtype=np.float32))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        got = expression_matrix(["s2", "s9", "s1"], ["s1", "s2"], ["g1", "g2", "g3"], counts,
                                ["g3", "gX", "g1"], target_sum=4, source="c.tsv")
    assert {"1 of 3 nodes have no counts" in str(w.message) for w in seen} >= {True}
    assert any("1 of the model's 3 genes are absent" in str(w.message) for w in seen)
    want = np.array([[np.log1p(1), 0, np.log1p(3)], [0, 0, 0], [np.log1p(2), 0, np.log1p(1)]], dtype=np.float32)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    with pytest.raises(ValueError, match="c.tsv: none of the section's 1 node ids"):
        expression_matrix(["zz"], ["s1", "s2"], ["g1", "g2", "g3"], counts, ["g1"], source="c.tsv")


def _features(n=5, d=3):
    return [f"n{i}" for i in range(n)], np.arange(n * d, dtype=np.float32).reshape(n, d) / 7


def test_read_node_features_every_format(tmp_path):
    import pandas as pd

    ids, values = _features()
    order = [4, 0, 3, 1, 2]  # files list the nodes in another order
    np.save(tmp_path / "f.npy", values)
    np.savez(tmp_path / "f.npz", ids=np.array(ids)[order], emb=values[order])
    frame = pd.DataFrame(values[order], columns=["e0", "e1", "e2"])
    frame.insert(0, "barcode", np.array(ids)[order])
    frame.to_csv(tmp_path / "f.csv", index=False)
    frame.to_parquet(tmp_path / "f.parquet")
    for name, key in [("f.npy", None), ("f.npz", "emb"), ("f.csv", None), ("f.parquet", None)]:
        np.testing.assert_allclose(read_node_features(tmp_path / name, ids, key), values, rtol=1e-6, err_msg=name)
    anndata = pytest.importorskip("anndata")
    adata = anndata.AnnData(obs=pd.DataFrame(index=np.array(ids)[order]))
    adata.obsm["X_uni"] = values[order]
    adata.write_h5ad(tmp_path / "f.h5ad")
    np.testing.assert_allclose(read_node_features(tmp_path / "f.h5ad", ids, "X_uni"), values)
    with pytest.raises(ValueError, match="no obsm key 'X_other'"):
        read_node_features(tmp_path / "f.h5ad", ids, "X_other")


def test_read_node_features_errors(tmp_path):
    ids, values = _features()
    np.savez(tmp_path / "f.npz", ids=np.array(ids[:4]), features=values[:4])
    with pytest.raises(ValueError, match=r"f.npz: 1 of the section's 5 nodes have no node features, e.g. 'n4'"):
        read_node_features(tmp_path / "f.npz", ids)
    bad = values.copy()
    bad[2, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(ValueError, match="node 'n2' holds NaN"):
        read_node_features(tmp_path / "nan.npy", ids)
    np.save(tmp_path / "short.npy", values[:3])
    with pytest.raises(ValueError, match=r"short.npy: expected a \(5, D\)"):
        read_node_features(tmp_path / "short.npy", ids)
    (tmp_path / "t.csv").write_text("id,a\nn0,1\nn1,x\n")
    with pytest.raises(ValueError, match="t.csv: node features column 'a': expected numbers"):
        read_node_features(tmp_path / "t.csv", ids[:2])
    with pytest.raises(FileNotFoundError, match="absent.npy"):
        read_node_features(tmp_path / "absent.npy", ids)


def test_read_counts_every_format(tmp_path):
    import h5py
    from scipy import io as sio

    ids, genes = ["a-1", "b-1", "c-1"], ["G1", "G2"]
    dense = np.array([[0, 2], [5, 0], [1, 1]], dtype=np.float32)
    table = "\t" + "\t".join(genes) + "\n" + "".join(f"{i}\t" + "\t".join(str(int(v)) for v in row) + "\n"
                                                       for i, row in zip(ids, dense))
    (tmp_path / "c.tsv.gz").write_bytes(gzip.compress(table.encode()))
    mtx = tmp_path / "mtx"
    mtx.mkdir()
    sio.mmwrite(str(mtx / "matrix.mtx"), sparse.coo_matrix(dense.T))
    (mtx / "barcodes.tsv").write_text("\n".join(ids) + "\n")
    (mtx / "features.tsv").write_text("".join(f"ENSG{k}\t{g}\tGene Expression\n" for k, g in enumerate(genes)))
    csc = sparse.csc_matrix(dense.T)
    with h5py.File(tmp_path / "m.h5", "w") as h5:
        m = h5.create_group("matrix")
        m["data"], m["indices"], m["indptr"], m["shape"] = csc.data, csc.indices, csc.indptr, np.array(csc.shape)
        m["barcodes"] = np.array(ids, dtype="S")
        m.create_group("features")["name"] = np.array(genes, dtype="S")
    for source in ("c.tsv.gz", "mtx", "m.h5"):
        got_ids, got_genes, counts = read_counts(tmp_path / source)
        assert (got_ids, got_genes) == (ids, genes), source
        np.testing.assert_array_equal(counts.toarray(), dense, err_msg=source)
    (tmp_path / "text.tsv").write_text("\tG1\tG2\na\t1\tx\n")
    with pytest.raises(ValueError, match="text.tsv: gene column 'G2': expected numeric counts"):
        read_counts(tmp_path / "text.tsv")
    (tmp_path / "neg.tsv").write_text("\tG1\na\t-1\n")
    with pytest.raises(ValueError, match="neg.tsv: negative counts"):
        read_counts(tmp_path / "neg.tsv")
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="bad.h5: not an HDF5 file"):
        read_counts(tmp_path / "bad.h5")


def test_fusion_gradients_reach_every_branch():
    torch.manual_seed(0)
    f = build_encoder("fusion", 3, branches={
        "image": {"name": "gridnet_simple", "kwargs": {"stage_channels": [4, 4, 8, 8], "stem_channels": 4,
                                                      "blocks": [1, 1, 1, 1]}},
        "expression": {"name": "expression", "kwargs": {"hidden": [8]}}}, in_features={"expression": 6})
    assert isinstance(f, FusionEncoder) and f.embedding_dim == 8 + 8 and f.modalities == ["image", "expression"]
    x = NodeInputs({"image": torch.randn(5, 3, 16, 16), "expression": torch.randn(5, 6)})
    f(x).sum().backward()
    for name, branch in f.branches.items():  # the branches' own heads are not used by a fusion
        head = {id(p) for p in branch.classifier.parameters()}
        grads = [p.grad for p in branch.parameters() if id(p) not in head]
        assert grads and all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads), name
    f.modality_dropout = 0.5
    f.train()
    kept = f.embed(x)
    assert kept.shape == (5, 16) and not torch.all(kept[:, :8] == 0, dim=1).logical_and(torch.all(kept[:, 8:] == 0, dim=1)).any()


def _write_counts(cfg, folder):
    """A counts table per synthetic section whose marker gene follows the node's class."""
    from gridgraph.workflows import load_section

    folder.mkdir()
    rng = np.random.default_rng(0)
    for sid in (0, 1, 2, 3, 4):
        s = load_section(cfg.data, sid, cfg.graph)
        y = s.labels.numpy().clip(0)
        genes = [f"G{k}" for k in range(8)]
        counts = rng.poisson(2.0, (s.num_nodes, 8))
        counts[np.arange(s.num_nodes), y] += 30  # gene k marks class k
        lines = ["\t" + "\t".join(genes)] + [f"{b}\t" + "\t".join(map(str, row)) for b, row in zip(s.barcodes, counts)]
        (folder / f"{s.name}.tsv").write_text("\n".join(lines) + "\n")


def test_expression_f_trains_predicts_and_refuses_missing_counts(tmp_path):
    from gridgraph.workflows import load_model, predict_section, run_training
    from gridgraph.workflows import load_section

    cfg = tiny_config(tmp_path, epochs_f=8, epochs_g=2, epochs_joint=0, lr=1e-2)
    _write_counts(cfg, tmp_path / "counts")
    cfg = changed(cfg, f={"name": "expression", "kwargs": {"counts": str(tmp_path / "counts" / "{section}.tsv"),
                                                           "n_top_genes": 5, "hidden": [16]}})
    result = run_training(cfg, log=lambda line: None, figures=False)
    assert result["test"]["f"]["accuracy"] > 0.9  # the marker genes give the class away
    model, ckpt = load_model(tmp_path / "run" / "best.pt")
    kept = ckpt.features["expression"]["genes"]
    assert len(kept) == 5 and set(kept) <= {f"G{k}" for k in range(8)} and {"G0", "G1", "G2"} <= set(kept)
    assert ckpt.features["in_features"] == {"expression": 5} and model.f.in_features == 5
    section = load_section(cfg.data, 4, cfg.graph)
    paths = predict_section(model, ckpt, section, tmp_path / "pred", figures=False)
    assert paths["table"].is_file()
    gone = ckpt.config.model_copy(update={"f": ckpt.config.f.model_copy(
        update={"kwargs": {**ckpt.config.f.kwargs, "counts": str(tmp_path / "none" / "{section}.tsv")}})})
    with pytest.raises(FileNotFoundError, match="gene counts not found"):
        predict_section(model, ckpt.replace(config=gone), section, tmp_path / "pred2", figures=False)


def test_predict_cli_takes_the_sections_counts(tmp_path, capsys):
    from gridgraph.cli import main
    from gridgraph.workflows import load_section
    from gridgraph.workflows import run_training

    from helpers import write_spaceranger

    cfg = tiny_config(tmp_path, epochs_f=2, epochs_g=1, epochs_joint=0)
    _write_counts(cfg, tmp_path / "counts")
    cfg = changed(cfg, f={"name": "expression", "kwargs": {"counts": str(tmp_path / "counts" / "{section}.tsv"),
                                                           "n_top_genes": 5, "hidden": [8]}})
    run_training(cfg, log=lambda line: None, figures=False)
    folder = write_spaceranger(load_section(cfg.data, 4, cfg.graph), tmp_path / "visium")
    ckpt = str(tmp_path / "run" / "best.pt")
    moved = tmp_path / "moved.tsv"
    moved.write_bytes((tmp_path / "counts" / "synthetic-4.tsv").read_bytes())
    assert main(["predict", ckpt, "--spaceranger", str(folder), "--counts", str(moved), "--no-figure",
                 "--out", str(tmp_path / "p")]) == 0
    assert (tmp_path / "p" / "predictions.csv").read_text().count("\n") == 1 + load_section(cfg.data, 4, cfg.graph).num_nodes
    assert main(["predict", ckpt, "--spaceranger", str(folder), "--embeddings", str(moved),
                 "--out", str(tmp_path / "q")]) == 2
    assert "reads no ['embedding'] input" in capsys.readouterr().err


def test_backbone_f_brings_its_normalisation_and_trains(tmp_path):
    pytest.importorskip("timm")
    from gridgraph.workflows import load_model, model_from_config, run_training

    cfg = changed(tiny_config(tmp_path, epochs_f=1, epochs_g=1, epochs_joint=0),
                  f={"name": "timm", "kwargs": {"model_name": "test_resnet", "freeze": True, "input_size": 16}})
    torch.manual_seed(cfg.seed)  # as run_training builds its model
    model = model_from_config(cfg, 3)
    assert model.transform.mean == model.f.input_mean == (0.5, 0.5, 0.5)
    run_training(cfg, log=lambda line: None, figures=False)
    loaded, _ = load_model(tmp_path / "run" / "best.pt")
    before = model.f.backbone.state_dict()
    assert all(torch.equal(before[k], v) for k, v in loaded.f.backbone.state_dict().items())  # frozen: unchanged
    assert not torch.equal(model.f.classifier.weight, loaded.f.classifier.weight)  # the head trained
    stored = sorted((tmp_path / "run" / "embeddings").rglob("*.pt"))
    assert len(stored) == 5  # one file per section (3 train, 1 val, 1 test)


def test_backbone_embeddings_are_computed_once_and_reused(tmp_path):
    pytest.importorskip("timm")
    from gridgraph.workflows import load_splits
    from gridgraph.embeddings import attach_backbone_embeddings
    from gridgraph.workflows import model_from_config

    cfg = changed(tiny_config(tmp_path), f={"name": "timm", "kwargs": {"model_name": "test_resnet", "freeze": True,
                                                                       "input_size": 16}})
    splits, _ = load_splits(cfg, splits=("train",))
    model = model_from_config(cfg, 3).eval()
    calls = []
    hook = model.f.backbone.register_forward_hook(lambda m, i, o: calls.append(len(i[0])))
    first = attach_backbone_embeddings(model, splits["train"], tmp_path / "emb", log=lambda line: None)
    assert sum(calls) == sum(st.num_nodes for st in splits["train"])  # every node once
    second = attach_backbone_embeddings(model, splits["train"], tmp_path / "emb", log=lambda line: None)
    assert sum(calls) == sum(st.num_nodes for st in splits["train"])  # all read back
    for a, b, st in zip(first, second, splits["train"]):
        assert torch.equal(a.patches["backbone"], b.patches["backbone"])
        with torch.no_grad():  # f reads the stored embeddings, equal to running the backbone
            assert torch.allclose(model.forward_f(a.patches), model.forward_f(st.patches), atol=1e-5)
    assert sum(calls) == 2 * sum(st.num_nodes for st in splits["train"])  # only the plain pass ran it
    shifted = changed(cfg, patches={"patch_size": 16, "window_spots": 1.5})
    moved, _ = load_splits(shifted, splits=("train",))
    attach_backbone_embeddings(model, moved["train"][:1], tmp_path / "emb", log=lambda line: None)
    assert sum(calls) == 2 * sum(st.num_nodes for st in splits["train"]) + moved["train"][0].num_nodes
    hook.remove()


def test_gene_selection_uses_the_genes_every_training_file_has(tmp_path):
    from gridgraph.features import fit_features, section_inputs
    from gridgraph.io.readers.synthetic import make_section

    sections = [make_section("cartesian", seed=k, name=f"s{k}") for k in (0, 1)]
    rng = np.random.default_rng(0)
    for k, s in enumerate(sections):
        genes = ["A", "B", "C", "D"] if k == 0 else ["D", "C", "A"]  # other order, no B
        counts = rng.poisson(3, (s.num_nodes, len(genes)))
        counts[:, genes.index("C")] = np.where(np.arange(s.num_nodes) % 2, 40, 0)  # the varying gene
        rows = ["\t" + "\t".join(genes)] + [f"{b}\t" + "\t".join(map(str, r)) for b, r in zip(s.barcodes, counts)]
        (tmp_path / f"{s.name}.tsv").write_text("\n".join(rows) + "\n")
    kwargs = {"counts": str(tmp_path / "{section}.tsv"), "n_top_genes": 1}
    state = fit_features("expression", kwargs, sections, log=lambda line: None)
    assert state == {"expression": {"genes": ["C"], "target_sum": 1e4}}
    both = fit_features("expression", {**kwargs, "n_top_genes": 10}, sections, log=lambda line: None)
    assert both["expression"]["genes"] == ["A", "C", "D"]  # B is missing from s1
    inputs = section_inputs(sections[1], "expression", kwargs, state)
    assert inputs["expression"].shape == (sections[1].num_nodes, 1)
    assert (inputs["expression"][0::2, 0] == 0).all() and (inputs["expression"][1::2, 0] > 8).all()


def test_review_edge_cases(tmp_path):
    import pandas as pd

    from gridgraph.io.readers.features import unique_names
    from gridgraph.io.tables import read_table
    from gridgraph.io.writers.tables import round_significant
    from gridgraph.model import build_model
    from gridgraph.patches import SectionTensors
    from gridgraph.io.readers.synthetic import make_section

    assert unique_names(["A", "MATR3", "MATR3", "A", "MATR3-1"]) == ["A", "MATR3", "MATR3-2", "A-1", "MATR3-1"]
    ids, values = _features(3, 2)
    pd.DataFrame(values, index=pd.Index(ids, name="barcode"), columns=["a", "b"]).to_parquet(tmp_path / "i.parquet")
    np.testing.assert_allclose(read_node_features(tmp_path / "i.parquet", ids[::-1]), values[::-1])
    f = build_encoder("fusion", 2, branches={"image": {}, "expression": {"kwargs": {"counts": "x.tsv"}}},
                      in_features={"expression": 3})
    assert f.branches["expression"].in_features == 3
    x = NodeInputs({"e": torch.zeros(2, 1)})
    with pytest.raises(ValueError, match="dim 0"):
        torch.cat([x, x], dim=1)
    assert round_significant(np.array([5e-324, 0.5]), 6).tolist() == [5e-324, 0.5]
    table = read_table(write_text(tmp_path / "d.csv", ",,\nx,y\n1,2\n"), header=True)
    assert table.columns == ["x", "y"] and table.lines == [3]
    s = make_section("cartesian", seed=0)
    st = SectionTensors("s", NodeInputs({"expression": torch.zeros(s.num_nodes, 2)}), s.graph, s.labels)
    assert "NodeInputs(expression=" in repr(st)
    model = build_model(3, encoder="feature_mlp", corrector="gcn", encoder_kwargs={"in_features": 4})
    assert model.f_outputs(torch.randn(5, 4))[0].shape == (5, 3)  # a plain (N, D) tensor, no image transform


def write_text(path, text):
    path.write_text(text)
    return path
