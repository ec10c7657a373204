"""Process plumbing every stage shares, below the CLI: logging that keeps progress bars
whole, Ctrl-C (held over short critical calls; one line and exit 130 once a stage runs;
one line before it begins), TensorFlow's import with its native start-up lines filtered,
and ``run_stage``, which turns a user's error into one line and exit status 1.

Nothing here imports TensorFlow or any other heavy library at import time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import sys
import threading

from signwrite.errors import SignwriteError


def _interrupted_early(signum, frame) -> None:
    # Nothing has been written before a stage begins, so there is nothing to tidy.
    os.write(2, b"signwrite: interrupted before it began; nothing was written\n")
    os._exit(128 + signal.SIGINT)


def _launched_as_command() -> bool:
    """``python -m signwrite[.STAGE]`` or the ``signwrite`` script; not a library import."""
    argv = getattr(sys, "orig_argv", [])
    by_module = len(argv) > 2 and argv[1] == "-m" and argv[2].split(".")[0] == "signwrite"
    by_script = os.path.basename(sys.argv[0] if sys.argv else "") == "signwrite"
    return by_module or by_script


def catch_early_interrupt() -> None:
    """For a ``signwrite`` command (not a library import): Ctrl-C while it is still
    importing prints one line and exits 130. ``run_stage`` hands Ctrl-C back to Python once
    the stage begins. Called by the package's ``__init__``, the first code every command runs."""
    if _launched_as_command() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupted_early)


class TqdmHandler(logging.StreamHandler):
    """Log lines that do not tear progress bars apart."""

    def emit(self, record):
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


# TensorFlow's native start-up lines, printed through absl before its log level is read
# (TF 2.21 ignores TF_CPP_MIN_LOG_LEVEL for them): notes, and CUDA probing on a machine
# with no GPU, whose "E... failed call to cuInit: ... CUDA error" looks like a failure.
TF_NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} [\d:.]+ +\d+ \S+\.cc:\d+\] .*"
    r"|E\d{4} [\d:.]+ +\d+ (cuda_\w+|cudart_stub)\.cc:\d+\] .*")
_quiet_native = False  # set by setup_logging: filter TensorFlow's start-up lines (not with -v)


def quiet_native() -> bool:
    """Whether native libraries' start-up lines are filtered (a command run without -v)."""
    return _quiet_native


@contextlib.contextmanager
def native_stderr_filtered(pattern: re.Pattern = TF_NOISE):
    """Send file descriptor 2 to a temp file during the block (native libraries write there
    directly), then pass on every line but those ``pattern`` matches. Lines written in the
    block come out when it ends, interrupted or not."""
    import tempfile

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [line for line in tmp.read().decode(errors="replace").splitlines(keepends=True)
                    if not pattern.fullmatch(line.rstrip("\r\n"))]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def import_tensorflow():
    """Import TensorFlow and find its devices, once; its native start-up lines are filtered
    from stderr when a command runs without -v. Returns the module."""
    if "tensorflow" in sys.modules or not _quiet_native:
        import tensorflow as tf

        return tf
    with native_stderr_filtered():
        import tensorflow as tf

        tf.config.list_physical_devices()  # CUDA's probe prints here, on first use of the devices
    return tf


def setup_logging(verbose: bool = False) -> None:
    global _quiet_native
    _quiet_native = not verbose
    # TensorFlow's C++ start-up lines (CUDA probing on a machine with no GPU, oneDNN notes)
    # bury the output people need; -v keeps them.
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # Likewise FFmpeg's own lines inside OpenCV ("moov atom not found") on a bad video:
        # our error names the file and the fix. OpenCV reads this when it first opens a video.
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, TqdmHandler):
            root.removeHandler(h)
    handler = TqdmHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s" if verbose else "%(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("tensorflow", "absl", "h5py", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


_pressed: list = []  # Ctrl-C presses seen inside interrupts_kept()


@contextlib.contextmanager
def interrupts_kept():
    """Ctrl-C raises KeyboardInterrupt as usual during the block, and is remembered: one that
    Python swallows (raised inside an object's ``__del__`` run by the garbage collector, which
    prints "Exception ignored" and goes on, or inside a C extension that clears the error) is
    raised again at the next ``raise_if_interrupted()`` or when an ``interrupts_held`` block ends.
    The "Exception ignored" report of a swallowed one is not printed: the press is handled.
    For the main thread's default Ctrl-C handling only; elsewhere the block runs unchanged.
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return

    def pressed(signum, frame):
        _pressed.append(frame)
        raise KeyboardInterrupt

    def unraisable(report, hook=sys.unraisablehook):
        if not (_pressed and isinstance(report.exc_value, KeyboardInterrupt)):
            hook(report)

    previous_hook = sys.unraisablehook
    signal.signal(signal.SIGINT, pressed)
    sys.unraisablehook = unraisable
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.unraisablehook = previous_hook
        _pressed.clear()


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt if Ctrl-C was pressed inside interrupts_kept (see there)."""
    if _pressed:
        raise KeyboardInterrupt


@contextlib.contextmanager
def interrupts_held():
    """Hold Ctrl-C during the block and deliver it when the block is done.

    For short calls that a KeyboardInterrupt landing midway leaves broken: a TensorFlow
    model call then raises SystemError ("bad argument to internal function") instead, and
    a process pool caught while starting its workers leaves them to print tracebacks.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only
        return
    held = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held and callable(previous):
        previous(signal.SIGINT, held[-1])  # the default handler raises KeyboardInterrupt here
    elif held and previous == signal.SIG_DFL:
        os.kill(os.getpid(), signal.SIGINT)
    raise_if_interrupted()  # one pressed before the block, swallowed on its way


def run_stage(stage: str, func, *args, **kwargs) -> int:
    """Call a stage's core function; a user's error becomes one line and exit status 1."""
    if signal.getsignal(signal.SIGINT) is _interrupted_early:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # the stage begins: Ctrl-C is ours
    try:
        result = func(*args, **kwargs)
    except SignwriteError as exc:
        print(f"signwrite {stage}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"signwrite {stage}: interrupted; run the same command again to finish "
              "(finished work is kept)", file=sys.stderr)
        return 130
    except Exception as exc:
        # A full disk met inside a library (TensorFlow's summary writer, Keras callbacks,
        # h5py) is still the user's to fix, not our bug: one line, as for our own writes.
        from signwrite.fsutil import disk_full_message, full_disk_path, is_disk_full

        if not is_disk_full(exc):
            raise
        print(f"signwrite {stage}: error: {disk_full_message(full_disk_path(exc))}", file=sys.stderr)
        return 1
    return result if isinstance(result, int) else 0
