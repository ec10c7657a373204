"""What several benchmarks share: timing with child CPU time, the fork server's stop, and
where the measured code stands (commit, changed files, library versions)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def stop_fork_server() -> None:
    """Stop multiprocessing's fork server, as the end of a CLI run does.

    The next signwrite run then pays the server's start-up, as every CLI run does, and the
    server, once reaped, hands its workers' CPU time to this process's children times.
    """
    import multiprocessing.forkserver

    getattr(multiprocessing.forkserver._forkserver, "_stop", lambda: None)()


def timed(func) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process and its children, fork-server workers included)."""
    c0 = os.times()
    t0 = time.perf_counter()
    func()
    wall = time.perf_counter() - t0
    stop_fork_server()
    c1 = os.times()
    cpu = (c1.user + c1.system + c1.children_user + c1.children_system
           - c0.user - c0.system - c0.children_user - c0.children_system)
    return wall, cpu


def autogroup() -> bool | None:
    """Whether the kernel groups CPU time by session (it changes how two jobs share cores)."""
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return None


def code_state() -> dict:
    """The commit, and the signwrite files that differ from it: the code timed is the working tree."""
    def git(*a):  # not stripped: a porcelain line starts with its status, a space for "unchanged"
        done = subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True)
        return done.stdout if done.returncode == 0 else ""

    return {"commit": git("rev-parse", "--short", "HEAD").strip() or None,
            "signwrite_changed": [line[3:] for line in git("status", "--porcelain", "--", "signwrite").splitlines()]}


def version(name: str) -> str | None:
    """The installed version of a distribution, or None."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed(name)
    except PackageNotFoundError:
        return None
