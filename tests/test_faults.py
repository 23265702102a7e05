"""Faults for real: a SIGKILLed training and a non-finite loss (run-to-run reproducibility: test_fanout.py)."""

import json
import os
import signal
import subprocess
import sys
import time

import mlflow
import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow


def test_sigkilled_training_resumes_to_the_same_model(make_project, dvc, set_params):
    a, b = make_project("a", "tiny"), make_project("b", "tiny")
    for p in (a, b):  # epochs long enough to be killed inside one
        set_params(p, **{"seeds": [1], "data.classification.limit": None, "variants.lstm_row.model.hidden": 256,
                         "variants.lstm_row.optim.epochs": 4})
    target = "train_classification"
    assert dvc(a, "repro", target).returncode == 0

    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro", target], cwd=b, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while not list((b / ".lstmvision/work").glob("lstm_row_s1/*/checkpoints/last.ckpt")):
        assert proc.poll() is None and time.time() < deadline, "training ended before a checkpoint appeared"
        time.sleep(0.05)
    time.sleep(0.3)  # into the next epoch
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (b / "models/classification/lstm_row").exists()
    # written at each epoch end (before the checkpoint): the time spent before the kill is kept
    before_kill = float(next((b / ".lstmvision/work").glob("lstm_row_s1/*/elapsed_s")).read_text())
    assert before_kill > 0

    resumed = dvc(b, "repro", target)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from" in resumed.stderr + resumed.stdout
    (seed1,) = json.loads((b / "models/classification/lstm_row/runs.json").read_text())
    assert seed1["train_time_s"] > before_kill  # the resumed run's time includes what came before the kill
    weights_a = torch.load(a / "models/classification/lstm_row/s1/model.pt", weights_only=True)
    weights_b = torch.load(b / "models/classification/lstm_row/s1/model.pt", weights_only=True)
    assert weights_a.keys() == weights_b.keys()
    for key in weights_a:
        assert torch.equal(weights_a[key], weights_b[key]), key
    curve_a = (a / "plots/train/classification/lstm_row.csv").read_text()
    assert curve_a == (b / "plots/train/classification/lstm_row.csv").read_text()


def test_a_non_finite_loss_stops_and_marks_the_run_failed(tiny, cli, set_params):
    """Params cannot make the loss diverge any more (optim.lr is at most 1): damaged patches (NaN) do."""
    p = tiny
    set_params(p, seeds=[1])  # one training: two side by side would both diverge, or one be stopped by the other
    for stage in ("download", "patches"):
        assert cli([stage], cwd=p).returncode == 0
    for lr in (p / "data/prepared/sr").glob("x*/lr.npy"):
        np.save(lr, np.full(np.load(lr).shape, np.nan, np.float32))
    proc = cli(["train", "lsrcnn"], cwd=p)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: loss is") and "diverged" in last
    assert not (p / "models/sr/lsrcnn").exists()
    client = mlflow.MlflowClient(f"sqlite:///{p / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("sr").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]
