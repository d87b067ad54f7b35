"""Whole-slide TIFFs: windowed reads, pyramid levels, intensities, channels, bounded memory."""
import numpy as np
import pytest
import torch

tifffile = pytest.importorskip("tifffile")

from gridgraph.io.images.slide import Intensity, SlideImage  # noqa: E402
from gridgraph.patches import extract_patches  # noqa: E402
from gridgraph.patches.slide import extract_slide_patches, iter_slide_patches, plan_level  # noqa: E402


def texture(h, w, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 7 + y * 3) % 256, (x * 2 + y * 11) % 256, (x ^ y) % 256], axis=-1)
    return (base + rng.integers(0, 30, (h, w, 3))).clip(0, 255).astype(np.uint8)


def write_pyramid(path, data, levels=3, tile=128, compression="jpeg", **kwargs):
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        tw.write(data, tile=(tile, tile), compression=compression, subifds=levels - 1, photometric="rgb", **kwargs)
        for k in range(1, levels):
            tw.write(data[:: 2 ** k, :: 2 ** k], tile=(tile, tile), compression=compression, subfiletype=1,
                     photometric="rgb")
    return path


@pytest.fixture(scope="module")
def pyramid(tmp_path_factory):
    path = tmp_path_factory.mktemp("slide") / "slide.tif"
    return write_pyramid(path, texture(768, 1024))


def test_levels_and_sizes_come_from_the_header(pyramid):
    slide = SlideImage(pyramid)
    assert slide.size == (1024, 768)
    assert slide.level_sizes == [(1024, 768), (512, 384), (256, 192)]
    assert slide.downsamples == [1.0, 2.0, 4.0]
    assert [slide.level_for(d) for d in (0.5, 1.0, 1.9, 2.0, 3.99, 8.0)] == [0, 0, 0, 1, 1, 2]
    assert plan_level(slide, window_px=256, patch_size=32) == (2, 4.0)  # 8x wanted, 4x available
    assert plan_level(slide, window_px=64, patch_size=64) == (0, 1.0)


def test_patches_are_bit_identical_to_the_decoded_slide(pyramid):
    slide = SlideImage(pyramid)
    full = tifffile.imread(pyramid)
    rng = np.random.default_rng(1)
    pos = np.concatenate([rng.uniform(-20, [1044, 788], (60, 2)), [[-500.0, 30.0], [2000.0, 2000.0]]])
    for window, size in ((48, 48), (48, 20)):
        ref = extract_patches(full, pos, window, size)
        got = extract_slide_patches(slide, pos, window, size, level=0, block=256, threads=3)
        assert torch.equal(got, ref)
    level1 = tifffile.imread(pyramid, level=1)
    got = extract_slide_patches(slide, pos, 64, 16)  # 4x wanted: read from level 2
    ref = extract_patches(tifffile.imread(pyramid, level=2), pos / 4, 16, 16)
    assert torch.equal(got, ref) and level1.shape == (384, 512, 3)


def test_reads_are_bounded_by_blocks_not_by_the_slide(pyramid, monkeypatch):
    slide = SlideImage(pyramid)
    areas = []
    real = slide.read_region
    monkeypatch.setattr(slide, "read_region", lambda x, y, w, h, level=0: areas.append((w * h, level)) or real(x, y, w, h, level))
    pos = np.random.default_rng(2).uniform(0, [1024, 768], (200, 2))
    chunks = list(iter_slide_patches(slide, pos, 32, 32, level=0, block=128, chunk=50, threads=2))
    assert max(a for a, _ in areas) <= (128 + 32) ** 2 < 1024 * 768 / 10
    idx = torch.cat([i for i, _ in chunks])
    assert sorted(idx.tolist()) == list(range(200)) and all(len(i) <= 50 + 200 for i, _ in chunks)


def test_jpeg2000_and_lzw_tiffs(tmp_path):
    data = texture(200, 300)
    for compression in ("jpeg2000", "lzw", "zlib"):
        path = tmp_path / f"{compression}.tif"
        tifffile.imwrite(path, data, tile=(64, 64), compression=compression, photometric="rgb")
        slide = SlideImage(path)
        assert np.array_equal(slide.read_region(10, 20, 50, 40), tifffile.imread(path)[20:60, 10:60])
    assert np.array_equal(SlideImage(tmp_path / "lzw.tif").load(), data)


def test_sixteen_and_twelve_bit_intensities(tmp_path):
    raw = np.array([[0, 1024, 4095], [65535, 2048, 100]], dtype=np.uint16)
    path = tmp_path / "grey16.tif"
    tifffile.imwrite(path, raw)
    assert SlideImage(path).load()[..., 0].tolist() == [[0, 4, 16], [255, 8, 0]]  # dtype range
    assert SlideImage(path, intensity=12).load()[..., 0].tolist() == [[0, 64, 255], [255, 128, 6]]
    pct = SlideImage(path, intensity=Intensity("percentile", low=0, high=100)).load()[..., 0]
    assert pct.tolist() == [[0, 4, 16], [255, 8, 0]]  # 0..65535 are the extremes here
    with pytest.raises(ValueError, match="bit depth"):
        Intensity(40)


