"""Downloads that can be trusted: sha256 required, retries with backoff, resume, safe extraction.

Nothing half-done is left visible: a transfer lands in ``<target>.part`` and
is renamed only after its checksum matches; an archive is extracted into a
temporary folder beside the destination and moved into place only when every
member passed the safety checks.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from pipeline.errors import FetchError

log = logging.getLogger(__name__)

CHUNK = 1 << 20
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _transfer(url: str, part: Path, timeout: float) -> None:
    """Append the rest of ``url`` to ``part``, asking for a byte range when part is non-empty.

    A body shorter than the server announced raises ConnectionError, so the
    caller retries and resumes from the bytes that did arrive.
    """
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        # A server that ignores Range answers 200 with the whole body: start over.
        resumed = bool(have) and response.status == 206
        length = response.headers.get("Content-Length")
        expected = (have if resumed else 0) + int(length) if length is not None else None
        with open(part, "ab" if resumed else "wb") as fh:
            shutil.copyfileobj(response, fh, CHUNK)
    got = part.stat().st_size
    if expected is not None and got < expected:
        raise ConnectionError(f"transfer cut short at {got} of {expected} bytes")


def download(url: str, sha256: str, dest: Path, retries: int = 4, backoff: float = 0.5,
             timeout: float = 30.0) -> Path:
    """Download ``url`` to ``dest`` and verify it; a wrong checksum leaves no file behind.

    Connection errors and HTTP 5xx/429 are retried with exponential backoff,
    resuming from what arrived; other HTTP errors (404, 403, ...) fail at once.
    """
    dest = Path(dest)
    expected = sha256.lower()
    if dest.exists() and sha256_of(dest) == expected:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        try:
            _transfer(url, part, timeout)
            break
        except urllib.error.HTTPError as exc:
            if exc.code == 416:  # our partial file is already complete (or bogus)
                break
            if exc.code < 500 and exc.code != 429:
                part.unlink(missing_ok=True)
                raise FetchError(f"{url}: HTTP {exc.code} {exc.reason}") from None
            error = f"HTTP {exc.code}"
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            error = str(getattr(exc, "reason", exc))
        if attempt == retries:
            part.unlink(missing_ok=True)
            raise FetchError(f"{url}: failed after {retries + 1} attempts ({error})")
        log.warning("%s: %s, retrying (%d/%d)", url, error, attempt + 1, retries)
        time.sleep(backoff * 2**attempt)
    actual = sha256_of(part)
    if actual != expected:
        part.unlink(missing_ok=True)
        raise FetchError(f"{url}: sha256 mismatch (expected {expected}, got {actual})")
    part.replace(dest)
    return dest


def _safe_name(name: str, root: Path) -> Path:
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or (pure.parts and ":" in pure.parts[0]):
        raise FetchError(f"archive member '{name}' escapes the target folder")
    return root / pure


def _extract_tar(archive: Path, root: Path) -> None:
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for m in members:
            _safe_name(m.name, root)
            if not (m.isfile() or m.isdir()):
                raise FetchError(f"archive member '{m.name}' is a link or device file; refusing")
        tar.extractall(root, members=members, filter="data")


def _extract_zip(archive: Path, root: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            _safe_name(info.filename, root)
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise FetchError(f"archive member '{info.filename}' is a symbolic link; refusing")
        zf.extractall(root)


def is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def extract(archive: Path, into: Path) -> None:
    """Extract a .tar/.tar.gz/.tgz/.zip into ``into`` (merged), refusing unsafe members.

    Members are checked before anything is written, extraction happens in a
    sibling temporary folder, and only then are the files moved into ``into``.
    """
    into = Path(into)
    into.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=into.parent, prefix=f".{into.name}.") as tmp:
        staging = Path(tmp)
        try:
            if archive.name.lower().endswith(".zip"):
                _extract_zip(archive, staging)
            else:
                _extract_tar(archive, staging)
        except (tarfile.TarError, zipfile.BadZipFile) as exc:
            raise FetchError(f"{archive.name}: not a valid archive ({exc})") from None
        into.mkdir(exist_ok=True)
        for item in staging.iterdir():
            target = into / item.name
            if target.exists():
                if target.is_dir():
                    shutil.rmtree(target)
                else:
                    target.unlink()
            item.replace(target)


def fetch(url: str, sha256: str, into: Path, cache: Path | None = None) -> Path:
    """Download and verify ``url``; extract archives into ``into``, else place the file there."""
    into = Path(into)
    name = PurePosixPath(urllib.request.urlparse(url).path).name or "download"
    with tempfile.TemporaryDirectory() as tmp:
        downloaded = download(url, sha256, Path(cache or tmp) / name)
        if is_archive(name):
            extract(downloaded, into)
        else:
            into.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(downloaded, into / name)
    return into
