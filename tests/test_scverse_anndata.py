"""The AnnData gridgraph writes is laid out as scanpy.read_visium lays it out: full-resolution
positions, uns['spatial'] images and scale factors, library ids, categorical predictions with
colours, probabilities, confidence and provenance; several libraries in one file."""
import csv
import re
from pathlib import Path

import numpy as np
import pytest

from gridgraph.io import read_anndata, read_spaceranger, read_xenium
from gridgraph.io.writers.anndata import (add_predictions, predictions_anndata, section_anndata, sections_anndata,
                                          write_h5ad)
from gridgraph.io.writers.predictions import confidence, prediction_provenance
from test_io_spaceranger import write_visium
from test_io_xenium import write_bundle

anndata = pytest.importorskip("anndata")
pd = pytest.importorskip("pandas")
CLASSES = ["tumour", "stroma", "immune"]


def probabilities(n, seed=0):
    return np.random.default_rng(seed).dirichlet(np.ones(len(CLASSES)), n).astype(np.float32)


def fullres_from_file(root):
    with open(root / "spatial" / "tissue_positions_list.csv", newline="") as fh:
        rows = {r[0]: (float(r[5]), float(r[4])) for r in csv.reader(fh) if r and r[1] == "1"}
    return rows


def test_visium_layout_is_scanpys(tmp_path):
    root = write_visium(tmp_path / "v")
    section = read_spaceranger(root)  # hires image, positions scaled by 0.2
    adata = section_anndata(section)
    expected = fullres_from_file(root)
    assert list(adata.obs_names) == section.barcodes
    np.testing.assert_allclose(adata.obsm["spatial"], [expected[b] for b in section.barcodes])
    assert adata.obsm["spatial"].dtype == np.float64
    assert adata.obs["library_id"].dtype == "category" and set(adata.obs["library_id"]) == {"v"}
    lib = adata.uns["spatial"]["v"]
    assert lib["images"]["hires"].dtype == np.uint8 and lib["images"]["hires"].shape == (200, 200, 3)
    np.testing.assert_array_equal(lib["images"]["hires"], section.load_image())
    factors = lib["scalefactors"]
    assert factors["tissue_hires_scalef"] == 0.2 and factors["tissue_lowres_scalef"] == 0.05
    assert factors["spot_diameter_fullres"] == 40.0
    assert list(adata.obs["array_row"]) == section.array_row.tolist()
    low = section_anndata(read_spaceranger(root, image="lowres"))
    assert list(low.uns["spatial"]["v"]["images"]) == ["lowres"]
    np.testing.assert_allclose(low.obsm["spatial"], adata.obsm["spatial"])


def test_predictions_colours_confidence_provenance(tmp_path):
    section = read_spaceranger(write_visium(tmp_path / "v"))
    f, g = probabilities(section.num_nodes, 0), probabilities(section.num_nodes, 1)
    info = {"checkpoint": "run/best.pt", "f": "gridnet_simple", "g": "gcn", "validation": {"acc": 0.5}}
    out = predictions_anndata(section, f, g, CLASSES, info=info)
    assert out.obs["gridgraph"].dtype == "category"
    assert list(out.obs["gridgraph"].cat.categories) == CLASSES
    assert list(out.obs["gridgraph"].cat.codes) == g.argmax(1).tolist()
    assert list(out.obs["gridgraph_f"].cat.codes) == f.argmax(1).tolist()
    colours = out.uns["gridgraph_colors"]
    assert len(colours) == len(CLASSES) and all(re.fullmatch("#[0-9a-f]{6}", c) for c in colours)
    np.testing.assert_allclose(out.obsm["gridgraph_probs"], g)
    np.testing.assert_allclose(out.obs["gridgraph_confidence"], g.max(1), rtol=1e-6)
    entropy = -(g * np.log(g)).sum(1)
    np.testing.assert_allclose(out.obs["gridgraph_entropy"], entropy, rtol=1e-5)
    uns = out.uns["gridgraph"]
    assert uns["classes"] == CLASSES and uns["f"] == "gridnet_simple" and uns["g"] == "gcn"
    assert uns["used"] == "f+g" and uns["checkpoint"] == str(Path.cwd() / "run" / "best.pt")
    assert re.fullmatch(r"\d+\.\d+.*", uns["gridgraph_version"]) and uns["validation"] == {"acc": 0.5}
    back = anndata.read_h5ad(write_h5ad(out, tmp_path / "p.h5ad"))
    assert back.uns["gridgraph"]["used"] == "f+g" and list(back.uns["gridgraph_colors"]) == colours
    assert list(back.obs["gridgraph"].astype(str)) == [CLASSES[i] for i in g.argmax(1)]
    alone = predictions_anndata(section, f, None, CLASSES, info=info)
    assert alone.uns["gridgraph"]["used"] == "f" and alone.uns["gridgraph"]["g"] == "none"
    assert list(alone.obs["gridgraph"].cat.codes) == f.argmax(1).tolist()


