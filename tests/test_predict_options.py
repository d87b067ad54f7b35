"""gridgraph predict --device / --progress / --set / --strict: where the model runs, its progress
bar, the few settings a prediction may change and inputs of another kind than the training sections."""
import numpy as np
import pytest
import torch

from gridgraph import build_model
from gridgraph.checkpoint import Checkpoint
from gridgraph.cli import main
from gridgraph.config.prediction import PREDICT_SETTINGS, READER_OPTIONS, prediction_config
from gridgraph.distributed import device_for
from gridgraph.graph import cartesian_graph
from gridgraph.inference import predict_stream, showing_progress
from gridgraph.io import read_predictions
from gridgraph.io.readers.registry import READERS
from gridgraph.io.readers.synthetic import make_section
from gridgraph.workflows import load_model, predict_probabilities
from gridgraph.workflows.platform import platform_mismatch

NO_CUDA = "needs a CUDA device (torch.cuda.is_available() is False)"
HAS_CUDA = "a CUDA device is present: auto would pick it"


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def section(ckpt_path, sid=7):
    _, ckpt = load_model(ckpt_path)
    return READERS.get("synthetic").from_paths({"path": str(sid)}, ckpt.config.data.kwargs)


def predicted(out):
    ids, names, probs, classes = read_predictions(out / "predictions.csv")
    return list(ids), np.asarray(probs, dtype=np.float64)


# ------------------------------------------------------------------------------------- --device

@pytest.mark.skipif(torch.cuda.is_available(), reason=HAS_CUDA)
def test_auto_picks_the_cpu_without_cuda(tiny_checkpoint):
    assert device_for("auto", "--device") == torch.device("cpu")
    model, _ = load_model(tiny_checkpoint, device="auto")
    assert {p.device for p in model.parameters()} == {torch.device("cpu")}


@pytest.mark.skipif(torch.cuda.is_available(), reason=HAS_CUDA)
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_cuda_is_one_line_exit_2(tiny_checkpoint, tmp_path, capsys, device):
    out = tmp_path / "pred"
    code = main(["predict", str(tiny_checkpoint), "--synthetic", "7", "--out", str(out), "--device", device])
    assert code == 2 and one_line(capsys) == f"gridgraph: error: --device {device}: no CUDA device is available"
    assert not out.exists()
    with pytest.raises(ValueError, match="^device cuda: no CUDA device is available$"):
        load_model(tiny_checkpoint, device="cuda")


def test_a_device_that_is_no_device_is_named(tiny_checkpoint, tmp_path, capsys):
    code = main(["predict", str(tiny_checkpoint), "--synthetic", "7", "--out", str(tmp_path / "p"), "--device", "gpu"])
    assert code == 2 and one_line(capsys) == "gridgraph: error: --device gpu: expected auto, cpu, cuda or cuda:N"


def test_device_for_gives_each_torchrun_rank_its_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert device_for("cuda:1", "--device") == torch.device("cuda:1")  # one process: as asked
    with pytest.raises(ValueError, match=r"^--device cuda:2: this machine has 2 CUDA device\(s\) \(cuda:0 .. cuda:1\)"):
        device_for("cuda:2", "--device")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert device_for("cuda:0", "--device") == torch.device("cuda:1")  # torchrun: LOCAL_RANK's GPU
    assert device_for("auto", "--device") == torch.device("cuda:1")
    assert device_for("cpu", "--device") == torch.device("cpu")
    monkeypatch.setenv("LOCAL_RANK", "2")
    with pytest.raises(ValueError, match=r"LOCAL_RANK=2 but this machine has 2 GPU.* \(--device cpu\)$"):
        device_for("cuda", "--device")


