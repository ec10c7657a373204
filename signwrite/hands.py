"""The signing hands: MediaPipe hand landmarks per frame, hand crops, the skeleton drawn.

    from signwrite.hands import HandTracker, track_frames, HandFrames
    with HandTracker(model_path) as tracker:          # VIDEO mode: tracks from frame to frame
        hands = tracker.detect(frame_bgr, time_ms)     # (image, world, handedness, score) of 2 slots
    clip = track_frames(frames_bgr, times_ms, model_path)  # a clip's HandFrames
    clip.save(path); HandFrames.load(path)             # one .npz per clip (docs/CONTRACTS.md)

Up to two hands per frame, in two slots: slot 0 holds the hand MediaPipe labels Right,
slot 1 the Left one (two hands with one label: the more confident keeps its slot), so a
hand stays in its slot from frame to frame. An empty slot is NaN (points), -1 (handedness)
and 0 (score). MediaPipe labels handedness as seen in a mirrored (selfie) picture; we store
its label unchanged (on the real footage we checked, a right hand filmed facing the camera
is labelled Right).
"""

from __future__ import annotations

import contextlib
import importlib.abc
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_HANDS = 2
N_POINTS = 21
RIGHT, LEFT, ABSENT = 1, 0, -1
MIN_CONFIDENCE = 0.5  # MediaPipe's default for detection, presence and tracking
CROP_MARGIN = 0.3  # a crop's side is the hand box's longer side times (1 + 2 * margin)
# MediaPipe's palm detector misses hands that fill the frame (close-ups, tightly cropped
# photos): a frame where it finds none gets a second look with this much black border
# around it (a share of the longer side, each way). Measured on asl-letters-massey
# (benchmarks/bench_hands.py): a hand in 79.6% of the sampled frames without it, 98.9% with
# it; on junaid it finds nothing more. It costs time only on frames without a hand.
RETRY_PAD = 0.25

# MediaPipe's hand topology: 0 wrist; thumb 1-4, index 5-8, middle 9-12, ring 13-16, pinky 17-20
FINGERS = ((1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16), (17, 18, 19, 20))
# the lines MediaPipe draws: each finger from its base, and the palm's outline
CONNECTIONS = (tuple((a, b) for f in FINGERS for a, b in zip(f[:-1], f[1:]))
               + ((0, 1), (0, 5), (5, 9), (9, 13), (13, 17), (0, 17)))

# What MediaPipe's native side prints on every landmarker it makes (LiteRT and XNNPACK notes)
NATIVE_NOISE = re.compile(r"INFO: .*|WARNING: Logging before InitGoogle\(\) is written to STDERR"
                          r"|[IW]\d{4} [\d:.]+ +\d+ \S+\.(cc|h):\d+\] .*")


# --------------------------------------------------------------------------- per-clip arrays

@dataclass
class HandFrames:
    """The hands in a clip's sampled frames (T of them, in time order)."""
    frame_index: np.ndarray  # (T,) int32: the frame's index in the clip (NNNN of its JPEG)
    image: np.ndarray  # (T, 2, 21, 3) float32: x, y in [0, 1] of the frame, z relative depth; NaN if absent
    world: np.ndarray  # (T, 2, 21, 3) float32: metres, origin at the hand's centre; NaN if absent
    handedness: np.ndarray  # (T, 2) int8: RIGHT, LEFT or ABSENT
    score: np.ndarray  # (T, 2) float32: MediaPipe's handedness score, 0 if absent
    width: int  # the frame size the image points are relative to
    height: int

    @property
    def found(self) -> np.ndarray:
        """(T,) bool: frames with at least one hand."""
        return (self.handedness != ABSENT).any(axis=1)

    @classmethod
    def empty(cls, frame_index, width: int, height: int) -> "HandFrames":
        t = len(frame_index)
        return cls(np.asarray(frame_index, np.int32), np.full((t, MAX_HANDS, N_POINTS, 3), np.nan, np.float32),
                   np.full((t, MAX_HANDS, N_POINTS, 3), np.nan, np.float32), np.full((t, MAX_HANDS), ABSENT, np.int8),
                   np.zeros((t, MAX_HANDS), np.float32), int(width), int(height))

    def save(self, path: Path) -> None:
        """An .npz (numpy.load reads it; no pickles) written to ``path`` as it is (callers
        write into a temp folder that is renamed whole)."""
        with open(path, "wb") as f:
            np.savez_compressed(f, frame_index=self.frame_index, image=self.image, world=self.world,
                                handedness=self.handedness, score=self.score, found=self.found,
                                width=np.int32(self.width), height=np.int32(self.height))

    @classmethod
    def load(cls, path: Path) -> "HandFrames":
        with np.load(path, allow_pickle=False) as z:
            return cls(z["frame_index"], z["image"], z["world"], z["handedness"], z["score"],
                       int(z["width"]), int(z["height"]))

    def signing_slot(self) -> int:
        """The slot found in more frames (ties: slot 0, the right hand)."""
        counts = (self.handedness != ABSENT).sum(axis=0)
        return int(np.argmax(counts))