def test_provenance_and_confidence_helpers(tmp_path):
    p = prediction_provenance(tmp_path / "a.pt", "gridnet_simple", None)
    assert p["used"] == "f" and p["g"] == "none" and p["checkpoint"] == str(tmp_path / "a.pt")
    with pytest.raises(ValueError, match="used must be"):
        prediction_provenance("a.pt", "f", "gcn", used="g")
    top, entropy = confidence(np.array([[1.0, 0.0], [0.5, 0.5], [np.nan, np.nan]]))
    np.testing.assert_allclose(top[:2], [1.0, 0.5])
    np.testing.assert_allclose(entropy[:2], [0.0, np.log(2)], atol=1e-7)
    assert np.isnan(top[2]) and np.isnan(entropy[2])


def test_written_file_reads_back_as_the_section(tmp_path):
    section = read_spaceranger(write_visium(tmp_path / "v"))
    path = write_h5ad(section_anndata(section), tmp_path / "s.h5ad")
    back = read_anndata(path)
    assert back.barcodes == section.barcodes and back.name == "v"
    np.testing.assert_allclose(back.pixel_pos.numpy(), section.pixel_pos.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(back.load_image(), section.load_image())
    assert back.spot_diameter_px == pytest.approx(section.spot_diameter_px)
    assert back.graph.layout == "hex" and back.graph.num_edges == section.graph.num_edges


def test_xenium_cells_in_full_resolution_pixels(tmp_path):
    folder, frame = write_bundle(tmp_path / "x")
    section = read_xenium(folder)
    adata = section_anndata(section)
    np.testing.assert_allclose(adata.obsm["spatial"], frame[["x_centroid", "y_centroid"]].to_numpy() / 0.2125)
    factors = adata.uns["spatial"]["x"]["scalefactors"]
    assert factors["spot_diameter_fullres"] == pytest.approx(10 / 0.2125)
    assert factors["microns_per_pixel"] == pytest.approx(0.2125) and factors["tissue_hires_scalef"] == 1.0
    assert adata.uns["spatial"]["x"]["images"] == {}


def test_several_libraries_with_any_library_key(tmp_path):
    one = read_spaceranger(write_visium(tmp_path / "a"))
    two = read_spaceranger(write_visium(tmp_path / "b", rows=4), image="lowres")
    adata = sections_anndata([one, two], library_key="sample")
    assert adata.obs["sample"].dtype == "category" and list(adata.obs["sample"].cat.categories) == ["a", "b"]
    assert not adata.obs_names.has_duplicates and "barcode" in adata.obs  # same barcodes in both
    assert set(adata.uns["spatial"]) == {"a", "b"}
    path = write_h5ad(adata, tmp_path / "both.h5ad")
    back = {lib: read_anndata(path, library_id=lib, library_key="sample") for lib in ("a", "b")}
    assert back["b"].num_nodes == two.num_nodes and back["a"].num_nodes == one.num_nodes
    np.testing.assert_allclose(back["b"].pixel_pos.numpy(), two.pixel_pos.numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="pass library_id="):
        read_anndata(path, library_key="sample")
    out = adata
    for lib, section, seed in (("a", back["a"], 0), ("b", back["b"], 1)):
        p = probabilities(section.num_nodes, seed)
        out = add_predictions(out, section.barcodes, p, p, CLASSES, library_id=lib, library_key="sample")
    assert not out.obs["gridgraph"].isna().any(), "each library's predictions are kept"
    assert list(out.uns["gridgraph"]["library_ids"]) == ["a", "b"]
    fresh = add_predictions(out, back["a"].barcodes, probabilities(one.num_nodes), None, CLASSES)
    assert fresh.obs["gridgraph"][(out.obs["sample"] == "b").to_numpy()].isna().all(), "no library: afresh"
    rows_b = (out.obs["sample"] == "b").to_numpy()
    np.testing.assert_allclose(out.obsm["gridgraph_probs"][rows_b], probabilities(two.num_nodes, 1))
    plain = [b.split("-")[0] + "-1" for b in back["b"].barcodes]  # the plain barcodes also match
    again = add_predictions(adata, plain, probabilities(len(plain)), None, CLASSES, library_id="b",
                            library_key="sample")
    assert again.obs["gridgraph"][rows_b].notna().all() and again.obs["gridgraph"][~rows_b].isna().all()
    with pytest.raises(ValueError, match="library 'c'"):
        add_predictions(adata, plain, probabilities(len(plain)), None, CLASSES, library_id="c", library_key="sample")
    with pytest.raises(ValueError, match="library ids must be distinct"):
        sections_anndata([one, one])


def test_library_key_without_uns_spatial(tmp_path):
    adata = sections_anndata([read_spaceranger(write_visium(tmp_path / lib), image=None) for lib in "ab"],
                             library_key="sample")
    del adata.uns["spatial"]
    section = read_anndata(adata, library_id="b", library_key="sample", image=None)
    assert section.name == "b" and section.num_nodes == adata.n_obs // 2
    with pytest.raises(ValueError, match=r"obs\['sample'\] has no library 'z'"):
        read_anndata(adata, library_id="z", library_key="sample")


def test_bad_predictions_are_refused(tmp_path):
    section = read_spaceranger(write_visium(tmp_path / "v"))
    adata, n = section_anndata(section), section.num_nodes
    p = probabilities(n)
    with pytest.raises(ValueError, match=r"f probabilities: expected shape \(%d, 3\)" % n):
        add_predictions(adata, section.barcodes, p[:, :2], None, CLASSES)
    bad = p.copy()
    bad[4, 1] = np.nan
    with pytest.raises(ValueError, match="f \\+ g probabilities, row 4: expected finite"):
        add_predictions(adata, section.barcodes, p, bad, CLASSES)
    with pytest.raises(ValueError, match="distinct"):
        add_predictions(adata, [section.barcodes[0]] * 2, p[:2], None, CLASSES)
    empty = add_predictions(adata, [], np.zeros((0, 3)), None, CLASSES)
    assert empty.obs["gridgraph"].isna().all() and np.isnan(empty.obsm["gridgraph_probs"]).all()


def test_squidpy_draws_the_predictions(tmp_path):
    squidpy = pytest.importorskip("squidpy", reason="squidpy is not installed (the layout keys are tested above)")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    section = read_spaceranger(write_visium(tmp_path / "v"))
    p = probabilities(section.num_nodes)
    adata = predictions_anndata(section, p, p, CLASSES)
    squidpy.pl.spatial_scatter(adata, color="gridgraph")
    squidpy.pl.spatial_scatter(adata, color=["gridgraph", "gridgraph_confidence"], library_key="library_id")
    folder, _ = write_bundle(tmp_path / "x")
    cells = read_xenium(folder)
    q = probabilities(cells.num_nodes)
    squidpy.pl.spatial_scatter(predictions_anndata(cells, q, None, CLASSES), color="gridgraph", img=False)
    on_image = read_xenium(folder, image=np.zeros((400, 400, 3), np.uint8))
    squidpy.pl.spatial_scatter(predictions_anndata(on_image, q, None, CLASSES), color="gridgraph")
    plt.close("all")


def test_spots_and_cells_in_one_file(tmp_path):
    spots = read_spaceranger(write_visium(tmp_path / "v"))
    folder, _ = write_bundle(tmp_path / "x")
    cells = read_xenium(folder)
    adata = sections_anndata([spots, cells])
    assert adata.n_obs == spots.num_nodes + cells.num_nodes
    assert adata.obs["array_row"].isna().sum() == cells.num_nodes
    back = anndata.read_h5ad(write_h5ad(adata, tmp_path / "mixed.h5ad"))
    assert list(back.obs["library_id"].cat.categories) == ["v", "x"]
    assert read_anndata(tmp_path / "mixed.h5ad", library_id="x", image=None).num_nodes == cells.num_nodes
    with pytest.raises(ValueError, match="no sections given"):
        sections_anndata([])


def test_other_images_become_a_reduced_hires(tmp_path):
    folder, frame = write_bundle(tmp_path / "x")
    image = np.random.default_rng(0).integers(0, 255, (4200, 600, 3), dtype=np.uint8)  # morphology pixels
    cells = read_xenium(folder, image=image)
    lib = section_anndata(cells).uns["spatial"]["x"]
    assert lib["images"]["hires"].shape == (1400, 200, 3)  # every third pixel
    assert lib["scalefactors"]["tissue_hires_scalef"] == pytest.approx(1 / 3)
    np.testing.assert_array_equal(lib["images"]["hires"], image[::3, ::3])
    assert section_anndata(cells, images=False).uns["spatial"]["x"]["images"] == {}
    root = write_visium(tmp_path / "v")
    full = np.zeros((2400, 2400, 3), np.uint8)  # full resolution
    spots = section_anndata(read_spaceranger(root, image=full))
    assert spots.uns["spatial"]["v"]["images"]["hires"].shape == (1200, 1200, 3)
    assert spots.uns["spatial"]["v"]["scalefactors"]["tissue_hires_scalef"] == pytest.approx(0.5)
    np.testing.assert_allclose(spots.obsm["spatial"], section_anndata(read_spaceranger(root)).obsm["spatial"])
