"""Slides and image files beyond windowed reads: physical units and resampling to a µm/px,
Pillow images with explicit intensity and channels, one opener for every format, decode threads,
figure backgrounds at the figure's pixel size."""
import numpy as np
import pytest
import torch
from PIL import Image

tifffile = pytest.importorskip("tifffile")

from gridgraph import plot  # noqa: E402
from gridgraph.graph import knn_graph  # noqa: E402
from gridgraph.io import LazyImage, Section, SlideImage, read_image  # noqa: E402
from gridgraph.io.images.slide import open_image_file  # noqa: E402
from gridgraph.patches import Window, extract_patches, section_patches  # noqa: E402
from gridgraph.patches.slide import extract_slide_patches  # noqa: E402
from gridgraph.plot.nodes import BACKGROUND_MAX_SIDE, BACKGROUND_MIN_SIDE, background_side  # noqa: E402


def texture(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def write_pyramid(path, data, levels=3, tile=64, **kwargs):
    with tifffile.TiffWriter(path) as tw:
        tw.write(data, tile=(tile, tile), photometric="rgb", subifds=levels - 1, **kwargs)
        for k in range(1, levels):
            tw.write(data[:: 2 ** k, :: 2 ** k], tile=(tile, tile), photometric="rgb", subfiletype=1)
    return path


def section_on(image, pos, **kwargs):
    n = len(pos)
    return Section(knn_graph(np.asarray(pos, dtype=np.float64), k=1), [0] * n, ["a"],
                   [f"n{i}" for i in range(n)], image=image, **kwargs)


def test_pixel_size_tags_that_are_screen_defaults_are_ignored(tmp_path):
    data = texture(16, 16)
    for dpi, unit, want in ((72, "INCH", None), (1200, "INCH", None), (50800, "INCH", 0.5),
                            (28.35, "CENTIMETER", None), (40000, "CENTIMETER", 0.25)):
        path = tmp_path / f"{dpi}.tif"
        tifffile.imwrite(path, data, photometric="rgb", resolution=(dpi, dpi), resolutionunit=unit)
        got = SlideImage(path).microns_per_pixel
        assert (got is None) if want is None else got == pytest.approx(want), (dpi, unit, got)
    for unit, want in (("nm", 0.25), ("mm", 250.0), ("furlong", None)):
        path = tmp_path / f"{unit}.ome.tif"
        tifffile.imwrite(path, data, photometric="rgb",
                         metadata={"axes": "YXS", "PhysicalSizeX": 250 if unit == "nm" else 0.25,
                                   "PhysicalSizeXUnit": unit})
        got = SlideImage(path).microns_per_pixel
        assert (got is None) if want is None else got == pytest.approx(want), (unit, got)


def test_levels_by_microns_and_resampling_a_section(tmp_path):
    data = texture(256, 384)
    path = write_pyramid(tmp_path / "p.tif", data, resolution=(20000, 20000), resolutionunit="CENTIMETER")
    slide = SlideImage(path)  # 0.5 µm/px at level 0
    assert [slide.level_microns_per_pixel(k) for k in range(3)] == [0.5, 1.0, 2.0]
    assert [slide.level_for_microns(m) for m in (0.2, 0.5, 0.99, 1.0, 1.5, 8.0)] == [0, 0, 0, 1, 1, 2]
    pos = np.array([[40.0, 40.0], [200.0, 100.0], [300.0, 180.0]])
    section = section_on(slide, pos)
    window = Window.for_resolution(section, 16, 2.0).pixels(section)  # 16 px of 2 µm = 32 µm = 64 level-0 px
    assert window == 64.0
    got = section_patches(section, 16, window_px=window)
    assert set(slide._readers) == {2}  # read from the 2 µm level, nothing finer
    assert torch.equal(got, extract_patches(data[::4, ::4], pos / 4, 16, 16))
    sized = section_on(slide, pos, spot_diameter_px=100.0, spot_diameter_um=55.0)  # spots win
    assert Window.for_resolution(sized, 10, 1.1).pixels(sized) == pytest.approx(20.0)
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, data, photometric="rgb")
    with pytest.raises(ValueError, match=r"plain.tif: its pixel size is unknown .*microns_per_pixel"):
        SlideImage(plain).level_for_microns(1.0)
    assert SlideImage(plain).level_microns_per_pixel(0) is None
    with pytest.raises(ValueError, match=r"section section: its µm per pixel is unknown"):
        Window.for_resolution(section_on(SlideImage(plain), pos), 16, 2.0)
    with pytest.raises(ValueError, match="microns_per_pixel must be > 0"):
        Window.for_resolution(section, 16, 0.0)


