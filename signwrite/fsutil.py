"""Atomic writes and a data-folder lock: every output appears whole or not at all."""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import tempfile
from pathlib import Path

from signwrite.errors import DiskFullError, SignwriteError

TMP_MARK = ".signwrite-tmp"


def _default_mode() -> int:
    # mkstemp makes 0600 files; outputs should get the mode any new file gets (0666 - umask).
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _default_mode()


@functools.lru_cache(maxsize=1)
def _machine() -> str:
    import hashlib
    import socket

    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def writer_tag() -> str:
    """<machine>-<process id>: put in every temp name, so a leftover of a dead writer can be
    told from the temp of a run still going (another shard, maybe on another machine)."""
    return f"{_machine()}-{os.getpid()}"


def temp_path_for(path: Path, suffix: str | None = None) -> Path:
    """A fresh temp file name next to ``path`` (same folder, so the rename is atomic):
    ``.<stem>.<writer tag>.<random>.signwrite-tmp<suffix>``.

    The suffix (``path``'s, or ``suffix`` for a tool that wants more of the name, as Keras
    wants ``.weights.h5``) is kept so tools that pick a format by extension (ffmpeg, cv2)
    still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if suffix is None else suffix
    stem = path.name[:-len(suffix)] if suffix and path.name.endswith(suffix) else path.stem
    fd, name = tempfile.mkstemp(prefix=f".{stem}.{writer_tag()}.", suffix=f"{TMP_MARK}{suffix}",
                                dir=path.parent)
    os.fchmod(fd, FILE_MODE)
    os.close(fd)
    return Path(name)


@contextlib.contextmanager
def atomic_path(path: Path, suffix: str | None = None):
    """Yield a temp path to write (ending in ``suffix``, see temp_path_for); on success
    rename it onto ``path``, on failure remove it."""
    path = Path(path)
    tmp = temp_path_for(path, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if is_disk_full(exc) and not isinstance(exc, DiskFullError):
            raise DiskFullError(disk_full_message(path)) from exc
        raise


# What the C library, and so ffmpeg, h5py and TensorFlow, say when a write fails for want of space.
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_FULL_TEXTS = tuple(os.strerror(e) for e in _FULL_ERRNOS)


def mentions_full_disk(text: str) -> bool:
    """Whether a message (a library's, a tool's stderr) says a write found no space left."""
    return any(t in text for t in _FULL_TEXTS)


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc``, or an exception it came from, is a write that found no space left.

    Our own writes raise OSError(ENOSPC); libraries that wrap it (TensorFlow's summary
    writer, Keras saving) keep the C library's text, so that is matched too.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DiskFullError):
            return True
        if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
            return True
        if mentions_full_disk(str(exc)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def full_disk_path(exc: BaseException) -> str:
    """The file a disk-full error was writing, as well as the exception chain tells."""
    import re

    seen, texts = set(), []
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.filename:
            return str(exc.filename)
        texts.append(re.sub(r"\{\{.*?\}\}", "", str(exc)))  # TensorFlow's {{function_node ...}} prefix
        exc = exc.__cause__ or exc.__context__
    for text in texts:
        found = re.search(r"(?:^|[\s'\"=])(/[^\s;,'\"]+)", text)
        if found:
            return found.group(1)
    return "a file being written"


def disk_full_message(path) -> str:
    return (f"{path}: the disk is full; free some space and run the command again "
            "(finished outputs are intact and will be skipped)")


@contextlib.contextmanager
def filled_folder(dest: Path):
    """A temp folder next to ``dest`` to fill, renamed to ``dest`` when the block ends well
    and removed when it does not, so ``dest`` is whole or absent whatever happens."""
    import secrets
    import shutil

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.{writer_tag()}.{secrets.token_hex(3)}{TMP_MARK}"
    tmp.mkdir()
    try:
        yield tmp
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_file(path: Path, data) -> None:
    """Write bytes (or an encoded image buffer) into a temp file or folder: no rename, no
    fsync. Not numpy's tofile: on a full disk it writes part of the file and reports no
    error, and the part would pass for a frame."""
    with open(path, "wb") as f:
        f.write(memoryview(data))


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def write_text_if_changed(path: Path, text: str) -> bool:
    """write_text unless the file already holds ``text``; whether it wrote. An unchanged
    file keeps its mtime, so a re-run that has nothing to do writes nothing."""
    with contextlib.suppress(OSError, UnicodeDecodeError):
        if Path(path).read_text(encoding="utf-8") == text:
            return False
    write_text(path, text)
    return True


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_csv(path: Path, frame) -> None:
    """Write a pandas DataFrame atomically, without the index."""
    write_text(path, frame.to_csv(index=False, lineterminator="\n"))


def remove_stale_temps(folder: Path, *, only_dead_writers: bool = False) -> int:
    """Delete temp files (and temp folders) a killed run left under ``folder``; returns how many.

    A run holding its folder's lock alone takes them all. ``only_dead_writers`` is for a run
    that shares its folder (a shard): it takes only temps whose writer ran on this machine
    and is gone.
    """
    import shutil

    folder = Path(folder)
    if not folder.exists():
        return 0
    n = 0
    for p in folder.rglob(f"*{TMP_MARK}*"):
        if only_dead_writers and not _dead_writer(p.name):
            continue
        with contextlib.suppress(OSError):
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
            n += 1
    return n


def remove_stale_temps_of(path: Path) -> int:
    """Delete the temp files of ``path`` whose writer is gone; returns how many.

    For outputs written without a folder lock (predict's).
    """
    path = Path(path)
    head, tail = f".{path.stem}.", f"{TMP_MARK}{path.suffix}"
    n = 0
    with contextlib.suppress(OSError):
        for p in path.parent.iterdir():
            # between head and tail: "<writer tag>.<random>", and nothing else (not another
            # output whose name merely starts the same, like <stem>.v2.csv)
            middle = p.name[len(head):-len(tail)] if p.name.startswith(head) and p.name.endswith(tail) else ""
            if middle.count(".") == 1 and _dead_writer(p.name):
                with contextlib.suppress(OSError):
                    p.unlink()
                    n += 1
    return n


def _dead_writer(name: str) -> bool:
    """Whether a temp's name says it was written by a process of this machine that is gone."""
    parts = name.split(TMP_MARK)[0].rsplit(".", 2)
    if len(parts) != 3:
        return False
    machine, _, pid = parts[1].partition("-")
    return machine == _machine() and pid.isdigit() and not _alive(int(pid))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


@contextlib.contextmanager
def folder_lock(folder: Path, stage: str, *, shared: bool = False):
    """Hold an exclusive lock on ``folder`` for ``stage``; a second run gets a clear error.

    ``shared=True`` lets several holders in at once (e.g. fetch shards) while still keeping
    out an exclusive holder. An OS lock (flock) is released by the kernel when the process
    dies, so a killed run never leaves a stale lock behind.
    """
    import fcntl

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock_file = folder / f".{stage}.lock"
    fh = open(lock_file, "a+")
    try:
        try:
            fcntl.flock(fh.fileno(), (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SignwriteError(
                f"{folder}: another '{stage}' run is using this folder; wait for it to finish "
                "or stop it, then run again") from None
        yield
    finally:
        fh.close()


@contextlib.contextmanager
def stage_lock(folder: Path, stage: str, shard: tuple[int, int] | None):
    """A stage's lock on its folder: one full run at a time; shards (``--shard I/N``) may run
    side by side, one of each, but never next to a full run."""
    if shard is None:
        with folder_lock(folder, stage):
            yield
    else:
        with folder_lock(folder, stage, shared=True), folder_lock(folder, f"{stage}-shard-{shard[0]}-of-{shard[1]}"):
            yield
