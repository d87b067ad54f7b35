"""Images found in the bundle folder by themselves: Visium HD's microscope_image/, Xenium's registered
H&E image with its alignment CSV and its morphology_focus image; missing or ambiguous files named."""
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("pyarrow")

from gridgraph.checkpoint import Checkpoint  # noqa: E402
from gridgraph.cli import main  # noqa: E402
from gridgraph.io import read_visium_hd, read_visium_hd_cells, read_xenium  # noqa: E402
from gridgraph.io.readers.visium_hd import image_levels  # noqa: E402
from gridgraph.workflows import read_as_trained  # noqa: E402
from helpers import HD_MPP, write_visium_hd  # noqa: E402
from test_io_xenium import PX, write_bundle  # noqa: E402

SIDE = int(96 / HD_MPP) + 40  # write_visium_hd's full-resolution side, px


def _tif(path, size, colour=(180, 90, 140)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format="TIFF")
    return path


# ------------------------------------------------------------------------------------ Visium HD

def test_visium_hd_finds_the_microscope_image(tmp_path):
    outs = write_visium_hd(tmp_path / "outs", bins=(16,))
    assert image_levels(outs, {"bin_size_um": 16}) == ["hires", "lowres"]
    full = _tif(outs / "microscope_image" / "slide.tif", (SIDE, SIDE))
    assert image_levels(outs, {"bin_size_um": 16}) == ["hires", "lowres", "fullres"]
    s = read_visium_hd(outs, bin_size_um=16, image="fullres")
    assert s.meta["image_kind"] == "fullres" and str(s.image.path) == str(full)
    assert s.microns_per_px == pytest.approx(HD_MPP) and s.spot_diameter_px == pytest.approx(16 / HD_MPP)
    assert read_visium_hd(outs, bin_size_um=16).meta["image_kind"] == "hires"  # auto: hires first


def test_visium_hd_auto_takes_the_microscope_image_when_no_png_is_there(tmp_path):
    outs = write_visium_hd(tmp_path / "outs", bins=(16,), levels=())
    assert read_visium_hd(outs, bin_size_um=16).meta["image_kind"] is None  # nothing at all: no image
    _tif(outs / "sample_tissue_image.tif", (SIDE, SIDE))  # Space Ranger 3: the input image, copied
    s = read_visium_hd(outs, bin_size_um=16)
    assert s.meta["image_kind"] == "fullres" and s.image.path.name == "sample_tissue_image.tif"


def test_visium_hd_missing_or_ambiguous_microscope_images_are_named(tmp_path):
    outs = write_visium_hd(tmp_path / "outs", bins=(16,))
    with pytest.raises(FileNotFoundError) as err:
        read_visium_hd(outs, bin_size_um=16, image="fullres")
    assert str(err.value) == (f"{outs}: no full-resolution image; looked for microscope_image/<image> or "
                              "*tissue_image.* (the full-resolution image); give --fullres-image")
    _tif(outs / "microscope_image" / "a.tif", (SIDE, SIDE))
    _tif(outs / "microscope_image" / "b.tif", (SIDE, SIDE))
    with pytest.raises(ValueError) as err:
        read_visium_hd(outs, bin_size_um=16, image="fullres")
    assert str(err.value) == (f"{outs / 'microscope_image'}: several full-resolution images (a.tif, b.tif); "
                              "give one with --fullres-image")
    assert image_levels(outs, {"bin_size_um": 16}) == ["hires", "lowres"]  # not one to pick unnamed


def test_predict_image_level_fullres_reads_the_bundles_own(tmp_path, tiny_checkpoint):
    outs = write_visium_hd(tmp_path / "outs", bins=(16,))
    _tif(outs / "microscope_image" / "slide.tif", (SIDE, SIDE))
    ckpt = Checkpoint.load(tiny_checkpoint)
    s = read_as_trained(ckpt, "visium_hd", {"path": outs}, {"bin_size_um": 16}, level="fullres")
    assert s.meta["image_kind"] == "fullres" and s.image.path.name == "slide.tif"
    trained_full = ckpt.replace(platform={**ckpt.platform, "image_levels": ["fullres"]})
    notes = []
    s = read_as_trained(trained_full, "visium_hd", {"path": outs}, {"bin_size_um": 16}, log=notes.append)
    assert s.meta["image_kind"] == "fullres" and notes == [
        "section outs: read at the fullres image, the level the model was trained on"]


