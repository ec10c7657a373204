"""A trained run, as predict, live and evaluate use it (docs/CONTRACTS.md).

    from signwrite.run import load_run
    run = load_run("logs/NAME")
    run.labels                   # list[str], index = class id
    run.config                   # everything in config.json
    run.sampling                 # the extract_config the run was trained on
    run.predict_frames(frames)   # HxWx3 uint8 BGR frames (any size) -> (n, C) float32
    run.aggregate(probs)         # (n, C) -> (C,) with the run's aggregation
    run.input                    # "frames", "hands" (crops into the backbone) or "landmarks"
    run.classify_hands(clips)    # landmark runs: [HandFrames, ...] -> (probs (n, C), has_hand (n,))
    run.hand_tracker()           # hand-based runs: a HandTracker to find the hands in new video

model.keras holds the whole pipeline from raw RGB frames (centre crop, resize, the
backbone's preprocess_input, backbone, head), so nothing here can drift from training.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from signwrite.process import interrupts_held
from signwrite.errors import RunError

log = logging.getLogger(__name__)


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

    def classify_hands(self, clips) -> tuple[np.ndarray, np.ndarray]:
        """A landmark run on clips' hands ([hands.HandFrames, ...]): their probabilities, and
        which clips had a hand at all (those without get a row of zeros: no prediction)."""
        from signwrite import landmark_model as lm

        spec = lm.FeatureSpec.from_dict(self.config["landmarks"]["feature_spec"])
        points = [lm.signing_hand(c.image, c.handedness, c.width, c.height) for c in clips]
        if self._forward is None:  # compiled once: an eager call of this small model costs 7-14x more (live)
            import tensorflow as tf

            self._forward = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)
        with interrupts_held():
            return lm.predict(self.model, points, spec, int(self.config["landmarks"]["max_frames"]),
                              forward=self._forward)

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
