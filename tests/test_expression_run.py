"""Runs whose target is gene expression: every regimen, g's gain on synthetic sections where
only the neighbours explain a gene, the checkpoint's genes and normalisation, and prediction
into a table and an AnnData."""
import numpy as np
import pytest
import torch

from gridgraph.evaluate.regression import regression_metrics
from gridgraph.features.targets import destandardize

from helpers import tiny_config


def expression_config(tmp_path, genes=("gene0", "gene1"), sections=(0, 1, 2, 3, 4, 5), **train):
    cfg = tiny_config(tmp_path, **train).to_dict()
    cfg["data"]["kwargs"]["expression_genes"] = 2
    cfg["data"].update(train=list(sections[:-2]), val=[sections[-2]], test=[sections[-1]])
    cfg["target"] = {"kind": "expression", "genes": list(genes)}
    cfg["model"]["g_input"] = "logits"
    cfg["g"] = {"name": "gcn", "kwargs": {"hidden_channels": 16, "num_layers": 2}}
    from gridgraph.config import make_config

    return make_config(cfg)


def test_g_learns_what_only_the_neighbours_explain(tmp_path):
    """gene0 follows each node's own texture (f sees it), gene1 its neighbours' (only g can)."""
    from gridgraph.workflows import build_run

    cfg = expression_config(tmp_path, epochs_f=4, epochs_g=12, epochs_joint=0)
    run = build_run(cfg, log=lambda line: None)
    trainer = run.trainer(log=lambda line: None).fit(run.splits["train"], run.splits["val"])
    test = run.splits["test"]
    (f_pred, g_pred), = trainer.predict(test)
    f, fg = (regression_metrics(test[0].targets, p, per_gene=True) for p in (f_pred, g_pred))
    assert f["pearson"][0] > 0.6 and abs(f["pearson"][1]) < 0.3  # f: its own patch, not the neighbours
    assert fg["pearson"][1] > 0.5 and fg["mean_pearson"] > f["mean_pearson"] + 0.2
    assert trainer.state.best["use_g"] and trainer.score_key == "mean_pearson"


@pytest.mark.parametrize("regimen", ["two_stage", "at_once", "fine_tune"])
def test_every_regimen_trains_expression(tmp_path, regimen):
    from gridgraph.train import load_checkpoint
    from gridgraph.workflows import build_run

    cfg = expression_config(tmp_path, sections=(0, 1, 2, 3), regimen=regimen, epochs_f=2, epochs_g=2,
                            epochs_joint=3)
    run = build_run(cfg, log=lambda line: None)
    assert run.classes == ["gene0", "gene1"] and run.model.regression
    tr = run.trainer(out_dir=tmp_path / "run", log=lambda line: None).fit(run.splits["train"], run.splits["val"])
    for stage in {"two_stage": ["f"], "at_once": ["joint"], "fine_tune": ["f"]}[regimen]:
        losses = [r["train_loss"] for r in tr.history if r["stage"] == stage]
        assert losses[-1] < losses[0], losses
    assert all("mean_pearson" in r and "f_mean_pearson" in r for r in tr.history if r["stage"] != "f")
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert best["classes"] == ["gene0", "gene1"]
    kept = best["features"]["target"]
    assert kept["genes"] == ["gene0", "gene1"] and len(kept["mean"]) == len(kept["std"]) == 2
    chosen = max((r for r in tr.history if r["stage"] != "f"),
                 key=lambda r: max(r["mean_pearson"], r["f_mean_pearson"]))
    assert best["metrics"]["mean_pearson"] == max(chosen["mean_pearson"], chosen["f_mean_pearson"])


def test_cross_fitted_g_on_expression_with_huber(tmp_path):
    from gridgraph.config import make_config
    from gridgraph.workflows import build_run

    cfg = expression_config(tmp_path, sections=(0, 1, 2, 3, 4), epochs_f=1, epochs_g=2, cross_fit=2).to_dict()
    cfg["target"]["loss"] = "huber"
    cfg["model"]["g_ensemble"] = 2  # two g's, their values averaged
    run = build_run(make_config(cfg), log=lambda line: None)
    lines = []
    trainer = run.trainer(log=lines.append)
    assert trainer.objective.loss == "huber" and trainer.objective.regression
    trainer.fit(run.splits["train"], run.splits["val"])
    assert sum("cross-fit 1: [f 1/1]" in line for line in lines) == 1 and len(trainer.history) == 3
    st = run.splits["val"][0]
    trainer.model.eval()
    with torch.no_grad():
        members = trainer.model.g_member_logits(trainer.model.f_outputs(st.patches)[1], st.graph)
        assert members.shape == (2, st.num_nodes, 2)
        torch.testing.assert_close(trainer.model.g_outputs(trainer.model.f_outputs(st.patches)[1], st.graph),
                                   members.mean(0))


