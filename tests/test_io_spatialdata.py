"""SpatialData in and out: spatialdata-io's Visium reader on a generated Space Ranger bundle,
Xenium- and Visium HD-shaped objects built from spatialdata's models; predictions written back
as a table annotating the same shapes; errors that name the store and the field."""
import csv

import numpy as np
import pytest

from gridgraph.io import read_spaceranger
from gridgraph.io.readers.registry import READERS
from test_io_errors import expect_error
from test_io_spaceranger import write_visium

spatialdata = pytest.importorskip("spatialdata", reason="spatialdata is not installed (pip install gridgraph[spatialdata])")
h5py = pytest.importorskip("h5py")
pd = pytest.importorskip("pandas")
from gridgraph.io.readers.spatialdata import read_spatialdata  # noqa: E402
from gridgraph.io.writers.anndata import section_anndata  # noqa: E402
from gridgraph.io.writers.spatialdata import write_spatialdata_predictions  # noqa: E402
from spatialdata.models import Image2DModel, ShapesModel, TableModel  # noqa: E402
from spatialdata.transformations import Identity, Scale  # noqa: E402

CLASSES = ["tumour", "stroma", "immune"]


def write_10x_h5(path, barcodes, genes=("G1", "G2")):
    """A Cell Ranger 3 ``filtered_feature_bc_matrix.h5`` (CSC matrix, features group)."""
    counts = np.random.default_rng(0).poisson(2, (len(barcodes), len(genes)))
    indptr = np.concatenate([[0], np.cumsum((counts > 0).sum(1))])
    with h5py.File(path, "w") as f:
        m = f.create_group("matrix")
        m["barcodes"] = np.array(barcodes, dtype="S")
        m["data"] = counts[counts > 0].astype(np.int32)
        m["indices"] = np.nonzero(counts)[1].astype(np.int64)
        m["indptr"] = indptr.astype(np.int64)
        m["shape"] = np.array([len(genes), len(barcodes)], dtype=np.int32)
        features = m.create_group("features")
        features["id"] = np.array([f"ENSG{i}" for i in range(len(genes))], dtype="S")
        features["name"] = np.array(genes, dtype="S")
        features["feature_type"] = np.array(["Gene Expression"] * len(genes), dtype="S")
        features["genome"] = np.array(["GRCh38"] * len(genes), dtype="S")
        features["_all_tag_keys"] = np.array(["genome"], dtype="S")


@pytest.fixture
def visium(tmp_path):
    """``(SpatialData from spatialdata_io.visium, the Space Ranger folder)``."""
    sdio = pytest.importorskip("spatialdata_io", reason="spatialdata-io is not installed")
    root = write_visium(tmp_path / "v", header=True)
    with open(root / "spatial" / "tissue_positions.csv", newline="") as fh:
        barcodes = [r[0] for r in list(csv.reader(fh))[1:] if r[1] == "1"]
    write_10x_h5(root / "filtered_feature_bc_matrix.h5", barcodes)
    return sdio.visium(root, dataset_id="v"), root


def test_visium_from_spatialdata_io_matches_spaceranger(visium, tmp_path):
    sdata, root = visium
    s = read_spatialdata(sdata)
    r = read_spaceranger(root)
    assert s.barcodes == r.barcodes and s.graph.layout == "hex"
    np.testing.assert_allclose(s.pixel_pos.numpy(), r.pixel_pos.numpy(), atol=1e-4)  # hires pixels
    np.testing.assert_array_equal(s.load_image(), r.load_image())
    assert s.spot_diameter_px == pytest.approx(r.spot_diameter_px) and s.spot_diameter_um == 55.0
    assert s.microns_per_px == pytest.approx(r.microns_per_px)
    assert s.graph.num_edges == r.graph.num_edges
    low = read_spatialdata(sdata, image="v_lowres_image")
    np.testing.assert_allclose(low.pixel_pos.numpy(), r.pixel_pos.numpy() / 4, atol=1e-4)
    bare = read_spatialdata(sdata, image=None)
    assert bare.image is None and bare.meta["spatialdata"]["coordinate_system"] == "v"
    np.testing.assert_allclose(bare.pixel_pos.numpy(), r.pixel_pos.numpy() / 0.2, atol=1e-3)  # full resolution
    adata = section_anndata(s)  # the scanpy layout from a SpatialData section
    np.testing.assert_allclose(adata.obsm["spatial"], bare.pixel_pos.numpy(), atol=1e-3)
    factors = adata.uns["spatial"]["v"]["scalefactors"]
    assert factors["tissue_hires_scalef"] == pytest.approx(0.2) and factors["spot_diameter_fullres"] == pytest.approx(40)
    assert factors["tissue_lowres_scalef"] == pytest.approx(0.05)


