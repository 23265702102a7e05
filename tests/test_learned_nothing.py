"""A training that ends no better than chance says so: the evaluate stage warns, the report flags it, the MLflow
run is tagged; params that cannot train (a finite but absurd learning rate) are refused before any work."""

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.tasks.classification.evaluate import no_better_than_chance
from pipeline.tracking.results import WARNING_TAG


def _per_image(correct_by_seed: dict[str, np.ndarray], labels: np.ndarray) -> pd.DataFrame:
    return pd.concat([pd.DataFrame({"seed": seed, "image": np.arange(len(labels)), "label": labels,
                                    "correct": correct}) for seed, correct in correct_by_seed.items()])


def test_chance_is_the_most_frequent_class_and_the_call_is_a_binomial_test():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), [120] + [98] * 9)  # class 0 is the most frequent: chance 0.12
    learned = rng.random(len(labels)) < 0.9
    majority = labels == 0  # always answering "0"
    barely = rng.random(len(labels)) < 0.16  # 4 points over chance on 1,002 images: p ~ 1e-4
    found = no_better_than_chance(_per_image({"1": learned, "2": majority, "3": barely}, labels))
    assert set(found) == {"2"}
    assert found["2"].startswith("seed 2: test accuracy 0.120 is no better than chance (0.120, always the most")
    assert "\n" not in found["2"]


@pytest.mark.slow
def test_a_model_at_chance_is_warned_reported_and_tagged(reproduced, cli):
    """The tiny profile's lstm_row, seed 1's exported weights zeroed (a constant answer), evaluated and reported
    again: the other seeds are results, seed 1 is flagged everywhere a user looks."""
    model = reproduced / "models" / "classification" / "lstm_row" / "s1" / "model.pt"
    torch.save({k: torch.zeros_like(v) for k, v in torch.load(model).items()}, model)
    evaluated = cli(["evaluate", "lstm_row"], reproduced)
    assert evaluated.returncode == 0, evaluated.stderr
    assert evaluated.stderr.startswith("WARNING lstm_row seed 1: test accuracy ") and "no better than chance" in \
        evaluated.stderr and evaluated.stderr.count("\n") == 1, evaluated.stderr
    warnings = json.loads((reproduced / "eval" / "lstm_row" / "metrics.json").read_text())["warnings"]
    assert list(warnings) == ["1"]

    reported = cli(["report"], reproduced)
    assert reported.returncode == 0, reported.stderr
    report = (reproduced / "reports" / "report.md").read_text()
    assert "## Warning: models that learned nothing" in report and f"- **lstm_row** {warnings['1']}" in report
    assert json.loads((reproduced / "metrics" / "summary.json").read_text())["warnings"] == {"lstm_row": warnings}
    runs_json = reproduced / "models/classification/lstm_row/runs.json"
    runs = {r["seed"]: r["run_id"] for r in json.loads(runs_json.read_text())}
    client = mlflow.MlflowClient(f"sqlite:///{reproduced / 'mlflow.db'}")
    assert client.get_run(runs[1]).data.tags[WARNING_TAG] == warnings["1"]
    assert all(WARNING_TAG not in client.get_run(runs[s]).data.tags for s in runs if s != 1)