def test_checkpoint_carries_genes_and_scale_into_prediction(tmp_path):
    anndata = pytest.importorskip("anndata")
    from gridgraph.io.writers.expression import read_expression_csv
    from gridgraph.workflows import load_model, load_section, predict_section, run_training
    from gridgraph.workflows.sections import prepare

    cfg = expression_config(tmp_path, genes=("gene1", "gene0"), sections=(0, 1, 2, 3), epochs_f=1, epochs_g=1)
    result = run_training(cfg, log=lambda line: None, figures=True)
    assert set(result["test"]) == {"f", "f+g"} and result["test"]["f"]["num_genes"] == 2
    from PIL import Image

    with Image.open(tmp_path / "run" / "expression_test.png") as figure:  # 3 genes x (H&E, measured, f, f+g)
        assert figure.size == (4 * 300, 3 * 300)
    model, ckpt = load_model(tmp_path / "run" / "best.pt")
    state = ckpt.features["target"]
    assert model.regression and ckpt.classes == ["gene1", "gene0"] == state["genes"]
    section = load_section(cfg.data, 3, cfg.graph)
    inputs = prepare(section, cfg.patches, f=cfg.f, features=ckpt.features)
    with torch.no_grad():
        f_out, g_out = model(inputs.patches, section.graph.to("cpu"), return_f=True)
    adata = anndata.AnnData(X=np.zeros((section.num_nodes + 1, 1), dtype=np.float32))
    adata.obs_names = ["extra"] + list(section.barcodes)[::-1]
    paths = predict_section(model, ckpt, section, tmp_path / "pred", figures=False, adata=adata)
    assert sorted(paths) == ["expression", "h5ad"]
    ids, genes, values = read_expression_csv(paths["expression"])
    assert ids == list(section.barcodes) and genes == ["gene1", "gene0"]
    expect = destandardize(g_out.numpy() if bool(model.use_g) else f_out.numpy(), state)
    np.testing.assert_allclose(values, expect, rtol=1e-4, atol=1e-5)
    written = anndata.read_h5ad(paths["h5ad"])
    assert list(written.uns["gridgraph_expression"]["genes"]) == ["gene1", "gene0"]
    got = written.obsm["gridgraph_expression"]
    assert np.isnan(got[0]).all()  # "extra" was not predicted
    np.testing.assert_allclose(got[1:][::-1], expect, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(written.obsm["gridgraph_expression_f"][1:][::-1], destandardize(f_out.numpy(), state),
                               rtol=1e-4, atol=1e-5)
    assert "gridgraph_expression" not in adata.obsm  # the caller's AnnData is left alone
    from gridgraph.cli import main

    assert main(["predict", str(tmp_path / "run" / "best.pt"), "--synthetic", "3", "--out", str(tmp_path / "cli")]) == 0
    assert read_expression_csv(tmp_path / "cli" / "expression.csv")[1] == ["gene1", "gene0"]
    np.testing.assert_allclose(read_expression_csv(tmp_path / "cli" / "expression.csv")[2], values, rtol=1e-5)


def test_evaluate_expression_checkpoints(tmp_path):
    from gridgraph.workflows import evaluate_checkpoints, run_training

    cfg = expression_config(tmp_path, sections=(0, 1, 2, 3), epochs_f=1, epochs_g=1)
    trained = run_training(cfg, log=lambda line: None, figures=False)
    best, copy = tmp_path / "run" / "best.pt", tmp_path / "copy.pt"
    copy.write_bytes(best.read_bytes())
    result = evaluate_checkpoints([best, copy], split="test", log=lambda line: None)
    alone = result["models"][str(best)]
    for head in ("f", "f+g"):
        assert alone[head]["mean_pearson"] == pytest.approx(trained["test"][head]["mean_pearson"], abs=1e-6)
        ensemble = result[f"ensemble_mean_{head}"]  # two copies of one model: the model itself
        assert ensemble["mean_pearson"] == pytest.approx(alone[head]["mean_pearson"], abs=1e-6)
        assert result[f"mean_pearson_over_models_{head}"]["sd"] == 0.0


def test_counts_as_input_and_target_of_the_same_genes_is_refused(tmp_path):
    from gridgraph.config import make_config
    from gridgraph.workflows import build_run, load_section

    cfg = expression_config(tmp_path, sections=(0, 1, 2, 3))
    folder = tmp_path / "counts"
    folder.mkdir()
    for sid in (0, 1, 2, 3):
        s = load_section(cfg.data, sid, cfg.graph)
        counts = s.meta["counts"]
        rows = [f"{b}\t" + "\t".join(str(int(v)) for v in row) for b, row in zip(s.barcodes, counts["matrix"].toarray())]
        (folder / f"{s.name}.tsv").write_text("\n".join(["\t" + "\t".join(counts["genes"])] + rows) + "\n")
    data = cfg.to_dict()
    data["f"] = {"name": "expression", "kwargs": {"counts": str(folder / "{section}.tsv"), "genes": ["gene1", "filler"],
                                                  "hidden": [8]}}
    with pytest.raises(ValueError, match=r"target genes \['gene1'\] \(1 of 2\) are also f's expression inputs"):
        build_run(make_config(data), log=lambda line: None)
