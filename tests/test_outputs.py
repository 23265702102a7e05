"""What the user tools write, and what they refuse before writing: only a regular file is replaced by a
rename (a symlink is followed, a FIFO or a device is written through, '-' is stdout), one run never
overwrites its own outputs or, without --overwrite, existing ones; numbers outside their domain are one
line; a model read from the MLflow store leaves no temporary copy. Fast: tiny untrained models, no
`dvc repro`."""

import json
import os
import stat
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pytest
import torch
from PIL import Image, ImageDraw

from pipeline.core.atomic import unwritable, write_text
from pipeline.imaging.images import save_image
from pipeline.tasks.models import build, save_model

SR_SPEC = {"name": "lsrcnn", "task": "sr", "arch": "lsrcnn", "view": "image",
           "model": {"features": 4, "hidden": 4, "attention": "none", "ablate_body": False},
           "data_args": {"scale": 2, "channels": 1}, "seed": 1, "data_seed": 42}
CLASSIFIER_SPEC = {"name": "lstm_row", "task": "classification", "arch": "recurrent", "view": "rows",
                   "model": {"cell": "lstm", "hidden": 8},
                   "data_args": {"input_size": 28, "num_classes": 10, "image_size": 28}, "seed": 1, "data_seed": 42,
                   "input": {"polarity": "light_on_dark", "mean": 0.13, "std": 0.31,
                             "class_names": [str(c) for c in range(10)]}}


def _model(folder: Path, spec: dict) -> Path:
    """An exported, untrained model: what the commands read, not what it predicts."""
    torch.manual_seed(0)
    save_model(build(spec["arch"], spec["data_args"], spec["model"]), spec, folder)
    return folder


@pytest.fixture
def files(tmp_path):
    """An SR model, a classifier, a digit and two photos with the same name in different folders."""
    digit = Image.new("L", (20, 20), 30)
    ImageDraw.Draw(digit).line([(10, 3), (10, 16)], fill=220, width=2)  # a 1: classify refuses an image with no ink
    digit.save(tmp_path / "digit.png")
    for folder, colour in (("a", (30, 60, 90)), ("b", (90, 60, 30))):
        (tmp_path / folder).mkdir()
        Image.new("RGB", (20, 16), colour).save(tmp_path / folder / "same.png")
    return {"sr": _model(tmp_path / "sr", SR_SPEC), "classifier": _model(tmp_path / "classifier", CLASSIFIER_SPEC),
            "digit": tmp_path / "digit.png", "a": tmp_path / "a" / "same.png", "b": tmp_path / "b" / "same.png"}


def _one_line(proc, code: int, needle: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr[-2000:])
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), proc.stderr[-2000:]
    assert needle in proc.stderr, proc.stderr


