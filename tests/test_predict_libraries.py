"""Several libraries in one AnnData (anndata.concat, library ids in any obs column) predicted in one
call: one folder per library, Loupe CSVs with the barcodes Space Ranger wrote, one annotated file."""
import numpy as np
import pytest

from gridgraph.cli import main
from gridgraph.io import read_anndata, read_predictions, read_spaceranger
from gridgraph.io.readers.libraries import library_ids, library_key_of
from gridgraph.io.readers.synthetic import make_section
from gridgraph.io.writers.tables import read_loupe_csv
from gridgraph.workflows import load_model
from gridgraph.workflows.libraries import annotate_libraries
from helpers import write_spaceranger
from test_io_anndata import visium_adata

anndata = pytest.importorskip("anndata")
pd = pytest.importorskip("pandas")

LIBS = ("151673", "151674")


@pytest.fixture
def concatenated(tmp_path):
    """``(adata, {library: Space Ranger folder})``: two sections concatenated as a scanpy user does
    (``label="sample"``, obs names ``<barcode>-<library>``)."""
    folders, parts = {}, []
    for seed, lib in enumerate(LIBS):
        folders[lib] = write_spaceranger(make_section("hex", seed=seed + 2, shape=(6, 8), n_classes=3), tmp_path / lib)
        parts.append(visium_adata(folders[lib] / "spatial", library=lib))
    adata = anndata.concat(parts, label="sample", keys=list(LIBS), index_unique="-", uns_merge="unique")
    return adata, folders


def test_the_library_column_is_found_whatever_its_name(concatenated):
    adata, folders = concatenated
    assert library_key_of(adata) == "sample" and library_ids(adata) == list(LIBS)
    s = read_anndata(adata, library_id="151674")
    assert s.name == "151674" and [b.removesuffix("-151674") for b in s.barcodes] == \
        read_spaceranger(folders["151674"]).barcodes
    with pytest.raises(ValueError) as err:
        read_anndata(adata)
    assert str(err.value) == "adata: uns['spatial'] holds libraries ['151673', '151674']; pass library_id="


def test_several_libraries_and_no_column_telling_them_apart_is_named(concatenated):
    adata, _ = concatenated
    del adata.obs["sample"]
    with pytest.raises(ValueError) as err:
        read_anndata(adata, library_id="151673")
    assert str(err.value) == (
        "adata: uns['spatial'] holds libraries ['151673', '151674'] but obs has no column 'library_id' saying "
        "which observation is of which; give the obs column of library ids (library_key=, --set "
        "data.kwargs.library_key=...)")


def test_predict_every_library_in_one_call(concatenated, tiny_checkpoint, tmp_path):
    adata, folders = concatenated
    path = tmp_path / "both.h5ad"
    adata.write_h5ad(path)
    out = tmp_path / "pred"
    assert main(["predict", str(tiny_checkpoint), "--h5ad", str(path), "--out", str(out), "--no-figure",
                 "--device", "cpu", "--set", "data.kwargs.library_key=sample"]) == 0
    annotated = anndata.read_h5ad(out / "predictions.h5ad")
    assert list(annotated.obs_names) == list(adata.obs_names)
    inside = (annotated.obs["in_tissue"] == 1).to_numpy()
    assert (annotated.obs["gridgraph"].notna().to_numpy() == inside).all() and (~inside).sum() == 2
    assert list(annotated.uns["gridgraph"]["library_ids"]) == list(LIBS)
    for lib in LIBS:
        ids, names, probs, _ = read_predictions(out / lib / "predictions.csv")
        rows = (annotated.obs["sample"] == lib).to_numpy() & inside
        assert list(ids) == list(annotated.obs_names[rows])
        np.testing.assert_allclose(np.asarray(probs), annotated.obsm["gridgraph_probs"][rows], atol=1e-6)
        loupe = read_loupe_csv(out / lib / "predictions_loupe.csv")
        section = read_spaceranger(folders[lib])
        assert sorted(loupe) == sorted(section.barcodes)  # the barcodes Loupe knows: no -<library>
        back = read_spaceranger(folders[lib], labels=out / lib / "predictions_loupe.csv")
        assert [back.classes[c] for c in back.labels.tolist()] == [loupe[b] for b in back.barcodes]
    single = tmp_path / "one"
    assert main(["predict", str(tiny_checkpoint), "--h5ad", str(path), "--library-id", "151674", "--out",
                 str(single), "--no-figure", "--device", "cpu"]) == 0
    np.testing.assert_allclose(np.asarray(read_predictions(single / "predictions.csv")[2]),
                               np.asarray(read_predictions(out / "151674" / "predictions.csv")[2]), atol=1e-6)


