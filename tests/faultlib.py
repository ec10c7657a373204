"""Tools for the fault suite (tests/test_faults.py).

Run a stage as its own process and strike it with a signal at a seeded random moment;
fingerprint folders and find the temp files a run may leave; give a stage a full disk,
either a real one (a small tmpfs, when this process may mount one) or a patched one (every
rename into a folder fails with ENOSPC after the first N, in the stage and in every process
it starts); serve files on 127.0.0.1, slowly enough that a download can be cut off.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from signwrite.fsutil import TMP_MARK

REPO = Path(__file__).resolve().parents[1]
# How many kill rounds per stage; the storm in docs/FAULTS.md ran with 20 and more.
ROUNDS = max(2, int(os.environ.get("SIGNWRITE_FAULT_ROUNDS", "2")))
SEED = int(os.environ.get("SIGNWRITE_FAULT_SEED", "6"))
INTERRUPTED = "interrupted; run the same command again to finish (finished work is kept)"
DISK_FULL = "the disk is full; free some space and run the command again"


def stage_cmd(module: str, *args) -> list[str]:
    return [sys.executable, "-m", f"signwrite.{module}", *map(str, args)]


def quiet_env(**extra) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **extra}
    env.pop("PYTHONBREAKPOINT", None)
    return env


def run_stage(cmd: list[str], env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, env=env or quiet_env(), capture_output=True, text=True, timeout=timeout)


# -- striking a running stage ------------------------------------------------------------------

@dataclass
class Strike:
    sig: signal.Signals
    delay: float  # seconds after the start
    group: bool  # the whole process group (a shell job, as Ctrl-C does) or the stage alone
    pid: int = 0
    returncode: int | None = None
    stderr: str = ""
    stdout: str = ""
    struck: bool = False  # False: the run had already finished
    outcome: str = ""  # see check_struck_exit
    running: str = ""  # strike as soon as the stage prints this on stderr (it is at work), not at ``delay``

    def __str__(self):
        who = "group" if self.group else "stage"
        what = f"rc {self.returncode}, {self.outcome}" if self.struck else "finished first"
        at = f"{self.delay:.2f} s, once it printed {self.running!r}" if self.running else f"{self.delay:.2f} s"
        return f"{self.sig.name} to the {who} at {at}: {what}"


def strike(cmd: list[str], s: Strike, env: dict | None = None, timeout: float = 600, when=None) -> Strike:
    """Run ``cmd``, send ``s.sig`` after ``s.delay`` seconds unless it finished, wait for it.

    With ``when`` (a function), or ``s.running`` (a text the stage prints on stderr once it
    is at work), strike as soon as that is true instead; ``s.delay`` then records when.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=REPO, env=env or quiet_env(), stdout=out, stderr=err,
                                start_new_session=True)
        s.pid = proc.pid
        if s.running and when is None:
            marker = s.running.encode()

            def when():
                return marker in os.pread(err.fileno(), 1 << 20, 0)
        try:
            try:
                if when is None:
                    proc.wait(timeout=s.delay)
                else:
                    while not when():
                        if proc.poll() is not None:
                            raise RuntimeError("the stage ended before the moment to strike it")
                        time.sleep(0.001)
                    s.delay = time.monotonic() - t0
                    raise subprocess.TimeoutExpired(cmd, s.delay)
            except subprocess.TimeoutExpired:
                s.struck = True
                if s.group:
                    os.killpg(proc.pid, s.sig)
                else:
                    proc.send_signal(s.sig)
                proc.wait(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        s.returncode = proc.returncode
        out.seek(0)
        err.seek(0)
        s.stdout, s.stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    return s


@contextlib.contextmanager
def running(cmd: list[str], env: dict | None = None):
    """A stage running in the background, in its own process group; yields the Popen (with
    .out and .err text once it ended). Left running at the end of the block, it is killed."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env or quiet_env(), stdout=out, stderr=err,
                                start_new_session=True)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            out.seek(0)
            err.seek(0)
            proc.out, proc.err = out.read().decode(errors="replace"), err.read().decode(errors="replace")


def wait_until(condition, proc, what: str) -> None:
    """Poll ``condition`` until true; fail if ``proc`` ends first."""
    while not condition():
        assert proc.poll() is None, f"the stage ended before {what}"
        time.sleep(0.002)


@contextlib.contextmanager
def paused(proc):
    """Freeze a stage and everything it started (SIGSTOP to its group), then let it go on."""
    os.killpg(proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(proc.pid, signal.SIGCONT)


def end_group(pid: int, timeout: float = 60) -> None:
    """Wait for what a struck stage left running (an orphaned ffmpeg finishing its cut), then kill it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def plan_strikes(rng, rounds: int, longest: float, running: str = "") -> list[Strike]:
    """Seeded strikes: SIGINT and SIGKILL in turn, each at a random moment within ``longest``
    seconds, to the whole process group or to the stage alone.

    With ``running`` (a line the stage prints once it is at work), the first SIGINT comes the
    moment that line appears instead: a random moment may fall before the stage begins or
    after it ends, and every storm must show the stage itself stopping on Ctrl-C.
    """
    sigs = [signal.SIGINT, signal.SIGKILL]
    strikes = [Strike(sigs[k % 2], float(rng.uniform(0.0, longest)), bool(rng.integers(0, 4) > 0))
               for k in range(rounds)]
    if running:
        strikes[0].running = running  # strikes[0] is a SIGINT
    return strikes


def stopped_by_ctrl_c(strikes, stage: str) -> list[Strike]:
    """The strikes in which SIGINT met the running stage and it stopped as promised: exit 130 and
    its one line (``check_struck_exit`` has checked the line and that there is no traceback)."""
    return [s for s in strikes if s.sig == signal.SIGINT and s.struck and s.outcome == "interrupted"
            and s.returncode == 130 and f"signwrite {stage}: {INTERRUPTED}" in s.stderr]


EARLY = "signwrite: interrupted before it began; nothing was written"


def check_struck_exit(s: Strike, stage: str) -> str:
    """A stage stopped by SIGINT says so in one line, with no traceback, and exits 130;
    SIGKILL is -9. Returns how the run ended:

    - finished: done before the strike (or the signal came as it ended: exit 0);
    - killed: SIGKILL;
    - interrupted: SIGINT, the one line; exit 130, or death by SIGINT after the line
      (Python re-raises a Ctrl-C met inside some C extensions as it exits: a shell shows
      130 either way);
    - interrupted-early: SIGINT before the stage began, its own line, exit 130;
    - python-starting: SIGINT in Python's own start-up, before any signwrite code could
      run: Python's report, nothing written;
    - exiting: SIGINT once the stage was done, while Python shut down: no output, death by
      SIGINT; the caller checks that the outputs are complete.
    """
    if s.returncode == 0:
        return "finished"
    assert s.struck, (str(s), s.stderr[-3000:])
    if s.sig == signal.SIGKILL:
        assert s.returncode == -signal.SIGKILL, (str(s), s.stderr[-3000:])
        return "killed"
    lines = [line for line in s.stderr.splitlines() if line.strip()]
    message = f"signwrite {stage}: {INTERRUPTED}"
    if lines == [EARLY]:
        assert s.returncode == 130, str(s)
        return "interrupted-early"
    if s.returncode != 130 and _python_starting(s.stderr):
        assert s.returncode in (-signal.SIGINT, 1), (str(s), s.stderr[-3000:])
        return "python-starting"
    assert "Traceback" not in s.stderr, (str(s), s.stderr[-3000:])
    assert s.returncode in (130, -signal.SIGINT), (str(s), s.stderr[-3000:])
    if s.returncode == -signal.SIGINT and not any(INTERRUPTED in line for line in lines):
        return "exiting"
    assert lines[-1].endswith(message), (str(s), lines[-5:])
    assert sum(INTERRUPTED in line for line in lines) == 1
    return "interrupted"


def _python_starting(stderr: str) -> bool:
    """Python was still starting: no output at all, or Python's KeyboardInterrupt report whose
    only signwrite frames are the package's first import (before its handler is installed)."""
    if not stderr.strip():
        return True
    if not stderr.rstrip().endswith("KeyboardInterrupt"):
        return False
    frames = [line for line in stderr.splitlines() if line.strip().startswith("File ")]
    ours = [line for line in frames if f"signwrite{os.sep}" in line]
    first_import = (f"signwrite{os.sep}__init__.py", f"signwrite{os.sep}errors.py")
    return all(any(name in line for name in first_import) for line in ours)


# -- folders -------------------------------------------------------------------------------------

def fingerprint(folder: Path, keep=lambda rel: True, normalise=lambda rel, data: data) -> dict[str, str]:
    """relative path -> sha256 of every finished file under ``folder`` (locks and temps aside).

    ``normalise(rel, bytes)`` takes out what legitimately differs between two folders (a
    path to the folder itself).
    """
    folder = Path(folder)
    out = {}
    if not folder.exists():
        return out
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_file() and not p.name.endswith(".lock") and not is_temp(p) and keep(rel):
            with contextlib.suppress(FileNotFoundError):  # an orphaned writer may rename meanwhile
                out[rel] = hashlib.sha256(normalise(rel, p.read_bytes())).hexdigest()
    return out


def is_temp(p: Path) -> bool:
    """A file an unfinished write leaves: ours (fsutil's mark), yt-dlp's, a Keras checkpoint's."""
    return any(TMP_MARK in part or part.startswith(".tmp-") or part.endswith((".part", ".ytdl"))
               for part in Path(p).parts)


def temps(*folders: Path) -> list[str]:
    return sorted(str(p) for f in folders if Path(f).exists() for p in Path(f).rglob("*") if is_temp(p))


def unchanged(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Files of ``before`` that are gone or different in ``after`` (must be none)."""
    return sorted(k for k, v in before.items() if after.get(k) != v)


# -- a full disk ---------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def can_mount_tmpfs() -> bool:
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return False
    with tempfile.TemporaryDirectory() as d:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", d], capture_output=True).returncode == 0
        if ok:
            subprocess.run(["umount", d], capture_output=True)
        return ok


@contextlib.contextmanager
def small_disk(path: Path, size: int):
    """A tmpfs of ``size`` bytes mounted on ``path`` for the duration."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], check=True,
                   capture_output=True)
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def leave_free(disk: Path, n: int) -> Path:
    """Fill the disk with a ballast file until about ``n`` bytes are free; returns the ballast."""
    ballast = disk / "ballast"
    ballast.unlink(missing_ok=True)
    size = free_bytes(disk) - n
    if size > 0:
        with open(ballast, "wb") as f:
            os.posix_fallocate(f.fileno(), 0, size)
    return ballast


# Installed as sitecustomize in every Python process the stage starts (pool workers too):
# renames into FOLDER fail with ENOSPC once AFTER of them succeeded, counted across processes.
_INJECT = '''
import errno, os
_folder = os.environ.get("SIGNWRITE_FAULT_ENOSPC_DIR")
if _folder:
    _after = int(os.environ["SIGNWRITE_FAULT_ENOSPC_AFTER"])
    _counter = os.environ["SIGNWRITE_FAULT_ENOSPC_COUNTER"]
    _real = {"replace": os.replace, "rename": os.rename}

    def _charge(dst):
        if not os.path.abspath(os.fspath(dst)).startswith(_folder + os.sep):
            return
        fd = os.open(_counter, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, b".")
            n = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if n > _after:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(dst))

    def _wrap(name):
        def call(src, dst, *args, **kwargs):
            _charge(dst)
            return _real[name](src, dst, *args, **kwargs)
        return call

    os.replace, os.rename = _wrap("replace"), _wrap("rename")
'''


@contextlib.contextmanager
def failing_renames(folder: Path, after: int):
    """In this process: renames into ``folder`` fail with ENOSPC once ``after`` of them succeeded."""
    import errno

    folder = str(Path(folder).resolve())
    real = {"replace": os.replace, "rename": os.rename}
    count = [0]

    def wrap(name):
        def call(src, dst, *args, **kwargs):
            if os.path.abspath(os.fspath(dst)).startswith(folder + os.sep):
                count[0] += 1
                if count[0] > after:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(dst))
            return real[name](src, dst, *args, **kwargs)
        return call

    os.replace, os.rename = wrap("replace"), wrap("rename")
    try:
        yield count
    finally:
        os.replace, os.rename = real["replace"], real["rename"]