@contextmanager
def _fifo_reader(path: Path):
    """A named pipe at ``path`` with a reader: yields the list that receives what was written to it."""
    os.mkfifo(path)
    got = []

    def read():
        with open(path, "rb") as fh:
            got.append(fh.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield got
    finally:
        reader.join(10)
        if reader.is_alive():  # nobody opened it: release the reader's open() with an empty write
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            reader.join(10)


# The writer's rule, in process.

def test_write_text_replaces_a_regular_file_and_follows_a_symlink(tmp_path):
    regular = tmp_path / "r.json"
    regular.write_text("old")
    write_text(regular, "new")
    assert regular.read_text() == "new" and os.listdir(tmp_path) == ["r.json"]  # no temporary sibling left
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(regular.stat().st_mode) == 0o666 & ~umask

    link, dangling = tmp_path / "link.json", tmp_path / "dangling.json"
    link.symlink_to(regular)
    dangling.symlink_to(tmp_path / "created.json")
    write_text(link, "through the link")
    write_text(dangling, "made")
    assert link.is_symlink() and regular.read_text() == "through the link"
    assert dangling.is_symlink() and (tmp_path / "created.json").read_text() == "made"


def test_write_text_writes_through_a_fifo_a_device_and_stdout(tmp_path, capsys):
    fifo = tmp_path / "pipe"
    with _fifo_reader(fifo) as got:
        write_text(fifo, "to the reader")
    assert got == [b"to the reader"] and stat.S_ISFIFO(fifo.lstat().st_mode)
    if Path("/dev/full").is_char_device():
        with pytest.raises(OSError, match="No space left on device") as raised:
            write_text(Path("/dev/full"), "x")
        assert raised.value.filename == "/dev/full" and Path("/dev/full").is_char_device()
    write_text(Path("-"), "on stdout\n")
    assert capsys.readouterr().out == "on stdout\n"


def test_save_image_follows_the_same_rule(tmp_path):
    target = tmp_path / "real.png"
    link = tmp_path / "link.png"
    link.symlink_to(target)
    save_image(torch.zeros(3, 4, 5), link)
    assert link.is_symlink() and Image.open(target).size == (5, 4)
    with _fifo_reader(tmp_path / "pipe.png") as got:
        save_image(torch.zeros(1, 4, 5), tmp_path / "pipe.png")
    assert got[0].startswith(b"\x89PNG") and stat.S_ISFIFO((tmp_path / "pipe.png").lstat().st_mode)


def test_unwritable_says_why_before_the_work(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "to_folder").symlink_to(tmp_path)
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    assert unwritable(tmp_path / "new.json") is None and unwritable(Path("-")) is None
    assert unwritable(tmp_path / "pipe") is None  # written through, not replaced: its folder does not matter
    assert unwritable(tmp_path) == unwritable(tmp_path / "to_folder") == "is a folder"
    assert unwritable(tmp_path / "missing" / "x.json") == f"cannot write into {tmp_path / 'missing'}"
    assert "symbolic links" in unwritable(tmp_path / "loop")


# Every command's --json, and upscale's images.

@pytest.mark.parametrize("command", ["classify", "upscale", "benchmark-sr"])
def test_every_json_option_writes_through_a_fifo(command, files, cli, tmp_path):
    args = {"classify": ["classify", str(files["digit"]), "--model", str(files["classifier"])],
            "upscale": ["upscale", str(files["a"]), "--out", str(tmp_path / "out"), "--model", str(files["sr"])],
            "benchmark-sr": ["benchmark-sr", "--model", "bicubic", "--hr-dir", str(tmp_path / "a"),
                             "--scale", "2"]}[command]
    with _fifo_reader(tmp_path / "report.json") as got:
        proc = cli([*args, "--json", str(tmp_path / "report.json")], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(got[0]) and stat.S_ISFIFO((tmp_path / "report.json").lstat().st_mode)


@pytest.mark.parametrize("command", ["classify", "upscale", "benchmark-sr"])  # bench's: test_training.py
def test_json_to_stdout_is_all_of_stdout(command, files, cli, tmp_path):
    """`--json -`: stdout parses as JSON; the human lines go to stderr."""
    args = {"classify": ["classify", str(files["digit"]), "--model", str(files["classifier"])],
            "upscale": ["upscale", str(files["a"]), "--out", str(tmp_path / "out"), "--model", str(files["sr"])],
            "benchmark-sr": ["benchmark-sr", "--model", "bicubic", "--hr-dir", str(tmp_path / "a"), "--scale", "2"],
            }[command]
    proc = cli([*args, "--json", "-"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)
    assert {"classify": "digit.png\t", "upscale": "same_x2.png", "benchmark-sr": "mean "}[command] \
        in proc.stderr, proc.stderr[-2000:]


def test_json_to_a_full_device_is_one_line_and_the_device_stays(files, cli, tmp_path):
    if not Path("/dev/full").is_char_device():
        pytest.skip("no /dev/full")
    proc = cli(["classify", str(files["digit"]), "--model", str(files["classifier"]), "--json", "/dev/full"],
               tmp_path)
    _one_line(proc, 1, "/dev/full: No space left on device")
    assert Path("/dev/full").is_char_device()


def test_bench_checks_its_json_before_the_work(cli, tmp_path):
    _one_line(cli(["bench", "--json", str(tmp_path)], tmp_path), 2, "is a folder")


def test_upscale_follows_a_symlinked_output_and_writes_through_a_fifo(files, cli, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "same_x2.png").symlink_to(tmp_path / "kept.png")
    proc = cli(["upscale", str(files["a"]), "--out", str(out), "--model", str(files["sr"]), "--overwrite"],
               tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (out / "same_x2.png").is_symlink() and Image.open(tmp_path / "kept.png").size == (40, 32)

    (out / "same_x2.png").unlink()
    with _fifo_reader(out / "same_x2.png") as got:
        proc = cli(["upscale", str(files["a"]), "--out", str(out), "--model", str(files["sr"]), "--overwrite"],
                   tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert got[0].startswith(b"\x89PNG") and stat.S_ISFIFO((out / "same_x2.png").lstat().st_mode)


# One run's outputs.

def test_upscale_refuses_two_inputs_with_one_output_name(files, cli, tmp_path):
    proc = cli(["upscale", str(files["a"]), str(files["b"]), "--out", str(tmp_path / "out"), "--model",
                str(files["sr"])], tmp_path)
    _one_line(proc, 2, f"{files['a']} and {files['b']} would both be written to {tmp_path / 'out' / 'same_x2.png'}")
    assert not (tmp_path / "out").exists()


def test_upscale_replaces_an_existing_output_only_with_overwrite(files, cli, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "same_x2.png").write_bytes(b"the user's file")
    upscale = ["upscale", str(files["a"]), "--out", str(out), "--model", str(files["sr"])]
    _one_line(cli(upscale, tmp_path), 2, f"{out / 'same_x2.png'} already exists; --overwrite replaces it")
    assert (out / "same_x2.png").read_bytes() == b"the user's file"

    proc = cli([*upscale, "--overwrite"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert Image.open(out / "same_x2.png").size == (40, 32)

    # An input that is another input's output is not replaced, even when asked to.
    (out / "same_x2.png").rename(tmp_path / "a" / "same_x2.png")
    proc = cli(["upscale", str(tmp_path / "a" / "same_x2.png"), str(files["b"]), "--out", str(tmp_path / "a"),
                "--model", str(files["sr"]), "--overwrite"], tmp_path)
    _one_line(proc, 2, f"{tmp_path / 'a' / 'same_x2.png'} is also an input")
    assert not (tmp_path / "a" / "same_x2_x2.png").exists()


def test_upscale_writes_the_readable_images_and_names_each_refused_one(files, cli, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(files["a"].read_bytes()[:40])  # cut short
    out = tmp_path / "out"
    proc = cli(["upscale", str(broken), str(files["a"]), "--out", str(out), "--model", str(files["sr"]), "--json",
                str(tmp_path / "out.json")], tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(f"error: {broken}: not a readable image")
    assert sorted(p.name for p in out.iterdir()) == ["same_x2.png"]
    written = json.loads((tmp_path / "out.json").read_text())
    assert [r["file"] for r in written["images"]] == [str(files["a"])]
    assert [r["file"] for r in written["refused"]] == [str(broken)]


def test_upscale_shows_its_tiles_on_a_terminal_only(files, tmp_path):
    """A bar on a terminal's stderr; in a log (no terminal), nothing but the one line per finished image."""
    import fcntl
    import pty
    import struct
    import termios

    args = [sys.executable, "-m", "stages.cli", "upscale", str(files["a"]), "--out", str(tmp_path / "out"),
            "--model", str(files["sr"]), "--tile", "16", "--overwrite"]
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal's size
    proc = subprocess.run(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=follower, timeout=300)
    os.close(follower)
    drawn = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: all read
            break
        if not chunk:
            break
        drawn += chunk
    os.close(leader)
    assert proc.returncode == 0 and b"same.png: " in drawn and b"/2 [" in drawn, drawn  # 20x16: 2 tiles of 16
    logged = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert logged.returncode == 0 and logged.stderr == "" and logged.stdout.count("\n") == 1, logged


def test_upscale_help_states_overwrite(cli, tmp_path):
    proc = cli(["upscale", "--help"], tmp_path, env={"COLUMNS": "200"})
    assert proc.returncode == 0 and "--overwrite" in proc.stdout and "already exist" in proc.stdout


# Numbers outside their domain.

OUT_OF_DOMAIN = [
    (["upscale", "x.png", "--out", "o", "--scale", "0"], "--scale must be 2, 3 or 4, got 0"),
    (["upscale", "x.png", "--out", "o", "--scale", "5"], "--scale must be 2, 3 or 4, got 5"),
    (["upscale", "x.png", "--out", "o", "--seed", "-1"], "--seed must be at least 0, got -1"),
    (["upscale", "x.png", "--out", "o", "--tile", "8"], "--tile must be at least 16, got 8"),
    (["classify", "x.png", "--seed", "-1"], "--seed must be at least 0, got -1"),
    (["benchmark-sr", "--model", "m", "--hr-dir", ".", "--scale", "2", "--seed", "-2"], "--seed must be at least 0"),
    (["team", "server", "--db", "d", "--artifacts", "a", "--port", "0"], "--port must be between 1 and 65535, got 0"),
    (["team", "server", "--db", "d", "--artifacts", "a", "--port", "65536"], "--port must be between 1 and 65535"),
    (["team", "server", "--db", "d", "--artifacts", "a", "--workers", "0"], "--workers must be at least 1, got 0"),
]


@pytest.mark.parametrize(("args", "needle"), OUT_OF_DOMAIN, ids=[" ".join(args) for args, _ in OUT_OF_DOMAIN])
def test_numbers_outside_their_domain_are_one_line(args, needle, cli, tmp_path):
    _one_line(cli(args, tmp_path), 2, needle)


# Models read from the MLflow store.

@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A local MLflow store with one run per task holding model.pt and model.json: (uri, {task: run id})."""
    root = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("models", artifact_location=(root / "artifacts").as_uri())
    runs = {}
    for task, spec in (("classification", CLASSIFIER_SPEC), ("sr", SR_SPEC)):
        folder = _model(root / task, spec)
        runs[task] = client.create_run(experiment).info.run_id
        for file in ("model.pt", "model.json"):
            client.log_artifact(runs[task], str(folder / file))
    return uri, runs


def test_a_model_from_the_store_leaves_no_temporary_copy(store, files, cli, tmp_path):
    uri, runs = store
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {"MLFLOW_TRACKING_URI": uri, "TMPDIR": str(tmp)}
    out = tmp_path / "classes.json"
    proc = cli(["classify", str(files["digit"]), "--model", f"runs:/{runs['classification']}", "--json", str(out)],
               tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["images"][0]["class"] in CLASSIFIER_SPEC["input"]["class_names"]
    assert os.listdir(tmp) == []
    # Refused after the download (the wrong task) and before it (no such run): nothing left either.
    proc = cli(["upscale", str(files["a"]), "--out", str(tmp_path / "out"), "--model",
                f"runs:/{runs['classification']}"], tmp_path, env=env)
    _one_line(proc, 2, f"runs:/{runs['classification']} is a classification model, not a sr one")
    _one_line(cli(["classify", str(files["digit"]), "--model", "runs:/0123456789abcdef"], tmp_path, env=env), 2,
              "--model runs:/0123456789abcdef: no model.pt/model.json found")
    assert os.listdir(tmp) == []


def test_ctrl_c_while_loading_from_the_store_leaves_no_temporary_copy(store, tmp_path, monkeypatch):
    import tempfile

    from stages.tools import model_ref

    uri, runs = store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    loaded = []

    def interrupted(folder):
        loaded.append(sorted(p.name for p in Path(folder).iterdir()))
        raise KeyboardInterrupt

    monkeypatch.setattr(model_ref, "load_model", interrupted)
    with pytest.raises(KeyboardInterrupt):
        model_ref.load(f"runs:/{runs['sr']}", "sr")
    assert loaded == [["model.json", "model.pt"]] and os.listdir(tmp_path) == []
