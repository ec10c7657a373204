"""annotate's view of a video: its track (the hands and the picture's change, about 12 samples
a second, cached under DATA/annotate/tracks/) and, for --by model, a run's probabilities per sample.

signwrite.annotate turns these into proposed clip times (with signwrite.align).
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from signwrite import align
from signwrite.errors import VideoError
from signwrite.fsutil import atomic_path, remove_stale_temps_of

if TYPE_CHECKING:
    from signwrite.hands import HandFrames

log = logging.getLogger(__name__)

TRACK_FPS = 12.5  # samples a second: enough to see a hold begin, a fifth of the tracker's cost at 50 fps
SMALL_WIDTH = 96  # px: the picture frame differencing looks at
THUMB_HEIGHT = 120  # px: review-sheet frames
TRACK_VERSION = 1  # bump when what a track holds changes
WINDOW_SHARE = 0.5  # --by model: windows at most this share of the time a sign has (duration / signs)
HANDS_NEEDED = 0.1  # share of samples with a hand below which the picture's motion is used instead


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class Track:
    """One video sampled about TRACK_FPS times a second: the hands, and the picture's change."""
    video: str
    path: Path
    fps: float
    n_frames: int
    hands: "HandFrames"  # frame_index: the sampled frames
    diff: np.ndarray  # (T,) mean absolute grey difference from the sample before
    foreground: np.ndarray  # (T,) share of the picture unlike the empty scene; NaN: never empty
    thumbs: list[bytes]  # a small JPEG per sample, for the review sheet
    tracked_hands: bool = True  # False: the hands were not looked for (--no-hands)

    @property
    def rate(self) -> float:
        return self.fps / track_step(self.fps)

    @property
    def duration(self) -> float:
        return self.n_frames / self.fps

    def edges(self) -> np.ndarray:
        """(T + 1,) seconds: sample i stands for [edges[i], edges[i + 1]), halfway to its neighbours."""
        f = self.hands.frame_index.astype(float)
        return np.concatenate([[0.0], (f[:-1] + 1 + f[1:]) / 2 / self.fps, [self.n_frames / self.fps]])

    def times(self, spans, margin: float = 0.0) -> list[tuple[float, float]]:
        e = self.edges()
        out = []
        for a, b in spans:
            m = min(margin, (e[b] - e[a]) / 4)  # a margin never eats a short span
            out.append((float(e[a] + m), float(e[b] - m)))
        return out

    def signals(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
        """(x, present, change, method) for align: x 1 where a hand is held still, 0 with none."""
        from signwrite.landmark_features import signing_hand

        found = self.hands.found
        still_picture, change = align.frame_change(self.diff)
        fg = None if np.isnan(self.foreground).all() else self.foreground >= 0.5
        if found.mean() >= HANDS_NEEDED:
            points, seen = signing_hand(self.hands.image, self.hands.handedness, self.hands.width,
                                        self.hands.height)
            present = align.smooth_presence(found, change) | (fg if fg is not None else False)
            times = self.hands.frame_index / self.fps
            speed = align.landmark_speed(points, seen, times)
            still = np.where(np.isnan(speed), still_picture, align.stillness_from_speed(speed))
            method = "hand landmarks"
        else:
            present = fg if fg is not None else np.ones(len(found), bool)
            still = still_picture
            method = "frame differencing" + ("" if fg is None else " and the empty scene")
        change = np.maximum(change, np.abs(np.diff(present.astype(float), prepend=float(present[0]))))
        return align.hold_signal(present, still), present, change, method


def track_step(fps: float) -> int:
    return max(1, int(round(fps / TRACK_FPS)))


def track_file(data_dir: Path, video: str, hands: bool) -> Path:
    return Path(data_dir) / "annotate" / "tracks" / f"{video}{'' if hands else '.no-hands'}.npz"


def load_or_track(path: Path, info, data_dir: Path, video: str, model_path: Path | None) -> Track:
    """The video's track from the cache when it was made from this very file the same way, else anew."""
    stat = Path(path).stat()
    key = {"version": TRACK_VERSION, "file": str(Path(path).resolve()), "size": stat.st_size,
           "mtime_ns": stat.st_mtime_ns, "frames": info.n_frames, "fps": info.fps, "step": track_step(info.fps),
           "hand_model": None if model_path is None else sha256(model_path)}
    cache = track_file(data_dir, video, model_path is not None)
    if cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as z:
                if json.loads(str(z["key"])) == key:
                    return _from_npz(z, video, Path(path), info, model_path is not None)
        except (OSError, ValueError, KeyError):
            pass  # unreadable or from another version: track again
    track = track_video(Path(path), info, video, model_path)
    remove_stale_temps_of(cache)
    with atomic_path(cache) as tmp, open(tmp, "wb") as f:
        offsets = np.cumsum([0] + [len(b) for b in track.thumbs])
        h = track.hands
        np.savez_compressed(f, key=np.array(json.dumps(key, sort_keys=True)), frame_index=h.frame_index,
                            image=h.image, world=h.world, handedness=h.handedness, score=h.score,
                            size=np.array([h.width, h.height]), diff=track.diff, foreground=track.foreground,
                            thumbs=np.frombuffer(b"".join(track.thumbs), np.uint8), offsets=offsets)
    return track


def _from_npz(z, video: str, path: Path, info, tracked_hands: bool) -> Track:
    from signwrite.hands import HandFrames

    w, h = (int(v) for v in z["size"])
    hands = HandFrames(z["frame_index"], z["image"], z["world"], z["handedness"], z["score"], w, h)
    blob, offsets = z["thumbs"].tobytes(), z["offsets"]
    thumbs = [blob[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
    return Track(video, path, info.fps, info.n_frames, hands, z["diff"], z["foreground"], thumbs, tracked_hands)


def track_video(path: Path, info, video: str, model_path: Path | None) -> Track:
    """One pass over the video: the hands of every sampled frame (MediaPipe, in VIDEO mode),
    a small picture of it for frame differencing, and a thumbnail for the review sheet."""
    import contextlib

    import cv2
    from tqdm import tqdm

    from signwrite.hands import HandFrames, HandTracker
    from signwrite.video import iter_frames

    wanted = list(range(0, info.n_frames, track_step(info.fps)))
    hands = HandFrames.empty(wanted, info.width, info.height)
    small, thumbs, diff, grey = [], [], [], None
    small_size = (SMALL_WIDTH, max(1, round(SMALL_WIDTH * info.height / info.width)))
    thumb_size = (max(1, round(THUMB_HEIGHT * info.width / info.height)), THUMB_HEIGHT)
    with contextlib.ExitStack() as stack:
        tracker = None if model_path is None else stack.enter_context(HandTracker(model_path))
        frames = tqdm(iter_frames(path, wanted), total=len(wanted), unit="frame", file=sys.stderr, disable=None,
                      desc=f"tracking {video}" if tracker else f"reading {video}")
        for t, (i, frame) in enumerate(frames):
            if tracker is not None:
                hands.image[t], hands.world[t], hands.handedness[t], hands.score[t] = \
                    tracker.detect(frame, i * 1000 / info.fps)
            small.append(cv2.resize(frame, small_size, interpolation=cv2.INTER_AREA))
            before, grey = grey, cv2.cvtColor(small[-1], cv2.COLOR_BGR2GRAY).astype(np.float32)
            diff.append(0.0 if before is None else float(np.abs(grey - before).mean()))
            ok, jpeg = cv2.imencode(".jpg", cv2.resize(frame, thumb_size, interpolation=cv2.INTER_AREA),
                                    [cv2.IMWRITE_JPEG_QUALITY, 80])
            thumbs.append(jpeg.tobytes())
    if len(small) < 2:
        raise VideoError(f"{path}: fewer than 2 frames could be decoded; the file may be truncated")
    if len(small) < len(wanted):
        log.warning("%s: %d of %d sampled frames decode (the file promises more than it holds)", path,
                    len(small), len(wanted))
        keep = slice(0, len(small))
        hands = HandFrames(hands.frame_index[keep], hands.image[keep], hands.world[keep], hands.handedness[keep],
                           hands.score[keep], hands.width, hands.height)
    diff = np.array(diff)
    fg = align.foreground(small, diff, ~hands.found)
    fg = np.full(len(small), np.nan) if fg is None else fg
    n_frames = info.n_frames if len(small) == len(wanted) else int(hands.frame_index[-1]) + 1
    return Track(video, path, info.fps, n_frames, hands, diff, fg, thumbs, tracker is not None)


# --------------------------------------------------------------------------- a run's probabilities

def model_window(run, track: Track, n_signs: int) -> float:
    """The run's training clip length, shortened to half the time a sign has in the video:
    a window that straddles two signs blurs the cut between them (measured on junaid and
    massey: half is better than 0.8, and than 0.3, where windows get too short to classify)."""
    from signwrite.run import DEFAULT_WINDOW, training_clip_seconds

    trained = training_clip_seconds(run) or DEFAULT_WINDOW
    return max(2 / track.rate, min(trained, WINDOW_SHARE * track.duration / n_signs))


def sample_probabilities(run, track: Track, window: float) -> np.ndarray:
    """(T, C): the run's probabilities for the window centred on each sample. A landmark run
    classifies the track's own hands (no second tracker pass); other runs see the frames
    through predict's transcription."""
    from signwrite import predict
    from signwrite.hands import HandFrames
    from signwrite.run import sampling_kwargs, stdout_to_stderr
    from signwrite.transcribe import plan_windows

    n = len(track.hands.frame_index)
    if run.input == "landmarks":
        h = track.hands
        length = max(1, int(round(window * track.rate)))
        plan = plan_windows(0, n, track.rate, length, 1, sampling_kwargs(run))
        windows = [HandFrames(h.frame_index[idx], h.image[idx], h.world[idx], h.handedness[idx], h.score[idx],
                              h.width, h.height) for _, _, idx in plan]
        with stdout_to_stderr():
            probs, has = run.classify_hands(windows)
        centres = np.array([(a + b - 1) / 2 for a, b, _ in plan], float)
        samples = np.arange(n, dtype=float)
    else:
        result = predict.transcribe_video(run, track.path, window=window, stride=1 / track.rate)
        w = result["windows"]
        probs, has = np.asarray(w["probs"]), np.ones(len(w["probs"]), bool)
        centres = (np.asarray(w["start"]) + np.asarray(w["end"])) / 2
        samples = (track.hands.frame_index + 0.5) / track.fps
    if not has.any():
        raise VideoError(f"{track.path}: no hand was found in any frame, so the {run.input} run cannot annotate it; "
                         "use --by motion, or check that the signing hand is in the picture")
    probs, centres = np.asarray(probs)[has], centres[has]
    nearest = np.abs(samples[:, None] - centres[None, :]).argmin(axis=1)
    return probs[nearest]
