"""End to end on a copy of the project: real `dvc repro`, a real `mlflow server`, real processes killed."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import mlflow
import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dvc_repro_from_scratch_to_report_and_gate(tiny, cli, dvc, set_params):
    proc = dvc(tiny, "repro")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for out in ("data/raw/manifest.json", "data/prepared/sr/x2/lr.npy", "models/lstm_row/model.pt",
                "models/lsrcnn/x2/model.pt", "reports/report.md", "reports/figures/sr_crops.png",
                "plots/train/lstm_row.csv", "metrics/summary.json"):
        assert (tiny / out).exists(), out
    acc = json.loads((tiny / "metrics/lstm_row.json").read_text())["test"]["accuracy"]
    assert acc > 0.5  # chance is 0.1
    model = json.loads((tiny / "metrics/lsrcnn.json").read_text())["test"]["skimage_test"]["x2"]
    bicubic = json.loads((tiny / "metrics/bicubic.json").read_text())["test"]["skimage_test"]["x2"]
    assert model["psnr"] > bicubic["psnr"]
    report = (tiny / "reports/report.md").read_text()
    assert "lstm_row" in report and "lsrcnn" in report and "bicubic" in report
    page = (tiny / "reports/report.html").read_text()
    assert page.count("<table>") == 2 and '<img alt="crops" src="figures/sr_crops.png"' in page

    shown = dvc(tiny, "metrics", "show", "--json")
    assert shown.returncode == 0 and "test.accuracy" not in shown.stderr
    assert json.loads(shown.stdout)  # DVC reads our metric files with no custom code

    # Nothing changed: nothing runs. One variant's knob changed: only its train/evaluate and the report.
    again = dvc(tiny, "repro")
    assert "Running stage" not in again.stdout, again.stdout
    set_params(tiny, **{"variants.lstm_row.optim.epochs": 1})
    status = dvc(tiny, "status", "--json")
    changed = set(json.loads(status.stdout))
    assert changed == {"train_classification@lstm_row"}, changed
    set_params(tiny, **{"variants.lstm_row.optim.epochs": 3})

    # The regression gate: the current metrics as baseline pass; a model that cannot learn fails.
    update = cli(["check", "--update"], cwd=tiny)
    assert update.returncode == 0, update.stderr
    baseline = json.loads((tiny / "baselines/default.json").read_text())
    assert set(baseline) == {"lstm_row", "lsrcnn", "bicubic"}
    same = cli(["check"], cwd=tiny)
    assert same.returncode == 0 and "no regression" in same.stdout

    set_params(tiny, **{"variants.lstm_row.optim.lr": 0.0})  # a model that cannot learn
    rerun = dvc(tiny, "repro")
    assert rerun.returncode == 0
    ran = set(re.findall(r"Running stage '([^']+)'", rerun.stdout))
    assert ran == {"train_classification@lstm_row", "evaluate_classification@lstm_row", "report"}, ran
    worse = cli(["check"], cwd=tiny)
    assert worse.returncode == 1
    regressed = [line for line in worse.stdout.splitlines() if "REGRESSED" in line]
    assert len(regressed) == 1 and "lstm_row" in regressed[0] and "test.accuracy" in regressed[0]
    assert "lsrcnn" in worse.stdout and worse.stderr.startswith("error: 1 metric(s) regressed")


def test_dvc_repro_tracks_every_run_on_a_real_mlflow_server(tiny, tmp_path, dvc):
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "artifacts"), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline and server.poll() is None, "mlflow server did not start"
                time.sleep(0.5)
        proc = dvc(tiny, "repro", tracking_uri=uri)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert not (tiny / "mlflow.db").exists()  # everything went to the server

        client = mlflow.MlflowClient(uri)
        run_id = json.loads((tiny / "models/lstm_row/runs.json").read_text())[0]["run_id"]
        run = client.get_run(run_id)
        assert run.info.run_name == "lstm_row" and run.info.status == "FINISHED"
        assert run.data.tags["variant"] == "lstm_row" and "git_commit" in run.data.tags
        assert run.data.params["variants.lstm_row.model.hidden"] == "64"
        assert len(client.get_metric_history(run_id, "val_acc")) == 3  # one per epoch
        assert {a.path for a in client.list_artifacts(run_id)} >= {"model.pt", "model.json"}
        assert client.get_experiment(run.info.experiment_id).name == "classification"
        test = json.loads((tiny / "metrics/lstm_row.json").read_text())["test"]
        assert run.data.metrics["test_accuracy"] == test["accuracy"]

        sr_run = json.loads((tiny / "models/lsrcnn/runs.json").read_text())[0]["run_id"]
        sr_test = json.loads((tiny / "metrics/lsrcnn.json").read_text())["test"]["skimage_test"]["x2"]
        assert client.get_run(sr_run).info.run_name == "lsrcnn_x2"
        assert client.get_run(sr_run).data.metrics["test_skimage_test_psnr"] == sr_test["psnr"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_unreachable_server_fails_fast_or_falls_back(tiny, cli, set_params):
    assert cli(["download"], cwd=tiny).returncode == 0
    assert cli(["split"], cwd=tiny).returncode == 0
    closed = f"http://127.0.0.1:{_free_port()}"
    started = time.monotonic()
    proc = cli(["train", "lstm_row"], cwd=tiny, env={"MLFLOW_TRACKING_URI": closed})
    assert proc.returncode == 1 and time.monotonic() - started < 60
    assert proc.stderr.strip().startswith("error: MLflow server") and proc.stderr.strip().count("\n") == 0
    assert not (tiny / "models").exists()

    set_params(tiny, **{"tracking.on_unreachable": "local"})
    proc = cli(["train", "lstm_row"], cwd=tiny, env={"MLFLOW_TRACKING_URI": closed})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tiny / "mlflow.db").exists() and "unreachable" in proc.stderr
