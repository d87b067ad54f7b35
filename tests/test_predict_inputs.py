"""gridgraph predict's inputs: the reader's options at predict time (--set data.kwargs.KEY=VALUE), a
bin size or image level other than the training one cut in the same µm, --image-level, and the
image flags of every reader."""
import numpy as np
import pytest

from gridgraph.checkpoint import Checkpoint
from gridgraph.cli import INPUT_OPTIONS, main
from gridgraph.config import make_config
from gridgraph.config.prediction import reader_options
from gridgraph.io import read_predictions
from gridgraph.io.readers.registry import READERS, predict_flags
from gridgraph.workflows import read_as_trained, trained_window
from gridgraph.patches.window import Window

pytest.importorskip("pyarrow")
from helpers import HD_MPP, tiny_config, write_visium_hd  # noqa: E402

HIRES, LOWRES = 0.5, 0.25


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def hd16(tmp_path_factory):
    """``(checkpoint, outs)``: a model trained on the 16 µm bins of a generated Visium HD bundle (hires
    image, 2-bin = 32 µm windows), and the bundle (8 and 16 µm bins; hires and lowres images)."""
    from gridgraph.workflows import run_training

    tmp = tmp_path_factory.mktemp("hd16")
    outs = write_visium_hd(tmp / "hd" / "outs")
    base = tiny_config(tmp).to_dict()
    cfg = make_config({**base, "data": {"reader": "visium_hd", "root": str(tmp),
                                        "options": {"bin_size_um": 16, "labels": "hd/outs/labels_016um.csv"},
                                        "train": ["hd/outs"], "val": ["hd/outs"], "test": ["hd/outs"]},
                       "patches": {"patch_size": 16, "window_spots": 2.0}})
    run_training(cfg, figures=False, log=lambda line: None)
    return tmp / "run" / "best.pt", outs


# ------------------------------------------------------------------ --set data.kwargs.KEY=VALUE

def test_reader_options_are_parsed_and_both_spellings_are_let_through():
    assert reader_options(["data.kwargs.bin_size_um=8", "model.f_tta=true", "data.options.image=lowres"]) == {
        "bin_size_um": 8, "image": "lowres"}
    assert reader_options(["model.f_tta=true"]) == {}


def test_a_16um_model_predicts_8um_bins_cutting_the_same_um(hd16, tmp_path, capsys):
    ckpt_path, outs = hd16
    ckpt = Checkpoint.load(ckpt_path)
    assert ckpt.scale["window_um"] == pytest.approx(32.0)  # two 16 µm bins
    assert ckpt.platform == {"layouts": ["cartesian"], "nodes": ["cells or bins"], "image_levels": ["hires"]}
    as_trained = read_as_trained(ckpt, "visium_hd", {"path": outs})
    eight = read_as_trained(ckpt, "visium_hd", {"path": outs}, {"bin_size_um": 8})
    assert as_trained.num_nodes == 36 and eight.num_nodes == 144 and eight.spot_diameter_um == 8.0
    for section in (as_trained, eight):  # 32 µm either way: 64 full-resolution px, 32 hires px
        patches = trained_window(ckpt, section)
        assert patches.window_um == pytest.approx(32.0) and patches.window_spots is None
        assert Window.from_config(patches).pixels(section) == pytest.approx(32 / HD_MPP * HIRES)
    out = tmp_path / "p8"
    assert main(["predict", str(ckpt_path), "--visium-hd", str(outs), "--set", "data.kwargs.bin_size_um=8",
                 "--out", str(out), "--no-figure", "--device", "cpu"]) == 0
    ids, _, probs, _ = read_predictions(out / "predictions.csv")
    assert list(ids) == eight.barcodes and np.asarray(probs).shape == (144, 3)
    assert one_line(capsys) == "gridgraph: section outs: read at the hires image, the level the model was trained on"


