import numpy as np
import pytest
import torch

from gridgraph.patches import (
    Normalize,
    RandomColorJitter,
    RandomDihedral,
    adjust_color,
    dihedral,
    extract_patches,
    normalize,
    random_color_jitter,
    random_dihedral,
    section_patches,
)
from gridgraph.io.readers.synthetic import make_section


def ramp_image(h=10, w=12):
    return np.arange(h * w * 3, dtype=np.int64).reshape(h, w, 3).astype(np.uint8)


def test_interior_window_is_exact_crop():
    img = ramp_image()
    p = extract_patches(img, [[5, 4]], window_px=4)
    assert p.shape == (1, 3, 4, 4) and p.dtype == torch.uint8
    expect = torch.from_numpy(img[2:6, 3:7]).permute(2, 0, 1)
    assert torch.equal(p[0], expect)


def test_border_windows_repeat_edge_pixels():
    img = ramp_image()
    p = extract_patches(img, [[0, 0]], window_px=4)[0]
    crop = np.pad(img[0:2, 0:2], ((2, 0), (2, 0), (0, 0)), mode="edge")
    assert torch.equal(p, torch.from_numpy(crop).permute(2, 0, 1))
    far = extract_patches(img, [[100, -50]], window_px=3)[0]
    assert (far == torch.from_numpy(img[0, 11]).view(3, 1, 1)).all()


def test_resize_keeps_constant_colour_and_shape():
    img = np.full((50, 60, 3), (10, 120, 250), dtype=np.uint8)
    p = extract_patches(img, np.array([[30.0, 25.0], [2.0, 2.0]]), window_px=20, patch_size=8)
    assert p.shape == (2, 3, 8, 8)
    assert (p[:, 0] == 10).all() and (p[:, 1] == 120).all() and (p[:, 2] == 250).all()


def test_section_patches_units():
    s = make_section("cartesian", seed=0)
    a = section_patches(s, patch_size=8, window_px=16)
    b = section_patches(s, patch_size=8, window_spots=1.0)
    c = section_patches(s, patch_size=8, window_um=100.0)
    assert a.shape == (s.num_nodes, 3, 8, 8)
    assert torch.equal(a, b) and torch.equal(a, c)
    with pytest.raises(ValueError, match="exactly one"):
        section_patches(s, 8)
    with pytest.raises(ValueError, match="NaN"):
        extract_patches(np.zeros((4, 4, 3), np.uint8), [[np.nan, 1]], 2)


def test_normalize_values():
    x = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    y = normalize(x)
    torch.testing.assert_close(y[0, :, 0, 0], torch.tensor([(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225]))
    assert torch.equal(Normalize()(x), y) and "Normalize" in repr(Normalize())
    with pytest.raises(ValueError, match="shape"):
        normalize(torch.zeros(3, 2, 2, dtype=torch.uint8))


def test_dihedral_group():
    x = torch.arange(2 * 1 * 3 * 3).view(2, 1, 3, 3)
    outs = {tuple(dihedral(x[:1], k, f).flatten().tolist()) for k in range(4) for f in (False, True)}
    assert len(outs) == 8
    assert torch.equal(dihedral(dihedral(x, 1, False), 3, False), x)
    assert torch.equal(dihedral(x, 0, True), x.flip(-1))
    gen = torch.Generator().manual_seed(0)
    y = random_dihedral(x, gen)
    assert y.shape == x.shape
    for i in range(2):  # each output is some dihedral image of its own input
        assert any(torch.equal(y[i], dihedral(x[i], k, f)) for k in range(4) for f in (False, True))
    assert repr(RandomDihedral()) == "RandomDihedral()"


def test_standardize_stain_hits_targets_and_removes_a_colour_shift():
    from gridgraph.patches.stain import STAIN_MEAN, STAIN_STD, apply_stain_table, channel_histograms, stain_table

    def standardize_stain(patches, mean=STAIN_MEAN, std=STAIN_STD):  # one section's colour map
        return apply_stain_table(patches, stain_table(channel_histograms(patches), mean, std))

    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(50, 3, 8, 8, generator=gen) * 60 + 80).to(torch.uint8)
    y = standardize_stain(x, mean=(120, 100, 140), std=(20, 20, 20))
    assert y.dtype == torch.uint8 and y.shape == x.shape
    torch.testing.assert_close(y.float().mean(dim=(0, 2, 3)), torch.tensor([120.0, 100.0, 140.0]), atol=0.6, rtol=0)
    torch.testing.assert_close(y.float().std(dim=(0, 2, 3)), torch.tensor([20.0, 20.0, 20.0]), atol=0.6, rtol=0)
    shifted = (x.int() + torch.tensor([30, -20, 10]).view(1, 3, 1, 1)).clamp(0, 255).to(torch.uint8)
    assert (standardize_stain(shifted).int() - standardize_stain(x).int()).abs().max() <= 1
    flat = torch.full((2, 3, 4, 4), 7, dtype=torch.uint8)
    assert (standardize_stain(flat, mean=(9, 9, 9)) == 9).all()


