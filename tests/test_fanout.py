"""`lstmvision fanout` on real engines: two local processes at once, and a job array on a real single-node
SLURM cluster (tests/helpers/slurm.py). Either way the `dvc repro` after the jobs trains nothing and records
what a sequential `dvc repro` writes: the metrics equal the session's sequential run byte for byte (the tiny
profile fixes the CPU threads of a training, so its bits do not depend on how many run at once)."""

import os
import re
import shutil
import subprocess
import sys
import time

import mlflow
import pytest

AS_TINY_REPRO = {"data.sr.benchmarks": ["set5"], "data.mirror": "no-mirror"}  # conftest.tiny_repro's params
TRAININGS = {"lstm_row_s1", "lstm_row_s2", "lsrcnn_x2_s1", "lsrcnn_x2_s2"}
EVALUATED = ["evaluate_classification", "evaluate_sr"]  # the figures compared; the report is tested elsewhere


def _runs(project) -> dict[str, list]:
    """Run name -> its MLflow runs, over both experiments of the project's store."""
    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    found: dict[str, list] = {}
    for experiment in ("classification", "sr"):
        for run in client.search_runs([client.get_experiment_by_name(experiment).experiment_id]):
            found.setdefault(run.info.run_name, []).append(run)
    return found


def _same_metrics(project, reference) -> None:
    for variant in ("lstm_row", "lsrcnn"):
        path = f"metrics/{variant}.json"
        assert (project / path).read_bytes() == (reference / path).read_bytes(), path


def _fanout(cli, project, *args, env=None):
    return cli(["fanout", *args], project, env=env, timeout=900)


@pytest.mark.slow
def test_two_local_jobs_record_what_a_sequential_repro_does(tiny, tiny_repro, cli, dvc, set_params):
    """Two runs with the same params give identical metrics: the session's sequential `dvc repro` and this
    one, whose trainings ran two at a time, logging to one SQLite store at once."""
    set_params(tiny, **AS_TINY_REPRO)
    proc = _fanout(cli, tiny, *EVALUATED, "--executor", "local", "--jobs", "2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert sorted(re.findall(r"\[fanout\] finished (\S+) in", out)) == sorted(TRAININGS)
    assert "(2 running," in out  # two at once
    assert " epoch " not in out  # epoch lines are in the jobs' logs: `dvc repro` trained nothing
    for t in TRAININGS:
        log = next((tiny / ".lstmvision/fanout").glob(f"*/{t}.log")).read_text()
        assert "epoch 3/3" in log and "srun" not in log  # quiet, whether or not SLURM's tools are installed
    _same_metrics(tiny, tiny_repro)
    runs = _runs(tiny)
    assert set(runs) == TRAININGS and all(len(r) == 1 and r[0].info.status == "FINISHED" for r in runs.values())
    assert {r[0].data.params["cluster"] for r in runs.values()} == {"none"}
    assert "Data and pipelines are up to date" in dvc(tiny, "status", *EVALUATED).stdout


@pytest.mark.slow
def test_a_training_running_elsewhere_is_not_started_twice(tiny, cli, set_params):
    from pipeline.core.atomic import job_lock

    set_params(tiny, **AS_TINY_REPRO)
    with job_lock(tiny / ".lstmvision/locks/train-lsrcnn_x2_s1.lock", "test"):
        proc = _fanout(cli, tiny, "train_sr", "--jobs", "2")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == ("error: lsrcnn_x2_s1: already being trained by another "
                                                    "process; wait for it, then run fanout again")
    assert not (tiny / ".lstmvision/fanout").exists()


def test_a_job_names_one_training(tiny, cli):
    proc = cli(["train", "lsrcnn", "--seed", "7"], tiny)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: train lsrcnn: a single training needs --seed (one of 1, 2) "
                                   "and --scale (one of 2)")


def test_an_unknown_target_is_one_line(tiny, cli):
    proc = cli(["fanout", "evaluate_nothing"], tiny)
    assert proc.returncode == 2 and not (tiny / "data").exists()
    assert proc.stderr.strip() == ("error: fanout evaluate_nothing: Stage 'evaluate_nothing' not found inside "
                                   "'dvc.yaml' file")


