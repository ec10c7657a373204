"""Classify a webcam, or a video played as if it were one, continuously.

    python -m signwrite.live --run logs/NAME [--camera 0 | --video FILE] [--db PATH] [--no-window]

Every frame that arrives goes through the model once; the last window of frames (as long
as the run's training clips) is sampled and aggregated the way training clips were, and
the top-3 signs are drawn on the frame (or printed with --no-window). Confident
predictions are committed to SQLite one by one, so stopping with Ctrl-C loses nothing.
When the model is slower than the camera, frames are dropped (a camera reader keeps only
the newest frame; a video skips ahead by the wall clock) so the picture never lags.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import logging
import os
import signal
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from signwrite.errors import SignwriteError
from signwrite.run import DEFAULT_WINDOW, open_run, sampling_kwargs, stdout_to_stderr, training_clip_seconds
from signwrite.transcribe import DEFAULT_THRESHOLD
from signwrite.video import CameraSource, VideoSource, sample_indices

log = logging.getLogger(__name__)

WINDOW_NAME = "signwrite live"
PRINT_EVERY = 1.0  # seconds between printed lines with --no-window, unless the top sign changes

SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    id INTEGER PRIMARY KEY,
    time TEXT NOT NULL,         -- wall clock, ISO 8601 with the UTC offset
    label TEXT NOT NULL,
    probability REAL NOT NULL,
    run TEXT NOT NULL,          -- the run folder that made the prediction
    source TEXT NOT NULL,       -- camera:N or the video file
    session TEXT NOT NULL,      -- when this session started; a new session appends
    stream_time REAL NOT NULL   -- seconds into the stream
)"""


@dataclass
class LiveSettings:
    run: Path
    camera: int = 0
    video: Path | None = None  # play this file instead of a camera
    db: Path | None = None  # None: live.sqlite next to the run folder (logs/live.sqlite)
    show: bool = True  # a window with the overlay; False prints instead
    threshold: float = DEFAULT_THRESHOLD
    realtime: bool = True  # a --video plays at its own frame rate; False: every frame, at full speed
    window_seconds: float | None = None  # None: the run's median training clip duration
    max_frames: int | None = None  # stop after this many frames (benchmarks, smoke tests)


def default_db(run_dir: Path) -> Path:
    return Path(run_dir).resolve().parent / "live.sqlite"


def now_iso() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="milliseconds")


# -- the rolling window -----------------------------------------------------------------------

class RollingWindow:
    """What each frame of the last ``seconds`` of stream gave (its probabilities, or for a
    landmark run its hands), sampled like a training clip."""

    def __init__(self, seconds: float, sampling: dict):
        self.seconds = seconds
        self.sampling = sampling
        self.items: collections.deque = collections.deque()
        self.first_time = None

    def add(self, t: float, probs: np.ndarray) -> None:
        if self.first_time is None:
            self.first_time = t
        self.items.append((t, probs))
        while self.items and self.items[0][0] <= t - self.seconds:
            self.items.popleft()

    def full(self, frame_period: float) -> bool:
        return bool(self.items) and self.items[-1][0] - self.first_time >= self.seconds - frame_period - 1e-9

    def sampled(self) -> list:
        n = len(self.items)
        return [self.items[i][1] for i in sample_indices(n, n / self.seconds, **self.sampling)]

    def probs(self, aggregate) -> np.ndarray:
        return np.asarray(aggregate(np.stack(self.sampled())))


class FrameClassifier:
    """A frame in, what the rolling window keeps out, for each kind of run; ``window_probs``
    then gives the window's probabilities (None: no hand in the window, no prediction)."""

    def __init__(self, run, stack: contextlib.ExitStack):
        self.run = run
        self.tracker = stack.enter_context(run.hand_tracker()) if run.input != "frames" else None
        self.hands = None  # the last frame's hands (2, 21, 3), to draw

    def __call__(self, frame: np.ndarray, t: float):
        run = self.run
        if self.tracker is None:
            return np.asarray(run.predict_frames([run.as_extracted(frame)]))[0]
        image, _, handedness, _ = self.tracker.detect(frame, t * 1000)
        self.hands = image
        if run.input == "landmarks":
            return image, handedness, frame.shape[1], frame.shape[0]
        from signwrite.hands import HandFrames

        found = HandFrames.empty([0], frame.shape[1], frame.shape[0])
        found.image[0], found.handedness[0] = image, handedness
        crops = run.hand_crops([frame], found)
        return np.asarray(run.predict_frames(crops))[0] if crops else None

    def window_probs(self, items: list) -> np.ndarray | None:
        run = self.run
        if run.input == "landmarks":
            from signwrite.hands import HandFrames

            found = HandFrames.empty(range(len(items)), items[0][2], items[0][3])
            for k, (image, handedness, _, _) in enumerate(items):
                found.image[k], found.handedness[k] = image, handedness
            probs, has_hand = run.classify_hands([found])
            return probs[0] if has_hand[0] else None
        have = [p for p in items if p is not None]
        return np.asarray(run.aggregate(np.stack(have))) if have else None


