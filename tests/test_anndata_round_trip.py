"""AnnData in and out: data.reader anndata, predict --h5ad, predictions in obs/obsm/uns."""
import numpy as np
import pytest
import yaml

from gridgraph.cli import main
from gridgraph.config import make_config
from gridgraph.workflows import load_splits
from gridgraph.io.writers.anndata import add_predictions, write_h5ad
from gridgraph.io.readers.synthetic import make_section

from helpers import tiny_config, write_spaceranger
from test_io_anndata import visium_adata

anndata = pytest.importorskip("anndata")


def section_adata(tmp_path, seed: int, library: str):
    section = make_section("hex", seed=seed, shape=(8, 16), n_classes=3)
    folder = write_spaceranger(section, tmp_path / f"sr{seed}")
    labels = dict(zip(section.barcodes, section.label_names()))
    return visium_adata(folder / "spatial", labels=labels, classes=section.classes, library=library), section


def test_add_predictions_fills_obs_obsm_uns(tmp_path):
    adata, section = section_adata(tmp_path, 0, "lib")
    ids = section.barcodes[:4]
    f = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.5, 0.4, 0.1]])
    g = f[:, [1, 2, 0]]
    out = add_predictions(adata, ids, f, g, ["a", "b", "c"], info={"f": "gridnet_simple"})
    assert list(out.obs["gridgraph"].cat.categories) == ["a", "b", "c"]
    assert list(out.obs.loc[ids, "gridgraph"]) == ["c", "a", "b", "c"]
    assert list(out.obs.loc[ids, "gridgraph_f"]) == ["a", "b", "c", "a"]
    rows = out.obs_names.get_indexer(ids)
    np.testing.assert_allclose(out.obsm["gridgraph_probs"][rows], g, rtol=1e-6)
    others = np.setdiff1d(np.arange(out.n_obs), rows)
    assert np.isnan(out.obsm["gridgraph_probs"][others]).all() and out.obs["gridgraph"].iloc[others].isna().all()
    assert out.uns["gridgraph"] == {"classes": ["a", "b", "c"], "f": "gridnet_simple"}
    assert "gridgraph" not in adata.obs, "the input AnnData is left as it was"
    back = anndata.read_h5ad(write_h5ad(out, tmp_path / "p.h5ad"))
    assert list(back.obs["gridgraph"].astype(str).iloc[rows]) == ["c", "a", "b", "c"]
    with pytest.raises(ValueError, match="not an obs name"):
        add_predictions(adata, ["nope"], f[:1], g[:1], ["a", "b", "c"])


def test_anndata_reader_in_a_config(tmp_path):
    for seed in (0, 1, 2):
        write_h5ad(section_adata(tmp_path, seed, f"lib{seed}")[0], tmp_path / f"s{seed}.h5ad")
    cfg = make_config({"data": {"reader": "anndata", "root": str(tmp_path), "options": {"label_key": "layer"},
                                "train": ["s0", "s1"], "val": ["s2"], "test": []},
                       "patches": {"patch_size": 8}})
    splits, classes = load_splits(cfg)
    assert classes == ["band0", "band1", "band2"]
    assert [st.name for st in splits["train"]] == ["s0", "s1"]
    expected = make_section("hex", seed=2, shape=(8, 16), n_classes=3)
    assert splits["val"][0].num_nodes == expected.num_nodes
    assert (splits["val"][0].labels == expected.labels).all()


def test_predict_h5ad_writes_the_annotated_anndata(tmp_path, capsys):
    cfg = tiny_config(tmp_path).to_dict()
    cfg["output"] = str(tmp_path / "run")
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(path), "--set", "train.epochs_g=1"]) == 0
    adata, section = section_adata(tmp_path, 9, "lib")
    write_h5ad(adata, tmp_path / "in.h5ad")
    out = tmp_path / "pred"
    assert main(["predict", str(tmp_path / "run" / "best.pt"), "--h5ad", str(tmp_path / "in.h5ad"),
                 "--library-id", "lib", "--out", str(out)]) == 0
    pred = anndata.read_h5ad(out / "predictions.h5ad")
    assert pred.n_obs == adata.n_obs and list(pred.obs_names) == list(adata.obs_names)
    assert list(pred.obs["gridgraph"].cat.categories) == ["band0", "band1", "band2"]
    inside = pred.obs_names.get_indexer(section.barcodes)
    probs = pred.obsm["gridgraph_probs"]
    np.testing.assert_allclose(probs[inside].sum(1), 1.0, atol=1e-5)
    assert np.isnan(probs[pred.obs["in_tissue"].to_numpy() == 0]).all()
    assert pred.uns["gridgraph"]["g"] == "gcn" and pred.uns["gridgraph"]["checkpoint"].endswith("best.pt")
    assert sorted(p.name for p in out.iterdir()) == ["predictions.csv", "predictions.h5ad",
                                                      "predictions.png", "predictions_loupe.csv"]
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "run" / "best.pt"), "--synthetic", "1", "--library-id", "x",
                 "--out", str(out)]) == 2
    assert "--library-id goes with --h5ad" in capsys.readouterr().err


def test_predict_any_input_as_anndata(tmp_path):
    cfg = tiny_config(tmp_path).to_dict()
    cfg["output"] = str(tmp_path / "run")
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(path), "--set", "train.epochs_g=1"]) == 0
    out = tmp_path / "pred"
    assert main(["predict", str(tmp_path / "run" / "best.pt"), "--synthetic", "5", "--anndata", "--no-figure",
                 "--out", str(out)]) == 0
    pred = anndata.read_h5ad(out / "predictions.h5ad")
    section = make_section("hex", seed=5, shape=(8, 16), n_classes=3, name="synthetic-5")
    assert list(pred.obs_names) == section.barcodes and pred.obsm["spatial"].shape == (section.num_nodes, 2)
    np.testing.assert_allclose(pred.obsm["gridgraph_probs"].sum(1), 1.0, atol=1e-5)
    assert (pred.obs["array_row"].to_numpy() == section.array_row).all()
