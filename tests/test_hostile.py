"""Hostile input and interrupted runs: each case ends with one line, a documented exit code, and nothing
already written lost or left half-written. (Downloads and archives: test_fetch.py; images: test_data.py.)"""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from helpers.models import no_model_files

pytestmark = pytest.mark.slow


def _one_line(proc, code: int, needle: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: ") and needle in lines[-1], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, copy_project, set_params):
    """A tiny project with its data downloaded, split and patched (copied by each test)."""
    from pipeline.config.profiles import apply_profile

    root = copy_project(tmp_path_factory.mktemp("prepared") / "p")
    apply_profile(root, "tiny")
    set_params(root, seeds=[1])
    for stage in ("download", "split", "patches"):
        proc = subprocess.run([sys.executable, "-m", "stages.cli", stage], cwd=root, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    return root


@pytest.fixture
def p(prepared, tmp_path):
    return shutil.copytree(prepared, tmp_path / "p", symlinks=True)


def _runs(project, experiment="classification"):
    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id]) if exp else []


@pytest.mark.parametrize("key,value,needle", [
    ("trainer.strategy", "banana", "params.yaml: trainer:"),
    ("trainer.accelerator", "tpu", "params.yaml: trainer.accelerator"),
    ("trainer.precision", "banana", "params.yaml: trainer.precision"),
    ("trainer.devices", 0, "params.yaml: trainer.devices"),
])
def test_bad_trainer_settings_exit_2_before_any_run(p, cli, set_params, key, value, needle):
    set_params(p, **{key: value})
    _one_line(cli(["train", "lstm_row"], cwd=p), 2, needle)
    assert no_model_files(p)
    if (p / "mlflow.db").exists():
        assert not _runs(p)  # no run left RUNNING: the Trainer is built before the run starts