def test_adjust_color_exact_on_small_patches():
    x = torch.tensor([[10, 20], [30, 40]], dtype=torch.uint8).view(1, 1, 2, 2).repeat(2, 3, 1, 1)
    x[1, 0] += 30  # patch 1: red raised by 30, gray = channel mean = base + 10
    ones, zeros = torch.ones(2), torch.zeros(2)
    gains = torch.ones(2, 3)
    assert torch.equal(adjust_color(x, zeros, ones, ones, gains), x)
    # brightness +5, then gain 2 on green only
    out = adjust_color(x, torch.full((2,), 5.0), ones, ones, torch.tensor([[1.0, 2.0, 1.0]] * 2))
    assert out[0, 1].tolist() == [[30, 50], [70, 90]] and out[0, 0].tolist() == [[15, 25], [35, 45]]
    # contrast 0.5 about the patch mean (25 for patch 0)
    out = adjust_color(x, zeros, torch.full((2,), 0.5), ones, gains)
    assert out[0, 0].tolist() == [[18, 22], [28, 32]]  # 17.5 and 27.5 round to even
    # saturation 0 turns patch 1 gray: every channel becomes the per-pixel mean (base + 10)
    out = adjust_color(x, zeros, ones, zeros, gains)
    assert all(out[1, c].tolist() == [[20, 30], [40, 50]] for c in range(3))
    assert adjust_color(x, torch.full((2,), 300.0), ones, ones, gains).max() == 255


def test_adjust_color_rejects_float_or_wrong_shape():
    ones = torch.ones(1)
    with pytest.raises(ValueError, match="uint8"):
        adjust_color(torch.zeros(1, 3, 2, 2), ones, ones, ones, torch.ones(1, 3))
    with pytest.raises(ValueError, match=r"\(B, 3, P, P\)"):
        adjust_color(torch.zeros(1, 1, 2, 2, dtype=torch.uint8), ones, ones, ones, torch.ones(1, 3))


