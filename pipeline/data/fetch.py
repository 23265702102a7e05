"""Downloads that can be trusted: sha256 required, retries with backoff, resume, safe extraction.

Nothing half-done is left visible: a transfer lands in ``<target>.part`` and
is renamed only after its checksum matches; an archive is extracted into a
temporary folder beside the destination and merged into place only when every
member passed the safety checks (no escaping paths, no links or devices, a
total size and a compression ratio within bounds, no existing file replaced by
different content). A transfer slower than ``MIN_RATE`` after a grace period
is abandoned, so a trickling server cannot hold a stage forever.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import shutil
import socket
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from pipeline.core.errors import FetchError

log = logging.getLogger(__name__)

CHUNK = 1 << 20
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")
MAX_EXTRACTED = 16 << 30  # bytes an archive may expand to
MAX_RATIO = 200  # expanded size / archive size: beyond this it is a decompression bomb, not a data set
MIN_RATE = 16 << 10  # bytes per second, averaged, once GRACE_S have passed
GRACE_S = 30.0


def http_url(url: str) -> str:
    """The URL as sent: http(s) only, non-ASCII and spaces percent-encoded; one line on anything else."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(f"{url}: not an http(s) URL")
    try:
        host = parts.hostname.encode("idna").decode("ascii")
    except UnicodeError:
        raise FetchError(f"{url}: invalid host name") from None
    netloc = host + (f":{parts.port}" if parts.port else "")
    path = urllib.parse.quote(parts.path, safe="/%:@!$&'()*+,;=-._~")
    query = urllib.parse.quote(parts.query, safe="=&%:/?+,;@!$'()*-._~")
    return urllib.parse.urlunsplit((parts.scheme, netloc, path, query, ""))


def file_name(url: str) -> str:
    """The file name a URL names, percent-decoded (``my%20set.zip`` -> ``my set.zip``)."""
    name = urllib.parse.unquote(PurePosixPath(urllib.parse.urlsplit(url).path).name)
    return name if name not in ("", ".", "..") and "/" not in name else "download"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _transfer(url: str, part: Path, timeout: float, grace_s: float, min_rate: float) -> None:
    """Append the rest of ``url`` to ``part``, asking for a byte range when part is non-empty.

    A body shorter than the server announced raises ConnectionError, so the
    caller retries and resumes from the bytes that did arrive.
    """
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=timeout) as response:
        # A server that ignores Range answers 200 with the whole body: start over.
        resumed = bool(have) and response.status == 206
        length = response.headers.get("Content-Length")
        expected = (have if resumed else 0) + int(length) if length is not None else None
        received = 0
        with open(part, "ab" if resumed else "wb") as fh:
            # read1: whatever has arrived, so a trickle is measured instead of waited on.
            while block := response.read1(CHUNK):
                fh.write(block)
                received += len(block)
                elapsed = time.monotonic() - started
                if elapsed > grace_s and received < min_rate * elapsed:
                    raise FetchError(f"{url}: slower than {min_rate / 1024:g} KiB/s after {elapsed:.0f} s; giving up")
    got = part.stat().st_size
    if expected is not None and got < expected:
        raise ConnectionError(f"transfer cut short at {got} of {expected} bytes")


def download(url: str, sha256: str, dest: Path, retries: int = 4, backoff: float = 0.5,
             timeout: float = 30.0, grace_s: float = GRACE_S, min_rate: float = MIN_RATE) -> Path:
    """Download ``url`` to ``dest`` and verify it; a wrong checksum leaves no file behind.

    Connection errors and HTTP 5xx/429 are retried with exponential backoff,
    resuming from what arrived; other HTTP errors (404, 403, ...) fail at once.
    """
    dest = Path(dest)
    url = http_url(url)
    expected = sha256.lower()
    if dest.exists() and sha256_of(dest) == expected:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        try:
            _transfer(url, part, timeout, grace_s, min_rate)
            break
        except urllib.error.HTTPError as exc:
            if exc.code == 416:  # our partial file is already complete (or bogus)
                break
            if exc.code < 500 and exc.code != 429:
                part.unlink(missing_ok=True)
                raise FetchError(f"{url}: HTTP {exc.code} {exc.reason}") from None
            error = f"HTTP {exc.code}"
        except http.client.InvalidURL as exc:  # permanent: retrying cannot help
            raise FetchError(f"{url}: invalid URL ({exc})") from None
        except FetchError:
            part.unlink(missing_ok=True)
            raise
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, socket.gaierror) and reason.errno == socket.EAI_NONAME:  # offline, or no such host
                raise FetchError(f"{url}: unknown host ({reason.strerror})") from None
            error = str(reason)
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


