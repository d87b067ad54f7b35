"""AnnData reader: agrees with the Space Ranger reader on the same spots; clear errors."""
import csv
import json
import sys

import numpy as np
import pytest
import torch

from gridgraph.io import read_anndata, read_image, read_spaceranger
from test_io_spaceranger import DLPFC_LAYERS, write_visium

anndata = pytest.importorskip("anndata")
pd = pytest.importorskip("pandas")


def visium_adata(spatial_dir, labels=None, classes=None, library="lib"):
    """AnnData laid out like ``scanpy.read_visium``, built with plain csv/json from the folder."""
    with open(spatial_dir / "tissue_positions_list.csv", newline="") as fh:
        rows = [r for r in csv.reader(fh) if r]
    obs = pd.DataFrame(
        {
            "in_tissue": [int(r[1]) for r in rows],
            "array_row": [int(r[2]) for r in rows],
            "array_col": [int(r[3]) for r in rows],
        },
        index=[r[0] for r in rows],
    )
    if labels is not None:
        obs["layer"] = pd.Categorical([labels.get(r[0]) for r in rows], categories=classes)
    adata = anndata.AnnData(obs=obs)
    adata.obsm["spatial"] = np.array([[float(r[5]), float(r[4])] for r in rows])
    factors = json.loads((spatial_dir / "scalefactors_json.json").read_text())
    image = read_image(spatial_dir / "tissue_lowres_image.png").astype(np.float32) / 255.0
    adata.uns["spatial"] = {library: {"images": {"lowres": image}, "scalefactors": factors}}
    return adata


def test_synthetic_matches_spaceranger(tmp_path):
    root = write_visium(tmp_path / "s", hires=False)
    adata = visium_adata(root / "spatial")
    a = read_anndata(adata)
    s = read_spaceranger(root)
    assert a.name == "lib" and a.barcodes == s.barcodes
    assert torch.allclose(a.graph.pos, s.graph.pos)
    assert torch.equal(a.graph.edge_index, s.graph.edge_index)
    assert a.graph.grid_shape == s.graph.grid_shape
    assert a.spot_diameter_px == pytest.approx(s.spot_diameter_px)
    np.testing.assert_array_equal(a.load_image(), s.load_image())
    k = read_anndata(adata, graph="knn", image=None)
    assert k.graph.layout == "irregular" and k.image is None
    np.testing.assert_allclose(k.pixel_pos.numpy(), s.pixel_pos.numpy() * 20, rtol=1e-6)


@pytest.mark.realdata
def test_dlpfc_anndata_equals_spaceranger(dlpfc_dir, tmp_path):
    with open(dlpfc_dir / "barcode_level_layer_map.tsv", newline="") as fh:
        layers = {r[0]: r[2] for r in csv.reader(fh, delimiter="\t") if r and r[1] == "151673"}
    adata = visium_adata(dlpfc_dir / "151673" / "spatial", layers, DLPFC_LAYERS, library="151673")
    s = read_spaceranger(dlpfc_dir / "151673", labels=dlpfc_dir / "barcode_level_layer_map.tsv")
    for source in (adata, tmp_path / "a.h5ad"):
        if not isinstance(source, anndata.AnnData):
            adata.write_h5ad(source)
        a = read_anndata(source, label_key="layer")
        assert a.num_nodes == 3639 and a.name == "151673"
        assert a.classes == DLPFC_LAYERS
        assert a.barcodes == s.barcodes
        assert torch.equal(a.labels, s.labels)
        assert torch.allclose(a.graph.pos, s.graph.pos)
        assert torch.equal(a.graph.edge_index, s.graph.edge_index)


def test_anndata_errors(tmp_path):
    root = write_visium(tmp_path / "s", hires=False)
    adata = visium_adata(root / "spatial")
    with pytest.raises(ValueError, match="obs has no column 'nope'"):
        read_anndata(adata, label_key="nope")
    with pytest.raises(ValueError, match="no library 'x'"):
        read_anndata(adata, library_id="x")
    with pytest.raises(ValueError, match="no 'hires' image"):
        read_anndata(adata, image="hires")
    two = adata.copy()
    two.uns["spatial"]["other"] = two.uns["spatial"]["lib"]
    with pytest.raises(ValueError, match="pass library_id="):
        read_anndata(two)
    bad = adata.copy()
    bad.obsm["spatial"][3, 0] = np.nan
    with pytest.raises(ValueError, match="obsm\\['spatial'\\].*NaN"):
        read_anndata(bad)
    far = adata.copy()
    far.obsm["spatial"][3, 0] = 1e6
    with pytest.raises(ValueError, match="outside the image"):
        read_anndata(far)
    del adata.obsm["spatial"]
    with pytest.raises(ValueError, match="obsm\\['spatial'\\] is absent"):
        read_anndata(adata)
    adata.obs["cls"] = "a"
    adata.obsm["spatial"] = np.zeros((adata.n_obs, 2))
    with pytest.raises(ValueError, match="unknown label names"):
        read_anndata(adata, label_key="cls", classes=["b"], image=None)


def test_missing_anndata_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "anndata", None)
    with pytest.raises(ImportError, match=r"pip install gridgraph\[anndata\]"):
        read_anndata(object())
