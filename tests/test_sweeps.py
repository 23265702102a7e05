"""Sweeps on DVC's queue: two queued experiments, two workers, both complete, and their MLflow runs on the
team's tracking server (PostgreSQL, basic auth) carry the DVC experiment's name and baseline commit (so a
reviewer goes from `dvc exp show` to the runs and back)."""

import json
import time

import mlflow
import pytest


@pytest.mark.slow
def test_two_queued_experiments_run_in_parallel_and_are_tagged(tiny, team, dvc, commit_all, monkeypatch):
    baseline = commit_all(tiny)  # experiments start from a commit
    env = team.env("alice")
    try:
        lrs = {"lr-low": 0.002, "lr-high": 0.01}
        for name, lr in lrs.items():
            # Only the swept variant's training (and what it needs): the queue's mechanics, at a fraction of the time.
            queued = dvc(tiny, "exp", "run", "--queue", "--name", name, "-S", f"variants.lstm_row.optim.lr={lr}",
                         "train_classification@lstm_row", env=env)
            assert queued.returncode == 0, queued.stderr
        started = dvc(tiny, "queue", "start", "-j", "2", env=env)  # workers inherit the server and credentials
        assert started.returncode == 0, started.stderr
        deadline = time.time() + 900
        while True:
            status = dvc(tiny, "queue", "status").stdout
            if "Queued" not in status and "Running" not in status:
                break
            assert time.time() < deadline, status
            time.sleep(5)
        assert status.count("Success") == 2, status

        shown = json.loads(dvc(tiny, "exp", "show", "--json").stdout)
        names = {e["name"] for row in shown for e in (row.get("experiments") or [])}
        assert set(lrs) <= names, names

        for key, value in env.items():
            monkeypatch.setenv(key, value)
        client = mlflow.MlflowClient(team.uri)
        experiment = client.get_experiment_by_name("classification").experiment_id
        for name, lr in lrs.items():
            runs = client.search_runs([experiment], f"tags.dvc_experiment = '{name}'")
            assert len(runs) == 2, [r.info.run_name for r in runs]  # lstm_row, seeds 1 and 2
            assert {r.data.params["lr"] for r in runs} == {str(lr)}
            assert {r.data.tags["dvc_baseline_rev"] for r in runs} == {baseline}
            assert all(r.info.status == "FINISHED" and r.data.tags["git_commit"] for r in runs)
    finally:
        dvc(tiny, "queue", "stop", "--kill")