def test_cores_are_shared_between_local_jobs_and_gpus_given_one_each():
    from pipeline.fanout.local import slots

    cores = os.cpu_count()
    share = str(max(1, cores // 2))
    assert slots(2, 0, "auto") == [{"OMP_NUM_THREADS": share, "MKL_NUM_THREADS": share}] * 2
    assert slots(3, 0, 1)[0]["OMP_NUM_THREADS"] == "1"
    assert [s["CUDA_VISIBLE_DEVICES"] for s in slots(8, 2, "auto")] == ["0", "1"]  # one job per device


def test_the_job_array_asks_slurm_for_what_params_say(tmp_path, tiny):
    from pipeline.config.schema import SlurmJobs, load_params
    from pipeline.fanout.jobs import Job
    from pipeline.fanout.slurm import script
    from pipeline.training.spec import Training

    p = load_params(tiny / "params.yaml")
    jobs = [Job(Training("lsrcnn", p.variants["lsrcnn"], p, s, 2), "train_sr", tmp_path / "r") for s in (1, 2)]
    cfg = SlurmJobs(partition="gpu", cpus_per_task=4, gpus=1, mem="8G", time="02:00:00")
    text = script(jobs, 1, cfg, tiny, tmp_path).read_text()
    for directive in ("--array=0-1%1", "--cpus-per-task=4", "--partition=gpu", "--gres=gpu:1", "--mem=8G",
                      "--time=02:00:00", f"--chdir={tiny}", f"--output={tmp_path}/%a.log"):
        assert f"#SBATCH {directive}\n" in text
    lines = (tmp_path / "commands.txt").read_text().splitlines()
    assert [line.split()[-4:] for line in lines] == [["--seed", "1", "--scale", "2"], ["--seed", "2", "--scale", "2"]]
    assert "srun --ntasks=1" in text and "OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK" in text


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, what
        time.sleep(0.2)


@pytest.mark.slow
def test_slurm_job_array_failures_cancellation_and_resume(slurm, tiny, tiny_repro, cli, dvc, set_params):
    set_params(tiny, **AS_TINY_REPRO, **{"fanout.slurm.cpus_per_task": 1, "fanout.slurm.mem": "1G"})
    proc = _fanout(cli, tiny, *EVALUATED, "--executor", "slurm", "--jobs", "4", env=slurm)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "submitted SLURM job array" in proc.stdout
    assert sorted(re.findall(r"\[fanout\] finished (\S+) in", proc.stdout)) == sorted(TRAININGS)
    assert " epoch " not in proc.stdout  # the `dvc repro` after the jobs trained nothing
    _same_metrics(tiny, tiny_repro)
    runs = _runs(tiny)
    assert set(runs) == TRAININGS and all(len(r) == 1 and r[0].info.status == "FINISHED" for r in runs.values())
    assert all(r[0].data.params["cluster"] == "slurm" and re.fullmatch(r"\d+_\d+", r[0].data.tags["slurm_job"])
               for r in runs.values())  # Lightning took SLURM's environment; the run names its array task

    # A third seed. A training that cannot write its work folder fails in its job; the other one stays.
    set_params(tiny, seeds=[1, 2, 3])
    blocked = tiny / ".lstmvision/work/lsrcnn_x2_s3"
    blocked.write_text("not a folder")
    proc = _fanout(cli, tiny, "train_classification", "train_sr", "--executor", "slurm", "--jobs", "2", env=slurm)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    failed = [line for line in proc.stderr.splitlines() if line.startswith("error: lsrcnn_x2_s3 ")]
    assert len(failed) == 1 and "FAILED, exit code 1" in failed[0], proc.stderr
    assert "lsrcnn_x2_s3" in open(failed[0].rsplit("; log ", 1)[1]).read()
    assert proc.stderr.strip().splitlines()[-1].startswith("error: 1 of 2 trainings failed")
    assert list((tiny / ".lstmvision/work/lstm_row_s3").glob("*/result.json"))  # kept
    assert "Running stage" not in proc.stdout.split("[fanout] 2 trainings")[1]  # no `dvc repro` after a failure

    # Fixed, and cancelled midway (scancel): reported; the next fanout resumes it from its checkpoint.
    blocked.unlink()
    logs = tiny / ".lstmvision/fanout"
    shutil.rmtree(logs)
    env = {k: v for k, v in {**os.environ, **slurm}.items() if k != "MLFLOW_TRACKING_URI"}
    head = subprocess.Popen([sys.executable, "-m", "stages.cli", "fanout", "train_sr", "--executor", "slurm",
                             "--jobs", "2"], cwd=tiny, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    _wait_for(lambda: any("epoch 1/3" in p.read_text() for p in logs.glob("*/0.log")), 300, "no epoch ended")
    queued = subprocess.run(["squeue", "-h", "-r", "-o", "%i %K"], env=slurm, capture_output=True, text=True).stdout
    task = next(line.split()[0] for line in queued.splitlines() if line.split()[1] == "0")
    subprocess.run(["scancel", task], env=slurm, check=True)
    out, err = head.communicate(timeout=300)
    assert head.returncode == 1, out + err
    assert re.search(r"error: lsrcnn_x2_s3 \(train_sr\) failed: SLURM job \d+_0 CANCELLED", err), err
    shutil.rmtree(logs)
    proc = _fanout(cli, tiny, "train_sr", "--executor", "slurm", "--jobs", "2", env=slurm)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "resuming from" in next(logs.glob("*/0.log")).read_text()
    (resumed,) = _runs(tiny)["lsrcnn_x2_s3"]
    assert resumed.info.status == "FINISHED"