def _check_budget(archive: Path, total: int, max_bytes: int, max_ratio: float) -> None:
    if total > max_bytes:
        raise FetchError(f"{archive.name}: expands to {total / 2**30:.1f} GiB, over the {max_bytes / 2**30:.1f} GiB "
                         "limit; refusing")
    if total > max_ratio * max(archive.stat().st_size, 1) and total > CHUNK:
        raise FetchError(f"{archive.name}: expands {total / max(archive.stat().st_size, 1):.0f}-fold, over the "
                         f"{max_ratio:.0f}-fold limit (a decompression bomb?); refusing")


def _extract_tar(archive: Path, root: Path, max_bytes: int, max_ratio: float) -> None:
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for m in members:
            _safe_name(m.name, root)
            if not (m.isfile() or m.isdir()):
                raise FetchError(f"archive member '{m.name}' is a link or device file; refusing")
        _check_budget(archive, sum(m.size for m in members if m.isfile()), max_bytes, max_ratio)
        tar.extractall(root, members=members, filter="data")


def _extract_zip(archive: Path, root: Path, max_bytes: int, max_ratio: float) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            _safe_name(info.filename, root)
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise FetchError(f"archive member '{info.filename}' is a symbolic link; refusing")
        # zipfile reads at most each member's declared size, so the declared total bounds what is written.
        _check_budget(archive, sum(i.file_size for i in infos), max_bytes, max_ratio)
        zf.extractall(root)


def is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def _same_file(a: Path, b: Path) -> bool:
    return a.stat().st_size == b.stat().st_size and sha256_of(a) == sha256_of(b)


def _merge_plan(staging: Path, into: Path) -> list[tuple[Path, Path]]:
    """(staged file, destination) pairs; refuses any destination that exists with other content or type."""
    plan = []
    for item in sorted(staging.rglob("*")):
        target = into / item.relative_to(staging)
        if item.is_dir():
            if target.exists() and not target.is_dir():
                raise FetchError(f"archive folder '{item.relative_to(staging)}' would replace the file {target}; "
                                 "refusing")
            continue
        if target.is_dir() or (target.exists() and not _same_file(item, target)):
            raise FetchError(f"archive member '{item.relative_to(staging)}' would replace the existing {target}; "
                             "refusing (move it away first)")
        plan.append((item, target))
    return plan


def extract(archive: Path, into: Path, max_bytes: int = MAX_EXTRACTED, max_ratio: float = MAX_RATIO) -> None:
    """Extract a .tar/.tar.gz/.tgz/.zip into ``into``, merged: nothing there is deleted or overwritten.

    Members are checked before anything is written, extraction happens in a
    sibling temporary folder, and only when every file can be placed without
    replacing a different one are they moved into ``into``.
    """
    into = Path(into)
    if into.exists() and not into.is_dir():
        raise FetchError(f"{into}: exists and is not a folder")
    into.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=into.parent, prefix=f".{into.name}.") as tmp:
        staging = Path(tmp)
        try:
            if archive.name.lower().endswith(".zip"):
                _extract_zip(archive, staging, max_bytes, max_ratio)
            else:
                _extract_tar(archive, staging, max_bytes, max_ratio)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, ValueError) as exc:
            raise FetchError(f"{archive.name}: not a valid archive ({exc})") from None
        except OSError as exc:  # e.g. a zip holding both a file 'a' and 'a/b'
            raise FetchError(f"{archive.name}: members conflict on extraction ({exc.strerror or exc})") from None
        plan = _merge_plan(staging, into)
        for item, target in plan:
            target.parent.mkdir(parents=True, exist_ok=True)
            item.replace(target)


def fetch(url: str, sha256: str, into: Path, cache: Path | None = None) -> Path:
    """Download and verify ``url``; extract archives into ``into``, else place the file there."""
    into = Path(into)
    if into.exists() and not into.is_dir():
        raise FetchError(f"{into}: exists and is not a folder")
    url = http_url(url)
    name = file_name(url)
    with tempfile.TemporaryDirectory() as tmp:
        downloaded = download(url, sha256, Path(cache or tmp) / name)
        if is_archive(name):
            extract(downloaded, into)
        else:
            into.mkdir(parents=True, exist_ok=True)
            target = into / name
            if target.exists() and not _same_file(downloaded, target):
                raise FetchError(f"{target}: exists with other content; refusing (move it away first)")
            shutil.copyfile(downloaded, target)
    return into
