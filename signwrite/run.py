"""A trained run, as predict, live and evaluate use it (docs/CONTRACTS.md).

    from signwrite.run import load_run, open_run
    run = load_run("logs/NAME")  # or open_run(path) for a --run argument
    run.labels                   # list[str], index = class id
    run.config                   # everything in config.json
    run.sampling                 # the extract_config the run was trained on
    run.input                    # "frames", "hands" (crops into the backbone) or "landmarks"
    run.as_extracted(frame)      # a decoded BGR frame made as extract_frames stored it for training
    run.predict_frames(frames)   # HxWx3 uint8 BGR frames (any size) -> (n, C) float32
    run.aggregate(probs)         # (n, C) -> (C,) with the run's aggregation
    run.top_k(probs, k)          # [{"label", "probability"}, ...], best first
    run.hand_tracker()           # hand-based runs: a HandTracker to find the hands in new video
    run.hand_crops(frames, hands)  # hands runs: the signing hand's crops, as extract-frames --hands made them
    run.classify_hands(clips, frames)  # hand-based runs: [HandFrames, ...] -> (probs (n, C), has_hand (n,))
    sampling_kwargs(run)         # sample_indices keywords: which frames of a clip or window the run sees
    training_clip_seconds(run)   # how long its training clips were (a window's length), or None

This module is the one owner of the pixel path at prediction time: how a decoded frame
becomes model input (resize, the JPEG round trip that matches the training frames, colour
order), which frames are sampled, how long a window is. model.keras holds the rest of the
pipeline from raw RGB frames (centre crop, resize, the backbone's preprocess_input,
backbone, head), so nothing here can drift from training.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from signwrite.process import interrupts_held
from signwrite.errors import RunError

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 1.5  # seconds, when the run does not say how long its training clips were


@dataclass
class Run:
    path: Path
    model: object  # keras.Model: (batch, H, W, 3) RGB 0..255 -> (batch, C) probabilities
    labels: list[str]
    config: dict
    batch_size: int = 32
    _forward: object = field(default=None, repr=False)

    @property
    def sampling(self) -> dict:
        return dict(self.config.get("extract_config") or {})

    @property
    def input(self) -> str:
        return self.config.get("input", "frames")

    def hand_tracker(self, model_path=None):
        """MediaPipe's hand tracker for new video (the cached hand model unless told otherwise)."""
        from signwrite.hand_model import hand_model_path
        from signwrite.hands import HandTracker

        return HandTracker(hand_model_path(model_path))

    def classify_hands(self, clips, frames=None) -> tuple[np.ndarray, np.ndarray]:
        """A hand-based run on clips' hands ([hands.HandFrames, ...]; a hands run also needs
        each clip's frames): their probabilities, and which clips had a hand at all (those
        without get a row of zeros: no prediction)."""
        if self.input != "landmarks":  # the signing hand's crops through the backbone
            probs = np.zeros((len(clips), len(self.labels)), np.float32)
            has_hand = np.zeros(len(clips), bool)
            for i, (found, clip_frames) in enumerate(zip(clips, frames)):
                crops = self.hand_crops(clip_frames, found)
                if crops:
                    probs[i], has_hand[i] = self.aggregate(self.predict_frames(crops)), True
            return probs, has_hand
        from signwrite import landmark_features as lf
        from signwrite import landmark_model as lm

        spec = lf.FeatureSpec.from_dict(self.config["landmarks"]["feature_spec"])
        points = [lf.signing_hand(c.image, c.handedness, c.width, c.height) for c in clips]
        if self._forward is None:  # compiled once: an eager call of this small model costs 7-14x more (live)
            import tensorflow as tf

            self._forward = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)
        with interrupts_held():
            return lm.predict(self.model, points, spec, int(self.config["landmarks"]["max_frames"]),
                              forward=self._forward)

    def as_extracted(self, frame: np.ndarray) -> np.ndarray:
        """A decoded frame made the way extract_frames stored it: short side resized, JPEG round trip."""
        from signwrite.video import resize_short_side

        size = self.sampling.get("size")
        if size:
            frame = resize_short_side(frame, int(size))
        quality = self.sampling.get("jpeg_quality")
        return jpeg_round_trip(frame, int(quality)) if quality else frame

    def hand_crops(self, frames, found) -> list[np.ndarray]:
        """The signing hand's crops of the frames that show it (``found``: their HandFrames),
        made as extract-frames --hands made them."""
        from signwrite.extract_hands import JPEG_QUALITY
        from signwrite.hands import ABSENT, crop_hand

        slot, size = found.signing_slot(), int(self.sampling["size"])
        return [jpeg_round_trip(crop_hand(f, found.image[t, slot], size), JPEG_QUALITY)
                for t, f in enumerate(frames) if found.handedness[t, slot] != ABSENT]

    def predict_frames(self, frames_bgr) -> np.ndarray:
        """BGR uint8 frames of any size -> (n, n_classes) float32 probabilities.

        Frames are first made the size extract_frames stored them at (short side), so a
        raw video frame and a training JPEG reach the model's own resizing alike.
        """
        import cv2
        import tensorflow as tf

        from signwrite.video import resize_short_side

        frames = list(frames_bgr)
        n_classes = len(self.labels)
        if not frames:
            return np.zeros((0, n_classes), np.float32)
        if self._forward is None:
            self._forward = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)
        size = self.sampling.get("size")
        rgb = [cv2.cvtColor(resize_short_side(f, int(size)) if size else f, cv2.COLOR_BGR2RGB) for f in frames]
        out = np.empty((len(rgb), n_classes), np.float32)
        shapes = {}
        for i, f in enumerate(rgb):  # frames of one size go through together
            shapes.setdefault(f.shape, []).append(i)
        for idx in shapes.values():
            for start in range(0, len(idx), self.batch_size):
                chunk = idx[start:start + self.batch_size]
                batch = np.stack([rgb[i] for i in chunk]).astype(np.float32)
                with interrupts_held():  # a Ctrl-C inside TensorFlow's call turns into a SystemError
                    out[chunk] = np.asarray(self._forward(tf.constant(batch)))
        return out

    def aggregate(self, probs) -> np.ndarray:
        from signwrite.metrics import aggregate

        return aggregate(probs, self.config.get("aggregate", "mean"))

    def top_k(self, probs: np.ndarray, k: int) -> list[dict]:
        order = np.argsort(-np.asarray(probs), kind="stable")[:k]
        return [{"label": self.labels[i], "probability": round(float(probs[i]), 4)} for i in order]


