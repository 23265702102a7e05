"""What the report stage attaches to the training runs: each run's test figures and the tag saying which
report used it (report-time work: no training imports this)."""

from __future__ import annotations

import logging
import time

from pipeline.tracking.store import Store, one_line_errors, run_exists

log = logging.getLogger(__name__)


def test_metrics(test: dict, seed: int, scale: int | None) -> dict[str, float]:
    """One run's flat test metrics: ``test_accuracy`` and ``test_true_class_prob``, or ``test_<set>_psnr|ssim`` at
    the run's scale."""
    if scale is None:
        return {f"test_{key}": value["seeds"][str(seed)] for key, value in test.items() if "seeds" in value}
    return {f"test_{name}_{key}": value["seeds"][str(seed)]
            for name, per in test.items() for key, value in per[f"x{scale}"].items()}


def _logged_model_id(client, run_id: str, experiment: str) -> str | None:
    """The id of the newest READY LoggedModel a run (of ``experiment``) produced: what its test metrics are
    linked to."""
    found = client.search_logged_models([experiment], filter_string=f"source_run_id = '{run_id}'",
                                        order_by=[{"field_name": "creation_time", "ascending": False}])
    ready = [m for m in found if str(m.status).endswith("READY")]
    return ready[0].model_id if ready else None


REPORT_TAG = "lstmvision.report"  # "current": the report was built from this run; "superseded": an earlier one was
WARNING_TAG = "lstmvision.warning"  # the evaluation's line for a run that learned nothing (no better than chance)


def log_test_metrics(store: Store, results: list[tuple[list[dict], dict]]) -> None:
    """Attach each variant's test figures to its training runs (one per seed, and per scale for SR), tag
    those runs as the report's, and re-tag runs an earlier report used as superseded.

    ``results`` holds (runs.json entries, eval/NAME/metrics.json) per variant; one client serves them all. A
    run whose seed the evaluation warned about is tagged with the warning's line.
    """
    import mlflow
    from mlflow.entities import Metric, RunTag

    client = mlflow.MlflowClient(store.uri)
    now = int(time.time() * 1000)
    current, experiments = set(), set()
    for runs, evaluated in results:
        test, warnings = evaluated["test"], evaluated.get("warnings", {})
        for run in runs:
            if not run_exists(store, run["run_id"]):  # trained against another store, or deleted since
                log.warning("MLflow run %s is not in %s; its test metrics are not attached", run["run_id"], store.uri)
                continue
            with one_line_errors(store):
                experiment = client.get_run(run["run_id"]).info.experiment_id
                model_id = _logged_model_id(client, run["run_id"], experiment)  # the metrics describe the model too
            metrics = [Metric(k, v, now, 0, model_id=model_id)
                       for k, v in test_metrics(test, run["seed"], run["scale"]).items()]
            tags = [RunTag(REPORT_TAG, "current")]
            if str(run["seed"]) in warnings:
                tags.append(RunTag(WARNING_TAG, warnings[str(run["seed"])]))
            with one_line_errors(store):
                client.log_batch(run["run_id"], metrics=metrics, tags=tags)
            experiments.add(experiment)
            current.add(run["run_id"])
    with one_line_errors(store):
        earlier = client.search_runs(sorted(experiments), f"tags.`{REPORT_TAG}` = 'current'") if experiments else []
        for run in earlier:
            if run.info.run_id not in current:
                client.set_tag(run.info.run_id, REPORT_TAG, "superseded")