def test_unknown_reader_options_name_the_reader_and_its_options(hd16, tmp_path, capsys):
    ckpt_path, outs = hd16
    out = tmp_path / "p"
    code = main(["predict", str(ckpt_path), "--visium-hd", str(outs), "--set", "data.kwargs.bin_um=8",
                 "--out", str(out)])
    assert code == 2 and one_line(capsys) == (
        "gridgraph: error: --set data.kwargs.bin_um: the visium_hd reader has no option 'bin_um'; its options "
        "are bin_size_um, image, labels, classes, graph, name")
    assert not out.exists()
    code = main(["predict", str(ckpt_path), "--visium-hd", str(outs), "--set", "data.kwargs.bin_size_um=4",
                 "--out", str(out)])
    assert code == 2 and one_line(capsys) == (
        f"gridgraph: error: {outs}: no square_004um folder for bin_size_um=4; found ['square_008um', "
        "'square_016um'] (the bin sizes available)")


def test_a_reader_option_and_a_flag_saying_the_same_are_refused(hd16, tmp_path, capsys):
    ckpt_path, outs = hd16
    code = main(["predict", str(ckpt_path), "--visium-hd", str(outs), "--fullres-image", str(tmp_path / "f.png"),
                 "--set", "data.kwargs.image=lowres", "--out", str(tmp_path / "p")])
    assert code == 2 and one_line(capsys) == (
        "gridgraph: error: --set data.kwargs.image and --fullres-image both give the visium_hd reader's 'image'; "
        "give one")


# ---------------------------------------------------------------------------------- image levels

def test_the_training_level_is_the_default_and_the_fallback_is_said(hd16, tmp_path, capsys):
    ckpt_path, outs = hd16
    ckpt = Checkpoint.load(ckpt_path)
    lowres = write_visium_hd(tmp_path / "low" / "outs", bins=(16,), levels=("lowres",))
    notes = []
    section = read_as_trained(ckpt, "visium_hd", {"path": lowres}, log=notes.append)
    assert section.meta["image_kind"] == "lowres" and notes == [
        "section outs: read at the lowres image, picked automatically (the model was trained on the hires "
        "image, which this input lacks; --image-level chooses)"]
    asked = read_as_trained(ckpt, "visium_hd", {"path": outs}, level="lowres", log=notes.append)
    assert asked.meta["image_kind"] == "lowres" and len(notes) == 1  # asked for: nothing to say
    assert trained_window(ckpt, asked).window_um == pytest.approx(32.0)
    assert Window.from_config(trained_window(ckpt, asked)).pixels(asked) == pytest.approx(32 / HD_MPP * LOWRES)
    out = tmp_path / "lo"
    assert main(["predict", str(ckpt_path), "--visium-hd", str(outs), "--image-level", "lowres", "--out", str(out),
                 "--no-figure", "--device", "cpu"]) == 0
    assert capsys.readouterr().err == ""
    assert len(read_predictions(out / "predictions.csv")[0]) == 36


def test_an_unrecorded_level_is_picked_automatically_and_said(hd16, tmp_path):
    ckpt_path, outs = hd16
    ckpt = Checkpoint.load(ckpt_path)
    older = ckpt.replace(platform={"layouts": ["cartesian"], "nodes": ["cells or bins"]})
    notes = []
    assert read_as_trained(older, "visium_hd", {"path": outs}, log=notes.append).meta["image_kind"] == "hires"
    assert notes == ["section outs: read at the hires image, picked automatically (the model's training level "
                     "is not recorded; --image-level chooses)"]


def test_image_level_errors(hd16, tmp_path, capsys, tiny_checkpoint):
    ckpt_path, outs = hd16
    code = main(["predict", str(ckpt_path), "--visium-hd", str(outs), "--image-level", "fullres",
                 "--out", str(tmp_path / "p")])
    assert code == 2 and one_line(capsys) == (
        f"gridgraph: error: --image-level fullres needs the full-resolution image (--fullres-image); {outs} has "
        "none of its own")
    code = main(["predict", str(tiny_checkpoint), "--synthetic", "3", "--image-level", "hires",
                 "--out", str(tmp_path / "p")])
    assert code == 2 and one_line(capsys) == (
        "gridgraph: error: --image-level hires: the synthetic reader has no image levels; --image-level goes with "
        "--h5ad / --spaceranger / --visium-hd / --visium-hd-cells")


