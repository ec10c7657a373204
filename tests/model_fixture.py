"""Models for the predict / transcribe / live tests.

``ColourRun`` is a ``signwrite.run.Run`` whose model classifies a frame by its mean colour
(it replaces predict_frames and aggregate; the pixel path before the model is the real
one), so the logic around a model is tested exactly and in milliseconds. ``colour_video`` makes videos of solid
colour stretches with known times.

``small_run`` is a real run: small_cnn at 32 px trained from scratch on the four classes of
tests/frames_tools.py, trained once per test session however many test modules (and
pytest-xdist workers) ask for it (``small_run_settings`` gives its TrainSettings, for a
test that trains the same run again).
``class_video`` films those classes as a video.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pytest

from frames_tools import class_frame, make_frames_dataset
from signwrite.run import Run
from signwrite.video import write_video

# BGR colours of the three classes, and a grey "nothing is signed" frame.
COLOURS = {"B": (230, 30, 30), "G": (30, 230, 30), "R": (30, 30, 230)}
GREY = (128, 128, 128)


class ColourRun(Run):
    """A fake run: the class is the dominant channel of a frame's mean colour (B, G or R)."""

    labels = ["B", "G", "R"]
    input = "frames"
    sampling = None  # set in __init__: a plain attribute here, not a view of config.json

    def __init__(self, sampling=None, config=None, delay: float = 0.0):
        self.sampling = {"frames_per_clip": 4, "fps": None, "all_frames": False, "size": 48,
                         "jpeg_quality": 95, **(sampling or {})}
        self.config = {"data": {"median_clip_seconds": 1.0}} if config is None else config
        self.delay = delay  # seconds per call, to play a slow model
        self.calls: list[list[np.ndarray]] = []  # every batch of frames it was given

    def predict_frames(self, frames):
        import time

        self.calls.append(list(frames))
        if self.delay:
            time.sleep(self.delay)
        means = np.array([np.asarray(f, float).reshape(-1, 3).mean(0) for f in frames]).reshape(-1, 3)
        # grey (all channels equal) gives 1/3 each; a saturated colour gives ~1 for its channel
        logits = (means - means.mean(1, keepdims=True)) / 15
        e = np.exp(logits)
        return (e / e.sum(1, keepdims=True)).astype(np.float32)

    def aggregate(self, probs):
        return np.asarray(probs).mean(0)

    @property
    def frames_seen(self) -> int:
        return sum(len(c) for c in self.calls)


def colour_video(path: Path, stretches, fps: float = 10, size=(64, 48)) -> Path:
    """A video of solid colour stretches [(label or None for grey, seconds), ...]."""
    w, h = size
    frames = []
    for label, seconds in stretches:
        colour = COLOURS[label] if label else GREY
        frame = np.empty((h, w, 3), np.uint8)
        frame[:] = colour
        frames += [frame] * int(round(seconds * fps))
    write_video(path, frames, fps, crf=18, gop=int(fps))
    return Path(path)


def truth_times(stretches):
    """[(label, start, end)] of the labelled stretches."""
    out, t = [], 0.0
    for label, seconds in stretches:
        if label:
            out.append((label, t, t + seconds))
        t += seconds
    return out


# -- a real model --------------------------------------------------------------------------------

SMALL_LABELS = ("red_disk", "green_bar", "blue_box", "yellow_cross")
SMALL_FPS = 10  # the frame rate make_frames_dataset pretends its clips had
SMALL_CLIP_SECONDS = 1.8  # its clips: 6 frames, every third of 18 frames at 10 fps


def small_run_settings(root: Path):
    """The small run's TrainSettings (its data under root/data, the run root/logs/small)."""
    from signwrite.train import TrainSettings

    return TrainSettings(data_dir=root / "data", logdir=root / "logs", run="small", backbone="small_cnn",
                         weights="none", image_size=32, epochs=20, batch_size=16, patience=20, seed=0,
                         deterministic=True)


def small_run_command(root: Path) -> list[str]:
    """``signwrite train`` arguments of the small run (the same as small_run_settings)."""
    s = small_run_settings(root)
    return ["--data-dir", str(s.data_dir), "--logdir", str(s.logdir), "--run", s.run, "--backbone", s.backbone,
            "--weights", s.weights, "--image-size", str(s.image_size), "--epochs", str(s.epochs),
            "--batch-size", str(s.batch_size), "--patience", str(s.patience), "--seed", str(s.seed),
            "--deterministic"]


@functools.lru_cache(maxsize=None)
def train_small_run(root: Path) -> Path:
    """Train (or, when already finished under ``root``, reuse) the small run; returns its folder.

    It trains in a process of its own: --deterministic switches op determinism on for the
    whole process, which must not leak into the tests that share this one (a test of
    --deterministic would pass with the flag wired to nothing), and the model is then the
    same whatever this process ran before. Several processes asking at once (pytest-xdist's
    workers) wait for one to train it, under a lock next to ``root``.
    """
    import fcntl
    import subprocess
    import sys

    s = small_run_settings(root)
    run_dir = s.logdir / s.run
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f"{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (run_dir / "metrics.json").is_file():  # trained by another worker: written last
            return run_dir
        make_frames_dataset(s.data_dir, labels=SMALL_LABELS, videos={"train": ["va", "vb", "vc"], "test": ["vd"]},
                            clips_per_video=2)
        repo = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
               "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
        proc = subprocess.run([sys.executable, "-m", "signwrite.train", *small_run_command(root)], env=env,
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return run_dir


def session_folder(tmp_path_factory) -> Path:
    """A folder the whole test session shares: the base temp folder, or under pytest-xdist
    (every worker has its own base temp folder) the one its workers' folders are in."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def small_run(tmp_path_factory) -> Path:
    # one model for the session, however many test modules and workers ask for it
    return train_small_run(session_folder(tmp_path_factory) / "small-run")


def class_video(path: Path, stretches, fps: float = SMALL_FPS, seed: int = 1) -> Path:
    """A video of the small run's classes [(label, seconds), ...], drawn afresh (unseen frames)."""
    rng = np.random.default_rng(seed)
    frames = [class_frame(label, rng) for label, seconds in stretches for _ in range(int(round(seconds * fps)))]
    write_video(path, frames, fps, crf=18, gop=int(fps))
    return Path(path)
