"""gridgraph predict --zarr: a SpatialData store (spatialdata-io's Visium) predicted and its predictions
written back as a table annotating the same shapes; without spatialdata, an error naming the extra."""
import csv
import importlib.util

import numpy as np
import pytest

from gridgraph.cli import main
from gridgraph.io import read_predictions

HAS_SD = importlib.util.find_spec("spatialdata") is not None


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


@pytest.mark.skipif(HAS_SD, reason="spatialdata is installed: the error for its absence cannot happen")
def test_zarr_without_spatialdata_names_the_extra(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "p"
    code = main(["predict", str(tiny_checkpoint), "--zarr", str(tmp_path / "s.zarr"), "--out", str(out)])
    assert code == 2 and one_line(capsys) == (
        "gridgraph: error: --zarr needs the optional 'spatialdata' package: pip install gridgraph[spatialdata]")
    assert not out.exists()


@pytest.mark.skipif(not HAS_SD, reason="spatialdata is not installed (pip install gridgraph[spatialdata])")
def test_zarr_predictions_are_written_back_annotating_the_shapes(tiny_checkpoint, tmp_path, capsys):
    sdio = pytest.importorskip("spatialdata_io", reason="spatialdata-io is not installed")
    import spatialdata
    from test_io_spatialdata import write_10x_h5
    from test_io_spaceranger import write_visium

    root = write_visium(tmp_path / "v", header=True)
    with open(root / "spatial" / "tissue_positions.csv", newline="") as fh:
        barcodes = [r[0] for r in list(csv.reader(fh))[1:] if r[1] == "1"]
    write_10x_h5(root / "filtered_feature_bc_matrix.h5", barcodes)
    store = tmp_path / "v.zarr"
    sdio.visium(root, dataset_id="v").write(store)
    out = tmp_path / "pred"
    for _ in range(2):  # a second run replaces the table
        assert main(["predict", str(tiny_checkpoint), "--zarr", str(store), "--out", str(out), "--no-figure",
                     "--device", "cpu"]) == 0
    ids, names, probs, classes = read_predictions(out / "predictions.csv")
    table = spatialdata.read_zarr(store).tables["gridgraph"]
    region, region_key, instance_key = spatialdata.models.get_table_keys(table)
    assert region == "v" and list(table.obs_names) == list(ids) == barcodes
    assert table.obs[instance_key].isin(spatialdata.read_zarr(store).shapes["v"].index).all()
    assert list(table.obs["gridgraph"].astype(str)) == list(names)
    np.testing.assert_allclose(table.obsm["gridgraph_probs"], np.asarray(probs), atol=1e-6)
    assert list(table.obs["gridgraph"].cat.categories) == classes and table.uns["gridgraph"]["used"] == "f+g"


@pytest.mark.skipif(not HAS_SD, reason="spatialdata is not installed (pip install gridgraph[spatialdata])")
def test_predict_spatialdata_is_the_python_api(tiny_checkpoint, tmp_path):
    sdio = pytest.importorskip("spatialdata_io", reason="spatialdata-io is not installed")
    from test_io_spatialdata import write_10x_h5
    from test_io_spaceranger import write_visium

    from gridgraph.workflows import load_model, predict_spatialdata

    root = write_visium(tmp_path / "v", header=True)
    with open(root / "spatial" / "tissue_positions.csv", newline="") as fh:
        barcodes = [r[0] for r in list(csv.reader(fh))[1:] if r[1] == "1"]
    write_10x_h5(root / "filtered_feature_bc_matrix.h5", barcodes)
    sdata = sdio.visium(root, dataset_id="v")  # in memory: nothing written
    model, ckpt = load_model(tiny_checkpoint)
    out = predict_spatialdata(model, ckpt, sdata, table_name="pred")
    table = out.tables["pred"]
    assert out is sdata and list(table.obs_names) == barcodes and table.obsm["gridgraph_probs"].shape == (35, 3)
    np.testing.assert_allclose(table.obsm["gridgraph_probs"].sum(1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="a table 'pred' exists"):
        predict_spatialdata(model, ckpt, sdata, table_name="pred")
