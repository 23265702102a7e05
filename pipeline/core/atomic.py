"""Write-then-rename, so an interrupted stage never leaves a half-written artefact.

Only a regular file (or a new one) is replaced by a rename: a symlink is followed and its target written,
and a FIFO, a device or any other non-regular file is written through, as a shell's ``>`` would (renamed
over, /dev/full would become a file and a pipe's reader would get nothing); ``-`` is stdout.
Temporary siblings carry the writer's pid (``.<name>.tmp-<pid>-*``); one whose
process is gone (killed outside any cleanup) is removed by the next writer.
A lock per job (``job_lock``) keeps two processes from doing the same work.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale(target: Path) -> None:
    """Delete temporary siblings of ``target`` left by writers that no longer run."""
    for leftover in Path(target).parent.glob(f".{Path(target).name}.*-*"):
        kind, _, rest = leftover.name.removeprefix(f".{Path(target).name}.").partition("-")
        pid = rest.split("-")[0]
        if kind in ("tmp", "old") and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield an empty sibling folder; on success it replaces ``target``, on error it vanishes."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(target)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-{os.getpid()}-"))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private; outputs get the usual mode
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        target.replace(old)
    tmp.replace(target)
    shutil.rmtree(old, ignore_errors=True)


def _destination(path: Path) -> tuple[Path, bool]:
    """Where writing ``path`` goes, and whether it is written through (not a regular file) rather than
    replaced by a rename (a regular file, or none yet, at the end of any symlinks)."""
    try:
        through = not stat.S_ISREG(os.stat(path).st_mode)  # follows symlinks; a loop raises
    except FileNotFoundError:  # a new file, or a dangling link: its target is created
        through = False
    return (Path(path) if through else Path(os.path.realpath(path))), through


def unwritable(path: Path) -> str | None:
    """Why :func:`output` could not write ``path``, for a refusal before the work; None when it could."""
    if str(path) == "-":
        return None
    try:
        target, through = _destination(path)
    except OSError as exc:
        return exc.strerror or str(exc)
    if target.is_dir():
        return "is a folder"
    if through:
        return None if os.access(target, os.W_OK) else "not writable"
    if not target.parent.is_dir() or not os.access(target.parent, os.W_OK):
        return f"cannot write into {target.parent}"
    return None


@contextmanager
def output(path: Path, mode: str = "w") -> Iterator[IO]:
    """A file object for ``path`` (module docstring: what is renamed, followed or written through); a
    regular file is replaced only when the block completes. Errors name ``path``."""
    try:
        if str(path) == "-":
            stream = sys.stdout.buffer if "b" in mode else sys.stdout
            yield stream
            stream.flush()
            return
        target, through = _destination(path)
        if through:
            with open(target, mode) as fh:
                yield fh
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.tmp-{os.getpid()}-")
        try:
            with os.fdopen(fd, mode) as fh:
                yield fh
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:  # a full device raises on write or close, without a file name
        exc.filename = exc.filename or str(path)
        raise


def write_text(path: Path, text: str) -> None:
    with output(path) as fh:
        fh.write(text)


def write_json(path: Path, data: Any) -> None:
    """Standard JSON only: a NaN or infinity is a bug to surface, not a file to write."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")


@contextmanager
def job_lock(path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the block; if another process holds it, refuse at once."""
    import fcntl

    from pipeline.core.errors import BusyError

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            raise BusyError(f"{what} is already running (pid {holder}); wait for it or stop it") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