def test_device_cpu_end_to_end_equals_the_python_api(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "cpu"
    assert main(["predict", str(tiny_checkpoint), "--synthetic", "7", "--out", str(out), "--device", "cpu",
                 "--no-figure"]) == 0
    ids, probs = predicted(out)
    model, ckpt = load_model(tiny_checkpoint, device="cpu")
    sec, _, g_prob = predict_probabilities(model, ckpt, section(tiny_checkpoint))
    assert ids == list(sec.barcodes) and probs.shape == (sec.num_nodes, 3)
    np.testing.assert_allclose(probs, g_prob.double().numpy(), atol=1e-6)
    assert "node" not in capsys.readouterr().err  # no progress bar: stderr is not a terminal


@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)
def test_gpu_predictions_equal_cpu_predictions(tiny_checkpoint, tmp_path):
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        sec = section(tiny_checkpoint)
        cpu_model, ckpt = load_model(tiny_checkpoint, device="cpu")
        gpu_model, _ = load_model(tiny_checkpoint, device="cuda")
        assert {p.device.type for p in gpu_model.parameters()} == {"cuda"}
        _, f_cpu, g_cpu = predict_probabilities(cpu_model, ckpt, sec)
        _, f_gpu, g_gpu = predict_probabilities(gpu_model, ckpt, sec)
        assert f_gpu.device.type == g_gpu.device.type == "cpu"  # outputs come back to the CPU
        assert float((f_cpu - f_gpu).abs().max()) <= 1e-4 and float((g_cpu - g_gpu).abs().max()) <= 1e-4
        out = tmp_path / "gpu"
        assert main(["predict", str(tiny_checkpoint), "--synthetic", "7", "--out", str(out), "--device", "cuda",
                     "--no-figure"]) == 0
        np.testing.assert_allclose(predicted(out)[1], g_cpu.double().numpy(), atol=1e-4)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


# ------------------------------------------------------------------------------------ --progress

def test_progress_bar_counts_nodes_on_stderr(tiny_checkpoint, tmp_path, capsys):
    assert main(["predict", str(tiny_checkpoint), "--synthetic", "7", "--out", str(tmp_path / "p"), "--no-figure",
                 "--progress"]) == 0
    err = capsys.readouterr().err
    n = len(predicted(tmp_path / "p")[0])
    assert "f: 100%" in err and f"{n}/{n}" in err and "node/s" in err, err


