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


@pytest.mark.parametrize(
    "key, value",
    [
        ("tissue_lowres_scalef", 0), ("tissue_lowres_scalef", -0.05), ("tissue_lowres_scalef", np.inf),
        ("tissue_lowres_scalef", np.nan), ("tissue_lowres_scalef", "0.05"), ("tissue_lowres_scalef", True),
        ("tissue_lowres_scalef", None), ("tissue_lowres_scalef", np.float32(-1)),
        ("spot_diameter_fullres", 0.0), ("spot_diameter_fullres", "wide"), ("spot_diameter_fullres", -np.inf),
    ],
)
def test_anndata_scale_factors_must_be_finite_positive(tmp_path, key, value):
    root = write_visium(tmp_path / "s", hires=False)
    adata = visium_adata(root / "spatial")
    adata.uns["spatial"]["lib"]["scalefactors"][key] = value
    with pytest.raises(ValueError) as info:
        read_anndata(adata)
    message = str(info.value)
    assert f"uns['spatial']['lib']['scalefactors']['{key}']" in message, message
    assert "finite positive number" in message and "obsm" not in message


def test_anndata_scale_factors_from_h5ad(tmp_path):
    root = write_visium(tmp_path / "s", hires=False)
    adata = visium_adata(root / "spatial")
    adata.uns["spatial"]["lib"]["scalefactors"]["tissue_lowres_scalef"] = np.float64(np.inf)
    path = tmp_path / "a.h5ad"
    adata.write_h5ad(path)
    with pytest.raises(ValueError, match=r"a\.h5ad: uns\['spatial'\]\['lib'\]\['scalefactors'\]\['tissue_lowres_scalef'\]"):
        read_anndata(path)
    adata.uns["spatial"]["lib"]["scalefactors"]["tissue_lowres_scalef"] = 0.05
    adata.write_h5ad(path)
    assert read_anndata(path).num_nodes == 35  # numpy scalars from h5ad are accepted


@pytest.mark.parametrize(
    "content, needle",
    [
        (np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(), "not an h5ad file"),
        (bytes(4096), "not an h5ad file"),
        (b"barcode,in_tissue\nA-1,1\n", "not an h5ad file"),
        (b"", "not an h5ad file"),
        (b"\x89HDF\r\n\x1a\n" + bytes(4000), "cannot read as an h5ad file"),
    ],
)
def test_anndata_file_that_is_not_h5ad(tmp_path, content, needle):
    path = tmp_path / "a.h5ad"
    path.write_bytes(content)
    with pytest.raises(ValueError) as info:
        read_anndata(path)
    assert str(path) in str(info.value) and needle in str(info.value), str(info.value)


@pytest.mark.filterwarnings("ignore:Element '/matrix' was written without encoding metadata")
def test_anndata_hdf5_without_anndata_layout(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "counts.h5"
    with h5py.File(path, "w") as fh:
        fh["matrix"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"counts\.h5: cannot read as an h5ad file"):
        read_anndata(path)
    with pytest.raises(FileNotFoundError, match="absent.h5ad"):
        read_anndata(tmp_path / "absent.h5ad")


@pytest.mark.parametrize(
    "column, value, needle",
    [
        ("array_row", 1e12, "no greater than 127"),
        ("array_col", 1e12, "no greater than 223"),
        ("array_row", -2, "non-negative"),
        ("array_row", np.nan, "expected an integer array index"),
        ("array_col", 2.5, "expected an integer array index"),
    ],
)
def test_anndata_array_coordinates_are_bounded(tmp_path, column, value, needle):
    root = write_visium(tmp_path / "s", hires=False)
    adata = visium_adata(root / "spatial")
    adata.obs[column] = adata.obs[column].astype(np.float64)
    adata.obs.iloc[3, adata.obs.columns.get_loc(column)] = value
    for graph in ("hex", "cartesian"):
        with pytest.raises(ValueError) as info:
            read_anndata(adata, graph=graph)
        message = str(info.value)
        assert f"obs['{column}'], observation 3" in message and needle in message, message