def test_sixteen_bit_png_with_explicit_intensity(tmp_path):
    raw = np.array([[0, 1024, 4095], [65535, 2048, 100]], dtype=np.uint16)
    path = tmp_path / "grey16.png"
    Image.fromarray(raw).save(path)
    assert read_image(path)[..., 0].tolist() == [[0, 4, 16], [255, 8, 0]]  # default: dtype range
    assert read_image(path, intensity=12)[..., 0].tolist() == [[0, 64, 255], [255, 128, 6]]
    lazy = LazyImage(path, intensity="percentile", microns_per_pixel=0.7)
    low, high = np.percentile(raw.astype(np.float64), [1.0, 99.5])
    want = np.round((raw - low) * (255 / (high - low))).clip(0, 255).astype(np.uint8)
    assert np.array_equal(lazy.load()[..., 1], want) and lazy.load().shape == (2, 3, 3)
    assert lazy.microns_per_pixel == 0.7
    assert section_on(lazy, [[0.0, 0.0], [2.0, 1.0]]).microns_per_pixel == 0.7
    assert LazyImage(path).microns_per_pixel is None  # never guessed from DPI
    with pytest.raises(ValueError, match="grey16.png: microns_per_pixel must be positive, got 0"):
        LazyImage(path, microns_per_pixel=0)


def test_rgb_png_channels_and_thumbnails_with_options(tmp_path):
    data = texture(300, 500)
    path = tmp_path / "rgb.png"
    Image.fromarray(np.dstack([data, np.full((300, 500), 255, np.uint8)])).save(path)  # RGBA
    assert np.array_equal(read_image(path), data)
    assert np.array_equal(read_image(path, channels=[2, 1, 0]), data[..., ::-1])
    assert np.array_equal(read_image(path, channels=[1]), np.repeat(data[..., 1:2], 3, axis=2))
    with pytest.raises(ValueError, match=r"rgb.png: channels must be 1 or 3 indices in 0..2, got \[3\]"):
        read_image(path, channels=[3])
    lazy = LazyImage(path, channels=[1])
    thumb, factor = lazy.thumbnail(100)
    assert factor == 5.0 and np.array_equal(thumb, np.repeat(data[::5, ::5, 1:2], 3, axis=2))


def test_one_opener_for_every_format(tmp_path):
    data = texture(40, 60)
    tifffile.imwrite(tmp_path / "a.tif", data, photometric="rgb", tile=(16, 16))
    (tmp_path / "a.tif").rename(tmp_path / "renamed.dat")  # a TIFF under another name
    Image.fromarray(data).save(tmp_path / "b.png")
    slide = open_image_file(tmp_path / "renamed.dat", microns_per_pixel=0.3, cache_mib=1, decode_threads=1)
    assert isinstance(slide, SlideImage) and slide.microns_per_pixel == 0.3 and slide.decode_threads == 1
    assert np.array_equal(slide.load(), data)
    png = open_image_file(tmp_path / "b.png", intensity="dtype", microns_per_pixel=0.3)
    assert isinstance(png, LazyImage) and np.array_equal(png.load(), data)
    with pytest.raises(ValueError, match=r"b.png: \['cache_mib'\] apply to TIFF slides only"):
        open_image_file(tmp_path / "b.png", cache_mib=8)


def test_decode_threads_change_nothing(tmp_path):
    data = texture(512, 512)
    path = tmp_path / "t.tif"
    tifffile.imwrite(path, data, photometric="rgb", tile=(32, 32), compression="zlib")
    pos = np.random.default_rng(1).uniform(-8, 520, (80, 2))
    ref = extract_patches(data, pos, 40, 20)
    for threads in (1, 4):
        slide = SlideImage(path, decode_threads=threads)
        assert torch.equal(extract_slide_patches(slide, pos, 40, 20, level=0, block=96, threads=2), ref)


def test_background_side_follows_the_figure():
    from matplotlib.figure import Figure

    ax = Figure(figsize=(6, 5), dpi=100).add_subplot()
    assert background_side(ax, 10000, 10000) == 600  # whole image in view: one pixel per pixel
    assert background_side(ax, 10000, 5000) == 1200  # half the image in view: twice as many
    assert background_side(ax, 60000, 100) == BACKGROUND_MAX_SIDE
    assert background_side(ax, 100, 10000) == BACKGROUND_MIN_SIDE  # a view far wider than the image


def test_label_map_over_a_slide_reads_a_coarse_level(tmp_path):
    data = texture(1024, 1024)
    slide = SlideImage(write_pyramid(tmp_path / "p.tif", data, levels=4))
    pos = torch.tensor([[100.0, 100.0], [900.0, 100.0], [500.0, 900.0]])
    fig = plot.plot_label_map(pos, torch.tensor([0, 1, 2]), ["a", "b", "c"], image=slide, figsize=(2, 2),
                              dpi=50)
    # 100 figure px over a ~1000 px view of a 1024 px slide: 256 px suffice, level 2 (256 px)
    assert set(slide._readers) == {2}
    assert fig.axes[0].images[0].get_array().shape == (256, 256, 3)
