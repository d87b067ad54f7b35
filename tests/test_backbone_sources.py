"""Foundation-model f's: timm's local-dir: / hf-hub: names from local files only, normalisation and
input size from the weights' own config (else the config), a frozen backbone of unknown
normalisation refused, and checkpoints that rebuild f with the input it was trained with."""
import json

import pytest
import torch

timm = pytest.importorskip("timm", reason="needs timm: pip install 'gridgraph[timm]'")
pytest.importorskip("safetensors")

from gridgraph import build_model  # noqa: E402
from gridgraph.encoders import timm_encoder  # noqa: E402
from gridgraph.patches.transforms import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from gridgraph.workflows.build import apply_f_input, f_input_record  # noqa: E402

MEAN, STD = (0.70, 0.55, 0.69), (0.17, 0.19, 0.14)  # a pathology model's own statistics


def saved_vit(folder, mean=MEAN, std=STD):
    """A tiny ViT (timm's test_vit, 32 px) saved as timm.models.save_for_hf does, its pretrained_cfg
    saying its own normalisation; returns the model."""
    torch.manual_seed(0)
    model = timm.create_model("test_vit", img_size=32, num_classes=0)
    model.pretrained_cfg = {**model.pretrained_cfg, "mean": mean, "std": std, "input_size": (3, 32, 32)}
    timm.models.save_for_hf(model, folder, safe_serialization=True)
    return model


def test_local_dir_loads_its_weights_and_its_own_normalisation(tmp_path):
    saved = saved_vit(tmp_path / "vit")
    f = timm_encoder(3, f"local-dir:{tmp_path / 'vit'}", freeze=True)
    assert f.input_mean == MEAN and f.input_std == STD and f.input_size == 32 and f.frozen
    for name, value in saved.state_dict().items():
        assert torch.equal(f.backbone.state_dict()[name], value), name
    assert f.embed(torch.zeros(2, 3, 32, 32)).shape == (2, f.embedding_dim)


def test_a_weights_file_with_a_config_beside_it(tmp_path):
    saved = saved_vit(tmp_path / "vit")
    torch.save(saved.state_dict(), tmp_path / "vit" / "weights.pt")
    f = timm_encoder(3, "test_vit", weights=tmp_path / "vit" / "weights.pt", freeze=True, img_size=32)
    assert f.input_mean == MEAN and f.input_std == STD
    with pytest.raises(ValueError) as err:  # the config says otherwise than the weights' own
        timm_encoder(3, "test_vit", weights=tmp_path / "vit" / "weights.pt", freeze=True, img_size=32,
                     input_mean=IMAGENET_MEAN, input_std=IMAGENET_STD)
    assert str(err.value) == (f"f: timm:test_vit(img_size=32): input_mean/input_std {IMAGENET_MEAN}/{IMAGENET_STD} "
                              f"differ from the weights' own {MEAN}/{STD} ({tmp_path / 'vit' / 'config.json'}); "
                              "leave them out")


def test_a_frozen_backbone_of_unknown_normalisation_is_refused(tmp_path):
    saved = saved_vit(tmp_path / "vit")
    bare = tmp_path / "bare.pt"
    torch.save(saved.state_dict(), bare)
    with pytest.raises(ValueError) as err:
        timm_encoder(3, "test_vit", weights=bare, freeze=True, img_size=32)
    assert str(err.value) == (
        "f: timm:test_vit(img_size=32): the normalisation of its frozen weights is unknown (no config.json with "
        "pretrained_cfg beside them); give f.kwargs.input_mean and input_std (e.g. ImageNet's [0.485, 0.456, "
        "0.406] and [0.229, 0.224, 0.225], as the weights' model card says) or a local-dir: folder with its "
        "config.json")
    stated = timm_encoder(3, "test_vit", weights=bare, freeze=True, img_size=32, input_mean=MEAN, input_std=STD)
    assert stated.input_mean == MEAN and stated.input_std == STD
    trained = timm_encoder(3, "test_vit", weights=bare, img_size=32)  # fine-tuned: timm's default is a start
    default = timm.data.resolve_data_config({}, model=timm.create_model("test_vit", img_size=32))
    assert trained.input_mean == tuple(default["mean"])
    with pytest.raises(ValueError, match="give input_mean and input_std together"):
        timm_encoder(3, "test_vit", weights=bare, freeze=True, img_size=32, input_mean=MEAN)


def test_hf_hub_names_come_from_the_local_cache_only(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError) as err:
        timm_encoder(3, "hf-hub:lab/tiny-path-vit", freeze=True)
    assert str(err.value) == ("f: hf-hub:lab/tiny-path-vit: not in the local Hugging Face cache (gridgraph never "
                              "downloads); fetch it first (huggingface-cli download lab/tiny-path-vit) or give "
                              "local-dir:FOLDER")
    repo = tmp_path / "hub" / "models--lab--tiny-path-vit"
    saved_vit(repo / "snapshots" / "abc123")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    f = timm_encoder(3, "hf-hub:lab/tiny-path-vit", freeze=True)
    assert f.input_mean == MEAN and f.input_size == 32


def test_local_dir_without_its_config_is_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError) as err:
        timm_encoder(3, f"local-dir:{tmp_path / 'empty'}")
    assert str(err.value) == (f"f: local-dir:{tmp_path / 'empty'}: no {tmp_path / 'empty' / 'config.json'}; "
                              "expected a folder as timm.models.save_for_hf writes it (config.json and "
                              "model.safetensors)")


def test_a_checkpoint_rebuilds_f_with_the_input_it_was_trained_with(tmp_path):
    saved_vit(tmp_path / "vit")
    kwargs = {"model_name": "test_vit", "img_size": 32, "freeze": True}
    trained = build_model(3, encoder="timm", corrector="gcn", encoder_kwargs={
        **kwargs, "weights": str(tmp_path / "vit" / "model.safetensors")})
    record = f_input_record(trained)
    assert record == {"input_size": 32, "input_mean": list(MEAN), "input_std": list(STD)}
    rebuilt = build_model(3, encoder="timm", corrector="gcn", encoder_kwargs=kwargs)  # no weights file
    assert rebuilt.f.input_mean != MEAN
    apply_f_input(rebuilt, record)
    assert rebuilt.f.input_mean == MEAN and rebuilt.f.input_std == STD and rebuilt.f.input_size == 32
    assert f_input_record(build_model(3, encoder="gridnet_simple", corrector="gcn")) == {}
    assert json.loads(json.dumps(record)) == record  # plain data, as checkpoints store it


def test_training_records_f_input_and_predict_needs_no_weights_file(tmp_path):
    from gridgraph.checkpoint import Checkpoint
    from gridgraph.config import make_config
    from gridgraph.workflows import load_model, run_training
    from helpers import tiny_config

    saved_vit(tmp_path / "vit")
    cfg = tiny_config(tmp_path).to_dict()
    cfg["f"] = {"name": "timm", "kwargs": {"model_name": "test_vit", "img_size": 32, "freeze": True,
                                           "weights": str(tmp_path / "vit" / "model.safetensors")}}
    run_training(make_config(cfg), figures=False, log=lambda line: None)
    (tmp_path / "vit" / "config.json").unlink()  # the weights' own config is gone at predict time
    (tmp_path / "vit" / "model.safetensors").unlink()
    best = tmp_path / "run" / "best.pt"
    assert Checkpoint.load(best).f_input == {"input_size": 32, "input_mean": list(MEAN), "input_std": list(STD)}
    model, _ = load_model(best)
    assert model.f.input_mean == MEAN and model.f.input_std == STD and model.f.frozen
