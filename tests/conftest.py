import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GRIDGRAPH_SHARED_DATA", ROOT.parent / "shared" / "data"))


def _require(sub: str) -> Path:
    path = SHARED / sub
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (set GRIDGRAPH_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of ../shared/data; the test is skipped with the reason when it is absent."""
    return _require("")


@pytest.fixture(scope="session")
def dlpfc_dir() -> Path:
    return _require("dlpfc")


@pytest.fixture(scope="session")
def her2st_dir() -> Path:
    return _require("her2st")


@pytest.fixture(scope="session")
def crchisto_dir() -> Path:
    return _require("crchisto")


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Tests use tiny tensors: one intra-op thread avoids OpenMP spinning on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """``best.pt`` of a one-epoch-per-stage run on tiny synthetic hex sections (GCN g), trained once
    per session; tests that change it copy it first."""
    from gridgraph.workflows import run_training
    from helpers import tiny_config

    tmp = tmp_path_factory.mktemp("tiny_checkpoint")
    run_training(tiny_config(tmp, epochs_f=1, epochs_g=1), figures=False, log=lambda line: None)
    return tmp / "run" / "best.pt"
