"""Errors a user can cause. ``process.run_stage`` prints them as one line and returns 1."""

from __future__ import annotations


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
