"""Gene expression as the target: config, losses, metrics (against scipy), ridge, target fitting
and its errors, the synthetic reader's counts."""
import copy

import numpy as np
import pytest
import torch
from scipy import sparse, stats

from gridgraph.config import ConfigError, make_config
from gridgraph.evaluate.regression import pearson_per_gene, pearson_pvalues, regression_metrics, spearman_per_gene
from gridgraph.evaluate.ridge import fit_ridge, select_ridge
from gridgraph.features.targets import destandardize, fit_target, section_targets
from gridgraph.io.readers.synthetic import make_section
from gridgraph.model import GridGraphNet
from gridgraph.model.losses import LOSSES, masked_regression_loss

EXPR = {"kind": "expression", "genes": ["gene0", "gene1"]}


def test_target_config_defaults_and_refusals():
    assert make_config({}).target.kind == "labels" and not make_config({}).target.expression
    cfg = make_config({"target": {"kind": "expression", "top_variable": 50}, "model": {"g_input": "logits"}})
    assert cfg.target.top_variable == 50 and cfg.target.standardize and cfg.target.loss == "mse"
    cases = [
        ({"target": EXPR}, "set model.g_input to logits"),
        ({"target": {"kind": "expression"}, "model": {"g_input": "logits"}}, "exactly one of genes"),
        ({"target": {**EXPR, "top_variable": 3}, "model": {"g_input": "logits"}}, "exactly one of genes"),
        ({"target": {**EXPR, "loss": "cosine"}, "model": {"g_input": "logits"}},
         "unknown regression loss 'cosine'; known: mse, l1, huber, smooth_l1"),
        ({"target": {"kind": "expression", "genes": ["A", "A"]}, "model": {"g_input": "logits"}}, "'A' is listed twice"),
        ({"target": {"kind": "labels", "genes": ["A"]}}, "genes: only used by kind expression"),
        ({"target": {**EXPR}, "model": {"g_input": "features"}, "train": {"label_smoothing": 0.1}}, "label_smoothing"),
    ]
    for update, message in cases:
        with pytest.raises(ConfigError, match=message):
            make_config(update)


def test_masked_regression_loss_exact():
    pred = torch.tensor([[1.0, 2.0], [0.0, 0.0], [3.0, -1.0]])
    target = torch.tensor([[0.0, 0.0], [float("nan")] * 2, [1.0, 1.0]])
    assert masked_regression_loss(pred, target).item() == pytest.approx((1 + 4 + 4 + 4) / 4)
    assert masked_regression_loss(pred, target, "l1").item() == pytest.approx((1 + 2 + 2 + 2) / 4)
    assert masked_regression_loss(pred, target, "huber").item() == pytest.approx((0.5 + 1.5 + 1.5 + 1.5) / 4)
    members = torch.stack([pred, pred + 1])
    assert masked_regression_loss(members, target).item() == pytest.approx(
        masked_regression_loss(pred, target).item() + masked_regression_loss(pred + 1, target).item())
    assert masked_regression_loss(pred, torch.full((3, 2), float("nan"))).item() == 0.0
    assert set(LOSSES) == {"mse", "l1", "huber", "smooth_l1"}
    with pytest.raises(ValueError, match="unknown regression loss 'x'"):
        masked_regression_loss(pred, target, "x")


def test_metrics_equal_scipy():
    rng = np.random.default_rng(1)
    y = rng.normal(size=(37, 5))
    p = 0.4 * y + rng.normal(size=(37, 5))
    y[:, 3], p[:, 3] = np.round(y[:, 3]), np.round(p[:, 3])  # ties: average ranks
    r, rho = pearson_per_gene(y, p), spearman_per_gene(y, p)
    for j in range(5):
        ref_r, ref_p = stats.pearsonr(y[:, j], p[:, j])
        assert abs(r[j] - ref_r) < 1e-10 and abs(rho[j] - stats.spearmanr(y[:, j], p[:, j])[0]) < 1e-10
        assert abs(pearson_pvalues(r[j], 37) - ref_p) < 1e-10
    m = regression_metrics(y, p, per_gene=True)
    assert m["mean_pearson"] == pytest.approx(r.mean(), abs=1e-12)
    assert m["median_pearson"] == pytest.approx(np.median(r), abs=1e-12)
    assert m["mean_spearman"] == pytest.approx(rho.mean(), abs=1e-12)
    assert m["genes_r_above_0.3"] == int((r > 0.3).sum())
    pvals = np.array([stats.pearsonr(y[:, j], p[:, j])[1] for j in range(5)])
    assert m["genes_significant"] == int(((pvals < 0.05 / 5) & (r > 0)).sum())
    assert m["mse"] == pytest.approx(((y - p) ** 2).mean(), abs=1e-12)
    assert (m["num_genes"], m["num_nodes"]) == (5, 37) and m["pearson"] == pytest.approx(r.tolist(), abs=1e-12)


