"""Sources (embedded, mirror, URL), image loading edge cases, and patch extraction."""

import gzip
import hashlib
import io
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.config.schema import UrlSource
from pipeline.core.errors import ImageError, SourceError
from pipeline.data.idx import idx_to_arrays, read_idx
from pipeline.data.patches import extract_dataset, extract_pairs, to_y8
from pipeline.data.sources import MIRROR_SETS, MirrorSet, download_files, materialize
from pipeline.imaging.images import load_folder, load_image
from pipeline.imaging.resize import imresize


def test_embedded_mnist(tmp_path):
    assert materialize("mnist_embedded", tmp_path, None, {}) == "embedded"
    with np.load(tmp_path / "arrays.npz") as z:
        assert z["x"].shape == (5000, 28, 28) and z["x"].dtype == np.uint8
        assert np.bincount(z["y"]).tolist() == [500] * 10


def test_embedded_images_are_disjoint(tmp_path):
    for name, folder in (("skimage_train", "a"), ("skimage_test", "b")):
        (tmp_path / folder).mkdir()
        materialize(name, tmp_path / folder, None, {})
    train = {p.name for p in (tmp_path / "a").iterdir()}
    test = {p.name for p in (tmp_path / "b").iterdir()}
    assert train and test and not train & test


def _fake_mirror(root, files):
    folder = root / MIRROR_SETS["set5"].folder
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def test_mirror_files_are_verified(tmp_path, mirror):
    out = tmp_path / "out"
    out.mkdir()
    assert materialize("set5", out, mirror, {}).startswith("mirror:")
    assert sorted(p.name for p in out.iterdir()) == sorted(MIRROR_SETS["set5"].checksums)


def test_corrupt_mirror_is_refused(tmp_path):
    _fake_mirror(tmp_path / "mirror", {name: b"garbage" for name in MIRROR_SETS["set5"].checksums})
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(SourceError, match="does not match its recorded sha256"):
        materialize("set5", out, tmp_path / "mirror", {})
    assert list(out.iterdir()) == []


def test_missing_everything_says_what_to_do(tmp_path):
    with pytest.raises(SourceError, match="no mirror configured and no URL source"):
        materialize("set14", tmp_path, None, {})


def test_url_source_over_http(tmp_path, file_server):
    buf = io.BytesIO()
    png = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 200, 30)).save(png, format="PNG")
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("bundle/HR/img.png")
        info.size = len(png.getvalue())
        tar.addfile(info, io.BytesIO(png.getvalue()))
    blob = buf.getvalue()
    file_server.files["/set.tgz"] = blob
    source = UrlSource(url=f"{file_server.url}/set.tgz", sha256=hashlib.sha256(blob).hexdigest(), subdir="bundle/HR")
    origin = materialize("set14", tmp_path, None, {"set14": source})
    assert origin.startswith("url:") and [p.name for p in tmp_path.iterdir()] == ["img.png"]


@pytest.mark.parametrize("mode,expect_channels", [("L", 1), ("RGB", 3), ("RGBA", 3), ("P", 3), ("I;16", 1)])
def test_image_modes_are_converted(tmp_path, mode, expect_channels):
    path = tmp_path / "x.png"
    if mode == "I;16":
        Image.fromarray(np.full((8, 9), 65535, np.uint16)).save(path)
    else:
        Image.new(mode, (9, 8)).save(path)
    img = load_image(path)
    assert img.shape == (expect_channels, 8, 9) and 0 <= img.min() and img.max() <= 1
    if mode == "I;16":
        assert img.max() == 1


def test_bit_depth_comes_from_the_mode_not_the_values(tmp_path):
    dark16 = tmp_path / "dark16.png"
    Image.fromarray(np.full((8, 9), 200, np.uint16)).save(dark16)  # 16-bit, every value <= 255
    assert load_image(dark16).max().item() == pytest.approx(round(200 / 65535 * 255) / 255)
    floats = tmp_path / "f.tif"
    Image.fromarray(np.full((8, 9), 0.5, np.float32)).save(floats)
    with pytest.raises(ImageError, match="no agreed white level") as err:
        load_image(floats)
    assert "\n" not in str(err.value)


