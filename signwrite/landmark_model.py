"""A small Keras model on MediaPipe hand landmarks: signs from a hand's shape, orientation and motion.

Pixels tell a signer's skin, clothes and room as much as the sign; 21 hand points tell the
sign, so a model on them can recognise a person it never saw (as the Kaggle ASL winners
found, working from normalised landmarks). One clip goes

    image landmarks (T, 2, 21, 3) --signing_hand--> points (T, 21, 3) pixels, a left hand
    mirrored --frame_features--> (T, F) --pad--> the model: per-frame MLP, masked mean
    over frames [+ Conv1D over the hand's path, masked mean], softmax

``points`` are aspect-correct pixels (x*width, y*height, z*width; y down). A frame without
the hand has mask False: its features are zeros and the model never sees them (every
pooling and every temporal step is masked), so padding a clip changes nothing.

The features are signwrite.landmark_features', the augmentation signwrite.landmark_augment's;
this module builds, trains (fit) and runs (predict) the models. Keras is imported only by the
functions that need it. Every layer is a built-in one, so a saved model loads with
``safe_mode=True``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from signwrite.errors import SignwriteError
from signwrite.landmark_augment import augment
from signwrite.landmark_features import N_POINTS, FeatureSpec, frame_features, model_inputs, pad

log = logging.getLogger(__name__)

KINDS = ("pool", "temporal")


# -- the model -------------------------------------------------------------------------------

def build_model(n_features: int, n_classes: int, max_frames: int, kind: str = "temporal", width: int = 64,
                dropout: float = 0.2, feature_stats: tuple | None = None, path_columns=None):
    """Inputs {"features": (B, T, n_features), "mask": (B, T) float 0/1} -> (B, n_classes) probabilities.

    The features are standardised by a Normalization layer holding ``feature_stats``
    (mean, variance of the training frames; default 0 and 1), so a small velocity weighs
    as much as a coordinate.

    pool: a per-frame MLP (Dense, LayerNorm, GELU, dropout, twice), its mean over the
    frames the mask keeps, a softmax head. It reads the shape, orientation and per-frame
    motion (speed tells a moving hand from a still one), but not their order.

    temporal: the same, plus a branch over time whose masked mean joins the head's input:
    a Dense and two Conv1D blocks (kernel 5, residual) over the ``path_columns`` (the
    hand's orientation and path: fit passes them), picked by a frozen 0/1 Dense. On a few
    dozen clips a Conv1D over all 236 features learns the noise of each clip's shape
    before the order of a motion; over the path alone it learns the order (down-then-right
    against right-then-down), which is what J and Z need. Without path_columns the
    Conv1D blocks run over the per-frame MLP's output.

    Masking, with built-in layers only: the input is multiplied by the mask; every Conv1D
    reads its input multiplied by the mask, so a masked or padded frame is the same zero
    as Conv1D's own 'same' padding; the means are GlobalAveragePooling1D with the mask.
    LayerNorm is per frame (BatchNorm would mix padding into its statistics). The model
    takes any T: ``max_frames`` is the longest clip it is meant for (``pad``), checked
    and kept in the signature for callers.
    """
    import keras

    if kind not in KINDS:
        raise SignwriteError(f"model kind must be one of {', '.join(KINDS)}. Received: kind={kind!r}")
    for name, value in (("n_features", n_features), ("n_classes", n_classes), ("max_frames", max_frames),
                        ("width", width)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise SignwriteError(f"{name} must be a whole number >= 1. Received: {name}={value!r}")
    n_features, L = int(n_features), keras.layers
    features = keras.Input((None, n_features), name="features")
    mask = keras.Input((None,), name="mask")
    steps = L.Reshape((-1, 1), name="mask_steps")(mask)
    mean, variance = feature_stats if feature_stats is not None else (np.zeros(n_features), np.ones(n_features))
    x = L.Normalization(mean=np.asarray(mean, np.float32).tolist(), variance=np.asarray(variance, np.float32).tolist(),
                        name="standardise")(features)
    standardised = x = L.Multiply(name="masked_features")([x, steps])
    for i in (1, 2):
        x = L.Dense(width, name=f"frame_dense{i}")(x)
        x = L.LayerNormalization(name=f"frame_norm{i}")(x)
        x = L.Activation("gelu", name=f"frame_gelu{i}")(x)
        x = L.Dropout(dropout, name=f"frame_dropout{i}")(x)
    pooled = L.GlobalAveragePooling1D(name="frame_mean")(x, mask=mask)
    if kind == "temporal":
        t = x
        if path_columns is not None:
            path_columns = [int(c) for c in path_columns]
            select = L.Dense(len(path_columns), use_bias=False, trainable=False, name="path_columns")
            t = select(standardised)
            kernel = np.zeros((n_features, len(path_columns)), np.float32)
            kernel[path_columns, np.arange(len(path_columns))] = 1
            select.set_weights([kernel])
            t = L.Dense(max(width // 2, 1), activation="gelu", name="path_dense")(t)
        for i in (1, 2):
            h = L.Multiply(name=f"time_masked{i}")([t, steps])
            h = L.Conv1D(t.shape[-1], 5, padding="same", activation="gelu", name=f"time_conv{i}")(h)
            h = L.Dropout(dropout, name=f"time_dropout{i}")(h)
            t = L.Add(name=f"time_residual{i}")([t, h])
            t = L.LayerNormalization(name=f"time_norm{i}")(t)
        t = L.GlobalAveragePooling1D(name="time_mean")(t, mask=mask)
        pooled = L.Concatenate(name="frames_and_time")([pooled, t])
    pooled = L.Dropout(dropout, name="head_dropout")(pooled)
    probs = L.Dense(int(n_classes), activation="softmax", name="probs")(pooled)
    return keras.Model({"features": features, "mask": mask}, probs, name=f"landmarks_{kind}")


def path_columns(spec: FeatureSpec) -> list[int] | None:
    """The feature columns the temporal branch reads: the hand's path (spec.motion)."""
    g = spec.groups()
    return list(range(g["motion"].start, g["motion"].stop)) if "motion" in g else None


# -- training --------------------------------------------------------------------------------

@dataclass
class LandmarkTrainSettings:
    kind: str = "temporal"  # pool | temporal (see build_model)
    epochs: int = 200  # most epochs; the learning rate decays over them
    batch_size: int = 32
    learning_rate: float = 2e-3  # Adam's starting rate, cosine-decayed to 1% of it
    patience: int = 40  # epochs without better validation before stopping
    width: int = 64
    dropout: float = 0.2
    seed: int = 0
    feature_spec: FeatureSpec = field(default_factory=FeatureSpec)
    augment: bool = True  # a fresh augment() of every training clip each epoch
    max_frames: int = 64  # a longer clip keeps this many evenly spaced frames

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LandmarkTrainSettings":
        d = dict(d)
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise SignwriteError(f"landmark settings: unknown key(s) {', '.join(unknown)}. Received: {d!r}")
        if isinstance(d.get("feature_spec"), dict):
            d["feature_spec"] = FeatureSpec.from_dict(d["feature_spec"])
        return cls(**d).checked()

    def checked(self) -> "LandmarkTrainSettings":
        if self.kind not in KINDS:
            raise SignwriteError(f"kind must be one of {', '.join(KINDS)}. Received: kind={self.kind!r}")
        for name in ("epochs", "batch_size", "patience", "width", "max_frames"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise SignwriteError(f"{name} must be a whole number >= 1. Received: {name}={value!r}")
        if not self.learning_rate > 0:
            raise SignwriteError(f"learning_rate must be > 0. Received: learning_rate={self.learning_rate!r}")
        if not 0 <= self.dropout < 1:
            raise SignwriteError(f"dropout must be in [0, 1). Received: dropout={self.dropout!r}")
        if not isinstance(self.feature_spec, FeatureSpec):
            raise SignwriteError(f"feature_spec must be a FeatureSpec. Received: {self.feature_spec!r}")
        return self


SELECTION = "val_selection"  # clip accuracy, ties broken by loss: what picks the kept epoch


def fit(train, y_train, val=None, y_val=None, settings: LandmarkTrainSettings | None = None, *,
        n_classes: int | None = None):
    """Train a model on clips: ([(points, mask), ...], labels 0..C-1) -> (model, history).

    points are signing_hand's (T, 21, 3) pixels; clips may differ in T. A training clip with
    no hand in any frame teaches nothing and is left out (a warning says how many). Each
    epoch sees a fresh augment() of every training clip. With validation clips, training
    stops after ``patience`` epochs without a better validation clip accuracy (ties: lower
    validation loss; a validation clip with no hand counts as wrong), and the best epoch's
    weights are restored; without, it trains all ``epochs``. The same seed and data give
    the same model.

    history: per-epoch lists (Keras' loss, accuracy, learning_rate and, with validation,
    val_loss, val_accuracy over clips with a hand, val_clip_accuracy over all validation
    clips, val_selection), ready for pandas. The model returned is uncompiled: it names
    nothing but layers, so it saves and loads in safe mode.
    """
    import keras

    s = (settings or LandmarkTrainSettings()).checked()
    t0 = time.time()
    y_train = np.asarray(y_train, np.int64)
    if len(train) != len(y_train):
        raise SignwriteError(f"{len(train)} training clips but {len(y_train)} labels")
    keep = [i for i, (_, m) in enumerate(train) if np.asarray(m).any()]
    if len(keep) < len(train):
        log.warning("%d of %d training clips have no hand in any frame: left out of training",
                    len(train) - len(keep), len(train))
    if not keep:
        raise SignwriteError(f"none of the {len(train)} training clips has a hand in any frame: nothing to "
                             "learn from (check that extract-frames --hands found hands)")
    if val and (y_val is None or len(y_val) != len(val)):
        raise SignwriteError(f"{len(val)} validation clips but {0 if y_val is None else len(y_val)} labels")
    labels_seen = [y_train] + ([np.asarray(y_val, np.int64)] if val else [])
    n_classes = n_classes or int(max(int(y.max()) for y in labels_seen if len(y)) + 1)

    keras.utils.set_random_seed(s.seed)
    rng = np.random.default_rng(s.seed)
    points, masks = _stack([train[i] for i in keep])
    y = y_train[keep]
    length = min(s.max_frames, points.shape[1])

    def epoch_inputs():
        p, m = augment(points, masks, rng) if s.augment else (points, masks)
        return _batch_inputs(p, m, s.feature_spec, length, s.max_frames)

    plain = _batch_inputs(points, masks, s.feature_spec, length, s.max_frames)
    model = build_model(s.feature_spec.n_features, n_classes, s.max_frames, s.kind, s.width, s.dropout,
                        feature_stats(plain["features"], plain["mask"]), path_columns(s.feature_spec))
    data = _epoch_data(epoch_inputs, y, s.batch_size, rng)
    schedule = keras.optimizers.schedules.CosineDecay(s.learning_rate, decay_steps=s.epochs * data.steps,
                                                         alpha=0.01)
    # no XLA: compiling it costs seconds, more than such a small model's whole training
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=False)
    callbacks = []
    if val:
        has = np.array([np.asarray(m).any() for _, m in val])
        if has.any():
            val_inputs = model_inputs([c for c, h in zip(val, has) if h], s.feature_spec, s.max_frames)
            callbacks = [_validation_scores(val_inputs, np.asarray(y_val, np.int64)[has], len(val)),
                         keras.callbacks.EarlyStopping(monitor=SELECTION, mode="max", patience=s.patience,
                                                       restore_best_weights=True)]
        else:
            log.warning("none of the %d validation clips has a hand: training all %d epochs", len(val), s.epochs)
    history = model.fit(data, epochs=s.epochs, steps_per_epoch=data.steps, callbacks=callbacks, shuffle=False,
                        verbose=0)
    h = {k: [float(v) for v in values] for k, values in history.history.items()}
    best = callbacks[-1].best_epoch if callbacks else len(history.epoch) - 1
    log.info("landmarks %s: %d clips, %d epochs in %.1f s, kept epoch %d%s", s.kind, len(keep),
             len(history.epoch), time.time() - t0, best + 1,
             f" (validation clip accuracy {h['val_clip_accuracy'][best]:.3f})" if callbacks else "")
    return _inference_copy(model), h


def feature_stats(features, mask, min_std: float = 1e-2) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of each feature over the frames mask keeps; the standard deviation
    at least min_std (some features are constant by construction, e.g. the middle MCP's x)."""
    keep = np.asarray(mask) > 0
    f = np.asarray(features, np.float64)[keep]
    return f.mean(0).astype(np.float32), np.maximum(f.var(0), min_std ** 2).astype(np.float32)


def _stack(clips):
    """[(points, mask)] of different T -> (N, T_max, 21, 3), (N, T_max): masked zeros after each clip."""
    t = max(len(m) for _, m in clips)
    points = np.zeros((len(clips), t, N_POINTS, 3), np.float32)
    masks = np.zeros((len(clips), t), bool)
    for i, (p, m) in enumerate(clips):
        m = np.asarray(m, bool)
        points[i, :len(m)] = np.where(m[:, None, None], np.nan_to_num(np.asarray(p, np.float32)), 0)
        masks[i, :len(m)] = m
    return points, masks


def _batch_inputs(points, masks, spec, length, max_frames):
    features = frame_features(points, masks, spec)
    if points.shape[1] <= max_frames:  # nothing to thin out: already padded with masked zeros
        return {"features": features[:, :length], "mask": masks[:, :length].astype(np.float32)}
    # clip by clip, so each long clip is thinned over its own span (through its last present frame)
    pairs = [pad(f[:_span(m)], m[:_span(m)], length) for f, m in zip(features, masks)]
    return {"features": np.stack([f for f, _ in pairs]), "mask": np.stack([m for _, m in pairs])}


def _span(mask) -> int:
    return int(len(mask) - np.asarray(mask)[::-1].argmax()) if np.any(mask) else 1


def _epoch_data(make_inputs, y, batch_size, rng):
    """A keras PyDataset of shuffled batches, a fresh augmented copy of the data each epoch.

    Endless (fit runs it with steps_per_epoch): Keras remakes the tf.data iterator of a
    finite PyDataset every epoch, which costs more than a small model's epoch of training.
    Batches are asked for in order, from one thread, so the same seed gives the same data.
    """
    import keras

    class EpochData(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.steps = -(-len(y) // batch_size)
            self.epoch = -1

        @property
        def num_batches(self):
            return None

        def __getitem__(self, i):
            epoch, step = divmod(i, self.steps)
            if epoch > self.epoch:  # Keras peeks at batch 0 and 1 before it starts: still epoch 0
                self.inputs, self.order, self.epoch = make_inputs(), rng.permutation(len(y)), epoch
            rows = self.order[step * batch_size:(step + 1) * batch_size]
            return {k: v[rows] for k, v in self.inputs.items()}, y[rows]

    return EpochData()


def _validation_scores(inputs, y, n_val: int):
    """A callback adding, from one pass over the validation clips that have a hand:
    val_loss and val_accuracy (over those), val_clip_accuracy (over all n_val: a clip with
    no hand is wrong) and val_selection: that accuracy plus under half a clip's worth of
    1/(1 + val_loss), so among epochs that get as many clips right the lower loss wins.
    (Keras' own validation_data costs more per epoch than a small model's training.)"""
    import keras

    class ValidationScores(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            probs = _probabilities(self.model, inputs)
            p_true = np.clip(probs[np.arange(len(y)), y], 1e-7, 1)
            logs["val_loss"] = float(-np.log(p_true).mean())
            logs["val_accuracy"] = float((probs.argmax(1) == y).mean())
            logs["val_clip_accuracy"] = logs["val_accuracy"] * len(y) / n_val
            logs[SELECTION] = logs["val_clip_accuracy"] + 0.5 / n_val / (1 + logs["val_loss"])

    return ValidationScores()


def _probabilities(model, inputs, batch_size: int = 256) -> np.ndarray:
    n = len(inputs["mask"])
    return np.concatenate([np.asarray(model.predict_on_batch({k: v[i:i + batch_size] for k, v in inputs.items()}))
                           for i in range(0, n, batch_size)])


def _inference_copy(model):
    """The same network and weights, uncompiled: no optimizer in the saved file."""
    import keras

    clean = keras.Model.from_config(model.get_config())
    clean.set_weights(model.get_weights())
    return clean


# -- prediction ------------------------------------------------------------------------------

def predict(model, clips, spec: FeatureSpec, max_frames: int, batch_size: int = 256, forward=None):
    """[(points, mask), ...] -> (probs (N, C) float32, has_hand (N,) bool).

    A clip with no hand gets a row of zeros and has_hand False: with zeros, every class
    ties with the target, so metrics.topk_accuracy counts it wrong (a NaN row would
    count as right there).
    """
    n_classes = int(model.output_shape[-1])
    has_hand = np.array([np.asarray(m).any() for _, m in clips], bool)
    probs = np.zeros((len(clips), n_classes), np.float32)
    rows = np.flatnonzero(has_hand)
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        inputs = model_inputs([clips[i] for i in chunk], spec, max_frames)
        probs[chunk] = np.asarray(forward(inputs) if forward is not None else model(inputs, training=False))
    return probs, has_hand