def test_predictions_written_back_annotate_the_shapes(visium, tmp_path):
    sdata, _ = visium
    store = tmp_path / "v.zarr"
    sdata.write(store)
    section = READERS.get("spatialdata")(tmp_path, "v.zarr")
    assert section.name == "v" and section.num_nodes == 35
    probs = np.random.default_rng(0).dirichlet(np.ones(3), section.num_nodes).astype(np.float32)
    info = {"checkpoint": str(tmp_path / "best.pt"), "f": "gridnet_simple", "g": "gcn"}
    write_spatialdata_predictions(store, section, probs, probs, CLASSES, info=info)
    back = spatialdata.read_zarr(store)
    table = back.tables["gridgraph"]
    region, region_key, instance_key = spatialdata.models.get_table_keys(table)
    assert region == "v" and set(table.obs[region_key]) == {"v"}
    assert table.obs[instance_key].isin(back.shapes["v"].index).all()
    assert list(table.obs_names) == section.barcodes
    assert list(table.obs["gridgraph"].cat.categories) == CLASSES
    assert list(table.obs["gridgraph"].cat.codes) == probs.argmax(1).tolist()
    np.testing.assert_allclose(table.obsm["gridgraph_probs"], probs)
    np.testing.assert_allclose(table.obs["gridgraph_confidence"], probs.max(1), rtol=1e-6)
    assert table.uns["gridgraph"]["used"] == "f+g" and len(table.uns["gridgraph_colors"]) == 3
    with pytest.raises(ValueError, match="a table 'gridgraph' exists"):
        write_spatialdata_predictions(store, section, probs, None, CLASSES)
    write_spatialdata_predictions(store, section, probs, None, CLASSES, info=info, overwrite=True)
    again = spatialdata.read_zarr(store).tables["gridgraph"].uns["gridgraph"]
    assert list(again["classes"]) == CLASSES and again["used"] == "f"
    memory = spatialdata.SpatialData(shapes=dict(sdata.shapes), tables=dict(sdata.tables))  # not backed
    assert write_spatialdata_predictions(memory, section, probs, None, CLASSES, table_name="pred") is memory
    assert "pred" in memory.tables and memory.path is None and "pred" not in spatialdata.read_zarr(store).tables


def xenium_sdata(n=30, pixel_size=0.2125, seed=0):
    """Objects as spatialdata-io's Xenium reader lays them out: cell circles in µm scaled into
    the ``global`` (morphology pixel) system, a multiscale morphology image, the table."""
    import anndata

    rng = np.random.default_rng(seed)
    um = rng.uniform(5, 60, (n, 2))
    ids = [f"cell{i:03d}-1" for i in range(n)]
    to_pixels = Scale([1 / pixel_size, 1 / pixel_size], axes=("x", "y"))
    circles = ShapesModel.parse(um, geometry=0, radius=np.full(n, 4.0), index=pd.Index(ids, name="cell_id"),
                                transformations={"global": to_pixels})
    image = Image2DModel.parse(rng.integers(0, 255, (1, 320, 300), dtype=np.uint8), dims=("c", "y", "x"),
                               scale_factors=[2], transformations={"global": Identity()})
    obs = pd.DataFrame({"cell_id": ids, "region": pd.Categorical(["cell_circles"] * n),
                        "cluster": pd.Categorical(rng.choice(CLASSES, n), categories=CLASSES)},
                       index=pd.Index([str(i) for i in range(n)]))
    table = TableModel.parse(anndata.AnnData(obs=obs), region="cell_circles", region_key="region",
                             instance_key="cell_id")
    sdata = spatialdata.SpatialData(images={"morphology_focus": image}, shapes={"cell_circles": circles},
                                    tables={"table": table})
    sdata.attrs["spatialdata_io_reader"] = "xenium"
    return sdata, um, obs