# -- recording ---------------------------------------------------------------------------------

def open_db(path: Path) -> sqlite3.Connection:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA journal_mode=WAL")  # readers (a dashboard) never block the recorder
        # no fsync per row (it halved live's frame rate with a landmark run): in WAL mode a
        # committed row still survives Ctrl-C or a killed process; a power cut may lose the last ones
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(SCHEMA)
        conn.commit()
    except sqlite3.DatabaseError as exc:
        raise SignwriteError(f"{path}: not a usable SQLite database ({exc}); pass another --db") from None
    return conn


def new_session(conn: sqlite3.Connection) -> str:
    """A name for a new session: when it started, with "-2", "-3", ... if an earlier session in
    this database started in the same millisecond (its rows must not be taken for this one's)."""
    start = now_iso()
    taken = {r[0] for r in conn.execute("SELECT DISTINCT session FROM predictions WHERE session = ? "
                                        "OR session LIKE ?", (start, start + "-%"))}
    name, n = start, 1
    while name in taken:
        n += 1
        name = f"{start}-{n}"
    return name


def record(conn: sqlite3.Connection, row: tuple) -> None:
    with conn:  # one transaction per row: a stop at any moment keeps every row before it
        conn.execute("INSERT INTO predictions (time, label, probability, run, source, session, stream_time) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)", row)


# -- showing -----------------------------------------------------------------------------------