def test_decompression_bombs_are_skipped_not_fatal(tmp_path, monkeypatch, caplog):
    Image.new("L", (64, 64)).save(tmp_path / "big.png")
    Image.new("L", (16, 16)).save(tmp_path / "ok.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64x64 is over twice this: Pillow refuses it
    with pytest.raises(ImageError, match="decompression bomb"):
        load_image(tmp_path / "big.png")
    assert [name for name, _ in load_folder(tmp_path)] == ["ok"] and "big.png" in caplog.text


def test_exif_rotation_is_applied(tmp_path):
    path = tmp_path / "r.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 on display
    Image.new("RGB", (20, 10)).save(path, exif=exif)
    assert load_image(path).shape == (3, 20, 10)


def test_bad_files_are_skipped_with_warning(tmp_path, caplog):
    Image.new("RGB", (64, 64)).save(tmp_path / "good.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "tiny.png")
    (tmp_path / "text.png").write_text("not an image")
    full = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(full, format="PNG")
    (tmp_path / "truncated.png").write_bytes(full.getvalue()[:60])
    images = load_folder(tmp_path, min_size=32)
    assert [name for name, _ in images] == ["good"]
    warned = caplog.text
    assert "text.png" in warned and "truncated.png" in warned and "tiny.png" in warned
    with pytest.raises(ImageError, match="text.png"):
        load_image(tmp_path / "text.png")


def test_patches_are_aligned_and_deterministic():
    img = torch.rand(3, 70, 66, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    lr, hr = extract_pairs(img, 2, 16, 8, augment=False)
    assert lr.shape[1:] == (1, 8, 8) and hr.shape[1:] == (1, 16, 16) and len(lr) == len(hr)
    full_lr = to_y8(imresize(img[:, :70, :66], 0.5, quantize=True)).to(torch.uint8).numpy()
    assert np.array_equal(lr[0, 0], full_lr[:8, :8])
    assert np.array_equal(lr[1, 0], full_lr[:8, 4:12])
    lr_aug, _ = extract_pairs(img, 2, 16, 8, augment=True)
    assert len(lr_aug) == 8 * len(lr)
    a = extract_dataset([("a", img)], 2, 16, 8, True, 50, seed=1)
    b = extract_dataset([("a", img)], 2, 16, 8, True, 50, seed=1)
    assert len(a[0]) == 50 and np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_image_smaller_than_patch_gives_no_patches():
    lr, hr = extract_pairs(torch.rand(3, 10, 10, dtype=torch.float64), 2, 16, 8, augment=False)
    assert lr.shape == (0, 1, 8, 8) and hr.shape == (0, 1, 16, 16)


def _idx(array: np.ndarray) -> bytes:
    header = b"\0\0\x08" + bytes([array.ndim]) + np.array(array.shape, ">u4").tobytes()
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def _small_mnist() -> tuple[dict, dict, MirrorSet]:
    """An MNIST-shaped IDX set of 30 + 10 images: (arrays, gzipped files, its catalogue entry)."""
    rng = np.random.default_rng(0)
    arrays = {"train-images-idx3-ubyte.gz": rng.integers(0, 255, (30, 28, 28)),
              "train-labels-idx1-ubyte.gz": np.arange(30) % 10,
              "t10k-images-idx3-ubyte.gz": rng.integers(0, 255, (10, 28, 28)),
              "t10k-labels-idx1-ubyte.gz": np.arange(10)}
    blobs = {name: _idx(a) for name, a in arrays.items()}
    return arrays, blobs, MirrorSet("MNIST", {name: hashlib.sha256(b).hexdigest() for name, b in blobs.items()})


def test_idx_sets_download_file_by_file_and_keep_their_test_split(tmp_path, file_server):
    arrays, blobs, spec = _small_mnist()
    out = tmp_path / "mnist"
    out.mkdir()
    for name, blob in blobs.items():
        file_server.files[f"/good/{name}"] = blob
    base = download_files(spec, (f"{file_server.url}/gone/", f"{file_server.url}/good/"), out)
    assert base.endswith("/good/")
    idx_to_arrays(out)
    assert [p.name for p in out.iterdir()] == ["arrays.npz"]
    with np.load(out / "arrays.npz") as z:
        assert np.array_equal(z["x_train"], arrays["train-images-idx3-ubyte.gz"])
        assert np.array_equal(z["y_test"], np.arange(10))

    (tmp_path / "bad.gz").write_bytes(gzip.compress(b"\x01\x02\x03\x04"))
    with pytest.raises(SourceError, match="not an IDX file"):
        read_idx(tmp_path / "bad.gz")


def test_full_mnist_comes_from_the_mirror_offline_or_says_which_files_to_put_where(tmp_path, file_server,
                                                                                  monkeypatch):
    """The GPU profile reads full MNIST: a GPU box is often offline, so the mirror serves it like the URLs do."""
    arrays, blobs, spec = _small_mnist()
    monkeypatch.setitem(MIRROR_SETS, "mnist", spec)  # the catalogue's sha256 of these files, not the real ones
    dead = {"mnist": (f"{file_server.url}/gone/",)}
    empty = tmp_path / "mirror"
    (empty / "Set5").mkdir(parents=True)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(SourceError) as missing:
        materialize("mnist", out, empty, {}, dead)
    message = str(missing.value)
    assert "\n" not in message and f"put {', '.join(sorted(blobs))} into {empty / 'MNIST'}" in message

    for name, blob in blobs.items():
        (empty / "MNIST").mkdir(exist_ok=True)
        (empty / "MNIST" / name).write_bytes(blob)
    assert materialize("mnist", out, empty, {}, dead) == f"mirror:{empty / 'MNIST'}"
    with np.load(out / "arrays.npz") as z:
        assert np.array_equal(z["x_train"], arrays["train-images-idx3-ubyte.gz"]) and len(z["y_test"]) == 10


def test_split_keeps_a_published_test_split(project, cli, set_params):
    raw = project / "data" / "raw" / "mnist"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(1)
    np.savez(raw / "arrays.npz", x_train=rng.integers(0, 255, (200, 28, 28), dtype=np.uint8),
             y_train=np.arange(200) % 10, x_test=rng.integers(0, 255, (50, 28, 28), dtype=np.uint8),
             y_test=np.arange(50) % 10)
    set_params(project, **{"data.classification.source": "mnist"})
    proc = cli(["split"], cwd=project)
    assert proc.returncode == 0, proc.stderr
    with np.load(project / "data/prepared/classification/test.npz") as z:
        assert len(z["y"]) == 50
    with np.load(project / "data/prepared/classification/train.npz") as z:
        assert len(z["y"]) == 180  # val_fraction 0.1 of the published training split
