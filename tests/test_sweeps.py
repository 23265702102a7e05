"""Sweeps on DVC's queue: two queued experiments, two workers, both complete, and their MLflow runs on the
team's tracking server (PostgreSQL, basic auth) carry the DVC experiment's name and baseline commit (so a
reviewer goes from `dvc exp show` to the runs and back)."""

import json
import time

import mlflow
import pytest

LRS = {"lr-low": 0.002, "lr-high": 0.01}


def _queue(project, dvc, env, names) -> dict[str, str]:
    """Queue the named experiments, run them on two workers, and return each one's final status."""
    for name in names:
        # Only the swept variant's training: the queue's mechanics, at a fraction of the time.
        queued = dvc(project, "exp", "run", "--queue", "--name", name, "-S", f"variants.lstm_row.optim.lr={LRS[name]}",
                     "-S", "seeds=[1]", "train_classification", env=env)
        assert queued.returncode == 0, queued.stderr
    started = dvc(project, "queue", "start", "-j", "2", env=env)  # workers inherit the server and credentials
    assert started.returncode == 0, started.stderr
    deadline = time.time() + 900
    while True:
        status = dvc(project, "queue", "status").stdout
        if "Queued" not in status and "Running" not in status:
            break
        assert time.time() < deadline, status
        time.sleep(3)
    rows = (line.split() for line in status.splitlines())
    return {row[1]: row[-1] for row in rows if len(row) >= 3 and row[1] in names}


def _failed_inside_dvc(project, dvc, name) -> bool:
    """DVC's queue can fail a task while it sets up the experiment, before any stage runs, when two workers
    start at once (treeverse/dvc#10673, open): such a task has no output logs. Our stages always log."""
    logs = dvc(project, "queue", "logs", name)
    return logs.returncode != 0 and "No output logs" in logs.stderr


@pytest.mark.slow
def test_two_queued_experiments_run_in_parallel_and_are_tagged(reproduced, team, dvc, commit_all, monkeypatch):
    tiny = reproduced  # its prepared data is in the DVC cache: the workers only train
    baseline = commit_all(tiny)  # experiments start from a commit
    env = team.env("alice")
    try:
        done = _queue(tiny, dvc, env, list(LRS))
        # What the README tells a user to do about DVC's own setup failure: queue that experiment again.
        again = [name for name, state in done.items() if state == "Failed" and _failed_inside_dvc(tiny, dvc, name)]
        if again:
            assert dvc(tiny, "queue", "remove", *again).returncode == 0
            done.update(_queue(tiny, dvc, env, again))
        if set(done.values()) != {"Success"}:
            workers = "\n".join(p.read_text()[-2000:] for p in (tiny / ".dvc/tmp/exps/celery").glob("*.out"))
            logs = {name: dvc(tiny, "queue", "logs", name).stdout[-3000:] for name in LRS}
            pytest.fail(f"{done}\n{logs}\n{workers}")

        shown = json.loads(dvc(tiny, "exp", "show", "--json").stdout)
        names = {e["name"] for row in shown for e in (row.get("experiments") or [])}
        assert set(LRS) <= names, names

        for key, value in env.items():
            monkeypatch.setenv(key, value)
        client = mlflow.MlflowClient(team.uri)
        experiment = client.get_experiment_by_name("classification").experiment_id
        for name, lr in LRS.items():
            runs = client.search_runs([experiment], f"tags.dvc_experiment = '{name}'")
            assert len(runs) == 1, [r.info.run_name for r in runs]  # lstm_row, seed 1
            assert {r.data.params["lr"] for r in runs} == {str(lr)}
            assert {r.data.tags["dvc_baseline_rev"] for r in runs} == {baseline}
            assert all(r.info.status == "FINISHED" and r.data.tags["git_commit"] for r in runs)
    finally:
        dvc(tiny, "queue", "stop", "--kill")
