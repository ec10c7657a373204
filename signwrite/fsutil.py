"""Atomic writes and a data-folder lock: every output appears whole or not at all."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path

from signwrite.errors import SignwriteError

TMP_MARK = ".signwrite-tmp"


def _default_mode() -> int:
    # mkstemp makes 0600 files; outputs should get the mode any new file gets (0666 - umask).
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _default_mode()


def temp_path_for(path: Path) -> Path:
    """A fresh temp file name next to ``path`` (same folder, so the rename is atomic).

    The suffix is kept so tools that pick a format by extension (ffmpeg, cv2) still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f"{TMP_MARK}{path.suffix}", dir=path.parent)
    os.fchmod(fd, FILE_MODE)
    os.close(fd)
    return Path(name)


@contextlib.contextmanager
def atomic_path(path: Path):
    """Yield a temp path to write; on success rename it onto ``path``, on failure remove it."""
    path = Path(path)
    tmp = temp_path_for(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            raise SignwriteError(f"{path}: the disk is full; free some space and run the command again "
                                 "(finished outputs are intact and will be skipped)") from exc
        raise


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


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


def remove_stale_temps(folder: Path) -> int:
    """Delete temp files a killed run left behind; returns how many."""
    folder = Path(folder)
    if not folder.exists():
        return 0
    n = 0
    for p in folder.rglob(f"*{TMP_MARK}*"):
        with contextlib.suppress(OSError):
            if p.is_dir():
                import shutil

                shutil.rmtree(p)
            else:
                p.unlink()
            n += 1
    return n


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
