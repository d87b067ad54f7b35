"""Bad image input: tiles that cannot be decoded and NaN / infinite pixels are one ValueError
naming the file, the tile or window and the level; nothing else is printed (no asyncio noise)."""
import gc
import os
import warnings

import numpy as np
import pytest
from PIL import Image

tifffile = pytest.importorskip("tifffile")

from gridgraph.io.images import LazyImage, open_image, open_image_file, read_image  # noqa: E402
from gridgraph.io.images.slide import SlideImage  # noqa: E402
from gridgraph.io.images.slide_store import first_touched  # noqa: E402


def texture(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def tile_bytes(path, index, level=0):
    """``(offset, bytecount)`` of tile ``index`` of ``level``."""
    with tifffile.TiffFile(path) as tf:
        page = tf.series[0].levels[level].keyframe
        return int(page.dataoffsets[index]), int(page.databytecounts[index])


def corrupt(path, index, level=0, byte=0xAB):
    offset, count = tile_bytes(path, index, level)
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(bytes([byte]) * count)


def expect(fn, *needles):
    with pytest.raises(ValueError) as info:
        fn()
    for needle in needles:
        assert needle in str(info.value), f"{needle!r} not in {str(info.value)!r}"
    return str(info.value)


def no_stray_output(capfd):
    """Nothing was printed: asyncio reports tasks destroyed while pending when they are collected."""
    gc.collect()
    out, err = capfd.readouterr()
    assert "Task was destroyed" not in err + out and "Traceback" not in err + out, err + out
    assert err == "" and out == ""


@pytest.mark.parametrize("compression", ["jpeg", "zlib", "lzw"])
@pytest.mark.parametrize("threads", [1, 4])
def test_a_corrupt_tile_names_the_file_tile_and_level(tmp_path, capfd, compression, threads):
    data = texture(256, 256)
    path = tmp_path / f"bad_{compression}.tif"
    tifffile.imwrite(path, data, tile=(64, 64), compression=compression, photometric="rgb")
    corrupt(path, 6)  # 4 tiles a row: column 2, row 1
    with SlideImage(path, decode_threads=threads) as slide:
        message = expect(lambda: slide.read_region(0, 0, 256, 256), str(path),
                         "tile at (128, 64) of level 0 cannot be decoded (")
        assert "more tile" not in message
        expect(lambda: slide.read_region(130, 70, 5, 5), "tile at (128, 64) of level 0")  # again: not cached
        clean = slide.read_region(0, 128, 256, 128)  # windows that miss the tile read as before
        if compression != "jpeg":
            assert np.array_equal(clean, data[128:])
            assert np.array_equal(slide.read_region(0, 0, 128, 64), data[:64, :128])
    no_stray_output(capfd)


def test_a_truncated_deflate_tiff(tmp_path, capfd):
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, texture(256, 256), tile=(64, 64), compression="zlib", photometric="rgb")
    size = os.path.getsize(path)
    cut = size - 20000
    os.truncate(path, cut)
    ends = [sum(tile_bytes(path, k)) for k in range(16)]
    first = next(k for k in range(16) if ends[k] > cut)
    broken = sum(e > cut for e in ends)
    slide = SlideImage(path)
    at = f"tile at ({first % 4 * 64}, {first // 4 * 64}) of level 0 cannot be decoded"
    message = expect(slide.load, str(path), at)
    assert (f"{broken - 1} more tile" in message) == (broken > 1)
    assert slide.read_region(0, 0, 64, 64).shape == (64, 64, 3)
    slide.close()
    no_stray_output(capfd)


def test_corrupt_tiles_of_a_pyramid_level_and_the_thumbnail(tmp_path, capfd):
    path = tmp_path / "pyr.tif"
    data = texture(512, 512)
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        tw.write(data, tile=(64, 64), compression="zlib", subifds=1, photometric="rgb")
        tw.write(data[::2, ::2], tile=(64, 64), compression="zlib", subfiletype=1, photometric="rgb")
    corrupt(path, 3, level=1)  # level 1: 4 tiles a row
    with SlideImage(path) as slide:
        assert len(slide.level_sizes) == 2
        expect(lambda: slide.thumbnail(256), str(path), "tile at (192, 0) of level 1 cannot be decoded")
        assert np.array_equal(slide.read_region(384, 0, 64, 64, level=0), data[:64, 384:448])
        expect(lambda: slide.read_region(0, 0, 256, 64, level=1), "of level 1")
    # the percentile sample is read from the smallest level when the slide is opened
    expect(lambda: SlideImage(path, intensity="percentile"), str(path), "tile at (192, 0) of level 1")
    no_stray_output(capfd)


