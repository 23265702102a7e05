"""MLflow bookkeeping on a real local store: experiment kind, the report's runs tagged, dataset digests."""

import mlflow
import yaml

from pipeline.config.schema import Tracking
from pipeline.tracking.results import REPORT_TAG, WARNING_TAG, log_test_metrics
from pipeline.tracking.store import open_run, resolve_store
from pipeline.training.loop import dataset_digest


def _store(tmp_path):
    cfg = Tracking(uri="sqlite:///mlflow.db", artifacts="mlartifacts", on_unreachable="fail", timeout_s=5)
    return resolve_store(cfg, tmp_path)


def _run(store, tmp_path, name):
    return open_run(store, tmp_path / f"{name}.json", "classification", name, tags={}, params={"hidden": 8})


def test_report_marks_its_runs_and_supersedes_earlier_ones(tmp_path):
    store = _store(tmp_path)
    old, new = _run(store, tmp_path, "old"), _run(store, tmp_path, "new")
    evaluated = {"test": {"accuracy": {"seeds": {"1": 0.9}}}}
    log_test_metrics(store, [([{"run_id": old.run_id, "seed": 1, "scale": None}], evaluated)])
    client = mlflow.MlflowClient(store.uri)
    assert client.get_run(old.run_id).data.tags[REPORT_TAG] == "current"
    log_test_metrics(store, [([{"run_id": new.run_id, "seed": 1, "scale": None}], evaluated)])
    assert client.get_run(old.run_id).data.tags[REPORT_TAG] == "superseded"
    assert client.get_run(new.run_id).data.tags[REPORT_TAG] == "current"
    assert client.get_run(new.run_id).data.metrics["test_accuracy"] == 0.9
    assert WARNING_TAG not in client.get_run(new.run_id).data.tags


def test_a_run_that_learned_nothing_is_tagged_with_the_evaluation_line(tmp_path):
    store = _store(tmp_path)
    good, bad = _run(store, tmp_path, "good"), _run(store, tmp_path, "bad")
    evaluated = {"test": {"accuracy": {"seeds": {"1": 0.9, "2": 0.11}}}, "warnings": {"2": "seed 2: no better"}}
    log_test_metrics(store, [([{"run_id": good.run_id, "seed": 1, "scale": None},
                               {"run_id": bad.run_id, "seed": 2, "scale": None}], evaluated)])
    client = mlflow.MlflowClient(store.uri)
    assert client.get_run(bad.run_id).data.tags[WARNING_TAG] == "seed 2: no better"
    assert WARNING_TAG not in client.get_run(good.run_id).data.tags


def test_experiments_open_as_model_training(tmp_path):
    store = _store(tmp_path)
    run = _run(store, tmp_path, "a")
    client = mlflow.MlflowClient(store.uri)
    experiment = client.get_experiment(client.get_run(run.run_id).info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_dataset_digest_is_dvcs_hash_only_while_it_describes_the_folder(tmp_path):
    folder = tmp_path / "data" / "prepared" / "sr"
    folder.mkdir(parents=True)
    (folder / "a.npy").write_bytes(b"1234")
    entry = {"path": "data/prepared/sr", "md5": "0123456789abcdef0123456789abcdef.dir", "size": 4, "nfiles": 1}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {"patches": {"outs": [entry]}}}))
    relative = folder.relative_to(tmp_path)
    assert dataset_digest(tmp_path, relative) == (entry["md5"], "DVC md5 (dvc.lock)")
    (folder / "a.npy").write_bytes(b"12345")  # changed since DVC hashed it: the entry no longer describes it
    digest, kind = dataset_digest(tmp_path, relative)
    assert digest != entry["md5"] and len(digest) == 32 and "no matching" in kind


def test_run_param_names_are_shared_and_never_collide(root):
    from pipeline.config.schema import load_params
    from pipeline.training.hardware import how_it_ran
    from pipeline.training.identity import run_params
    from pipeline.training.spec import Training

    p = load_params(root / "params.yaml")
    for name, variant in p.variants.items():
        params = run_params(Training(name, variant, p, seed=1, scale=2))
        sources = [7, len(variant.options()), len(variant.optim.model_dump()), len(how_it_ran(p, 64))]
        assert len(params) == sum(sources), f"{name}: a model option shadows a run, optimiser or hardware param"
        assert {"arch", "view", "seed", "lr", "epochs", "batch_size", "precision", "world_size"} <= params.keys()


def test_a_packaged_model_is_a_logged_model_of_its_run_linked_to_its_version_and_test_metrics(tmp_path):
    """MLflow 3's Models tab and the runs table's Models column show it; `models:/name/version` loads it."""
    import base64

    import pandas as pd
    from PIL import Image, ImageDraw
    from test_image_inputs import _classifier

    from pipeline.tracking.registry import log_model

    store = _store(tmp_path)
    run = _run(store, tmp_path, "lstm_row_s1")
    digit = Image.new("L", (28, 28), 0)
    ImageDraw.Draw(digit).line([(14, 4), (14, 23)], fill=255, width=3)
    digit.save(tmp_path / "example.png")
    version = log_model(store.uri, run.run_id, _classifier(tmp_path / "export"), tmp_path / "example.png",
                        "lstm_row", "classification", None)
    client = mlflow.MlflowClient(store.uri)
    registered = client.get_model_version("lstm_row", str(version))
    assert registered.source.startswith("models:/m-") and registered.run_id == run.run_id  # the version's model
    model = client.get_logged_model(registered.source.removeprefix("models:/"))
    assert model.source_run_id == run.run_id and str(model.status).endswith("READY")
    assert [o.model_id for o in client.get_run(run.run_id).outputs.model_outputs] == [model.model_id]

    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    with _use_tracking_uri(store.uri):  # models:/ resolves through the global URI
        served = mlflow.pyfunc.load_model(f"models:/lstm_row/{version}")
    image = base64.b64encode((tmp_path / "example.png").read_bytes()).decode()
    answer = served.predict(pd.DataFrame({"image": [image]}))
    assert list(answer.columns) == ["class", "probability"] and len(answer) == 1

    log_test_metrics(store, [([{"run_id": run.run_id, "seed": 1, "scale": None}],
                              {"test": {"accuracy": {"seeds": {"1": 0.9}}}})])
    linked = client.get_logged_model(model.model_id).metrics
    assert [(m.key, m.value) for m in linked] == [("test_accuracy", 0.9)]
