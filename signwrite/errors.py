"""Errors a user can cause. ``main`` prints them as one line and returns 1.

Ctrl-C is one line too: ``cli.run`` reports it once a stage has begun, and the handler
below covers the moment before, while a ``signwrite`` command is still importing (this is
the first module of the package every command loads).
"""

from __future__ import annotations

import os
import signal
import sys


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


if _launched_as_command() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, _interrupted_early)


class SignwriteError(Exception):
    """A problem with the user's input or environment, with a message that says how to fix it."""


class InputError(SignwriteError):
    """Bad rows in a CSV file. Holds every problem found, so the user fixes them all at once."""

    def __init__(self, path, problems: list[str], fix: str = ""):
        self.path = path
        self.problems = list(problems)
        head = f"{path}: {len(self.problems)} problem(s)"
        body = "\n".join(f"  - {p}" for p in self.problems)
        tail = f"\n  fix: {fix}" if fix else ""
        super().__init__(f"{head}\n{body}{tail}")


class DiskFullError(SignwriteError):
    """The disk filled up while writing; the stage stops (going on would only fail again)."""


class VideoError(SignwriteError):
    """A video that cannot be read, is empty, or does not hold the asked-for span."""


class RunError(SignwriteError):
    """A run folder that is not a usable run (missing model, labels that do not match...)."""


class WeightsError(SignwriteError):
    """Backbone weights that cannot be had (no network for imagenet, a bad local file)."""


class HandModelError(SignwriteError):
    """MediaPipe's hand model (hand_landmarker.task) that cannot be had or does not load."""
