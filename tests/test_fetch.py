import hashlib
import io
import tarfile
import zipfile

import pytest

from pipeline.core.errors import FetchError
from pipeline.data.fetch import download, extract, fetch


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_tar(members: dict[str, bytes], links: dict[str, str] | None = None, symlink=True) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE if symlink else tarfile.CHRTYPE
            info.linkname = target
            tar.addfile(info)
    return buf.getvalue()


def make_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def server(file_server):
    return file_server


PAYLOAD = bytes(range(256)) * 4000  # ~1 MB


def test_download_verifies_and_places(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    out = download(f"{server.url}/a.bin", sha(PAYLOAD), tmp_path / "a.bin", backoff=0)
    assert out.read_bytes() == PAYLOAD


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    with pytest.raises(FetchError, match="sha256 mismatch"):
        download(f"{server.url}/a.bin", "0" * 64, tmp_path / "a.bin", backoff=0)
    assert list(tmp_path.iterdir()) == []


def test_404_is_not_retried(server, tmp_path):
    with pytest.raises(FetchError, match="HTTP 404"):
        download(f"{server.url}/missing", "0" * 64, tmp_path / "x", backoff=0)
    assert len(server.requests) == 1


def test_transient_errors_are_retried(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    server.fail["/a.bin"] = [503, 500]
    download(f"{server.url}/a.bin", sha(PAYLOAD), tmp_path / "a.bin", backoff=0)
    assert len(server.requests) == 3


def test_interrupted_transfer_resumes_with_range(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    server.truncate["/a.bin"] = 300_000
    out = download(f"{server.url}/a.bin", sha(PAYLOAD), tmp_path / "a.bin", backoff=0)
    assert out.read_bytes() == PAYLOAD
    assert server.requests[-1] == ("/a.bin", "bytes=300000-")


def test_gives_up_after_retries(server, tmp_path):
    server.fail["/a.bin"] = [500] * 10
    with pytest.raises(FetchError, match="failed after 3 attempts"):
        download(f"{server.url}/a.bin", "0" * 64, tmp_path / "a.bin", retries=2, backoff=0)
    assert list(tmp_path.iterdir()) == []


def test_fetch_extracts_archives(server, tmp_path):
    for name, blob in (("/d.tar.gz", make_tar({"set/a.png": b"A", "set/b.png": b"B"})),
                       ("/d.zip", make_zip({"set/a.png": b"A"}))):
        server.files[name] = blob
        into = tmp_path / name.strip("/")
        fetch(f"{server.url}{name}", sha(blob), into)
        assert (into / "set" / "a.png").read_bytes() == b"A"


@pytest.mark.parametrize("blob", [
    make_tar({"../evil.txt": b"x"}),
    make_tar({"/abs/evil.txt": b"x"}),
    make_tar({"ok.txt": b"x"}, links={"link": "/etc/passwd"}),
    make_tar({"ok.txt": b"x"}, links={"dev": "null"}, symlink=False),
    make_zip({"../../evil.txt": b"x"}),
], ids=["dotdot", "absolute", "symlink", "device", "zip-dotdot"])
def test_unsafe_archives_are_refused_without_writing(tmp_path, blob):
    archive = tmp_path / ("a.zip" if blob[:2] == b"PK" else "a.tar.gz")
    archive.write_bytes(blob)
    into = tmp_path / "into"
    with pytest.raises(FetchError, match="escapes|link or device"):
        extract(archive, into)
    assert not into.exists() and not (tmp_path / "evil.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [archive.name]


def test_fetch_cli_success_and_refusals(server, tmp_path, cli, root):
    blob = make_tar({"x/one.txt": b"1"})
    server.files["/ok.tgz"] = blob
    server.files["/evil.tgz"] = evil = make_tar({"../../escape.txt": b"x"})
    into = tmp_path / "dir"
    into.mkdir()
    (into / "existing.txt").write_text("keep")

    ok = cli(["fetch", f"{server.url}/ok.tgz", "--sha256", sha(blob), "--into", str(into)], cwd=root)
    assert ok.returncode == 0, ok.stderr
    assert (into / "x" / "one.txt").read_text() == "1" and (into / "existing.txt").read_text() == "keep"

    before = sorted(p.relative_to(into) for p in into.rglob("*"))
    for url, digest in ((f"{server.url}/ok.tgz", "f" * 64), (f"{server.url}/evil.tgz", sha(evil)),
                        (f"{server.url}/missing.tgz", "f" * 64)):
        proc = cli(["fetch", url, "--sha256", digest, "--into", str(into)], cwd=root)
        assert proc.returncode == 1
        assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
        assert sorted(p.relative_to(into) for p in into.rglob("*")) == before
    bad = cli(["fetch", f"{server.url}/ok.tgz", "--sha256", "xyz", "--into", str(into)], cwd=root)
    assert bad.returncode == 2


def test_extraction_merges_and_never_deletes(tmp_path):
    into = tmp_path / "d"
    (into / "data").mkdir(parents=True)
    (into / "data" / "keep.txt").write_text("precious")
    archive = tmp_path / "a.tgz"
    archive.write_bytes(make_tar({"data/new.txt": b"new"}))
    extract(archive, into)
    assert (into / "data" / "keep.txt").read_text() == "precious" and (into / "data" / "new.txt").read_text() == "new"
    extract(archive, into)  # the same content again: fine

    clash = tmp_path / "b.tgz"
    clash.write_bytes(make_tar({"data/keep.txt": b"other", "data/more.txt": b"x"}))
    with pytest.raises(FetchError, match="would replace the existing"):
        extract(clash, into)
    assert (into / "data" / "keep.txt").read_text() == "precious" and not (into / "data" / "more.txt").exists()


def test_decompression_bombs_are_refused(tmp_path):
    bomb = tmp_path / "bomb.zip"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", bytes(64 << 20))  # 64 MiB of zeros: ~64 KiB compressed
    bomb.write_bytes(buf.getvalue())
    with pytest.raises(FetchError, match="fold limit"):
        extract(bomb, tmp_path / "out")
    with pytest.raises(FetchError, match="GiB limit"):
        extract(bomb, tmp_path / "out", max_bytes=1 << 20, max_ratio=1e9)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_conflicting_zip_members_are_one_line(tmp_path):
    archive = tmp_path / "c.zip"
    archive.write_bytes(make_zip({"a": b"file", "a/b": b"inside"}))
    with pytest.raises(FetchError, match="conflict"):
        extract(archive, tmp_path / "out")


def test_a_trickling_server_is_abandoned(server, tmp_path):
    server.files["/slow.bin"] = b"x" * 4096
    server.trickle["/slow.bin"] = 0.2
    with pytest.raises(FetchError, match="slower than"):
        download(f"{server.url}/slow.bin", sha(b"x" * 4096), tmp_path / "slow.bin", backoff=0, grace_s=1.0,
                 min_rate=1024)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url,needle", [
    ("file:///etc/passwd", "not an http"),
    ("ftp://example.org/x.zip", "not an http"),
    ("http:///nohost", "not an http"),
])
def test_only_http_urls(tmp_path, url, needle):
    with pytest.raises(FetchError, match=needle):
        fetch(url, "0" * 64, tmp_path / "into")
    assert not (tmp_path / "into").exists()


def test_spaces_and_non_ascii_are_encoded_and_names_decoded(server, tmp_path):
    server.files["/my%20set/%C3%A9t%C3%A9%20a.bin"] = PAYLOAD
    fetch(f"{server.url}/my set/été a.bin", sha(PAYLOAD), tmp_path / "into")
    assert (tmp_path / "into" / "été a.bin").read_bytes() == PAYLOAD
    assert [p for p, _ in server.requests] == ["/my%20set/%C3%A9t%C3%A9%20a.bin"]  # one request, no retries


def test_fetch_into_a_file_is_refused(server, tmp_path, cli, root):
    blob = make_tar({"x.txt": b"1"})
    server.files["/ok.tgz"] = blob
    target = tmp_path / "file.txt"
    target.write_text("keep")
    proc = cli(["fetch", f"{server.url}/ok.tgz", "--sha256", sha(blob), "--into", str(target)], cwd=root)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "is not a folder" in proc.stderr
    assert target.read_text() == "keep"