def _training_past_its_first_checkpoint(p, set_params, epochs: int) -> subprocess.Popen:
    """`lstmvision train lstm_row` on all the data, returned once its first checkpoint is on disk."""
    set_params(p, **{"data.classification.limit": None, "variants.lstm_row.model.hidden": 256,
                     "variants.lstm_row.optim.epochs": epochs})
    # an earlier case's checkpoint (same params, same run key) would satisfy the wait below at once
    shutil.rmtree(p / ".lstmvision" / "work" / "lstm_row_s1", ignore_errors=True)
    proc = subprocess.Popen([sys.executable, "-m", "stages.cli", "train", "lstm_row"], cwd=p, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not list((p / ".lstmvision/work").glob("lstm_row_s1/*/checkpoints/last.ckpt")):
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    return proc


@pytest.mark.parametrize("seeds", [[1], [1, 2]], ids=["alone", "side-by-side"])  # [1, 2]: two worker processes
@pytest.mark.parametrize("signum,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_training_says_so_and_exits_non_zero(p, set_params, signum, code, seeds):
    set_params(p, seeds=seeds)
    (p / "models" / "classification" / "lstm_row").mkdir(parents=True)
    (p / "models" / "classification" / "lstm_row" / "old.txt").write_text("previous model")
    proc = _training_past_its_first_checkpoint(p, set_params, epochs=30)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: lstm_row_s1: training stopped by") and "dvc repro` resumes" in last, err[-2000:]
    # nothing half-written replaced it
    assert (p / "models/classification/lstm_row/old.txt").read_text() == "previous model"
    assert [r.info.status for r in _runs(p)] == ["KILLED"] * len(seeds)  # each worker stopped its own run


def test_a_worker_killed_is_one_line_and_writes_nothing(p, set_params):
    """Two trainings side by side, one worker SIGKILLed (as the OOM killer does): the stage stops the other and
    says so in one line, and no model folder is written."""
    set_params(p, seeds=[1, 2])
    proc = _training_past_its_first_checkpoint(p, set_params, epochs=30)
    me = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    workers = [int(c) for c in children if Path(f"/proc/{c}/cmdline").read_bytes() == me]  # forked: same command
    assert len(workers) == 2, children
    os.kill(workers[0], signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err[-2000:]
    assert err.strip().splitlines()[-1].startswith("error: a training process died"), err[-2000:]
    assert no_model_files(p)


def test_leftovers_of_a_killed_writer_are_cleaned_and_a_second_training_is_refused(p, cli, set_params):
    stale = p / "models" / "classification" / ".lstm_row.tmp-999999-abc"  # no process 999999: a writer killed long ago
    stale.mkdir(parents=True)
    set_params(p, **{"data.classification.limit": None, "variants.lstm_row.model.hidden": 256,
                     "variants.lstm_row.optim.epochs": 30})
    first = subprocess.Popen([sys.executable, "-m", "stages.cli", "train", "lstm_row"], cwd=p,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (p / ".lstmvision/locks/train-lstm_row.lock").exists() or stale.exists():
        assert time.time() < deadline and first.poll() is None  # the first holds the lock and cleaned up
        time.sleep(0.05)
    second = cli(["train", "lstm_row"], cwd=p)
    first.kill()
    first.wait()
    _one_line(second, 1, "`lstmvision train lstm_row` is already running (pid")
    assert not stale.exists()


def test_work_folder_deleted_mid_run_is_one_line_or_recovered(p, set_params):
    proc = _training_past_its_first_checkpoint(p, set_params, epochs=6)
    shutil.rmtree(p / ".lstmvision")
    _, err = proc.communicate(timeout=300)
    assert "Traceback" not in err, err[-3000:]
    if proc.returncode:  # the best checkpoint went with the folder: say so
        assert proc.returncode == 1 and err.strip().splitlines()[-1].startswith("error: ") and "vanished" in err
    else:  # a better epoch came after the deletion: the run finished
        assert (p / "models/classification/lstm_row/s1/model.pt").exists()


def test_a_new_tracking_store_starts_new_runs_instead_of_crashing(p, cli, dvc, set_params):
    assert cli(["train", "lstm_row"], cwd=p).returncode == 0
    # An interrupted run (its checkpoint exists, no result) resumed against a fresh store:
    work = next((p / ".lstmvision/work").glob("lstm_row_s1/*"))
    (work / "result.json").unlink()
    (p / "mlflow.db").unlink()
    proc = cli(["train", "lstm_row"], cwd=p)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "starting a new run" in proc.stderr and len(_runs(p)) == 1
    for stage in (["evaluate", "lstm_row"],):
        assert cli(stage, cwd=p).returncode == 0


def test_a_truncated_checkpoint_is_discarded_with_a_warning(p, cli):
    assert cli(["train", "lstm_row"], cwd=p).returncode == 0
    work = next((p / ".lstmvision/work").glob("lstm_row_s1/*"))
    (work / "result.json").unlink()
    last = work / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:100])
    proc = cli(["train", "lstm_row"], cwd=p)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "unreadable" in proc.stderr and "training from the start" in proc.stderr
    assert (p / "models/classification/lstm_row/s1/model.pt").exists()


def test_an_unreachable_server_in_params_fails_fast(p, cli, set_params):
    set_params(p, **{"tracking.uri": "http://127.0.0.1:9", "tracking.timeout_s": 2})
    started = time.monotonic()
    _one_line(cli(["train", "lstm_row"], cwd=p), 1, "MLflow server http://127.0.0.1:9 unreachable")
    assert time.monotonic() - started < 60 and no_model_files(p)


def test_a_locked_store_is_one_line(p, cli):
    db = sqlite3.connect(p / "mlflow.db", timeout=1)
    db.execute("CREATE TABLE IF NOT EXISTS hold (x)")
    db.execute("BEGIN EXCLUSIVE")
    try:
        proc = cli(["train", "lstm_row"], cwd=p, timeout=300)
    finally:
        db.rollback()
        db.close()
    _one_line(proc, 1, "MLflow store sqlite:///")
    assert no_model_files(p)


def test_metrics_that_cannot_be_written_leave_eval_as_it_was(p, cli):
    assert cli(["train", "lstm_row"], cwd=p).returncode == 0
    (p / "metrics").write_text("a file where a folder should be")
    (p / "eval" / "lstm_row").mkdir(parents=True)
    (p / "eval" / "lstm_row" / "before.txt").write_text("old")
    _one_line(cli(["evaluate", "lstm_row"], cwd=p), 1, "metrics")
    assert sorted(x.name for x in (p / "eval" / "lstm_row").iterdir()) == ["before.txt"]


def test_gate_refuses_nan_null_and_broken_files(reproduced, cli):
    p = reproduced  # the tiny profile's real metrics (conftest.tiny_repro)
    assert cli(["check", "--update"], cwd=p).returncode == 0
    baseline = p / "baselines" / "default.json"
    good = baseline.read_text()
    assert cli(["check"], cwd=p).returncode == 0

    metric = p / "metrics" / "lstm_row.json"
    real = metric.read_text()
    for broken in ('{"test": {"accuracy": {"mean": NaN, "std": 0.0, "n": 1}}}',
                   '{"test": {"accuracy": {"mean": null, "std": 0.0, "n": 1}}}',
                   '{"test": {"accuracy": {"mean": "0.9", "std": 0.0, "n": 1}}}', '{"test": {"accur'):
        metric.write_text(broken)
        _one_line(cli(["check", "--update"], cwd=p), 2, "metrics/lstm_row.json")
        assert baseline.read_text() == good  # the baseline is never disarmed
        _one_line(cli(["check"], cwd=p), 2, "metrics/lstm_row.json")
    metric.write_text(real)

    baseline.write_text(good[: len(good) // 2])
    _one_line(cli(["check"], cwd=p), 2, "baselines/default.json: not valid JSON")
    entries = json.loads(good)
    del entries["lstm_row"]
    baseline.write_text(json.dumps(entries))
    proc = cli(["check"], cwd=p)
    assert proc.returncode == 1 and "NO BASELINE" in proc.stdout and "lstm_row" in proc.stdout


def test_profile_names_and_overlays(p, cli):
    before = (p / "params.yaml").read_text()
    _one_line(cli(["profile", "../params"], cwd=p), 2, "no profile '../params'")
    (p / "profiles" / "broken.yaml").write_text("data: [1,\n")
    _one_line(cli(["profile", "broken"], cwd=p), 2, "broken.yaml: not valid YAML")
    (p / "profiles" / "list.yaml").write_text("- 1\n- 2\n")
    _one_line(cli(["profile", "list"], cwd=p), 2, "list.yaml: the top level must be a mapping")
    (p / "profiles" / "loop_a.yaml").write_text("extends: loop_b\nseeds: [1]\n")
    (p / "profiles" / "loop_b.yaml").write_text("extends: loop_a\n")
    _one_line(cli(["profile", "loop_a"], cwd=p), 2, "'loop_a' extends itself through loop_a -> loop_b")
    (p / "profiles" / "orphan.yaml").write_text("extends: nosuch\n")
    _one_line(cli(["profile", "orphan"], cwd=p), 2, "no profile 'nosuch'")
    (p / "profiles" / "odd.yaml").write_text("extends: [paper]\n")
    _one_line(cli(["profile", "odd"], cwd=p), 2, "odd.yaml: extends must name one profile")
    assert (p / "params.yaml").read_text() == before


def test_benchmark_sr_refuses_bad_models_and_outputs_early(reproduced, cli, tmp_path):
    p = reproduced  # trained lsrcnn and lstm_row (conftest.tiny_repro)
    images = p / "data" / "raw" / "skimage_test"
    model = p / "models" / "sr" / "lsrcnn" / "s1" / "x2"

    def bench(*extra, model_arg="lsrcnn"):
        return cli(["benchmark-sr", "--model", model_arg, "--hr-dir", str(images), "--scale", "2", *extra], cwd=p)

    _one_line(bench("--json", str(tmp_path)), 2, "is a folder")
    _one_line(bench("--json", str(tmp_path / "missing" / "x.json")), 2, "cannot write into")
    _one_line(bench(model_arg=str(p / "models" / "classification" / "lstm_row" / "s1")), 2, "is a classification model")

    spec = (model / "model.json").read_text()
    (model / "model.json").write_text(spec[:20])
    _one_line(bench(), 1, "model.json: not valid JSON")
    (model / "model.json").write_text(json.dumps({**json.loads(spec), "arch": "transformer"}))
    _one_line(bench(), 1, "unknown architecture 'transformer'")
    (model / "model.json").write_text(json.dumps({k: v for k, v in json.loads(spec).items() if k != "model"}))
    _one_line(bench(), 1, "incomplete, missing model")
    (model / "model.json").write_text(spec)
    (model / "model.pt").write_bytes(b"not a checkpoint")
    _one_line(bench(), 1, "not a usable exported model")


def test_flat_images_give_valid_json(p, cli, tmp_path):
    from PIL import Image

    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("L", (64, 64), 128).save(flat / "grey.png")
    out = tmp_path / "r.json"
    proc = cli(["benchmark-sr", "--model", "bicubic", "--hr-dir", str(flat), "--scale", "2", "--json", str(out)],
               cwd=p)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}"))
    assert result["psnr"] == 100.0  # identical after the protocol: capped, as common SR evaluation code does


def test_help_lists_the_valid_names(p, cli):
    train = cli(["train", "--help"], cwd=p, env={"COLUMNS": "400"})
    assert train.returncode == 0 and "lstm_row, rnn_row" in train.stdout and "cnn_sr" in train.stdout
    profile = cli(["profile", "--help"], cwd=p, env={"COLUMNS": "400"})
    assert profile.returncode == 0 and all(f"{n}," in profile.stdout or f"{n}\n" in profile.stdout
                                           for n in ("ci", "gpu", "paper"))
