"""The patch window: units -> pixels and µm, platform defaults, the checkpoint record, the plan
that cuts a section's patches, and the import order of gridgraph.patches."""
from dataclasses import replace

import pytest
import torch

from gridgraph.config import make_config
from gridgraph.io.readers.synthetic import make_section
from gridgraph.patches import SectionPatchPlan, Window, prepare_section
from gridgraph.patches.window import CELL_WINDOW_UM, SPOT_WINDOW_UM, UNSCALED_WINDOW_PX


@pytest.fixture
def spots():
    """Spots 10 px apart and 10 px across, 100 µm each: 10 µm per pixel."""
    return make_section("hex", shape=(6, 8), spacing_px=10)


def test_units_to_pixels_and_microns(spots):
    assert spots.microns_per_px == 10.0
    assert Window(40, "px").pixels(spots) == 40.0
    assert Window(2, "spots").pixels(spots) == 20.0
    assert Window(200, "um").pixels(spots) == 20.0
    assert Window().pixels(spots) == 20.0  # automatic: 200 µm on a spot array
    assert [Window(40, "px").microns(spots), Window(2, "spots").microns(spots), Window(150, "um").microns(spots),
            Window().microns(spots)] == [400.0, 200.0, 150.0, 200.0]
    visium = replace(spots, spot_diameter_px=20.0, spot_diameter_um=55.0)  # 2.75 µm per pixel
    assert Window(110, "um").pixels(visium) == 40.0
    assert Window(1.5, "spots").pixels(visium) == 30.0
    assert Window(1.5, "spots").microns(visium) == 82.5
    assert Window(40, "px").microns(visium) == 110.0


def test_units_on_sections_of_unknown_scale(spots):
    unscaled = replace(spots, spot_diameter_um=None)
    assert Window(2, "spots").pixels(unscaled) == 20.0  # spot diameters need pixels only
    assert Window(2, "spots").microns(unscaled) is None and Window(40, "px").microns(unscaled) is None
    assert Window().pixels(unscaled) == UNSCALED_WINDOW_PX and Window().microns(unscaled) is None
    with pytest.raises(ValueError, match="section synthetic-hex-0: window_um needs its µm per pixel"):
        Window(200, "um").pixels(unscaled)
    with pytest.raises(ValueError, match="window_spots needs spot_diameter_px"):
        Window(2, "spots").pixels(replace(spots, spot_diameter_px=None))


def test_construction_fields_and_repr():
    assert Window.from_fields(window_px=8) == Window(8.0, "px")
    assert Window.from_fields(window_um=32).fields() == {"window_spots": None, "window_px": None, "window_um": 32.0}
    assert Window.from_fields(automatic=True) == Window() and Window().automatic
    assert Window().fields() == {"window_spots": None, "window_px": None, "window_um": None}
    for bad in ({}, {"window_px": 8, "window_um": 32}):
        with pytest.raises(ValueError, match="give exactly one of window_px, window_um, window_spots"):
            Window.from_fields(**bad)
    with pytest.raises(ValueError, match="unit"):
        Window(3, "mm")
    with pytest.raises(ValueError, match="positive"):
        Window(0, "px")
    with pytest.raises(ValueError, match="no size"):
        Window(3)
    assert repr(Window(2, "spots")) == "Window(2 spots)" and repr(Window()) == "Window(auto)"
    cfg = make_config({"patches": {"window_spots": 1.5}}).patches
    assert Window.from_config(cfg) == Window(1.5, "spots") and cfg.window() == Window(1.5, "spots").fields()
    assert Window.from_config(make_config({}).patches) == Window()


def test_automatic_window_per_platform(spots):
    assert Window().resolve(spots) == Window(SPOT_WINDOW_UM, "um")  # nodes 100 µm apart: spot array
    cells = replace(spots, spot_diameter_um=1.0)  # 0.1 µm per pixel: nodes 1 µm apart
    assert Window().resolve(cells) == Window(CELL_WINDOW_UM, "um")
    assert Window().pixels(cells) == pytest.approx(320.0)
    irregular = make_section("irregular", seed=1, n_points=80)  # kNN graph, nodes about 12.5 px apart
    assert Window().resolve(irregular) == Window(SPOT_WINDOW_UM, "um")  # at 10 µm per pixel: 125 µm
    nuclei = replace(irregular, spot_diameter_um=2.0)  # 0.2 µm per pixel: 2.5 µm apart, as Xenium nuclei
    assert Window().resolve(nuclei) == Window(CELL_WINDOW_UM, "um") and Window().pixels(nuclei) == 160.0
    assert Window().resolve(replace(spots, spot_diameter_um=None)) == Window(UNSCALED_WINDOW_PX, "px")
    assert Window(7, "px").resolve(spots) == Window(7, "px") and Window(7, "px").resolve() == Window(7, "px")
    with pytest.raises(ValueError, match="automatic"):
        Window().resolve()