def test_annotate_libraries_is_the_python_api(concatenated, tiny_checkpoint):
    adata, _ = concatenated
    model, ckpt = load_model(tiny_checkpoint)
    seen = []
    annotated = annotate_libraries(model, ckpt, adata, each=lambda lib, p: seen.append((lib, p[0].num_nodes)))
    assert [lib for lib, _ in seen] == list(LIBS)
    inside = (adata.obs["in_tissue"] == 1).to_numpy()
    assert sum(n for _, n in seen) == inside.sum()
    assert (annotated.obs["gridgraph_confidence"].notna().to_numpy() == inside).all()


def test_anndata_image_levels_the_trained_one_and_the_asked_one(concatenated, tiny_checkpoint):
    from gridgraph.checkpoint import Checkpoint
    from gridgraph.io.readers.libraries import anndata_levels
    from gridgraph.workflows import read_as_trained

    adata, _ = concatenated
    assert anndata_levels(adata) == ["lowres"]
    for lib in LIBS:  # write_spaceranger's hires scale factor is its lowres one: the same picture serves
        images = adata.uns["spatial"][lib]["images"]
        images["hires"] = images["lowres"]
    assert anndata_levels(adata) == ["hires", "lowres"] and anndata_levels("file.h5ad") == []
    ckpt = Checkpoint.load(tiny_checkpoint)
    paths = {"path": adata, "library_id": "151673"}
    notes = []
    assert read_as_trained(ckpt, "anndata", paths, level="lowres", log=notes.append).meta["image_kind"] == "lowres"
    assert read_as_trained(ckpt, "anndata", paths, log=notes.append).meta["image_kind"] == "hires"
    assert notes == ["section 151673: read at the hires image, picked automatically (the model's training level "
                     "is not recorded; --image-level chooses)"]
    trained_low = ckpt.replace(platform={**ckpt.platform, "image_levels": ["lowres"]})
    assert read_as_trained(trained_low, "anndata", paths, log=notes.append).meta["image_kind"] == "lowres"
    assert notes[-1] == "section 151673: read at the lowres image, the level the model was trained on"


def test_every_library_gets_the_platform_check(concatenated, tiny_checkpoint, tmp_path, capsys):
    import torch

    adata, _ = concatenated
    path = tmp_path / "both.h5ad"
    adata.write_h5ad(path)
    raw = torch.load(tiny_checkpoint, weights_only=True)
    raw["platform"] = {"layouts": ["irregular"], "nodes": ["cells or bins"]}
    cells = tmp_path / "cells.pt"
    torch.save(raw, cells)
    out = tmp_path / "strict"
    code = main(["predict", str(cells), "--h5ad", str(path), "--out", str(out), "--no-figure", "--strict"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.splitlines()[-1] == (
        f"gridgraph: error: {tmp_path.name}/cells.pt was trained on irregular cells or bins, but section 151673 has "
        "hex-grid spots: its predictions may not carry over (--strict)")
    assert err.splitlines()[:-1] == ["gridgraph: section 151673: read at the lowres image, picked automatically "
                                     "(the model's training level is not recorded; --image-level chooses)"]
    assert not (out / "predictions.h5ad").exists() and not (out / "151673").exists()