def test_multichannel_images_need_a_channel_choice(tmp_path):
    data = np.stack([np.full((8, 8), v, dtype=np.uint8) for v in (10, 20, 30, 40)], axis=-1)
    path = tmp_path / "fluo.tif"
    tifffile.imwrite(path, data, photometric="minisblack", planarconfig="contig")
    with pytest.raises(ValueError, match=r"fluo.tif: the image has 4 channels that are not RGB.*channels="):
        SlideImage(path)
    assert SlideImage(path, channels=[3]).load()[0, 0].tolist() == [40, 40, 40]
    assert SlideImage(path, channels=[2, 1, 0]).load()[0, 0].tolist() == [30, 20, 10]
    with pytest.raises(ValueError, match="channels must be 1 or 3 indices in 0..3"):
        SlideImage(path, channels=[0, 5, 1])
    rgba = tmp_path / "rgba.tif"
    tifffile.imwrite(rgba, np.dstack([data[..., :3], np.full((8, 8), 255, np.uint8)]), photometric="rgb")
    assert SlideImage(rgba).load()[0, 0].tolist() == [10, 20, 30]  # RGB photometric: alpha dropped


def test_pixel_size_from_ome_or_resolution_tags(tmp_path):
    data = texture(64, 64)
    ome = tmp_path / "a.ome.tif"
    tifffile.imwrite(ome, data, photometric="rgb", metadata={"axes": "YXS", "PhysicalSizeX": 0.25,
                                                            "PhysicalSizeXUnit": "µm"})
    assert SlideImage(ome).microns_per_pixel == pytest.approx(0.25)
    tagged = tmp_path / "b.tif"
    tifffile.imwrite(tagged, data, photometric="rgb", resolution=(20000, 20000), resolutionunit="CENTIMETER")
    assert SlideImage(tagged).microns_per_pixel == pytest.approx(0.5)
    plain = tmp_path / "c.tif"
    tifffile.imwrite(plain, data, photometric="rgb")
    assert SlideImage(plain).microns_per_pixel is None
    assert SlideImage(plain, microns_per_pixel=0.3).microns_per_pixel == 0.3


def test_thumbnail_is_bounded(pyramid):
    thumb, factor = SlideImage(pyramid).thumbnail(max_side=200)
    assert max(thumb.shape[:2]) <= 200 and factor == pytest.approx(1024 / thumb.shape[1], rel=0.02)


def test_not_a_tiff_names_the_file(tmp_path):
    bad = tmp_path / "x.tif"
    bad.write_bytes(b"not a tiff at all")
    with pytest.raises(ValueError, match="x.tif: cannot read as a TIFF image"):
        SlideImage(bad)


def test_importing_gridgraph_leaves_pillows_limit(tmp_path):
    from PIL import Image

    from gridgraph.io import read_image

    before = Image.MAX_IMAGE_PIXELS
    Image.fromarray(texture(8, 8)).save(tmp_path / "s.png")
    read_image(tmp_path / "s.png")
    assert Image.MAX_IMAGE_PIXELS == before and before is not None


def test_a_dark_sixteen_bit_png_stays_dark(tmp_path):
    from PIL import Image

    from gridgraph.io import read_image

    raw = np.array([[0, 255], [1000, 65535]], dtype=np.uint16)
    Image.fromarray(raw).save(tmp_path / "dark.png")
    assert read_image(tmp_path / "dark.png")[..., 0].tolist() == [[0, 1], [4, 255]]


def test_a_config_names_slide_options(tmp_path):
    from gridgraph.io.readers.registry import READERS

    raw = np.zeros((64, 64, 2), dtype=np.uint16)
    raw[..., 0], raw[0, 0, 1], raw[0, 1, 1] = 100, 2048, 4095
    tifffile.imwrite(tmp_path / "fluo.tif", raw, photometric="minisblack", planarconfig="contig")
    source = READERS.get("spaceranger")
    opts, _ = source._split(tmp_path, {"fullres_image": {"path": "fluo.tif", "intensity": 12, "channels": [1]}})
    assert opts["fullres_image"]["path"] == str(tmp_path / "fluo.tif")
    from gridgraph.io.images import open_image

    slide = open_image(opts["fullres_image"])
    assert slide.load()[0, 0].tolist() == [128, 128, 128] and slide.load()[0, 1].tolist() == [255, 255, 255]


def test_image_options_work_for_pngs_too(tmp_path):
    from PIL import Image

    from gridgraph.io.images.image import LazyImage
    from gridgraph.io.images import open_image

    Image.fromarray(np.full((4, 4), 4095, dtype=np.uint16)).save(tmp_path / "grey12.png")
    image = open_image({"path": str(tmp_path / "grey12.png"), "intensity": 12})
    assert isinstance(image, LazyImage) and image.load()[0, 0].tolist() == [255, 255, 255]


def test_slide_patches_with_a_colour_table_equal_the_table_on_the_plain_patches(pyramid):
    from gridgraph.patches.stain import apply_stain_table

    slide = SlideImage(pyramid)
    table = torch.from_numpy(np.random.default_rng(3).integers(0, 256, (3, 256), dtype=np.uint8))
    pos = np.random.default_rng(2).uniform(0, [1024, 768], (60, 2))
    plain = extract_slide_patches(slide, pos, 32, 16, level=0)
    for idx, patches in iter_slide_patches(slide, pos, 32, 16, level=0, block=128, chunk=20, threads=2, table=table):
        assert torch.equal(patches, apply_stain_table(plain[idx], table))