# ------------------------------------------------------------------- Visium HD cells (SR 4)

def write_segmented(outs, n=12, pngs=("hires",)):
    """``outs/segmented_outputs``: ``n`` square cells (12 px sides, full resolution) in a row, their
    GeoJSON, the scale factors and images in ``spatial/``; returns the expected centroids."""
    import json

    spatial = outs / "segmented_outputs" / "spatial"
    spatial.mkdir(parents=True)
    features, centres = [], []
    for i in range(n):
        x0, y0 = 30 + 20 * i, 40 + 10 * (i % 3)
        ring = [[x0, y0], [x0 + 12, y0], [x0 + 12, y0 + 12], [x0, y0 + 12], [x0, y0]]
        features.append({"type": "Feature", "properties": {"cell_id": i + 1},
                         "geometry": {"type": "Polygon", "coordinates": [ring]}})
        centres.append((x0 + 6, y0 + 6))
    (outs / "segmented_outputs" / "cell_segmentations.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": features}))
    (spatial / "scalefactors_json.json").write_text(json.dumps(
        {"microns_per_pixel": HD_MPP, "tissue_hires_scalef": 0.5, "tissue_lowres_scalef": 0.25}))
    for level in pngs:
        scale = 0.5 if level == "hires" else 0.25
        Image.new("RGB", (int(300 * scale), int(100 * scale)), (150, 90, 120)).save(spatial / f"tissue_{level}_image.png")
    return np.array(centres, dtype=np.float64)


def test_visium_hd_cells_from_the_segmented_outputs(tmp_path):
    outs = tmp_path / "sample" / "outs"
    centres = write_segmented(outs)
    for where in (outs, outs / "segmented_outputs"):
        s = read_visium_hd_cells(where)
        assert s.barcodes[:2] == ["cellid_000000001-1", "cellid_000000002-1"] and s.name == "sample"
        np.testing.assert_allclose(s.graph.pos.numpy(), centres * 0.5, rtol=1e-6)
        assert s.meta["image_kind"] == "hires" and s.microns_per_px == pytest.approx(HD_MPP / 0.5)
        assert s.graph.layout == "irregular"
    _tif(outs / "microscope_image" / "full.tif", (300, 100))
    full = read_visium_hd_cells(outs, image="fullres")
    assert full.meta["image_kind"] == "fullres" and full.microns_per_px == pytest.approx(HD_MPP)
    np.testing.assert_allclose(full.graph.pos.numpy(), centres, rtol=1e-6)


def test_visium_hd_cells_missing_segmentation_says_what_was_looked_for(tmp_path):
    outs = write_visium_hd(tmp_path / "outs", bins=(16,))
    with pytest.raises(FileNotFoundError) as err:
        read_visium_hd_cells(outs)
    assert str(err.value) == (f"{outs}: no Visium HD cell segmentation; looked for cell_segmentations.geojson and "
                              "segmented_outputs/cell_segmentations.geojson (Space Ranger 4)")


def test_predict_visium_hd_cells(tmp_path, tiny_checkpoint, capsys):
    outs = tmp_path / "sample" / "outs"
    write_segmented(outs, pngs=("hires", "lowres"))
    out = tmp_path / "pred"
    assert main(["predict", str(tiny_checkpoint), "--visium-hd-cells", str(outs), "--image-level", "lowres",
                 "--out", str(out), "--no-figure", "--device", "cpu"]) == 0
    rows = (out / "predictions.csv").read_text().splitlines()
    assert len(rows) == 13 and rows[1].startswith("cellid_000000001-1,")
    groups = (out / "predictions_cell_groups.csv").read_text().splitlines()
    assert groups[0] == "cell_id,group" and groups[1].startswith("cellid_000000001-1,")


# --------------------------------------------------------------------------------------- Xenium