def jpeg_round_trip(frame: np.ndarray, quality: int) -> np.ndarray:
    """The frame as a JPEG of this quality would decode (the frame itself if encoding fails)."""
    import cv2

    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else frame


# What a run's config says about its windows: functions of anything with .sampling and
# .config, as annotate also asks them of its stand-in runs (tests/test_annotate.py).
def sampling_kwargs(run) -> dict:
    """``sample_indices`` keywords reproducing how extract_frames sampled the training clips."""
    s = run.sampling or {}
    return {"frames_per_clip": s.get("frames_per_clip"), "rate": s.get("fps"),
            "all_frames": bool(s.get("all_frames"))}


def training_clip_seconds(run) -> float | None:
    """The median duration of the run's training clips (train records it in config.json)."""
    value = ((run.config or {}).get("data") or {}).get("median_clip_seconds")
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


@contextlib.contextmanager
def stdout_to_stderr():
    """Keep stray prints (Keras progress bars) off stdout, which carries only the product output."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


# Where the layers, initializers, activations (and, in runs saved compiled, the optimizer
# and its schedule) of a model made by signwrite train come from. Anything else in a model
# file (a Lambda's Python code, a function from another module, a custom class, a Keras
# setting such as keras.config) is code that loading would run.
KERAS_MODULES = ("keras", "keras.layers", "keras.initializers", "keras.regularizers", "keras.constraints",
                 "keras.activations", "keras.models", "keras.src.models.functional", "keras.optimizers",
                 "keras.optimizers.schedules", "keras.losses", "keras.metrics")
CODE_CLASSES = {"Lambda": "a Lambda layer", "__lambda__": "the Python code of a lambda",
                "TFOpLambda": "a TFOpLambda layer"}


def refuse_code(model_file: Path) -> None:
    """A RunError if model.keras names code to run. Keras' safe mode refuses Lambda layers;
    this check does not depend on the Keras version (older ones let some tricks through)."""
    import zipfile

    try:
        with zipfile.ZipFile(model_file) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise RunError(f"{model_file}: not a Keras model file ({type(exc).__name__}: {exc}); the file is "
                       "damaged or not a signwrite model: train the run again") from None
    found = []

    def walk(node):
        if isinstance(node, dict):
            module, name = node.get("module"), node.get("class_name")
            if name in CODE_CLASSES:
                found.append(CODE_CLASSES[name])
            elif isinstance(name, str) and module is not None and module not in KERAS_MODULES:
                found.append(f"{module}.{name}")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    if found:
        raise RunError(f"{model_file}: holds code that loading it would run ({', '.join(sorted(set(found))[:3])}); "
                       "signwrite only loads models made by `signwrite train`, and never runs code from a "
                       "model file: use a run folder you trained, or train the run again")


def load_run(path) -> Run:
    """Load logs/<run>/ (Keras safe mode); a RunError saying what is missing or mismatched."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path}: no such run folder; pass a folder under --logdir (e.g. logs/NAME) "
                       "that signwrite train has finished")
    model_file, labels_file, config_file = path / "model.keras", path / "labels.json", path / "config.json"
    for f, what in ((model_file, "the model"), (labels_file, "the labels"), (config_file, "the settings")):
        if not f.is_file():
            raise RunError(f"{f}: missing ({what}); the run has not finished: run the same "
                           f"`signwrite train ... --run {path.name}` command again to resume it")
    from signwrite.process import import_tensorflow

    import_tensorflow()
    try:
        labels = json.loads(labels_file.read_text())
        config = json.loads(config_file.read_text())
    except ValueError as exc:
        raise RunError(f"{path}: labels.json or config.json is not valid JSON ({exc}); train the run again") from None
    if not (isinstance(labels, list) and labels and all(isinstance(x, str) for x in labels)):
        raise RunError(f"{labels_file}: expected a JSON list of label names; train the run again")
    refuse_code(model_file)
    import keras

    try:
        with interrupts_held():
            model = keras.saving.load_model(model_file, compile=False, safe_mode=True)
    except Exception as exc:
        raise RunError(f"{model_file}: cannot be loaded ({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}); "
                       "the file is damaged or not a signwrite model: train the run again") from None
    n_out = model.output_shape[-1]
    if n_out != len(labels):
        raise RunError(f"{path}: labels.json lists {len(labels)} labels but the model outputs {n_out} "
                       "classes; the files come from different runs: train the run again")
    return Run(path, model, labels, config)


def open_run(path) -> Run:
    """The run a --run argument names, loaded with Keras' stray prints kept off stdout."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path}: no such run folder; pass --run logs/NAME, a folder written by "
                       "'signwrite train'")
    with stdout_to_stderr():
        return load_run(path)