def draw_overlay(frame: np.ndarray, top: list[dict], fps: float) -> np.ndarray:
    import cv2

    scale = max(0.5, frame.shape[0] / 480)
    y = int(30 * scale)
    for rank, t in enumerate(top):
        colour = (0, 255, 0) if rank == 0 else (255, 255, 255)
        text = f"{t['label']}  {t['probability']:.2f}"
        cv2.putText(frame, text, (10, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 4, cv2.LINE_AA)
        cv2.putText(frame, text, (10, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 2, cv2.LINE_AA)
        y += int(30 * scale)
    cv2.putText(frame, f"{fps:.1f} fps", (10, frame.shape[0] - 10), cv2.FONT_HERSHEY_SIMPLEX,
                scale * 0.6, (0, 255, 255), 1, cv2.LINE_AA)
    return frame


def check_display() -> None:
    """Qt aborts the whole process when it finds no display, so look before opening a window."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise SignwriteError("no display to open a window on (DISPLAY is not set); "
                             "use --no-window to print the predictions instead")


def show(frame: np.ndarray) -> bool:
    """Show a frame; False when the user pressed q or Esc."""
    import cv2

    try:
        cv2.imshow(WINDOW_NAME, frame)
        key = cv2.waitKey(1) & 0xFF
    except cv2.error as exc:
        raise SignwriteError(f"cannot open a window ({str(exc).strip().splitlines()[-1]}); "
                             "use --no-window to print the predictions instead") from None
    return key not in (ord("q"), 27)


@contextlib.contextmanager
def stop_on_sigint():
    """The first Ctrl-C ends the loop after the current frame; a second one interrupts at once."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        flag.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


# -- the loop ----------------------------------------------------------------------------------

def live(s: LiveSettings, run=None) -> dict:
    """Classify until the source ends, q/Esc, Ctrl-C or ``max_frames``; returns a summary with the fps."""
    if s.show:
        check_display()
    if run is None:
        run = open_run(s.run)
    seconds = s.window_seconds or training_clip_seconds(run) or DEFAULT_WINDOW
    db = s.db or default_db(s.run)
    conn = open_db(db)
    try:
        source = VideoSource(s.video, s.realtime) if s.video else CameraSource(s.camera)
    except BaseException:
        conn.close()
        raise
    session, run_name = new_session(conn), str(s.run)
    window = RollingWindow(seconds, sampling_kwargs(run))
    log.info("live: %s with run %s, window %.2f s, recording predictions >= %.2f in %s",
             source.name, run_name, seconds, s.threshold, db)
    frames = rows = 0
    last_print, last_label, started = -1e9, None, time.monotonic()
    recent = collections.deque(maxlen=30)  # when the last frames were done, for the fps shown
    try:
        with stop_on_sigint() as stopped, contextlib.ExitStack() as stack:
            classify = FrameClassifier(run, stack)
            while not stopped.is_set() and (s.max_frames is None or frames < s.max_frames):
                got = source.read()
                if got is None:
                    break
                frame, t = got
                with stdout_to_stderr():
                    window.add(t, classify(frame, t))
                    probs = classify.window_probs(window.sampled()) if window.full(1 / source.fps) else None
                frames += 1
                recent.append(time.monotonic())
                fps = (len(recent) - 1) / max(recent[-1] - recent[0], 1e-9) if len(recent) > 1 else 0.0
                top = run.top_k(probs, 3) if probs is not None else []
                if top and top[0]["probability"] >= s.threshold:
                    record(conn, (now_iso(), top[0]["label"], top[0]["probability"], run_name, source.name,
                                  session, round(t, 3)))
                    rows += 1
                if s.show:
                    if classify.hands is not None:
                        from signwrite.hands import draw_skeleton

                        draw_skeleton(frame, classify.hands)
                    if not show(draw_overlay(frame, top, fps)):
                        break
                elif top and (top[0]["label"] != last_label or t - last_print >= PRINT_EVERY):
                    line = " | ".join(f"{x['label']} {x['probability']:.2f}" for x in top)
                    print(f"{t:8.2f} s  {line}  ({fps:.1f} fps)", flush=True)
                    last_print, last_label = t, top[0]["label"]
    finally:
        elapsed = time.monotonic() - started
        source.close()
        conn.close()
        if s.show:
            with contextlib.suppress(Exception):
                import cv2

                cv2.destroyWindow(WINDOW_NAME)
    summary = {"frames": frames, "dropped": source.dropped, "seconds": elapsed,
               "fps": frames / elapsed if elapsed > 0 else 0.0, "rows": rows, "db": str(db), "session": session}
    log.info("live: %d frames classified in %.1f s = %.1f fps; %d frames dropped to keep up; "
             "%d confident predictions recorded in %s", frames, elapsed, summary["fps"],
             source.dropped, rows, db)
    return summary


def live_command(s: LiveSettings) -> int:
    live(s)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="signwrite live", description=__doc__.split("\n\n")[0],
                                epilog="Stop with q or Esc in the window, or Ctrl-C; recorded rows are kept.")
    p.add_argument("--run", type=Path, required=True, help="a run folder written by train (logs/NAME)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--camera", type=int, default=0, help="camera number (default 0)")
    src.add_argument("--video", type=Path, help="play this video file as if it were a camera")
    p.add_argument("--db", type=Path, help="SQLite file for confident predictions (table 'predictions'; "
                   "created on first use, appended to by later sessions); default live.sqlite next to "
                   "the run folder, e.g. logs/live.sqlite, shared by all runs")
    p.add_argument("--no-window", dest="show", action="store_false",
                   help="print the top-3 instead of showing a window (headless use)")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help="record predictions at least this probable (default %(default)s)")
    p.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=True,
                   help="play --video at its own frame rate, dropping frames when the model is slower "
                        "(default); --no-realtime classifies every frame as fast as possible")
    p.add_argument("--window-seconds", type=float,
                   help="seconds of recent frames classified together (default: the run's median "
                        f"training clip duration, else {DEFAULT_WINDOW:g})")
    p.add_argument("--max-frames", type=int, help="stop after classifying this many frames")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    from signwrite.process import run_stage, setup_logging

    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0 <= args.threshold <= 1:
        parser.error(f"--threshold is a probability between 0 and 1 (received {args.threshold})")
    if args.window_seconds is not None and args.window_seconds <= 0:
        parser.error(f"--window-seconds must be positive (received {args.window_seconds})")
    if args.max_frames is not None and args.max_frames < 1:
        parser.error(f"--max-frames must be at least 1 (received {args.max_frames})")
    setup_logging(args.verbose)
    settings = LiveSettings(run=args.run, camera=args.camera, video=args.video, db=args.db, show=args.show,
                            threshold=args.threshold, realtime=args.realtime,
                            window_seconds=args.window_seconds, max_frames=args.max_frames)
    return run_stage("live", live_command, settings)


if __name__ == "__main__":
    sys.exit(main())