def test_metrics_drop_nodes_without_counts_and_constant_genes():
    y = np.array([[1.0, 2.0], [2.0, 2.0], [np.nan, np.nan], [3.0, 2.0]])
    p = np.array([[1.0, 0.0], [3.0, 1.0], [np.nan, np.nan], [2.0, 5.0]])
    m = regression_metrics(y, p, per_gene=True)
    assert m["num_nodes"] == 3 and m["pearson"][1] is None  # gene 1 is constant: no correlation
    assert m["mean_pearson"] == pytest.approx(stats.pearsonr([1, 2, 3], [1, 3, 2])[0], abs=1e-12)
    with pytest.raises(ValueError, match="y_pred contains NaN"):
        regression_metrics(y, np.where(np.isnan(p), 0, p) * np.array([[1], [np.nan], [1], [1]]))


def test_ridge_closed_form_and_selection():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4)) * np.array([1, 10, 0.1, 1]) + 3
    w = rng.normal(size=(4, 2))
    y = x @ w + 0.1 * rng.normal(size=(60, 2))
    model = fit_ridge(x, y, penalty=0.0)
    ref, *_ = np.linalg.lstsq(np.c_[x, np.ones(60)], y, rcond=None)
    np.testing.assert_allclose(model.predict(x), np.c_[x, np.ones(60)] @ ref, atol=1e-9)
    z = (x - x.mean(0)) / x.std(0)
    pen = fit_ridge(x, y, penalty=5.0)
    expect = np.linalg.solve(z.T @ z + 5.0 * np.eye(4), z.T @ (y - y.mean(0)))
    np.testing.assert_allclose(pen.weight, expect, atol=1e-12)
    y_missing = y.copy()
    y_missing[:10] = np.nan  # nodes without counts are left out of the fit
    np.testing.assert_allclose(fit_ridge(x, y_missing, 1.0).weight, fit_ridge(x[10:], y[10:], 1.0).weight)
    best = select_ridge(x[:40], y[:40], x[40:], y[40:], penalties=(1e-2, 1e6))
    assert best.penalty == 1e-2  # a huge penalty shrinks the fit to the mean


def test_synthetic_counts_follow_the_texture_and_the_neighbours():
    plain = make_section("hex", seed=3, shape=(8, 16))
    s = make_section("hex", seed=3, shape=(8, 16), expression_genes=3)
    assert torch.equal(plain.labels, s.labels) and "counts" not in plain.meta
    counts = s.meta["counts"]
    assert counts["genes"] == ["gene0", "gene1", "gene2", "filler"] and counts["matrix"].shape == (s.num_nodes, 4)
    t = s.meta["texture"]
    src, dst = s.graph.edge_index.numpy()
    m = np.bincount(src, weights=t[dst], minlength=s.num_nodes) / np.bincount(src, minlength=s.num_nodes)
    logged = np.log1p(counts["matrix"].toarray()[:, :2])
    assert stats.pearsonr(logged[:, 0], t)[0] > 0.9 and abs(stats.pearsonr(logged[:, 0], m)[0]) < 0.4
    assert stats.pearsonr(logged[:, 1], m)[0] > 0.8 and abs(stats.pearsonr(logged[:, 1], t)[0]) < 0.4


def _sections(n=3):
    return [make_section("hex", seed=k, shape=(8, 16), expression_genes=3, name=f"s{k}") for k in range(n)]


def test_fit_target_on_training_sections_only():
    train, other = _sections(2), _sections(3)[2]
    state = fit_target({"genes": ["gene1", "gene0"], "standardize": True}, train, log=lambda line: None)
    assert state["genes"] == ["gene1", "gene0"] and len(state["mean"]) == 2
    y = torch.cat([section_targets(s, {}, state) for s in train]).numpy().astype(np.float64)
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(0), 1, atol=1e-5)
    raw = np.log1p(other.meta["counts"]["matrix"].toarray() / other.meta["counts"]["matrix"].toarray().sum(1,
                   keepdims=True) * 1e4)[:, [1, 0]]
    np.testing.assert_allclose(destandardize(section_targets(other, {}, state).numpy(), state), raw, rtol=1e-5)
    top = fit_target({"top_variable": 2, "standardize": False}, train, log=lambda line: None)
    assert len(top["genes"]) == 2 and top["mean"] is None


