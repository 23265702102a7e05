"""The regression gate: its rule on numbers, its refusals of malformed files, and both directions for real
on the `ci` profile against the committed baselines/ci.json."""

import json
import math

import numpy as np
import pytest

from pipeline.core.errors import InputError
from pipeline.report.gate import compare, summaries
from pipeline.report.stats import holm, mcnemar, signed_rank, welch_margin
from pipeline.tasks.summary import summary

FLOOR = {"accuracy": 0.005, "psnr": 0.02}


def _s(mean, std, n=3):
    return {"mean": mean, "std": std, "n": n}


def test_margin_comes_from_the_spread_and_never_below_the_floor():
    base = {"v": {"test.accuracy": _s(0.90, 0.01)}}
    wide = welch_margin(0.01, 3, 0.01, 3, 0.001)
    assert 0.05 < wide < 0.07  # t(0.999, df=4) = 7.17 times sqrt(2/3) * 0.01
    assert compare(base, {"v": {"test.accuracy": _s(0.90 - wide * 0.9, 0.01)}}, 0.001, FLOOR).table.verdict[0] == "ok"
    assert compare(base, {"v": {"test.accuracy": _s(0.90 - wide * 1.1, 0.01)}}, 0.001, FLOOR).failed
    better = compare(base, {"v": {"test.accuracy": _s(0.90 + wide * 1.1, 0.01)}}, 0.001, FLOOR)
    assert better.table.verdict[0] == "improved" and not better.failed
    still = {"v": {"test.psnr": _s(33.0, 0.0, 1)}}  # deterministic: held to the floor
    assert compare(still, {"v": {"test.psnr": _s(32.99, 0.0, 1)}}, 0.001, FLOOR).table.verdict[0] == "ok"
    assert compare(still, {"v": {"test.psnr": _s(32.97, 0.0, 1)}}, 0.001, FLOOR).failed


def test_missing_metric_and_unbaselined_variant_fail():
    base = {"v": {"test.accuracy": _s(0.9, 0.01)}}
    gone = compare(base, {"v": {}}, 0.001, FLOOR)
    assert gone.failed and gone.table.verdict[0] == "MISSING"
    new = compare(base, {"v": {"test.accuracy": _s(0.9, 0.01)}, "w": {"test.accuracy": _s(0.9, 0.01)}}, 0.001, FLOOR)
    assert new.failed and "NO BASELINE" in set(new.table.verdict)


def test_a_baselined_variant_params_no_longer_runs_is_said_not_failed():
    base = {"v": {"test.accuracy": _s(0.9, 0.01)}, "w": {"test.accuracy": _s(0.8, 0.01)}}
    verdict = compare(base, {"v": {"test.accuracy": _s(0.9, 0.01)}}, 0.001, FLOOR, run={"v"})
    assert not verdict.failed
    assert verdict.table.set_index("variant").verdict.to_dict() == {"v": "ok", "w": "not run"}
    assert compare(base, {"v": {"test.accuracy": _s(0.9, 0.01)}}, 0.001, FLOOR, run={"v", "w"}).failed


@pytest.mark.parametrize("tree", [
    {"test": {"accuracy": {"mean": math.nan, "std": 0.01, "n": 3}}},
    {"test": {"accuracy": {"mean": None, "std": 0.01, "n": 3}}},
    {"test": {"accuracy": {"mean": "0.9", "std": 0.01, "n": 3}}},
    {"test": {"accuracy": {"mean": 0.9, "std": -1, "n": 3}}},
    {"test": {"accuracy": {"mean": 0.9, "std": 0.01, "n": 0}}},
    {"test": {"accuracy": {"mean": 0.9, "std": 0.01}}},
    {"test": {"accuracy": 0.9}},
    [1, 2],
    {},
])
def test_malformed_metrics_are_refused_with_one_line(tree):
    with pytest.raises(InputError) as err:
        summaries(tree, "metrics/v.json")
    assert str(err.value).startswith("metrics/v.json: ") and "\n" not in str(err.value)


def test_statistics():
    s = summary({"1": 0.9, "2": 0.92, "3": 0.91}, 5)
    assert s["mean"] == 0.91 and s["std"] == pytest.approx(0.01) and s["n"] == 3
    assert summary({"deterministic": 33.0}, 4)["std"] == 0.0
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    a = np.array([True] * 50 + [False] * 50)
    assert mcnemar(a, a) == 1.0
    b = a.copy()
    b[50:70] = True  # 20 discordant pairs, all one way
    assert mcnemar(a, b) < 1e-4
    assert signed_rank(np.zeros(5)) == 1.0 and signed_rank(np.arange(1, 13)) < 0.001


@pytest.mark.slow
def test_gate_passes_other_seeds_and_fails_a_model_that_stops_learning(make_project, cli, dvc, set_params):
    """Against the committed ci baseline (seeds 1-3, made on another machine), in one `dvc repro` on seed 4:
    one classifier with lr 1e-9 (it stays at its random start) and an SR variant whose recurrent body is
    zeroed fail; the healthy variants pass (another seed is not a regression); a variant left out is said to be. (CI's
    own gate step runs every variant on the baseline's seeds.)"""
    ci = make_project("ci", "ci")
    set_params(ci, seeds=[4], **{"run.classification": ["lstm_row", "gru_row"]})
    set_params(ci, **{"variants.lstm_row.optim.lr": 1.0e-9, "variants.lsrcnn.model.ablate_body": True})
    proc = dvc(ci, "repro", "evaluate_classification", "evaluate_sr", "baseline")  # what the gate reads
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Running stage 'bench'" not in proc.stdout and not (ci / "metrics/summary.json").exists()
    # The profile learns measurably (the gate can see a model stop learning): the healthy SR variant beats
    # bicubic by a margin.
    gain = (json.loads((ci / "metrics/cnn_sr.json").read_text())["test"]["skimage_test"]["x2"]["psnr"]["mean"]
            - json.loads((ci / "metrics/bicubic.json").read_text())["test"]["skimage_test"]["x2"]["psnr"]["mean"])
    assert gain >= 0.3, gain

    failed = cli(["check"], cwd=ci)
    assert failed.returncode == 1
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in failed.stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| variant")]
    verdicts = {(row[0], row[1]): row[-1] for row in rows if len(row) > 3}
    regressed = {key for key, verdict in verdicts.items() if verdict == "REGRESSED"}
    assert ("lstm_row", "test.accuracy") in regressed
    assert ("lsrcnn", "test.skimage_test.x2.psnr") in regressed
    assert {v for v, _ in regressed} == {"lstm_row", "lsrcnn"}, regressed
    assert verdicts[("lstm_gates", "*")] == "not run"
    healthy = {key: verdict for key, verdict in verdicts.items()
               if key[0] not in ("lstm_row", "lsrcnn", "lstm_gates")}
    assert {v for v, _ in healthy} == {"gru_row", "cnn_sr", "bicubic"}, healthy
    assert set(healthy.values()) <= {"ok", "improved"}, healthy
    assert failed.stderr.startswith("error: ") and failed.stderr.count("\n") == 1