# --------------------------------------------------------------------------- MediaPipe

class _NoTensorFlow(importlib.abc.MetaPathFinder):
    """Makes `import tensorflow` fail while MediaPipe is imported: MediaPipe imports it (3 s,
    hundreds of MB) only for an API-docs decorator, and falls back to a no-op without it."""

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


def import_vision():
    """mediapipe.tasks.python.vision, imported without TensorFlow when TensorFlow is not loaded."""
    if "mediapipe.tasks.python.vision" in sys.modules or "tensorflow" in sys.modules:
        from mediapipe.tasks.python import vision

        return vision
    blocker = _NoTensorFlow()
    sys.meta_path.insert(0, blocker)
    try:
        from mediapipe.tasks.python import vision
    finally:
        sys.meta_path.remove(blocker)
    return vision


class HandTracker:
    """MediaPipe's HandLandmarker on a stream of BGR frames (VIDEO mode: it tracks the hand
    found in one frame into the next, rather than searching every frame anew).

    Timestamps must grow; ``detect`` nudges a repeated or backward one forward by 1 ms.
    One tracker per clip: a tracker carried into the next clip would track the last hand.
    """

    def __init__(self, model_path: Path, *, num_hands: int = MAX_HANDS, min_confidence: float = MIN_CONFIDENCE,
                 retry_pad: float = RETRY_PAD, quiet: bool = True):
        vision = import_vision()  # first: it keeps TensorFlow out of MediaPipe's package import
        from mediapipe.tasks.python.core.base_options import BaseOptions

        def options(mode):
            return vision.HandLandmarkerOptions(
                base_options=BaseOptions(model_asset_path=str(model_path)), running_mode=mode,
                num_hands=num_hands, min_hand_detection_confidence=min_confidence,
                min_hand_presence_confidence=min_confidence, min_tracking_confidence=min_confidence)

        self._quiet = quiet
        self._retry_pad = retry_pad
        with _native_quiet(quiet):
            self._landmarker = vision.HandLandmarker.create_from_options(options(vision.RunningMode.VIDEO))
        # the second look is a still picture (no tracking state to carry between frames),
        # made on the first frame that needs one: most clips of most videos never do
        self._padded = None
        self._make_padded = lambda: vision.HandLandmarker.create_from_options(options(vision.RunningMode.IMAGE))
        self._last_ms = -1
        self._calls = 0

    def detect(self, frame_bgr: np.ndarray, time_ms: float):
        """One frame -> (image (2,21,3), world (2,21,3), handedness (2,), score (2,)) by slot."""
        import cv2
        import mediapipe as mp

        ms = max(int(round(time_ms)), self._last_ms + 1)
        self._last_ms = ms
        rgb = np.ascontiguousarray(cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB))
        self._calls += 1
        # the first calls print the native side's notes (memory alignment, ROI projection)
        with _native_quiet(self._quiet and self._calls <= 2):
            result = self._landmarker.detect_for_video(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb), ms)
            h, w = rgb.shape[:2]
            pad = int(round(self._retry_pad * max(h, w)))
            if not result.hand_landmarks and pad:
                if self._padded is None:
                    with _native_quiet(self._quiet):
                        self._padded = self._make_padded()
                padded = np.ascontiguousarray(cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0))
                again = self._padded.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=padded))
                if again.hand_landmarks:
                    result = _unpad(again, pad, w, h)
        image = np.full((MAX_HANDS, N_POINTS, 3), np.nan, np.float32)
        world = np.full((MAX_HANDS, N_POINTS, 3), np.nan, np.float32)
        handedness = np.full(MAX_HANDS, ABSENT, np.int8)
        score = np.zeros(MAX_HANDS, np.float32)
        hands = sorted(zip(result.hand_landmarks, result.hand_world_landmarks, result.handedness),
                       key=lambda h: -h[2][0].score)  # the most confident hand picks its slot first
        for points, world_points, category in hands[:MAX_HANDS]:
            side = RIGHT if category[0].category_name == "Right" else LEFT
            slot = 0 if side == RIGHT else 1
            if handedness[slot] != ABSENT:
                slot = 1 - slot
            image[slot] = [(p.x, p.y, p.z) for p in points]
            world[slot] = [(p.x, p.y, p.z) for p in world_points]
            handedness[slot], score[slot] = side, category[0].score
        return image, world, handedness, score

    def close(self) -> None:
        with _native_quiet(self._quiet):
            self._landmarker.close()
            if self._padded is not None:
                self._padded.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _unpad(result, pad: int, width: int, height: int):
    """A result on the frame with a ``pad``-pixel border, in the frame's own coordinates."""
    grow = (width + 2 * pad) / width  # z has the scale of x (MediaPipe's convention)
    for hand in result.hand_landmarks:
        for p in hand:
            p.x, p.y, p.z = (p.x * (width + 2 * pad) - pad) / width, (p.y * (height + 2 * pad) - pad) / height, p.z * grow
    return result