def test_target_errors_name_the_file_and_the_gene(tmp_path):
    train = _sections(1)
    with pytest.raises(ValueError, match=r"\(its reader's counts\): target gene 'MKI67' is not in the counts"):
        fit_target({"genes": ["gene0", "MKI67"]}, train, log=lambda line: None)
    bad = copy.deepcopy(train[0])
    matrix = bad.meta["counts"]["matrix"].toarray()
    matrix[4, 2] = np.nan
    bad.meta["counts"]["matrix"] = sparse.csr_matrix(matrix)
    with pytest.raises(ValueError, match="the counts of gene 'gene2' hold NaN"):
        fit_target({"genes": ["gene0"]}, [bad], log=lambda line: None)
    s = train[0]
    lines = ["\tgene0\tgene1"] + [f"{b}\t1\t{'nan' if k == 3 else 2}" for k, b in enumerate(s.barcodes)]
    (tmp_path / "s0.tsv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"s0.tsv: empty, NaN or infinite counts \(gene 'gene1', spot 's0-3'\)"):
        fit_target({"genes": ["gene0"], "counts": str(tmp_path / "{section}.tsv")}, train, log=lambda line: None)
    lines = ["\tgene0\tgene1"] + [f"{b}\t1\t2" for k, b in enumerate(s.barcodes)]
    (tmp_path / "s0.tsv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"s0.tsv: target gene 'gene7' is not in the counts"):
        fit_target({"genes": ["gene7"], "counts": str(tmp_path / "{section}.tsv")}, train, log=lambda line: None)
    with pytest.raises(ValueError, match="target gene 'gene1' has the same value on every training spot"):
        fit_target({"genes": ["gene1"], "counts": str(tmp_path / "{section}.tsv")}, train, log=lambda line: None)
    f_state = {"expression": {"genes": ["gene0", "gene2"], "target_sum": 1e4}}
    with pytest.raises(ValueError, match=r"target genes \['gene0'\] \(1 of 2\) are also f's expression inputs"):
        fit_target({"genes": ["gene0", "gene1"]}, train, f_state, log=lambda line: None)
    with pytest.raises(ValueError, match="section s0: the target is gene expression but the section has no counts"):
        fit_target({"genes": ["gene0"]}, [make_section("hex", seed=0, shape=(8, 16), name="s0")])


def test_regression_gradients_chunked_checkpointed_equal_plain():
    from gridgraph.correctors import GCNCorrector
    from gridgraph.encoders import gridnet_simple
    from gridgraph.graph import collate

    torch.manual_seed(0)
    a, b = _sections(2)
    graph = collate([a.graph, b.graph])
    genes = 3
    f = gridnet_simple(genes, stage_channels=[8, 8, 16, 16], stem_channels=8, blocks=[1, 1, 1, 1]).eval()
    plain = GridGraphNet(f, GCNCorrector(genes, in_channels=genes, hidden_channels=8), g_input="logits",
                         chunk_size=None, checkpoint=False, regression=True)
    chunked = copy.deepcopy(plain)
    chunked.chunk_size, chunked.checkpoint = 7, True
    patches = torch.randint(0, 256, (graph.num_nodes, 3, 16, 16), dtype=torch.uint8,
                            generator=torch.Generator().manual_seed(0))
    target = torch.randn(graph.num_nodes, genes, generator=torch.Generator().manual_seed(1))
    target[::5] = float("nan")  # nodes without counts
    for model in (plain, chunked):
        model.train()
        model.f.eval()  # batch-norm statistics must not depend on the chunking
        out = model(patches, graph, return_f=True)
        (masked_regression_loss(out.g_logits, target) + masked_regression_loss(out.f_logits, target, "huber")).backward()
    for part in ("f", "g"):
        ga = torch.cat([p.grad.flatten() for p in getattr(chunked, part).parameters()])
        gb = torch.cat([p.grad.flatten() for p in getattr(plain, part).parameters()])
        assert gb.norm() > 0 and ((ga - gb).norm() / gb.norm()).item() <= 1e-5, part


def test_regression_model_refuses_softmax_and_averages_members():
    from gridgraph.correctors import GCNCorrector
    from gridgraph.encoders import gridnet_simple

    with pytest.raises(ValueError, match="not a softmax"):
        GridGraphNet(gridnet_simple(2), GCNCorrector(2), regression=True)
    model = GridGraphNet(gridnet_simple(2), GCNCorrector(2), g_input="logits", regression=True)
    members = torch.tensor([[[1.0, -4.0]], [[3.0, 0.0]]])
    torch.testing.assert_close(model._combine(members), torch.tensor([[2.0, -2.0]]))


def test_pick_genes_best_median_worst():
    from gridgraph.plot import pick_genes

    assert pick_genes([0.1, None, 0.5, -0.2, float("nan"), 0.3, 0.2]) == {"best": 2, "median": 6, "worst": 3}
    with pytest.raises(ValueError, match="no gene has a correlation"):
        pick_genes([None, float("nan")])


def test_resume_reads_a_config_without_target_as_labels(tmp_path):
    from gridgraph.train import CheckpointManager
    from gridgraph.train.state import TrainingState

    CheckpointManager(tmp_path, {"seed": 0}, ["a"]).save_last({}, TrainingState().to_dict(), None, ["f", "g"])
    labels = {"seed": 0, "target": make_config({}).target.model_dump(mode="json")}
    assert CheckpointManager(tmp_path, labels, ["a"]).load_resume(["f", "g"]) is not None
    expression = {"seed": 0, "target": {**labels["target"], "kind": "expression", "top_variable": 5}}
    with pytest.raises(ValueError, match="written with target.kind='labels', this run has target.kind='expression'"):
        CheckpointManager(tmp_path, expression, ["a"]).load_resume(["f", "g"])