def test_fullres_image_is_read_for_visium_hd(hd16, tmp_path, capsys):
    from PIL import Image

    ckpt_path, outs = hd16
    full = tmp_path / "full.png"
    side = int(96 / HD_MPP) + 40
    Image.new("RGB", (side, side), (120, 80, 160)).save(full)
    ckpt = Checkpoint.load(ckpt_path)
    section = read_as_trained(ckpt, "visium_hd", {"path": outs, "fullres_image": str(full)})
    assert section.meta["image_kind"] == "fullres" and section.microns_per_px == pytest.approx(HD_MPP)
    assert Window.from_config(trained_window(ckpt, section)).pixels(section) == pytest.approx(32 / HD_MPP)
    out = tmp_path / "full"
    assert main(["predict", str(ckpt_path), "--visium-hd", str(outs), "--fullres-image", str(full),
                 "--out", str(out), "--no-figure", "--device", "cpu"]) == 0
    assert capsys.readouterr().err == "" and len(read_predictions(out / "predictions.csv")[0]) == 36


# ------------------------------------------------------------------ every reader's image flags

def _taking(option):
    return sorted(f"--{flag}" for flag, reader in predict_flags().items() if option in READERS.get(reader).inputs)


def test_every_reader_says_which_image_flags_it_takes():
    table = {option: _taking(option) for option in INPUT_OPTIONS}
    assert table == {"image": ["--nuclei", "--spot-table", "--st-tsv", "--xenium"],
                     "fullres_image": ["--spaceranger", "--visium-hd", "--visium-hd-cells"],
                     "alignment": ["--xenium"], "library_id": ["--h5ad"]}


@pytest.mark.parametrize("flag, option, message", [
    ("--visium-hd", "--image", "--image goes with --nuclei / --spot-table / --st-tsv / --xenium, not --visium-hd "
                               "(its full-resolution image: --fullres-image)"),
    ("--spaceranger", "--image", "--image goes with --nuclei / --spot-table / --st-tsv / --xenium, not "
                                 "--spaceranger (its full-resolution image: --fullres-image)"),
    ("--xenium", "--fullres-image", "--fullres-image goes with --spaceranger / --visium-hd / --visium-hd-cells, not --xenium"),
    ("--h5ad", "--image", "--image goes with --nuclei / --spot-table / --st-tsv / --xenium, not --h5ad "
                         "(its image: --set data.kwargs.image=...)"),
    ("--zarr", "--fullres-image", "--fullres-image goes with --spaceranger / --visium-hd / --visium-hd-cells, "
                                  "not --zarr"),
])
def test_an_image_flag_a_reader_does_not_take_is_refused(tiny_checkpoint, tmp_path, capsys, flag, option, message):
    out = tmp_path / "p"
    code = main(["predict", str(tiny_checkpoint), flag, str(tmp_path), option, str(tmp_path / "x.png"),
                 "--out", str(out)])
    assert code == 2 and one_line(capsys) == f"gridgraph: error: {message}"
    assert not out.exists()


def test_the_note_without_an_image_and_fullres_where_there_is_none(hd16, tmp_path):
    from gridgraph.workflows.reading import level_note

    ckpt_path, _ = hd16
    ckpt = Checkpoint.load(ckpt_path)
    bare = write_visium_hd(tmp_path / "bare" / "outs", bins=(16,), levels=())
    notes = []
    section = read_as_trained(ckpt, "visium_hd", {"path": bare}, log=notes.append)
    assert section.image is None and notes == [
        "section outs: read without an image, picked automatically (the model was trained on the hires image, "
        "which this input lacks; --image-level chooses)"]
    assert level_note(section, {"asked": "hires"}) is None and level_note(section, {}) is None
    with pytest.raises(ValueError) as err:
        read_as_trained(ckpt, "anndata", {"path": str(tmp_path / "x.h5ad"), "library_id": None}, level="fullres")
    assert str(err.value) == ("--image-level fullres: the anndata reader has no full-resolution image (its "
                              "levels: lowres, hires)")
