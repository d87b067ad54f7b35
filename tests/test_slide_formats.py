"""Whole-slide TIFFs beyond tiled RGB: planar and OME channel axes, the tile cache, bounded
memory, percentile sampling, Aperio pixel sizes, reduced figure backgrounds, section units."""
import tracemalloc

import numpy as np
import pytest
import torch
from PIL import Image

tifffile = pytest.importorskip("tifffile")

import gridgraph.io.images.slide as slide_mod  # noqa: E402
from gridgraph.graph import knn_graph  # noqa: E402
from gridgraph.io import LazyImage, Section, SlideImage, thumbnail  # noqa: E402
from gridgraph.io.images.slide_store import TileCache  # noqa: E402
from gridgraph.patches import extract_patches, section_patches  # noqa: E402
from gridgraph.patches.slide import extract_slide_patches  # noqa: E402


def texture(h, w, c=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


def test_ome_channels_first_reads_only_the_chosen_planes(tmp_path):
    data = np.stack([np.full((40, 48), 1000 * (k + 1), np.uint16) for k in range(5)])  # CYX
    data[2, 7, 9] = 65535
    path = tmp_path / "fluo.ome.tif"
    tifffile.imwrite(path, data, tile=(16, 16), metadata={"axes": "CYX"})
    with pytest.raises(ValueError, match=r"fluo.ome.tif: the image has 5 channels that are not RGB"):
        SlideImage(path)
    slide = SlideImage(path, channels=[4, 2, 0], intensity=16)
    assert slide.size == (48, 40) and slide.level_sizes == [(48, 40)]
    got = slide.read_region(8, 6, 4, 3)
    want = np.round(np.stack([data[4], data[2], data[0]], -1)[6:9, 8:12] * (255 / 65535)).astype(np.uint8)
    assert np.array_equal(got, want) and got[1, 1].tolist() == [19, 255, 4]
    assert {key[1].split("/")[-1][0] for key in slide.cache._tiles} == {"0", "2", "4"}  # planes 1, 3 unread


def test_planar_rgb_and_extra_axes(tmp_path):
    data = texture(30, 20)
    planar = tmp_path / "planar.tif"
    tifffile.imwrite(planar, np.moveaxis(data, -1, 0), photometric="rgb", planarconfig="separate")  # SYX
    assert np.array_equal(SlideImage(planar).load(), data)
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, np.zeros((3, 30, 20), np.uint8), photometric="minisblack", metadata={"axes": "ZYX"})
    with pytest.raises(ValueError, match=r"stack.tif: expected a 2-D image .* got axes ZYX of shape \(3, 30, 20\)"):
        SlideImage(stack)


@pytest.fixture()
def tiled(tmp_path):
    data = texture(1024, 1024)
    path = tmp_path / "tiled.tif"
    tifffile.imwrite(path, data, tile=(64, 64), photometric="rgb", compression="zlib")
    return path, data


def test_tile_cache_is_bounded_and_changes_nothing(tiled):
    path, data = tiled
    pos = np.random.default_rng(3).uniform(-10, 1034, (150, 2))
    ref = extract_patches(data, pos, 40, 24)
    small = SlideImage(path, cache_mib=64 * 64 * 3 * 5 / 2**20)  # room for 5 tiles
    assert torch.equal(extract_slide_patches(small, pos, 40, 24, block=128, threads=2), ref)
    assert small.cache.nbytes <= 5 * 64 * 64 * 3 and small.cache.hits > 0
    off = SlideImage(path, cache_mib=0)
    assert torch.equal(extract_slide_patches(off, pos, 40, 24, block=128), ref)
    assert off.cache.nbytes == 0 and off.cache.hits == 0
    cache = TileCache(10)
    cache.put("a", b"12345678"), cache.put("b", b"123"), cache.put("c", b"x" * 11)
    assert cache.get("a") is None and cache.get("b") == b"123" and cache.get("c") is None


