"""Per-section colour standardisation: exact tables, sampled statistics, streamed = whole."""
import pytest
import torch

from gridgraph.patches import plan, prepare_section
from gridgraph.patches import stain
from gridgraph.io.readers.synthetic import make_section


def standardize_stain(patches):
    """The whole-section colour map: the table of the patches' own histograms, applied."""
    return stain.apply_stain_table(patches, stain.stain_table(stain.channel_histograms(patches)))


def test_stain_table_exact_on_two_values():
    x = torch.zeros(1, 3, 1, 2, dtype=torch.uint8)
    x[0, 0, 0] = torch.tensor([10, 30])  # mean 20, sample SD 10 * sqrt(2)
    x[0, 1, 0] = torch.tensor([5, 5])  # constant: shifted only
    x[0, 2, 0] = torch.tensor([0, 255])
    table = stain.stain_table(stain.channel_histograms(x))
    assert table.dtype == torch.uint8 and table.shape == (3, 256)
    assert table[0, 10].item() == 132 and table[0, 30].item() == 188  # 160 -/+ 10 * 40 / 14.142
    assert table[1, 5].item() == 110 and table[1, 6].item() == 111
    assert table[2, 0].item() == 139 and table[2, 255].item() == 181  # 160 -/+ 127.5 * 30 / 180.31
    assert standardize_stain(x)[0, :, 0].tolist() == [[132, 188], [110, 110], [139, 181]]


def test_standardize_stain_equals_the_float_formula():
    x = (torch.rand(40, 3, 6, 6, generator=torch.Generator().manual_seed(1)) * 200 + 20).to(torch.uint8)
    xf = x.double()
    m, s = xf.mean(dim=(0, 2, 3), keepdim=True), xf.std(dim=(0, 2, 3), keepdim=True)
    target_m = torch.tensor(stain.STAIN_MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    target_s = torch.tensor(stain.STAIN_STD, dtype=torch.float64).view(1, 3, 1, 1)
    expected = ((xf - m) * target_s / s + target_m).round().clamp(0, 255).to(torch.uint8)
    assert torch.equal(standardize_stain(x), expected)
    assert torch.equal(stain.apply_stain_table(x, stain.stain_table(stain.channel_histograms(x)), chunk=7), expected)


def test_bad_patches_and_histograms_are_refused():
    with pytest.raises(ValueError, match="uint8 of shape"):
        stain.channel_histograms(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match="pixels in every channel"):
        stain.stain_table(torch.zeros(3, 256, dtype=torch.long))


def test_stain_sample_all_or_evenly_spaced():
    assert torch.equal(stain.stain_sample(5, 8), torch.arange(5))
    assert stain.stain_sample(101, 5).tolist() == [0, 25, 50, 75, 100]


def test_section_table_from_a_sample_equals_the_table_of_those_patches():
    section = make_section("hex", seed=2, shape=(8, 12), n_classes=3)
    window = section.spot_diameter_px
    whole = prepare_section(section, 8, window_px=window).patches
    cut = plan.section_stain_table(section, 8, window, max_nodes=10)
    idx = stain.stain_sample(section.graph.num_nodes, 10)
    assert len(idx) == 10
    assert torch.equal(cut, stain.stain_table(stain.channel_histograms(whole[idx])))
    assert torch.equal(plan.section_stain_table(section, 8, window, patches=whole, max_nodes=10), cut)
    assert not torch.equal(cut, plan.section_stain_table(section, 8, window, patches=whole))


def test_streamed_standardised_prediction_equals_the_whole_section(monkeypatch):
    from gridgraph.checkpoint import Checkpoint
    from gridgraph.config import make_config
    from gridgraph.inference import predict_probs
    from gridgraph.patches.extract import section_patches
    from gridgraph.workflows import predict_probabilities as _predict, model_from_config

    monkeypatch.setattr(stain, "SAMPLE_NODES", 20)
    cfg = make_config({"patches": {"patch_size": 16, "window_spots": 1.0, "standardize": True},
                       "f": {"name": "gridnet_simple", "kwargs": {"stage_channels": [8, 8, 8, 8],
                                                                   "stem_channels": 8, "blocks": [1, 1, 1, 1]}},
                       "g": {"name": "conv2d"}})
    torch.manual_seed(0)
    model = model_from_config(cfg, 3).eval()
    section = make_section("hex", seed=3, shape=(8, 12), n_classes=3)
    st = prepare_section(section, 16, window_spots=1.0, standardize=True)
    (f_ref, g_ref), = predict_probs(model, [st])
    cuts = []
    monkeypatch.setattr("gridgraph.patches.plan.section_patches",
                        lambda *a, **k: cuts.append(len(k["nodes"])) or section_patches(*a, **k))
    _, f, g = _predict(model, Checkpoint(config=cfg, classes=section.classes, model={}), section)
    assert cuts == [20]  # the colour map came from 20 nodes' patches, not all 45
    torch.testing.assert_close(f, f_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-6)


def test_table_of_large_patches_comes_from_their_centre_at_their_own_scale(monkeypatch):
    from gridgraph.patches.extract import section_patches

    monkeypatch.setattr(stain, "SAMPLE_PATCH", 4)
    section = make_section("hex", seed=2, shape=(8, 12), n_classes=3)
    window = section.spot_diameter_px
    whole = section_patches(section, 8, window_px=window)
    centre = section_patches(section, 4, window_px=window / 2)  # half the window, same px per patch px
    expected = stain.stain_table(stain.channel_histograms(centre))
    assert torch.equal(plan.section_stain_table(section, 8, window), expected)
    assert torch.equal(plan.section_stain_table(section, 8, window, patches=whole), expected)
    assert not torch.equal(expected, stain.stain_table(stain.channel_histograms(whole)))
    small = section_patches(section, 4, window_px=window)
    assert torch.equal(plan.section_stain_table(section, 4, window, patches=small),
                       stain.stain_table(stain.channel_histograms(small)))


def test_centre_sample_keeps_the_texture_of_large_patches():
    from dataclasses import replace

    import numpy as np
    from scipy.ndimage import gaussian_filter

    from gridgraph.patches.extract import extract_patches

    rng = np.random.default_rng(0)
    noise = gaussian_filter(rng.normal(0, 1, (700, 700, 3)), (0.7, 0.7, 0))  # fine texture, as chromatin
    img = (noise / noise.std() * 35 + 150).clip(0, 255).astype(np.uint8)
    section = make_section("irregular", seed=1, n_points=60)
    pos = rng.uniform(150, 550, (section.num_nodes, 2))
    section = replace(section, image=img, graph=replace(section.graph, pos=torch.from_numpy(pos)))
    patches = extract_patches(img, pos, 256, 224)
    sd = stain.apply_stain_table(patches, plan.section_stain_table(section, 224, 256)).float().std(dim=(0, 2, 3))
    assert torch.allclose(sd, torch.tensor(stain.STAIN_STD), rtol=0.1)  # a 64 px sample of whole windows: 75/76/61