def test_a_corrupt_plane_of_a_channel_that_is_not_read(tmp_path):
    path = tmp_path / "planes.tif"
    raw = np.random.default_rng(1).integers(0, 4096, (3, 128, 128), dtype=np.uint16)
    tifffile.imwrite(path, raw, tile=(64, 64), compression="zlib", photometric="minisblack",
                     planarconfig="separate")
    corrupt(path, 4 + 1)  # plane 1, tile (64, 0)
    with SlideImage(path, channels=[0]) as slide:  # plane 1 is never decoded
        assert slide.read_region(0, 0, 128, 128).shape == (128, 128, 3)
    with SlideImage(path, channels=[0, 1, 2]) as slide:
        expect(lambda: slide.read_region(0, 0, 128, 128), "tile at (64, 0) of level 0")


def test_first_touched_follows_steps():
    assert first_touched(slice(0, 100, 7), 100, 10, 20) == 14
    assert first_touched(slice(0, 100, 30), 100, 31, 59) is None  # 30 and 60 miss 31..58
    assert first_touched(slice(5, 8), 100, 0, 5) is None
    assert first_touched(slice(5, 8), 100, 7, 9) == 7
    assert first_touched(slice(90, 200), 100, 95, 120) == 95


def float_slide(path, dtype=np.float32, tile=64, levels=1, more=()):
    data = np.random.default_rng(2).random((256, 192)).astype(dtype)
    data[150, 120] = np.nan
    data[200, 10] = np.inf
    data[255, 191] = -np.inf
    for y, x in more:
        data[y, x] = np.nan
    with tifffile.TiffWriter(path) as tw:
        tw.write(data, tile=(tile, tile), subifds=levels - 1)
        for k in range(1, levels):
            tw.write(data[:: 2 ** k, :: 2 ** k], tile=(tile, tile), subfiletype=1)
    return data


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_and_inf_pixels_are_an_error_naming_the_window(tmp_path, dtype):
    path = tmp_path / "float.tif"
    float_slide(path, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "invalid value encountered in cast"
        slide = open_image_file(path)  # opening scans nothing
        clean = slide.read_region(0, 0, 64, 64)
        assert clean.dtype == np.uint8 and clean.shape == (64, 64, 3)
        expect(lambda: slide.read_region(100, 140, 40, 20), str(path), "1 NaN or infinite pixel value in the window "
               "x 100..140, y 140..160 of level 0, the first at pixel (120, 150)", "nonfinite_fill=")
        expect(slide.load, "3 NaN or infinite pixel values", "x 0..192, y 0..256 of level 0", "(120, 150)")
        expect(lambda: slide.read_region(-10, 195, 40, 10), "first at pixel (10, 200)")
        expect(lambda: slide.read_region(300, 300, 4, 4), "first at pixel (191, 255)")  # the edge pixel repeated
        slide.close()


def test_nan_on_a_smaller_level_and_in_a_thumbnail(tmp_path):
    path = tmp_path / "pyr.tif"
    float_slide(path, levels=2)
    with SlideImage(path) as slide:
        expect(lambda: slide.read_region(55, 70, 10, 10, level=1), "of level 1", "first at pixel (60, 75)")
        assert slide.thumbnail(64)[0].shape == (64, 48, 3)  # every 2nd pixel of level 1: none is NaN
    float_slide(path, levels=2, more=[(16, 32)])  # level 1 (16, 8): sampled
    with SlideImage(path) as slide:
        expect(lambda: slide.thumbnail(64), str(path), "of level 1 (sampled every 2 columns and 2 rows)",
               "first at pixel (16, 8)")
    expect(lambda: SlideImage(path, intensity="percentile"), str(path), "of level 1")


def test_nonfinite_fill_replaces_them_window_by_window(tmp_path):
    path = tmp_path / "float.tif"
    data = float_slide(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        slide = open_image_file(path, nonfinite_fill=0.5)
        assert slide.nonfinite_fill == 0.5
        assert np.all(slide.read_region(120, 150, 1, 1) == 128)  # 0.5 of 0..1 -> 127.5 -> 128
        full = slide.load()
        ok = np.isfinite(data)
        expected = (np.where(ok, data, 0.5).astype(np.float32) * 255).round().clip(0, 255).astype(np.uint8)
        assert np.array_equal(full[..., 0], expected)
        slide.close()
        with SlideImage(path, intensity="percentile", nonfinite_fill=0.0) as fitted:
            low, high = fitted.intensity.range
            assert np.all(np.isfinite(low)) and np.all(np.isfinite(high))
        mapped = open_image({"path": str(path), "nonfinite_fill": 1})
        assert np.all(mapped.read_region(10, 200, 1, 1) == 255)
        mapped.close()


@pytest.mark.parametrize("fill", [float("nan"), float("inf"), "0", True, [0]])
def test_a_fill_must_be_a_finite_number(tmp_path, fill):
    path = tmp_path / "float.tif"
    float_slide(path)
    expect(lambda: SlideImage(path, nonfinite_fill=fill), str(path), "nonfinite_fill must be a finite number")
    png = tmp_path / "a.png"
    Image.fromarray(texture(8, 8)).save(png)
    expect(lambda: LazyImage(png, nonfinite_fill=fill), str(png), "nonfinite_fill")


def test_integer_slides_are_not_checked_and_accept_a_fill(tmp_path):
    path = tmp_path / "rgb.tif"
    data = texture(64, 64)
    tifffile.imwrite(path, data, tile=(32, 32), photometric="rgb")
    with SlideImage(path, nonfinite_fill=0) as slide:
        assert np.array_equal(slide.load(), data)


def test_float_images_read_by_pillow(tmp_path):
    path = tmp_path / "float_pillow.tif"
    data = np.random.default_rng(3).random((40, 30)).astype(np.float32)
    data[7, 9] = np.nan
    Image.fromarray(data, mode="F").save(path)
    expect(lambda: read_image(path), str(path), "1 NaN or infinite pixel value in the image", "(9, 7)")
    expect(lambda: read_image(path, intensity="percentile"), str(path), "(9, 7)")
    filled = read_image(path, nonfinite_fill=0.0)
    assert filled.shape == (40, 30, 3) and np.all(filled[7, 9] == 0)
    lazy = LazyImage(path, nonfinite_fill=1.0)
    assert np.all(lazy.load()[7, 9] == 255)
    expect(LazyImage(path).prefetch().load, str(path), "(9, 7)")


def test_a_tile_that_decodes_on_a_retry_is_not_blamed_again(tmp_path, monkeypatch, capfd):
    from tifffile.zarr import ZarrTiffStore

    path = tmp_path / "ok.tif"
    data = texture(128, 128)
    tifffile.imwrite(path, data, tile=(64, 64), compression="zlib", photometric="rgb")
    real, failed = ZarrTiffStore.get, []

    async def flaky(self, key, prototype, byte_range=None):
        if key.startswith("1.0") and not failed:  # tile (0, 64): the first read of it fails
            failed.append(key)
            raise OSError("transient read error")
        return await real(self, key, prototype, byte_range)

    monkeypatch.setattr(ZarrTiffStore, "get", flaky)
    with SlideImage(path, cache_mib=0) as slide:
        expect(slide.load, "tile at (0, 64) of level 0 cannot be decoded (OSError: transient read error)")
        assert np.array_equal(slide.load(), data)  # decoded this time: no stale error
        assert np.array_equal(slide.read_region(0, 64, 64, 64), data[64:, :64])
    no_stray_output(capfd)


def test_a_failure_under_a_key_of_unknown_form_still_raises(tmp_path):
    path = tmp_path / "ok.tif"
    tifffile.imwrite(path, texture(64, 64), tile=(32, 32), photometric="rgb")
    with SlideImage(path) as slide:
        reader = slide._reader(0)
        reader.failures["odd-key"] = (10 ** 18, "Error: injected")  # recorded after the read began
        expect(lambda: slide.read_region(0, 0, 8, 8), str(path), "a tile of level 0 (zarr key 'odd-key') "
               "cannot be decoded (Error: injected)")