def test_xenium_cells_in_microns(tmp_path):
    sdata, um, obs = xenium_sdata()
    s = read_spatialdata(sdata, label_key="cluster")
    assert s.graph.layout == "irregular" and s.image is None
    np.testing.assert_allclose(s.pixel_pos.numpy(), um / 0.2125, rtol=1e-5)
    assert s.microns_per_px == pytest.approx(0.2125) and s.spot_diameter_um == 10.0
    assert s.classes == CLASSES and s.label_names() == list(obs["cluster"])
    on_image = read_spatialdata(sdata, image="morphology_focus", image_level=1)
    assert on_image.load_image().shape == (160, 150, 3)
    np.testing.assert_allclose(on_image.pixel_pos.numpy(), um / 0.2125 / 2, rtol=1e-5)
    assert on_image.microns_per_px == pytest.approx(0.425)
    assert read_spatialdata(sdata, image="morphology_focus").load_image().shape == (320, 300, 3)


def test_visium_hd_square_bins():
    import anndata
    from shapely.geometry import box

    rows, cols, side = np.divmod(np.arange(24), 6)[0], np.divmod(np.arange(24), 6)[1], 8.0 / 0.5  # 0.5 µm / px
    centres = np.stack([100 + cols * side, 50 + rows * side], 1)
    squares = [box(x - side / 2, y - side / 2, x + side / 2, y + side / 2) for x, y in centres]
    import geopandas

    shapes = ShapesModel.parse(geopandas.GeoDataFrame(geometry=squares, index=np.arange(24)),
                               transformations={"hd": Identity(), "hd_downscaled_hires": Scale([0.1, 0.1], axes=("x", "y"))})
    hires = Image2DModel.parse(np.zeros((3, 40, 40), np.uint8), dims=("c", "y", "x"),
                               transformations={"hd_downscaled_hires": Identity(),
                                                "hd": Scale([10.0, 10.0], axes=("x", "y"))})
    obs = pd.DataFrame({"location_id": np.arange(24), "region": pd.Categorical(["hd_square_008um"] * 24),
                        "array_row": rows, "array_col": cols, "in_tissue": (np.arange(24) != 5).astype(int)},
                       index=[f"s_008um_{i:05d}-1" for i in range(24)])
    table = TableModel.parse(anndata.AnnData(obs=obs), region="hd_square_008um", region_key="region",
                             instance_key="location_id")
    sdata = spatialdata.SpatialData(images={"hd_hires_image": hires}, shapes={"hd_square_008um": shapes},
                                    tables={"square_008um": table})
    s = read_spatialdata(sdata)
    assert s.num_nodes == 23 and s.graph.layout == "cartesian" and s.spot_diameter_um == 8.0
    np.testing.assert_allclose(s.pixel_pos.numpy(), np.delete(centres, 5, 0) * 0.1, rtol=1e-6)
    assert s.spot_diameter_px == pytest.approx(side * 0.1) and s.microns_per_px == pytest.approx(5.0)
    assert s.meta["scale"] == pytest.approx(0.1)


def test_bad_spatialdata(tmp_path, visium):
    sdata, _ = visium
    (tmp_path / "nothing.zarr").mkdir()
    expect_error(ValueError, lambda: read_spatialdata(tmp_path / "nothing.zarr"), "nothing.zarr",
                 "cannot read as a SpatialData")
    expect_error(FileNotFoundError, lambda: read_spatialdata(tmp_path / "absent.zarr"), "absent.zarr")
    expect_error(ValueError, lambda: read_spatialdata(sdata, image="v_full_image"), "no image 'v_full_image'")
    expect_error(ValueError, lambda: read_spatialdata(sdata, image_level=1), "image 'v_hires_image'",
                 "image_level 1")
    expect_error(ValueError, lambda: read_spatialdata(sdata, table="t"), "no table 't'", "['table']")
    expect_error(ValueError, lambda: read_spatialdata(sdata, shapes="cells"), "no shapes or points element 'cells'")
    expect_error(ValueError, lambda: read_spatialdata(sdata, coordinate_system="global"),
                 "coordinate system 'global'")
    expect_error(ValueError, lambda: read_spatialdata(sdata, label_key="layer"), "obs has no column 'layer'")
    two = spatialdata.SpatialData(shapes=dict(sdata.shapes), tables={"a": sdata.tables["table"],
                                                                      "b": sdata.tables["table"].copy()})
    expect_error(ValueError, lambda: read_spatialdata(two), "2 tables ['a', 'b']", "pass table=")
    xen, _, _ = xenium_sdata()
    xen.shapes["cell_circles"] = xen.shapes["cell_circles"].iloc[1:]
    expect_error(ValueError, lambda: read_spatialdata(xen), "shapes 'cell_circles'", "no instance 'cell000-1'")
    section = read_spaceranger(write_visium(tmp_path / "plain"))
    expect_error(ValueError, lambda: write_spatialdata_predictions(sdata, section, np.zeros((1, 3)), None, CLASSES),
                 "not read by read_spatialdata")
    s = read_spatialdata(sdata)
    expect_error(ValueError, lambda: write_spatialdata_predictions(sdata, s, np.zeros((2, 3)), None, CLASSES),
                 "f probabilities: expected shape (35, 3)")