# Installed as sitecustomize: SIGINT arrives while MODULE is being imported, as a Ctrl-C
# pressed the moment a command starts would.
_INTERRUPT_ON_IMPORT = '''
import os, signal, sys
_module = os.environ.get("SIGNWRITE_FAULT_SIGINT_ON_IMPORT")


class _Finder:
    def find_spec(self, name, path=None, target=None):
        if name == _module:
            os.kill(os.getpid(), signal.SIGINT)
        return None


if _module:
    sys.meta_path.insert(0, _Finder())
'''


def interrupt_on_import_env(workdir: Path, module: str) -> dict:
    inject = workdir / "inject-sigint"
    inject.mkdir(parents=True, exist_ok=True)
    (inject / "sitecustomize.py").write_text(_INTERRUPT_ON_IMPORT)
    path = os.pathsep.join([str(inject), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return quiet_env(PYTHONPATH=path, SIGNWRITE_FAULT_SIGINT_ON_IMPORT=module)


def enospc_env(workdir: Path, folder: Path, after: int) -> dict:
    """Environment for a stage whose renames into ``folder`` fail with ENOSPC after ``after``."""
    inject = workdir / "inject"
    inject.mkdir(parents=True, exist_ok=True)
    (inject / "sitecustomize.py").write_text(_INJECT)
    counter = workdir / f"renames-{time.monotonic_ns()}"
    return quiet_env(PYTHONPATH=os.pathsep.join([str(inject), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
                     SIGNWRITE_FAULT_ENOSPC_DIR=str(Path(folder).resolve()),
                     SIGNWRITE_FAULT_ENOSPC_AFTER=str(after), SIGNWRITE_FAULT_ENOSPC_COUNTER=str(counter))


def check_disk_full_exit(proc, stage: str, under: Path) -> str:
    """One clear line naming a path under ``under``; returns that line."""
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if DISK_FULL in line]
    assert len(lines) == 1, proc.stderr[-3000:]
    line = lines[0]
    print(f"[disk full] {line}")
    assert line.startswith(f"signwrite {stage}: error: {Path(under).resolve()}") or \
        line.startswith(f"signwrite {stage}: error: {under}"), line
    return line


# -- a slow web server ---------------------------------------------------------------------------

@contextlib.contextmanager
def serve(folder: Path, chunk: int = 1024, pause: float = 0.0):
    """Serve ``folder`` on 127.0.0.1, ``chunk`` bytes at a time with ``pause`` s between; yields the URL."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def copyfile(self, source, outputfile):
            while True:
                block = source.read(chunk)
                if not block:
                    return
                outputfile.write(block)
                if pause:
                    time.sleep(pause)

        def handle(self):
            with contextlib.suppress(ConnectionError):  # a struck download hangs up midway
                super().handle()

    with serving(Handler) as url:
        yield url


@contextlib.contextmanager
def serving(handler):
    """An HTTP server on 127.0.0.1 (a port the kernel picks, held while it serves) with
    ``handler``, quiet; yields its URL and is shut down after."""
    class Quiet(handler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