def test_predict_stream_shows_progress_only_within_showing_progress(capsys):
    torch.manual_seed(0)
    model = build_model(3, encoder="gridnet_simple", corrector="gcn").eval()
    idx = np.arange(36)
    graph = cartesian_graph(idx // 6, idx % 6)
    chunks = list(torch.randint(0, 256, (36, 3, 16, 16), dtype=torch.uint8).chunk(3))
    quiet = predict_stream(model, chunks, graph)
    assert capsys.readouterr().err == ""
    with showing_progress():
        shown = predict_stream(model, chunks, graph)
    err = capsys.readouterr().err
    assert "f:   0%" in err and "| 0/36 " in err and "f: 100%" in err and "| 36/36 " in err, err
    assert all(torch.equal(a, b) for a, b in zip(quiet, shown))
    with showing_progress(False):
        predict_stream(model, chunks, graph)
    assert capsys.readouterr().err == ""


# ----------------------------------------------------------------------------------------- --set

def test_set_f_tta_changes_the_predictions_as_the_python_api_does(tiny_checkpoint, tmp_path):
    plain, turned = tmp_path / "plain", tmp_path / "tta"
    for out, extra in ((plain, []), (turned, ["--set", "model.f_tta=true"])):
        assert main(["predict", str(tiny_checkpoint), "--synthetic", "7", "--out", str(out), "--no-figure",
                     "--device", "cpu", *extra]) == 0
    model, ckpt = load_model(tiny_checkpoint, overrides=["model.f_tta=true"])
    assert model.f_tta and ckpt.config.model.f_tta and not load_model(tiny_checkpoint)[0].f_tta
    _, _, g_prob = predict_probabilities(model, ckpt, section(tiny_checkpoint))
    np.testing.assert_allclose(predicted(turned)[1], g_prob.double().numpy(), atol=1e-6)
    assert np.abs(predicted(turned)[1] - predicted(plain)[1]).max() > 1e-4


ALLOWED = f"(--set may change {', '.join([*PREDICT_SETTINGS, READER_OPTIONS])})"


@pytest.mark.parametrize("override, message", [
    ("f.name=densenet121", "--set f.name=densenet121: f.name is part of the trained model (trained with "
                           f"'gridnet_simple'); retrain to change it {ALLOWED}"),
    ("g.name=unet", f"--set g.name=unet: g.name is part of the trained model (trained with 'gcn'); retrain to change "
                    f"it {ALLOWED}"),
    ("patches.patch_size=32", "--set patches.patch_size=32: patches.patch_size is part of the trained model "
                              f"(trained with 16); retrain to change it {ALLOWED}"),
    ("data.classes=[a,b,c]", "--set data.classes=[a,b,c]: data.classes is part of the trained model; retrain to "
                             f"change it {ALLOWED}"),
    ("train.chunk_size=8", "--set train.chunk_size=8: train.chunk_size is a training setting that predict does "
                           f"not use {ALLOWED}"),
    ("train.device=cuda", "--set train.device=cuda: say it with --device"),
    ("nothing.here=1", f"--set nothing.here=1: unknown key 'nothing.here' {ALLOWED}"),
])
def test_set_refuses_what_would_change_the_model(tiny_checkpoint, override, message):
    _, ckpt = load_model(tiny_checkpoint)
    with pytest.raises(ValueError) as err:
        prediction_config(ckpt.config, [override])
    assert str(err.value) == message


def test_set_checks_the_value_and_exits_2_on_the_cli(tiny_checkpoint, tmp_path, capsys):
    _, ckpt = load_model(tiny_checkpoint)
    with pytest.raises(ValueError, match="^--set: model.g_tta: Input should be a valid boolean"):
        prediction_config(ckpt.config, ["model.g_tta=maybe"])
    assert prediction_config(ckpt.config, ["model.g_tta=true"]).model.g_tta is True
    assert prediction_config(ckpt.config, []) is ckpt.config
    out = tmp_path / "p"
    code = main(["predict", str(tiny_checkpoint), "--synthetic", "7", "--out", str(out),
                 "--set", "g.kwargs.hidden_channels=4"])
    assert code == 2 and one_line(capsys) == (
        "gridgraph: error: --set g.kwargs.hidden_channels=4: g.kwargs.hidden_channels is part of the trained model "
        f"(trained with 8); retrain to change it {ALLOWED}")
    assert not out.exists()


# -------------------------------------------------------------------------------------- --strict

def test_a_checkpoint_records_its_training_layouts_and_node_kinds(tiny_checkpoint):
    ckpt = Checkpoint.load(tiny_checkpoint)
    assert ckpt.platform == {"layouts": ["hex"], "nodes": ["spots"]}  # synthetic hex spots, 100 µm apart
    assert platform_mismatch(ckpt, section(tiny_checkpoint)) is None


def test_another_layout_is_named_unless_the_graph_is_rebuilt(tiny_checkpoint):
    ckpt = Checkpoint.load(tiny_checkpoint)
    cells = make_section("irregular", seed=1, n_classes=3)
    assert platform_mismatch(ckpt, cells) == (
        f"{tiny_checkpoint.parent.name}/best.pt was trained on hex-grid spots, but section {cells.name} has "
        "irregular spots: its predictions may not carry over")
    knn = ckpt.config.model_copy(update={"graph": ckpt.config.graph.model_copy(update={"name": "knn"})})
    assert platform_mismatch(ckpt.replace(config=knn), cells) is None  # both rebuilt: the builder's layout
    assert platform_mismatch(ckpt.replace(platform={}), cells) is None  # an older checkpoint recorded nothing


def _trained_on_cells(tiny_checkpoint, tmp_path):
    raw = torch.load(tiny_checkpoint, weights_only=True)
    raw["platform"] = {"layouts": ["irregular"], "nodes": ["cells or bins"]}
    path = tmp_path / "cells.pt"
    torch.save(raw, path)
    return path


def test_predict_warns_one_line_and_strict_refuses(tiny_checkpoint, tmp_path, capsys):
    ckpt_path = _trained_on_cells(tiny_checkpoint, tmp_path)
    name = section(tiny_checkpoint).name
    problem = (f"{tmp_path.name}/cells.pt was trained on irregular cells or bins, but section {name} has hex-grid "
               "spots: its predictions may not carry over")
    out = tmp_path / "warned"
    assert main(["predict", str(ckpt_path), "--synthetic", "7", "--out", str(out), "--no-figure"]) == 0
    assert one_line(capsys) == f"gridgraph: warning: {problem} (--strict refuses it)"
    assert (out / "predictions.csv").is_file()
    refused = tmp_path / "refused"
    code = main(["predict", str(ckpt_path), "--synthetic", "7", "--out", str(refused), "--no-figure", "--strict"])
    assert code == 2 and one_line(capsys) == f"gridgraph: error: {problem} (--strict)"
    assert not refused.exists()
    assert main(["predict", str(tiny_checkpoint), "--synthetic", "7", "--out", str(tmp_path / "same"),
                 "--no-figure", "--strict"]) == 0
    assert capsys.readouterr().err == ""
