"""The worker processes extract-frames decodes clips in (and draws contact sheets in).

Why not the standard library's pools:

- multiprocessing.Pool: when a worker dies (a native crash in MediaPipe's hand tracker,
  the OOM killer, a kill), it quietly starts another and waits forever for the lost item.
- concurrent.futures.ProcessPoolExecutor: one dead worker breaks the whole executor; every
  pending item fails with BrokenProcessPool and the other workers are killed mid-clip.
  Keeping "a dead worker fails its own clip alone" (tests/test_extract_workers.py) would
  then take a retry loop on top: re-run the unfinished items in a fresh executor, one at
  a time to find which one broke it, redoing the clips the others were killed in. That is
  more code than this pool, and slower exactly when something goes wrong.

Here each worker is handed one item at a time over a pipe of its own, so the item each
worker holds is known: a death costs that item alone, and a fresh worker takes the dead
one's place. For Ctrl-C (docs/FAULTS.md, the extract-frames storm in tests/test_faults.py)
workers ignore SIGINT and die with the run; the run stops them, mid-item, when it is
interrupted. Workers come from a fork server, started with SIGINT ignored.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time

from signwrite.process import interrupts_held


def _init_worker() -> None:
    import cv2

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the pool
    cv2.setNumThreads(1)  # one process per core already; more threads only contend
    _exit_with_parent()


def _exit_with_parent() -> None:
    """A worker must not outlive a killed run: it would finish its clip behind the next run's back.

    Its parent is the fork server, which exits as soon as the run that started it dies.
    """
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
            if os.getppid() != parent:
                os._exit(1)  # the parent died before prctl took effect
            return

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


@contextlib.contextmanager
def worker_pool(jobs: int):
    """A pool of ``jobs`` worker processes (None for 0: nothing to decode).

    Even one job decodes in a worker: SIGINT landing inside FFmpeg's open can crash the
    process (seen with OpenCV 5.0), while workers ignore SIGINT and this process handles
    Ctrl-C. Workers come from a fork server, not a fork of this process: a fork copies
    the state of this process's threads without the threads, and a worker then hangs on
    it (OpenCV's own thread pool, if the caller used OpenCV before, does exactly that).
    """
    if jobs < 1:
        yield None
        return
    pool = None
    try:
        with interrupts_held():  # a Ctrl-C waits for the pool to exist, and then stops it whole
            start_fork_server()  # if not started yet
            pool = Workers(jobs)
        yield pool
        pool.stop()
    except BaseException:
        if pool is not None:
            pool.stop(now=True)  # Ctrl-C or an error: stop the workers now, mid-clip
        raise


_NO_ITEM = object()  # what next() gives when a map's items run out


class Workers:
    """Worker processes, each handed one item at a time over a pipe of its own (see the
    module docstring for why not a standard library pool)."""

    def __init__(self, jobs: int):
        self._context = _pool_context()
        self._procs = {}  # pipe -> process, for every worker alive
        self._idle = [self._start() for _ in range(jobs)]  # the pipes of workers waiting for an item

    def _start(self):
        here, there = self._context.Pipe()
        proc = self._context.Process(target=_worker_main, args=(there,), daemon=True)
        # Held: a start cut short can leave the fork server a half-sent request, or a worker
        # that stop() does not know of.
        with interrupts_held():
            proc.start()
            there.close()  # the worker holds the only other end: its death ends the pipe
            self._procs[here] = proc
        return here

    def map_unordered(self, func, items, died):
        """``func`` over ``items`` in the workers, yielding the results as they come; an item
        whose worker died yields ``died(item, how)`` instead (how: "signal 9: Killed", ...).
        An exception raised by ``func`` is raised here."""
        todo = iter(items)
        busy = {}  # pipe -> the item its worker holds

        def give(pipe=None):  # the next item to this worker (a new one if None), if any is left
            item = next(todo, _NO_ITEM)
            if item is _NO_ITEM:
                if pipe is not None:
                    self._idle.append(pipe)
                return
            if pipe is not None and not self._procs[pipe].is_alive():  # died idle: not this item's doing
                self._reap(pipe)
                pipe = None
            pipe = pipe or self._start()
            with contextlib.suppress(OSError):  # a worker dead already: its recv below says so
                pipe.send((func, item))
            busy[pipe] = item

        idle, self._idle = self._idle, []
        for pipe in idle:
            give(pipe)
        while busy:
            for pipe in multiprocessing.connection.wait(list(busy)):
                item = busy.pop(pipe)
                try:
                    ok, value, where = pipe.recv()
                except (EOFError, OSError):  # the worker died: only it held the other end
                    how = self._reap(pipe)
                    give()
                    yield died(item, how)
                    continue
                give(pipe)  # before the caller sees the result: the worker is not left idle
                if not ok:
                    raise value from WorkerTraceback(where)
                yield value

    def _reap(self, pipe) -> str:
        """Close a dead worker's pipe and wait for its process; returns how it died."""
        proc = self._procs.pop(pipe)
        pipe.close()
        proc.join()
        code = proc.exitcode
        return f"signal {-code}: {signal.strsignal(-code)}" if code < 0 else f"exit code {code}"

    def stop(self, now: bool = False) -> None:
        """End the workers and wait for them: when done with their item (a worker exits at the
        end of its pipe) or, ``now``, mid-item. Safe to call again."""
        for pipe, proc in self._procs.items():
            if now:
                proc.kill()
            pipe.close()
        for proc in self._procs.values():
            proc.join()
        self._procs.clear()
        self._idle.clear()


class WorkerTraceback(Exception):
    """Where an exception raised in a worker came from (the worker's traceback, as text)."""

    def __str__(self) -> str:
        return self.args[0]


def _worker_main(pipe) -> None:
    """A worker's loop: (func, item) in, (ok, result or exception, traceback) out."""
    import traceback

    _init_worker()
    while True:
        try:
            func, item = pipe.recv()
        except EOFError:  # the run closed the pool
            return
        try:
            reply = (True, func(item), "")
        except BaseException as exc:  # the run's to raise: a full disk, or a bug of ours
            reply = (False, exc, traceback.format_exc())
        try:
            pipe.send(reply)
        except Exception as exc:  # a reply that does not pickle: a bug of ours, for the run to raise
            pipe.send((False, RuntimeError(f"a worker's reply could not be sent back: {exc!r}"),
                       traceback.format_exc()))


def _pool_context():
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if context.get_start_method() == "forkserver":
        # Workers then start with the heavy imports done. Not signwrite.extract_frames: under
        # `python -m signwrite.extract_frames` each worker runs it again as its __main__,
        # and runpy warns when it is already imported.
        context.set_forkserver_preload(["cv2", "numpy", "signwrite.video"])
    return context


def start_fork_server() -> None:
    """Start the fork server now: its imports then overlap with reading clips.csv.

    It is started with SIGINT ignored (which, unlike a blocked signal, survives the exec):
    the server ignores SIGINT itself only once its imports are done, and a Ctrl-C to the
    whole job landing before that made it print a traceback. Ctrl-C is this process's to
    handle; one landing in the few milliseconds of the start is lost (press it again).
    """
    if _pool_context().get_start_method() != "forkserver":
        return
    from multiprocessing import forkserver

    if threading.current_thread() is not threading.main_thread():
        forkserver.ensure_running()
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, previous)


def pool_map(pool, func, items, died):
    """``func`` over ``items``, in ``pool`` if there is one (else here); see Workers.map_unordered."""
    if pool is None:
        return map(func, items)
    return pool.map_unordered(func, items, died)