def test_points_with_a_given_scale(tmp_path):
    import anndata
    from spatialdata.models import PointsModel

    n = 12
    xy = np.random.default_rng(0).uniform(0, 50, (n, 2))
    points = PointsModel.parse(pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1]}),
                               transformations={"global": Scale([2.0, 2.0], axes=("x", "y"))})
    obs = pd.DataFrame({"idx": np.arange(n), "region": pd.Categorical(["nuclei"] * n)}, index=[f"n{i}" for i in range(n)])
    table = TableModel.parse(anndata.AnnData(obs=obs), region="nuclei", region_key="region", instance_key="idx")
    sdata = spatialdata.SpatialData(points={"nuclei": points}, tables={"table": table})
    s = read_spatialdata(sdata, microns_per_unit=0.5)
    np.testing.assert_allclose(s.pixel_pos.numpy(), xy * 2, rtol=1e-6)
    assert s.graph.layout == "irregular" and s.microns_per_px == pytest.approx(0.25)
    assert read_spatialdata(sdata).microns_per_px is None, "unknown without a scale"
    sdata.write(tmp_path / "p.zarr")
    again = READERS.get("spatialdata").from_paths({"path": str(tmp_path / "p.zarr")}, {"microns_per_unit": 0.5})
    assert again.name == "p" and again.barcodes == s.barcodes
    expect_error(ValueError, lambda: read_spatialdata(sdata, microns_per_unit=-1), "microns_per_unit")


def test_xenium_table_on_cell_labels_uses_the_boundaries():
    """spatialdata-io's default Xenium table annotates the labels ``cell_labels``; the nodes sit
    on the ``cell_boundaries`` polygons of the same cell ids (µm, scaled into pixels)."""
    import anndata
    import geopandas
    from shapely.geometry import Polygon
    from spatialdata.models import Labels2DModel

    n, pixel_size = 8, 0.5
    centres = np.stack([np.arange(n) * 10.0 + 10, np.full(n, 20.0)], 1)
    ids = [f"c{i}-1" for i in range(n)]
    hexagons = [Polygon([(x + 3 * np.cos(a), y + 3 * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 6, endpoint=False)])
                for x, y in centres]
    frame = geopandas.GeoDataFrame(geometry=hexagons, index=pd.Index(ids, name="cell_id"))
    boundaries = ShapesModel.parse(frame, transformations={"global": Scale([2.0, 2.0], axes=("x", "y"))})
    labels = Labels2DModel.parse(np.zeros((60, 200), np.int32), dims=("y", "x"), transformations={"global": Identity()})
    obs = pd.DataFrame({"cell_id": ids[::-1], "region": pd.Categorical(["cell_labels"] * n)}, index=ids[::-1])
    table = TableModel.parse(anndata.AnnData(obs=obs), region="cell_labels", region_key="region", instance_key="cell_id")
    sdata = spatialdata.SpatialData(labels={"cell_labels": labels}, shapes={"cell_boundaries": boundaries},
                                    tables={"table": table})
    sdata.attrs["spatialdata_io_reader"] = "xenium"
    s = read_spatialdata(sdata)
    assert s.meta["spatialdata"]["shapes"] == "cell_boundaries" and s.barcodes == ids[::-1]
    np.testing.assert_allclose(s.pixel_pos.numpy(), centres[::-1] / pixel_size, atol=1e-6)
    assert s.microns_per_px == pytest.approx(pixel_size)
    probs = np.full((n, 3), 1 / 3, dtype=np.float32)
    table = write_spatialdata_predictions(sdata, s, probs, None, CLASSES).tables["gridgraph"]
    assert spatialdata.models.get_table_keys(table)[0] == "cell_boundaries"
    assert list(table.obs["instance_id"]) == ids[::-1]