def test_for_resolution(spots):
    assert Window.for_resolution(spots, 16, 2.5) == Window(4.0, "px")  # 16 px of 2.5 µm = 40 µm = 4 px
    with pytest.raises(ValueError, match="µm per pixel is unknown"):
        Window.for_resolution(replace(spots, spot_diameter_um=None), 16, 2.5)
    with pytest.raises(ValueError, match="microns_per_pixel must be > 0"):
        Window.for_resolution(spots, 16, 0)


def test_record_and_from_record_round_trip(spots):
    magnified = replace(spots, spot_diameter_px=20.0)  # 5 µm per pixel
    record = Window(2, "spots").record([spots, magnified], 16)
    assert record == {"window_um": 200.0, "patch_um_per_px": 12.5}
    back = Window.from_record(record, Window(2, "spots"), magnified)
    assert back == Window(200.0, "um") and back.pixels(magnified) == 40.0 and back.pixels(spots) == 20.0
    assert Window(40, "px").record([spots, magnified], 8) == {"window_um": 300.0, "patch_um_per_px": 37.5}  # median
    unscaled = replace(spots, spot_diameter_um=None)
    assert Window().record([unscaled], 16) == {"window_px": 32.0}
    assert Window.from_record({"window_px": 32.0}, Window(), spots) == Window(32.0, "px")
    assert Window(8, "px").record([unscaled], 16) == {} and Window().record([], 16) == {}
    fallback = Window(1.5, "spots")
    assert Window.from_record({}, fallback, unscaled) is fallback  # an older checkpoint: as saved


def test_recorded_microns_refuse_a_section_of_unknown_scale(spots):
    record = {"window_um": 100.0, "patch_um_per_px": 6.25}
    unscaled = replace(spots, spot_diameter_um=None)
    with pytest.raises(ValueError, match=r"section synthetic-hex-0: its µm per pixel is unknown .*100.0 µm windows"):
        Window.from_record(record, Window(), unscaled)
    assert Window.from_record(record, Window()) == Window(100.0, "um")  # no section: nothing to check


def test_section_patch_plan_whole_equals_its_chunks():
    section = make_section("hex", seed=2, shape=(8, 12), n_classes=3)
    plan = SectionPatchPlan(section, 8, Window(1, "spots"), standardize=True)
    assert plan.window_px == section.spot_diameter_px
    whole = plan.all()
    assert torch.equal(whole, prepare_section(section, 8, window_spots=1, standardize=True).patches)
    assert torch.equal(whole, prepare_section(section, 8, window=Window(1, "spots"), standardize=True).patches)
    streamed = SectionPatchPlan(section, 8, Window(1, "spots"), standardize=True)
    assert torch.equal(streamed.table, plan.table)
    for idx, patches in streamed.chunks(chunk=10):
        assert len(idx) <= 10 and torch.equal(patches, whole[idx])
    assert SectionPatchPlan(section, 8, Window(1, "spots")).table is None
    with pytest.raises(ValueError, match="give one window"):
        prepare_section(section, 8, window_px=4, window=Window(1, "spots"))
    assert "Window(1 spots)" in repr(plan)


def test_a_window_too_large_is_refused_before_anything_is_cut():
    from dataclasses import replace

    from gridgraph.io.readers.synthetic import make_section as make
    from gridgraph.patches import prepare_section

    section = make("hex", seed=1, shape=(6, 8), n_classes=3)
    huge = replace(section, spot_diameter_px=81826367.0)  # a scale factor gone wrong
    with pytest.raises(ValueError, match=r"8.18264e\+07 px wide, from its spot diameter of 8.18264e\+07 px .*spot_diameter_fullres"):
        prepare_section(huge, 8, window_spots=1.0)
    with pytest.raises(ValueError, match="windows may be at most"):
        Window(1e9, "px").pixels(section)
