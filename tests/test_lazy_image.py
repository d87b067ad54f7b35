"""LazyImage: decoded on first use, or in the background while a reader works (prefetching)."""
import numpy as np
import pytest
from PIL import Image

from gridgraph.io import LazyImage
from gridgraph.io.images.image import prefetching


def _png(path, seed=0):
    pixels = np.random.default_rng(seed).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels


def test_prefetched_image_equals_the_plain_decode(tmp_path):
    pixels = _png(tmp_path / "a.png")
    plain = LazyImage(tmp_path / "a.png")
    assert plain._decoding is None
    with prefetching():
        early = LazyImage(tmp_path / "a.png")
    assert early._decoding is not None and LazyImage(tmp_path / "a.png")._decoding is None
    assert np.array_equal(early.load(), pixels) and np.array_equal(plain.load(), pixels)
    assert early._decoding is None and early.load() is early.load()
    early.release()
    assert np.array_equal(early.load(), pixels)


def test_a_failed_background_decode_is_raised_by_load(tmp_path):
    _png(tmp_path / "b.png")
    data = (tmp_path / "b.png").read_bytes()
    (tmp_path / "b.png").write_bytes(data[: len(data) // 2])  # header intact, pixels cut short
    with prefetching():
        image = LazyImage(tmp_path / "b.png")
    with pytest.raises(Exception, match="truncated|broken|image file"):
        image.load()


def test_pillows_limit_is_restored_after_overlapping_reads_in_threads(tmp_path):
    import threading
    import time

    from gridgraph.io.images.image import _no_pixel_limit

    before = Image.MAX_IMAGE_PIXELS
    inside = []

    def read(delay):
        with _no_pixel_limit():
            inside.append(Image.MAX_IMAGE_PIXELS)
            time.sleep(delay)

    threads = [threading.Thread(target=read, args=(d,)) for d in (0.05, 0.01, 0.03)]
    for t in threads:
        t.start()
        time.sleep(0.005)  # each enters while another is inside
    for t in threads:
        t.join()
    assert inside == [None, None, None] and Image.MAX_IMAGE_PIXELS == before and before is not None
    _png(tmp_path / "c.png")
    with prefetching():
        image = LazyImage(tmp_path / "c.png")
    image.load()
    assert Image.MAX_IMAGE_PIXELS == before