def test_random_color_jitter_seeded_bounded_and_off_at_zero():
    x = torch.randint(0, 256, (16, 3, 6, 6), generator=torch.Generator().manual_seed(1)).to(torch.uint8)
    assert random_color_jitter(x, 0.0) is x
    a = random_color_jitter(x, 0.3, torch.Generator().manual_seed(5))
    b = random_color_jitter(x, 0.3, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.dtype == torch.uint8 and a.shape == x.shape
    shift = (a.float() - x.float()).mean(dim=(1, 2, 3))
    assert shift.std() > 1.0  # each patch draws its own change
    flat = torch.full((200, 3, 2, 2), 100, dtype=torch.uint8)  # only brightness and gains act on it
    y = random_color_jitter(flat, 0.1, torch.Generator().manual_seed(0)).float()
    assert y.min() >= (100 - 6) * 0.95 - 0.5 and y.max() <= (100 + 6) * 1.05 + 0.5
    assert y.max() - y.min() > 10  # and they do act
    jitter = RandomColorJitter(0.3, torch.Generator().manual_seed(5))
    assert torch.equal(jitter(x), a) and repr(jitter) == "RandomColorJitter(strength=0.3)"
    with pytest.raises(ValueError, match="strength"):
        random_color_jitter(x, -0.1)


def test_uint8_resize_within_one_of_the_float_resize_whatever_the_batch():
    import torch.nn.functional as F

    from gridgraph.patches.cut import resize_windows

    rng = np.random.default_rng(0)
    for w, p in [(28, 16), (38, 16), (40, 24), (6, 32), (9, 9)]:
        x = torch.from_numpy(rng.integers(0, 256, (64, 3, w, w), dtype=np.uint8))
        ref = F.interpolate(x.float(), size=(p, p), mode="bilinear", antialias=True, align_corners=False)
        channels_last = x.permute(0, 2, 3, 1).numpy()
        got = resize_windows(channels_last, p)
        assert got.shape == (64, 3, p, p) and got.dtype == torch.uint8 and got.is_contiguous()
        assert (got.float() - ref.round().clamp(0, 255)).abs().max() <= 1
        assert torch.equal(resize_windows(channels_last, p, batch=5), got)
        rows = torch.randperm(64)
        into = torch.zeros((64, 3, p, p), dtype=torch.uint8)
        resize_windows(channels_last, p, batch=7, out=into, rows=rows)
        assert torch.equal(into[rows], got)
    assert torch.equal(resize_windows(channels_last, 9), x)  # no resize: the windows themselves
    with pytest.raises(TypeError, match="uint8"):
        resize_windows(channels_last.astype(np.float32), 4)


def test_cut_windows_equal_one_by_one_crops():
    from gridgraph.patches.cut import _window, cut_windows

    img = np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    corners = np.array([[0, 0], [5, 7], [34, 24], [-3, 10], [38, 29], [-50, -50]])
    got = cut_windows(img, corners, 6)
    for k, (x, y) in enumerate(corners):
        assert np.array_equal(got[k], _window(img, x, y, 6))


def test_iter_section_patches_covers_every_node_once_in_reading_order():
    from gridgraph.patches.cut import reading_order
    from gridgraph.patches.extract import iter_section_patches, section_patches

    section = make_section(shape=(9, 11), seed=3)
    whole = section_patches(section, 8, window_px=12)
    chunks = list(iter_section_patches(section, 8, window_px=12, chunk=10))
    idx = torch.cat([i for i, _ in chunks])
    assert sorted(idx.tolist()) == list(range(section.num_nodes))
    assert all(len(i) <= 10 for i, _ in chunks)
    for i, p in chunks:
        assert torch.equal(p, whole[i])
    corners = np.array([[5, 30], [0, 2], [9, 1], [3, 31], [7, 16]])
    assert reading_order(corners, 16).tolist() == [1, 2, 3, 0, 4]  # band y // 16, then x


def test_colour_table_applied_while_cutting_equals_the_table_on_the_patches():
    from gridgraph.patches.extract import extract_patches, iter_section_patches
    from gridgraph.patches.stain import apply_stain_table, apply_stain_table_rgb

    rng = np.random.default_rng(4)
    table = torch.from_numpy(rng.integers(0, 256, (3, 256), dtype=np.uint8))
    img = rng.integers(0, 256, (60, 50, 3), dtype=np.uint8)
    pos = rng.uniform(-5, 55, (40, 2))
    for window, p in [(13, 8), (8, 8), (5, 9)]:
        plain = extract_patches(img, pos, window, p)
        assert torch.equal(extract_patches(img, pos, window, p, table=table), apply_stain_table(plain, table))
    section = make_section(shape=(6, 7), seed=5)
    chunks = list(iter_section_patches(section, 8, window_px=12, chunk=9, table=table))
    plain = section_patches(section, 8, window_px=12)
    for idx, patches in chunks:
        assert torch.equal(patches, apply_stain_table(plain[idx], table))
    pixels = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    expected = np.stack([table[c].numpy()[pixels[..., c]] for c in range(3)], -1)
    assert np.array_equal(apply_stain_table_rgb(pixels, table), expected)
    assert np.array_equal(apply_stain_table_rgb(pixels[0], table), expected[0])
    with pytest.raises(ValueError, match=r"uint8 of shape \(\.\.\., 3\)"):
        apply_stain_table_rgb(pixels[..., :2], table)