@contextlib.contextmanager
def _native_quiet(quiet: bool):
    if not quiet:
        yield
        return
    from signwrite.process import native_stderr_filtered

    with native_stderr_filtered(NATIVE_NOISE):
        yield


def track_frames(frames_bgr, frame_index, fps: float, model_path: Path, **kw) -> HandFrames:
    """The hands in a clip's frames (BGR, in time order, at ``frame_index`` of a ``fps`` video)."""
    frames = list(frames_bgr)
    h, w = frames[0].shape[:2] if frames else (0, 0)
    out = HandFrames.empty(frame_index, w, h)
    if not frames:
        return out
    with HandTracker(model_path, **kw) as tracker:
        for t, (frame, index) in enumerate(zip(frames, out.frame_index)):
            out.image[t], out.world[t], out.handedness[t], out.score[t] = tracker.detect(frame, index * 1000.0 / fps)
    return out


# --------------------------------------------------------------------------- crops and drawing

def crop_box(points: np.ndarray, width: int, height: int, margin: float = CROP_MARGIN) -> tuple[int, int, int]:
    """A square (x0, y0, side) in pixels around one hand's normalised image points."""
    xs, ys = points[:, 0] * width, points[:, 1] * height
    cx, cy = (xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2
    side = max(xs.max() - xs.min(), ys.max() - ys.min()) * (1 + 2 * margin)
    side = max(int(round(side)), 8)
    return int(round(cx - side / 2)), int(round(cy - side / 2)), side


def crop_hand(frame: np.ndarray, points: np.ndarray, size: int, margin: float = CROP_MARGIN) -> np.ndarray:
    """The hand's square box (grown by ``margin``), resized to ``size`` x ``size``; the part
    outside the frame is black, so the hand stays centred and unstretched at the border."""
    import cv2

    h, w = frame.shape[:2]
    x0, y0, side = crop_box(points, w, h, margin)
    square = np.zeros((side, side, 3), frame.dtype)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
    if sx1 > sx0 and sy1 > sy0:
        square[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = frame[sy0:sy1, sx0:sx1]
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(square, (size, size), interpolation=interp)


SLOT_COLOURS = ((0, 200, 255), (255, 120, 0))  # BGR: right hand orange, left blue


def draw_skeleton(image: np.ndarray, points: np.ndarray, *, thickness: int | None = None) -> np.ndarray:
    """Draw the hands (points: (2, 21, 3) normalised, NaN where absent) onto a BGR image, in place."""
    import cv2

    h, w = image.shape[:2]
    thickness = thickness or max(1, round(min(h, w) / 150))
    for slot, hand in enumerate(np.asarray(points).reshape(-1, N_POINTS, 3)):
        if np.isnan(hand).any():
            continue
        px = np.stack([hand[:, 0] * w, hand[:, 1] * h], axis=1).round().astype(int)
        colour = SLOT_COLOURS[slot % len(SLOT_COLOURS)]
        for a, b in CONNECTIONS:
            cv2.line(image, tuple(px[a]), tuple(px[b]), colour, thickness, cv2.LINE_AA)
        for p in px:
            cv2.circle(image, tuple(p), thickness + 1, (255, 255, 255), -1, cv2.LINE_AA)
    return image
