"""benchmarks/_protocol.py: the paper's protocol on a tiny synthetic fold; its table rows."""
import sys
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest

from gridgraph.workflows import evaluate_checkpoints

from helpers import tiny_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
protocol = pytest.importorskip("_protocol")


def test_the_protocol_scores_the_ensemble_and_its_members_on_test(tmp_path):
    cfg = tiny_config(tmp_path)
    args = Namespace(trials=3, ensemble=2, ensemble_method="mean", space=None, no_prune=True)
    res = protocol.run_protocol(cfg, args, log=lambda line: None)
    assert res["trials"] == 3 and len(res["members"]) == 2
    ev = evaluate_checkpoints([Path(cfg.output) / "ensemble.pt"], split="test", log=lambda line: None)
    members = list(ev["models"].values())
    for head in ("f", "f+g"):
        assert res["ensemble"][head]["accuracy"] == ev[f"ensemble_mean_{head}"]["accuracy"]
        assert res["vote"][head]["macro_auroc"] == ev[f"ensemble_vote_{head}"]["macro_auroc"]
        acc = [m[head]["accuracy"] for m in members]
        assert res["member_mean"][head]["accuracy"] == pytest.approx(np.mean(acc), abs=1e-12)
        assert res["member_sd"][head]["accuracy"] == pytest.approx(np.std(acc, ddof=1), abs=1e-12)
    rows = protocol.protocol_rows([{"name": "fold", "protocol": res}])
    assert [r[:2] for r in rows] == [["fold", "f"], ["fold", "f+g"]]
    assert rows[1][2] == f"{res['ensemble']['f+g']['accuracy']:.3f}" and rows[1][7] == 2
    summary = protocol.protocol_summary([{"name": "a", "protocol": res}, {"name": "b", "protocol": res}])
    assert summary[1][1] == f"{res['ensemble']['f+g']['accuracy']:.3f} ± 0.000"