def _aligned_he(folder, name="run_he_image.ome.tif", alignment="run_he_imagealignment.csv"):
    affine = np.diag([2.0, 2.0, 1.0])  # H&E px -> Xenium px: one H&E pixel is two Xenium pixels
    image = _tif(folder / name, (200, 150))
    if alignment:
        np.savetxt(folder / alignment, affine, delimiter=",")
    return image


def test_xenium_finds_the_registered_he_image_and_its_alignment(tmp_path):
    folder, frame = write_bundle(tmp_path / "run")
    assert read_xenium(folder).image is None  # auto without an H&E image: none, Xenium pixels
    image = _aligned_he(folder)
    s = read_xenium(folder)
    assert s.meta["image_kind"] == "he" and str(s.image.path) == str(image)
    assert s.meta["alignment"] == str(folder / "run_he_imagealignment.csv")
    np.testing.assert_allclose(s.graph.pos.numpy(), frame[["x_centroid", "y_centroid"]].to_numpy() / PX / 2,
                               rtol=1e-5)
    assert s.microns_per_px == pytest.approx(2 * PX)
    assert read_xenium(folder, image=None).image is None and read_xenium(folder, image=None).microns_per_px == PX


def test_xenium_alignment_spelled_with_an_underscore_is_found(tmp_path):
    folder, _ = write_bundle(tmp_path / "run")
    _aligned_he(folder, alignment="run_he_image_alignment.csv")
    assert read_xenium(folder, image="he").meta["alignment"] == str(folder / "run_he_image_alignment.csv")


def test_xenium_missing_or_ambiguous_he_files_are_named(tmp_path):
    folder, _ = write_bundle(tmp_path / "run")
    with pytest.raises(FileNotFoundError) as err:
        read_xenium(folder, image="he")
    assert str(err.value) == (f"{folder}: no registered H&E image; looked for *he_image.ome.tif (Xenium "
                              "Explorer's export)")
    image = _aligned_he(folder, alignment=None)
    with pytest.raises(FileNotFoundError) as err:
        read_xenium(folder)
    assert str(err.value) == (f"{image}: no alignment CSV beside it; looked for run_he_imagealignment.csv or "
                              "run_he_image_alignment.csv (Xenium Explorer's H&E -> Xenium pixels matrix); "
                              "give alignment=")
    _aligned_he(folder, name="other_he_image.ome.tif")
    with pytest.raises(ValueError) as err:
        read_xenium(folder)
    assert str(err.value) == (f"{folder}: several registered H&E images (other_he_image.ome.tif, "
                              "run_he_image.ome.tif); give one with image=")


@pytest.mark.parametrize("name", ["morphology_focus/ch0000_dapi.ome.tif",
                                  "morphology_focus/morphology_focus_0000.ome.tif", "morphology_focus.ome.tif"])
def test_xenium_finds_its_morphology_image(tmp_path, name):
    folder, frame = write_bundle(tmp_path / "run")
    image = _tif(folder / name, (400, 300), colour=(30, 30, 30))
    s = read_xenium(folder, image="morphology")
    assert s.meta["image_kind"] == "morphology" and str(s.image.path) == str(image)
    np.testing.assert_allclose(s.graph.pos.numpy(), frame[["x_centroid", "y_centroid"]].to_numpy() / PX, rtol=1e-5)


def test_xenium_without_a_morphology_image_says_what_was_looked_for(tmp_path):
    folder, _ = write_bundle(tmp_path / "run")
    with pytest.raises(FileNotFoundError) as err:
        read_xenium(folder, image="morphology")
    assert str(err.value) == (f"{folder}: no morphology image; looked for morphology_focus/ch0000_dapi.ome.tif, "
                              "morphology_focus/morphology_focus_0000.ome.tif, morphology_focus.ome.tif")


def test_predict_xenium_reads_the_bundles_he_image(tmp_path, tiny_checkpoint, capsys):
    folder, frame = write_bundle(tmp_path / "run")
    _aligned_he(folder)
    out = tmp_path / "pred"
    assert main(["predict", str(tiny_checkpoint), "--xenium", str(folder), "--out", str(out), "--no-figure",
                 "--device", "cpu"]) == 0
    rows = (out / "predictions.csv").read_text().splitlines()
    assert len(rows) == 1 + len(frame) and rows[1].startswith(frame.cell_id[0] + ",")
