"""End to end on a copy of the project: real `dvc repro`, real processes killed, an MLflow server that is away."""

import json
import re
import time

import pytest
import yaml

pytestmark = pytest.mark.slow


def _ran(proc) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", proc.stdout))


def test_dvc_repro_from_scratch_to_report_seeds_and_code_deps(reproduced, dvc, set_params):
    tiny = reproduced  # `dvc repro` from scratch, Set5 asked for but absent (conftest.tiny_repro)
    for out in ("data/raw/manifest.json", "data/prepared/sr/x2/lr.npy", "models/classification/lstm_row/s1/model.pt",
                "models/classification/lstm_row/s2/model.pt", "models/sr/lsrcnn/s2/x2/model.pt",
                "eval/lstm_row/per_image.csv",
                "reports/report.md", "reports/figures/sr_crops.png", "plots/train/classification/lstm_row.csv",
                "metrics/summary.json"):
        assert (tiny / out).exists(), out
    acc = json.loads((tiny / "metrics/lstm_row.json").read_text())["test"]["accuracy"]
    assert acc["n"] == 2 and set(acc["seeds"]) == {"1", "2"} and acc["mean"] > 0.5  # chance is 0.1
    assert acc["mean"] == pytest.approx(sum(acc["seeds"].values()) / 2, abs=1e-5) and acc["std"] > 0
    per_class = json.loads((tiny / "metrics/lstm_row.json").read_text())["test"]["per_class_accuracy"]
    assert set(per_class) == {str(c) for c in range(10)} and all(0 <= a <= 1 for a in per_class.values())
    assert (tiny / "reports/figures/classification_confusion.png").stat().st_size > 10_000
    model = json.loads((tiny / "metrics/lsrcnn.json").read_text())["test"]["skimage_test"]["x2"]
    bicubic = json.loads((tiny / "metrics/bicubic.json").read_text())["test"]["skimage_test"]["x2"]
    assert model["psnr"]["mean"] > bicubic["psnr"]["mean"] and bicubic["psnr"]["n"] == 1
    report = (tiny / "reports/report.md").read_text()
    assert "1000 test images" in report and "± " in report and "(2)" in report and "leader" in report
    page = (tiny / "reports/report.html").read_text()
    # One self-contained file (tables: classification, per class, SR, cost): every figure embedded.
    assert page.count("<table>") == 4 and '<img alt="crops" src="data:image/png;base64,' in page
    assert 'src="figures/' not in page
    assert "Code at commit `" in report and "CPU cores" in report and "- `skimage_test`: embedded" in report
    assert "- `set5`: **skipped**: dataset set5: no Set5/ in mirror" in report  # said, not silently left out

    shown = dvc(tiny, "metrics", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    assert "test.accuracy.seeds.1" in shown.stdout or '"seeds"' in shown.stdout  # DVC reads them as they are

    # `dvc plots show`: one chart per task, every variant on it, every seed behind each line.
    plots = dvc(tiny, "plots", "show", "--json")
    assert plots.returncode == 0, plots.stdout + plots.stderr
    charts = json.loads(plots.stdout)["data"]
    assert set(charts) == {"plots/compare/classification.csv", "plots/compare/sr.csv"}
    p = yaml.safe_load((tiny / "params.yaml").read_text())
    for chart, names in (("classification", p["run"]["classification"]), ("sr", p["run"]["sr"])):
        rows = charts[f"plots/compare/{chart}.csv"][0]["content"]["data"]["values"]
        assert {r["series"] for r in rows} == set(names)
        assert {r["seed"] for r in rows if r["series"] == names[0]} == {"1", "2"}

    # Nothing changed: nothing runs. One variant's knob changed: both train stages read `variants`, but only
    # that variant trains, and of the evaluations only its own runs again.
    again = dvc(tiny, "repro")
    assert not _ran(again), again.stdout
    set_params(tiny, **{"variants.lstm_row.optim.epochs": 2})
    knob = dvc(tiny, "repro", "evaluate_classification", "evaluate_sr")
    assert knob.returncode == 0, knob.stderr[-2000:]
    assert _ran(knob) == {"train_classification", "train_sr", "evaluate_classification@lstm_row"}, knob.stdout
    assert "[lstm_row_s1] epoch 2/2" in knob.stdout and "[lsrcnn_x2_s1]" not in knob.stdout
    set_params(tiny, **{"variants.lstm_row.optim.epochs": 3})
    assert dvc(tiny, "repro").returncode == 0  # the finished 3-epoch trainings come back from the work folder

    # A library module changed: exactly the stages whose commands import it.
    def stale_after_touching(module: str) -> set[str]:
        path = tiny / module
        original = path.read_text()
        path.write_text(original + "\n# touched\n")
        try:
            return set(json.loads(dvc(tiny, "status", "--json").stdout))
        finally:
            path.write_text(original)

    assert stale_after_touching("pipeline/imaging/color.py") == {
        "patches", "evaluate_sr@lsrcnn", "baseline", "bench"}
    # No training runs the dispatcher, report-time code, the downloader or the user tools; each task's
    # code leaves the other task's trainings fresh.
    for module in ("stages/cli.py", "pipeline/report/stats.py", "pipeline/report/champions.py",
                   "pipeline/data/fetch.py", "stages/tools/upscale.py"):
        assert not {s for s in stale_after_touching(module) if s.startswith("train_")}, module
    for module, task in (("pipeline/tasks/sr/networks.py", "sr"), ("pipeline/imaging/resize.py", "sr"),
                         ("pipeline/tasks/classification/lstm_gates.py", "classification")):
        trains = {s.split("@")[0] for s in stale_after_touching(module) if s.startswith("train_")}
        assert trains == {f"train_{task}"}, (module, trains)

    # A third seed: the stages re-run, but seeds 1 and 2 are reused, not retrained.
    runs_json = tiny / "models/classification/lstm_row/runs.json"
    before = {r["seed"]: r["run_id"] for r in json.loads(runs_json.read_text())}
    set_params(tiny, **{"seeds": [1, 2, 3]})
    more = dvc(tiny, "repro")
    assert more.returncode == 0, more.stderr[-2000:]
    assert "train_classification" in _ran(more) and "split" not in _ran(more)
    assert "[lstm_row_s3] epoch 3/3" in more.stdout and "[lstm_row_s1]" not in more.stdout
    after = {r["seed"]: r["run_id"] for r in json.loads(runs_json.read_text())}
    assert after[1] == before[1] and after[2] == before[2] and len(after) == 3
    assert json.loads((tiny / "metrics/lstm_row.json").read_text())["test"]["accuracy"]["n"] == 3


def test_unreachable_server_fails_fast_or_falls_back(tiny, cli, set_params, free_port):
    assert cli(["download"], cwd=tiny).returncode == 0
    assert cli(["split"], cwd=tiny).returncode == 0
    closed = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    proc = cli(["train", "lstm_row"], cwd=tiny, env={"MLFLOW_TRACKING_URI": closed})
    assert proc.returncode == 1 and time.monotonic() - started < 60
    assert proc.stderr.strip().startswith("error: MLflow server") and proc.stderr.strip().count("\n") == 0
    assert not (tiny / "models").exists()

    set_params(tiny, **{"tracking.on_unreachable": "local"})
    proc = cli(["train", "lstm_row"], cwd=tiny, env={"MLFLOW_TRACKING_URI": closed})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tiny / "mlflow.db").exists() and "unreachable" in proc.stderr