def test_extraction_never_holds_the_slide(tiled):
    path, data = tiled
    slide = SlideImage(path, cache_mib=0.25)
    pos = np.random.default_rng(4).uniform(0, 1024, (300, 2))
    extract_slide_patches(slide, pos[:1], 32, 32, threads=1)  # first use imports zarr, asyncio, ...
    slide.cache.clear()
    tracemalloc.start()
    extract_slide_patches(slide, pos, 32, 32, block=64, threads=1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < data.nbytes / 5  # the slide is 3 MiB; a block, its crops and 0.25 MiB of tiles


def test_percentile_fit_reads_a_decimated_sample(tmp_path, monkeypatch):
    data = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 7
    path = tmp_path / "ramp.tif"
    tifffile.imwrite(path, data, tile=(16, 16))
    monkeypatch.setattr(slide_mod, "PERCENTILE_SAMPLE_SIDE", 16)
    slide = SlideImage(path, intensity=slide_mod.Intensity("percentile", low=10, high=90))
    sample = data[::4, ::4].astype(np.float64)
    assert slide.intensity.range[0].tolist() == [np.percentile(sample, 10)]
    assert slide.intensity.range[1].tolist() == [np.percentile(sample, 90)]
    with pytest.raises(ValueError, match="0 <= low < high <= 100"):
        slide_mod.Intensity("percentile", low=50, high=20)


def test_twelve_bit_rgb_patches_are_scaled_exactly(tmp_path):
    raw = np.random.default_rng(5).integers(0, 4096, (64, 64, 3), dtype=np.uint16)
    path = tmp_path / "rgb12.tif"
    tifffile.imwrite(path, raw, photometric="rgb", tile=(32, 32))
    want = np.round(raw * (255 / 4095)).astype(np.uint8)
    pos = np.array([[20.0, 20.0], [50.0, 40.0]])
    got = extract_slide_patches(SlideImage(path, intensity=12), pos, 16, 16)
    assert torch.equal(got, extract_patches(want, pos, 16, 16))


def test_aperio_mpp_and_section_units(tmp_path):
    path = tmp_path / "a.svs"
    desc = "Aperio Image Library v12.0.15\n64x64 [0,0 64x64] (32x32) JPEG/RGB Q=70|AppMag = 20|MPP = 0.4990"
    tifffile.imwrite(path, texture(64, 64), photometric="rgb", tile=(32, 32), description=desc)
    slide = SlideImage(path)
    assert slide.microns_per_pixel == pytest.approx(0.499)
    pos = np.array([[10.0, 10.0], [40.0, 50.0], [20.0, 30.0]])
    section = Section(knn_graph(pos, k=1), [0, 0, 0], ["a"], ["x", "y", "z"], image=slide)
    assert section.microns_per_pixel == pytest.approx(0.499)
    assert section_patches(section, 8, window_um=16 * 0.499).shape == (3, 3, 8, 8)
    sized = Section(knn_graph(pos, k=1), [0, 0, 0], ["a"], ["x", "y", "z"], image=slide,
                    spot_diameter_px=110.0, spot_diameter_um=55.0)
    assert sized.microns_per_pixel == 0.5  # the spot diameters win over the file
    with pytest.raises(ValueError, match="a.svs: microns_per_pixel must be positive, got -1"):
        SlideImage(path, microns_per_pixel=-1)


def test_figure_backgrounds_are_reduced(tmp_path):
    big = tmp_path / "big.jpg"
    Image.fromarray(texture(1200, 1600)).save(big, quality=90)
    lazy = LazyImage(big)
    thumb, factor = thumbnail(lazy, 400)
    assert thumb.shape == (300, 400, 3) and factor == 4.0 and lazy._array is None
    small = tmp_path / "small.png"
    Image.fromarray(texture(30, 40)).save(small)
    assert np.array_equal(thumbnail(small, 400)[0], texture(30, 40))
    arr, step = thumbnail(texture(90, 50), 40)
    assert step == 3.0 and np.array_equal(arr, texture(90, 50)[::3, ::3])
    pyr = tmp_path / "pyr.tif"
    data = texture(256, 512)
    with tifffile.TiffWriter(pyr) as tw:
        tw.write(data, tile=(64, 64), photometric="rgb", subifds=2)
        tw.write(data[::2, ::2], tile=(64, 64), photometric="rgb", subfiletype=1)
        tw.write(data[::4, ::4], tile=(64, 64), photometric="rgb", subfiletype=1)
    slide = SlideImage(pyr)
    thumb, factor = thumbnail(slide, 100)
    assert thumb.shape == (32, 64, 3) and factor == 8.0 and set(slide._readers) == {2}  # level 2, every 2nd
    assert np.array_equal(thumb, data[::8, ::8])
