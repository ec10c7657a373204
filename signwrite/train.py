"""Stage 3: train a clip classifier and score it (data/frames -> logs/<run>/).

    python -m signwrite.train [--data-dir data] [--logdir logs] [--run NAME]
                              [--backbone inception_v3|mobilenet_v2|small_cnn] [--weights imagenet|none|PATH]
                              [--image-size PX] [--mode auto|frozen|end-to-end] [--epochs N] ...

Two ways to train (--mode auto: frozen with pretrained weights, end-to-end from scratch):
  frozen      the backbone's pooled features are computed once per frame and cached under
              data/features/; a small head trains on them in seconds.
  end-to-end  the backbone trains too, from the JPEGs through tf.data with augmentation: all
              of it from scratch, or its top blocks after a head warm-up on cached features.

Validation is carved out of train (data.carve_validation); early stopping and the kept
checkpoint look at validation only. The test split is scored once, at the end. A stopped
run resumes where it was when the same command runs again (each phase keeps a Keras
BackupAndRestore folder under <run>/checkpoints/ until it is done).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from signwrite.process import import_tensorflow, run_stage, setup_logging
from signwrite.errors import SignwriteError
from signwrite.fsutil import TMP_MARK, atomic_path, folder_lock, remove_stale_temps, write_json, writer_tag

log = logging.getLogger(__name__)


INPUTS = ("frames", "hands", "landmarks")


@dataclass
class TrainSettings:
    data_dir: Path = Path("data")
    logdir: Path = Path("logs")
    input: str = "frames"  # frames: whole frames into the backbone; hands: the hand crops into it;
    # landmarks: a small model on the signing hand's landmarks (extract-frames --hands makes both)
    landmark_model: str = "auto"  # pool | temporal | auto (both, the better on validation kept)
    run: str | None = None  # default: <backbone>_<weights>_<size>px_<mode>, so re-running resumes
    backbone: str = "inception_v3"  # or mobilenet_v2, the fast option; small_cnn: from scratch, tiny data
    weights: str = "imagenet"  # imagenet | none (from scratch) | PATH of a weights file
    image_size: int | None = None  # default: the backbone's own (299 / 224 / 64); down to 75 / 32 / 32
    mode: str = "auto"  # frozen | end-to-end | auto (frozen if pretrained, end-to-end from scratch)
    epochs: int | None = None  # default: 200 for a head on features, 30 end-to-end
    warmup_epochs: int = 10  # head-only epochs before fine-tuning pretrained top blocks
    batch_size: int = 32
    learning_rate: float | None = None  # Adam's starting rate, cosine-decayed over the epochs; default
    # 1e-3, or 1e-4 when fine-tuning pretrained blocks
    patience: int = 10  # epochs without a better validation score before stopping
    monitor: str = "val_loss"  # val_loss | val_accuracy | val_clip_top1: picks the kept checkpoint
    val_fraction: float = 0.2  # of training clips (or frames), held out for validation
    aggregate: str = "mean"  # mean | logmean | vote: frame probabilities -> clip
    dropout: float = 0.3
    augment: bool = True
    colour: bool = False  # also hue/saturation/grey, channel swaps, inversion: signers who differ in
    # skin, clothes and backdrop
    flip: bool = False  # left-right flips swap the signing hand: off unless your signs allow it
    seed: int = 0
    deterministic: bool = False  # TensorFlow's op determinism: the same command, data and machine give
    # the same model, bit for bit (free on CPU, measured; may be slower on a GPU)
    backup_seconds: float = 60  # how often a resumable backup is saved (at an epoch's end)
    distribute: str = "none"  # none | mirrored (every visible device) | multiworker (machines, by TF_CONFIG)

    def resolved(self) -> "TrainSettings":
        """Defaults filled in and every value checked; a SignwriteError naming a bad one."""
        from signwrite import backbones
        from signwrite.metrics import AGGREGATIONS

        s = dataclasses.replace(self, data_dir=Path(self.data_dir), logdir=Path(self.logdir))
        if s.input not in INPUTS or s.landmark_model not in ("auto", "pool", "temporal"):
            raise SignwriteError(f"--input must be one of {', '.join(INPUTS)} and --landmark-model one of auto, "
                                 f"pool, temporal. Received: input={s.input!r}, landmark_model={s.landmark_model!r}")
        if s.input == "landmarks":
            return s.resolved_for_landmarks()
        spec = backbones.get_spec(s.backbone)
        s.weights = backbones.check_weights(s.weights)
        if s.weights == "imagenet" and not spec.pretrained:
            backbones.fetch_imagenet_weights(spec, 0)  # the WeightsError that says what to use instead
        s.image_size = backbones.check_image_size(s.backbone, s.image_size or spec.default_size)
        if s.mode == "auto":
            s.mode = "end-to-end" if s.weights == "none" else "frozen"
        choices = {"mode": ("frozen", "end-to-end"), "aggregate": AGGREGATIONS,
                   "monitor": ("val_loss", "val_accuracy", "val_clip_top1"),
                   "distribute": ("none", "mirrored", "multiworker")}
        for name, allowed in choices.items():
            if getattr(s, name) not in allowed:
                raise SignwriteError(f"--{name.replace('_', '-')} must be one of {', '.join(allowed)}. "
                                     f"Received: {name}={getattr(s, name)!r}")
        if s.distribute == "multiworker" and (s.mode != "end-to-end" or s.weights != "none"):
            raise SignwriteError(
                "--distribute multiworker trains end-to-end from scratch (--weights none --mode end-to-end): "
                "a head on cached pretrained features trains in minutes on one machine, so run that without "
                f"--distribute, or with --distribute mirrored. Received: mode={s.mode!r}, weights={s.weights!r}")
        if s.mode == "frozen" and s.weights == "none":
            log.warning("--mode frozen with --weights none trains a head on a random, untrained backbone; "
                        "expect little (use --mode end-to-end to train from scratch)")
        s.epochs = s.epochs or (200 if s.mode == "frozen" else 30)
        s.learning_rate = s.learning_rate or (1e-4 if s.mode == "end-to-end" and s.weights != "none" else 1e-3)
        for name in ("epochs", "batch_size", "patience"):
            if getattr(s, name) < 1:
                raise SignwriteError(f"--{name.replace('_', '-')} must be at least 1. Received: {name}={getattr(s, name)}")
        if not 0 <= s.val_fraction < 1:
            raise SignwriteError(f"--val-fraction must be in [0, 1). Received: val_fraction={s.val_fraction}")
        if not s.run:
            tag = "imagenet" if s.weights == "imagenet" else "none" if s.weights == "none" else Path(s.weights).stem
            s.run = f"{s.backbone}_{tag}_{s.image_size}px_{s.mode}" + ("_hands" if s.input == "hands" else "")
        return s.checked_run_name()

    def resolved_for_landmarks(self) -> "TrainSettings":
        """The backbone settings do not apply; epochs and learning rate default to the landmark model's."""
        from signwrite.metrics import AGGREGATIONS

        s = dataclasses.replace(self, backbone="none", weights="none", image_size=None, mode="landmarks")
        if s.distribute != "none":
            raise SignwriteError("--input landmarks trains in seconds on one CPU: run it without --distribute. "
                                 f"Received: distribute={s.distribute!r}")
        if s.aggregate not in AGGREGATIONS:
            raise SignwriteError(f"--aggregate must be one of {', '.join(AGGREGATIONS)}. Received: {s.aggregate!r}")
        for name in ("epochs", "batch_size", "patience"):
            if getattr(s, name) is not None and getattr(s, name) < 1:
                raise SignwriteError(f"--{name.replace('_', '-')} must be at least 1. Received: {name}={getattr(s, name)}")
        if not 0 <= s.val_fraction < 1:
            raise SignwriteError(f"--val-fraction must be in [0, 1). Received: val_fraction={s.val_fraction}")
        s.run = s.run or f"landmarks_{s.landmark_model}"
        return s.checked_run_name()

    def checked_run_name(self) -> "TrainSettings":
        if Path(self.run).name != self.run or self.run in (".", ".."):
            raise SignwriteError(f"--run must be a plain folder name. Received: run={self.run!r}")
        return self


# -- data --------------------------------------------------------------------------------------

def load_data(s: TrainSettings):
    """Frames of train (split into fit/validation) and test, the labels, and a summary."""
    from signwrite import data

    clips = data.read_clips(s.data_dir)
    if s.input == "hands":  # the signing hand's crops stand in for the frames
        data.check_hands(clips, s.data_dir)
        frames = data.explode_crops(clips, s.data_dir)
        no_hand = data.clips_without_hand(clips[clips.split == "train"])
        if len(no_hand):
            log.warning("%d training clip(s) show no hand and teach nothing: %s", len(no_hand),
                        ", ".join(no_hand.clip_id[:10]))
    else:
        frames = data.explode_frames(clips, s.data_dir)
    train, test = frames[frames.split == "train"], frames[frames.split == "test"]
    if train.empty:
        raise SignwriteError(f"{data.frames_dir(s.data_dir) / 'frames.csv'}: no training clips; give some "
                             "clips split=train in video_clip_times.csv, then fetch and extract frames again")
    labels = sorted(train.label.unique())
    val = data.carve_validation(train, s.val_fraction, s.seed)
    log.info(val.note)
    train_clips = clips[clips.split == "train"]
    summary = {"n_labels": len(labels), "n_train_clips": int(len(train_clips)), "n_train_frames": int(len(train)),
               "n_fit_frames": int(len(val.train)), "n_val_frames": int(len(val.val)),
               "n_val_clips": int(val.val.clip_id.nunique()), "n_test_clips": int(test.clip_id.nunique()),
               "validation": val.strategy, "validation_note": val.note,
               "median_clip_seconds": float((train_clips.end - train_clips.start).median())}
    return train, val, test, labels, summary


def targets_of(frames, labels) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    return frames.label.map(index).to_numpy().astype(np.int32)


# -- callbacks ---------------------------------------------------------------------------------

def make_callbacks(s: TrainSettings, run_dir: Path, phase_dir: Path, val_inputs, val_frames, labels, resume):
    """Validation scores first (the others read them from the epoch's logs), then Keras'.

    Under multiworker every worker must run the same epochs in step, so there is no early
    stopping (each worker's validation may differ in the last digits) and no timed backup
    (time differs between machines); the best-on-validation checkpoint is still kept.
    """
    import keras

    from signwrite import metrics as M
    from signwrite.data import clip_numbers

    multiworker = s.distribute == "multiworker"

    class ValidationScores(keras.callbacks.Callback):
        """val_loss, val_accuracy (frames) and val_clip_top1 (clips) from one pass."""

        def on_epoch_end(self, epoch, logs=None):
            if val_frames.empty:
                return
            probs = predict_locally(self.model, val_inputs) if multiworker else \
                self.model.predict(val_inputs, verbose=0)
            y = targets_of(val_frames, labels)
            logs["val_loss"] = float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-7, 1)).mean())
            logs["val_accuracy"] = M.topk_accuracy(probs, y, (1,))[1]
            clip_probs = M.aggregate_clips(probs, clip_numbers(val_frames), s.aggregate)
            clip_y = targets_of(val_frames.drop_duplicates("clip_id"), labels)
            logs["val_clip_top1"] = M.topk_accuracy(clip_probs, clip_y, (1,))[1]
            # With a few validation clips, clip top-1 ties for many epochs (often from an early,
            # half-trained one); ties go to the better frame accuracy and lower loss. The
            # tie-break stays under half of one clip's worth, so it never outranks a clip.
            half_step = 0.5 / max(len(clip_y), 1)
            logs[CLIP_SELECTION] = logs["val_clip_top1"] + half_step * (
                logs["val_accuracy"] + 1 / (1 + logs["val_loss"])) / 2

    class EpochLog(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.time()

        def on_epoch_end(self, epoch, logs=None):
            shown = "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if k != "learning_rate")
            log.info("epoch %d/%d  %s  (%.0f s)", epoch + 1, self.params["epochs"], shown, time.time() - self.t0)

    class AtomicCheckpoint(keras.callbacks.ModelCheckpoint):
        """ModelCheckpoint writing to a temp file and renaming: never half a checkpoint."""

        def __init__(self, path: Path, **kw):
            self.final = path
            # a temp name with fsutil's mark, so a run killed mid-save has it cleared on resume
            stem = path.name.split(".")[0]
            super().__init__(str(path.with_name(f".{stem}.{writer_tag()}.ckpt{TMP_MARK}.weights.h5")), **kw)

        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, logs)
            if os.path.exists(self.filepath):
                os.replace(self.filepath, self.final)

    class TimedBackup(keras.callbacks.BackupAndRestore):
        """BackupAndRestore, at most every ``backup_seconds``: saving InceptionV3 with its
        optimizer takes seconds, as long as a whole epoch of a small run."""

        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)  # restores the last backup, if any
            self.last = time.time()

        def on_epoch_end(self, epoch, logs=None):
            if time.time() - self.last >= s.backup_seconds:
                super().on_epoch_end(epoch, logs)
                self.last = time.time()

    class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
        """EarlyStopping that remembers, after a restart, how long it had been waiting."""

        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            if resume["best"] is not None:
                self.best, self.wait = resume["best"], resume["wait"]

    monitor = monitor_key(s, val_frames)
    mode = "min" if monitor.endswith("loss") else "max"
    callbacks = [ValidationScores(), EpochLog(),
                 AtomicCheckpoint(phase_dir / "best.weights.h5", monitor=monitor, mode=mode, save_best_only=True,
                                  save_weights_only=True, initial_value_threshold=resume["best"]),
                 ResumableEarlyStopping(monitor=monitor, mode=mode, patience=s.patience),
                 keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
                 keras.callbacks.TensorBoard(str(run_dir), write_graph=False, profile_batch=0),
                 TimedBackup(str(phase_dir / "backup"))]
    if multiworker:
        callbacks = [c for c in callbacks if not isinstance(c, (ResumableEarlyStopping, TimedBackup))]
    return callbacks


CLIP_SELECTION = "val_clip_top1_tiebreak"  # what --monitor val_clip_top1 ranks epochs by


def monitor_key(s: TrainSettings, val_frames) -> str:
    """The logged value that picks the kept checkpoint and stops training."""
    if val_frames.empty:
        return "loss"
    return CLIP_SELECTION if s.monitor == "val_clip_top1" else s.monitor


def resume_state(run_dir: Path, first_epoch: int, monitor: str) -> dict:
    """Best monitored value and epochs waited so far in this phase, from history.csv."""
    import pandas as pd

    path = run_dir / "history.csv"
    if not path.is_file() or path.stat().st_size == 0:
        return {"best": None, "wait": 0}
    h = pd.read_csv(path).drop_duplicates("epoch", keep="last")
    h = h[h.epoch >= first_epoch]
    if h.empty or monitor not in h:
        return {"best": None, "wait": 0}
    values = h[monitor].to_numpy()
    best_i = int(values.argmin() if monitor.endswith("loss") else values.argmax())
    return {"best": float(values[best_i]), "wait": len(values) - 1 - best_i}


def dedupe_history(path: Path) -> None:
    """Epochs redone after a resume appear twice in history.csv; keep the last of each."""
    import pandas as pd

    from signwrite.fsutil import write_csv

    if path.is_file() and path.stat().st_size:
        h = pd.read_csv(path)
        if h.epoch.duplicated().any():
            write_csv(path, h.drop_duplicates("epoch", keep="last").sort_values("epoch"))


# -- training ----------------------------------------------------------------------------------

def fit_phase(name: str, model, train_data, val_inputs, val_frames, labels, s: TrainSettings,
              run_dir: Path, epochs: int, learning_rate: float, first_epoch: int) -> int:
    """Train ``model`` for one phase, keep its best-on-validation weights; returns the next epoch.

    A finished phase is skipped on a re-run (its best weights are loaded instead).
    """
    import keras

    phase_dir = run_dir / "checkpoints" / name
    done = phase_dir / "done.json"
    if done.is_file():
        model.load_weights(phase_dir / "best.weights.h5")
        log.info("phase %s: already done, weights restored", name)
        return json.loads(done.read_text())["next_epoch"]
    phase_dir.mkdir(parents=True, exist_ok=True)
    # cosine decay over the planned epochs: big steps early, settled weights at the end
    steps = epochs * int(train_data.cardinality())  # negative when tf.data cannot tell
    schedule = (keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps, alpha=0.01)
                if steps > 0 else learning_rate)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    resume = resume_state(run_dir, first_epoch, monitor_key(s, val_frames))
    callbacks = make_callbacks(s, run_dir, phase_dir, val_inputs, val_frames, labels, resume)
    log.info("phase %s: up to %d epochs from epoch %d, learning rate %g, %d trainable weights",
             name, epochs, first_epoch + 1, learning_rate, len(model.trainable_weights))
    if s.distribute == "multiworker":
        next_epoch = fit_multiworker(model, train_data, callbacks, first_epoch, epochs, s.batch_size)
    else:
        history = model.fit(train_data, epochs=first_epoch + epochs, initial_epoch=first_epoch,
                            callbacks=callbacks, shuffle=False, verbose=0)  # tf.data shuffles
        next_epoch = max(history.epoch, default=first_epoch - 1) + 1
    best = phase_dir / "best.weights.h5"
    if not best.is_file():  # nothing was ever better than the start: keep what we have
        model.save_weights(best)
    model.load_weights(best)
    dedupe_history(run_dir / "history.csv")
    write_json(done, {"next_epoch": next_epoch})
    return next_epoch


def predict_locally(model, dataset) -> np.ndarray:
    """Probabilities for every batch of ``dataset`` on this worker alone: Keras' predict does not
    run under MultiWorkerMirroredStrategy (keras-team/keras#20585)."""
    import tensorflow as tf

    forward = tf.function(lambda x: model(x, training=False))
    return np.concatenate([forward(x).numpy() for x, _ in dataset])


def fit_multiworker(model, train_data, callbacks, first_epoch: int, epochs: int, global_batch: int) -> int:
    """model.fit's job under MultiWorkerMirroredStrategy, where Keras 3's own fit fails
    (keras-team/keras#20585): each worker takes its share of every global batch, gradients
    are summed across workers by TensorFlow's collectives, every worker applies the same
    update. The callbacks run as under fit. Returns the next epoch."""
    import keras
    import tensorflow as tf

    strategy = tf.distribute.get_strategy()
    loss_fn = keras.losses.SparseCategoricalCrossentropy(reduction="sum")
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)
    batches = strategy.experimental_distribute_dataset(train_data)

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            probs = model(x, training=True)
            loss = loss_fn(y, probs) / global_batch  # this replica's share of the global mean
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        right = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(probs, -1, output_type=tf.int32),
                                               tf.cast(y, tf.int32)), tf.float32))
        return loss, right, tf.cast(tf.shape(y)[0], tf.float32)

    @tf.function
    def step(batch):
        per_replica = strategy.run(replica_step, args=batch)
        return [strategy.reduce("SUM", v, axis=None) for v in per_replica]

    run = keras.callbacks.CallbackList(callbacks, model=model, epochs=first_epoch + epochs, verbose=0)
    model.stop_training = False
    run.on_train_begin()
    epoch = first_epoch
    for epoch in range(first_epoch, first_epoch + epochs):
        run.on_epoch_begin(epoch)
        loss_sum = right = seen = steps = 0.0
        for batch in batches:
            loss, r, n = step(batch)
            loss_sum, right, seen, steps = loss_sum + float(loss), right + float(r), seen + float(n), steps + 1
        logs = {"accuracy": right / max(seen, 1), "loss": loss_sum / max(steps, 1),
                "learning_rate": float(optimizer.learning_rate)}
        run.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    run.on_train_end()
    return epoch + 1


def make_strategy(s: TrainSettings):
    """The tf.distribute strategy of --distribute, made before TensorFlow does anything else,
    and whether this process writes the run (the chief, worker 0, under multiworker)."""
    import tensorflow as tf

    if s.distribute == "none":
        return tf.distribute.get_strategy(), True
    if s.distribute == "mirrored":
        replicas = os.environ.get("SIGNWRITE_CPU_REPLICAS")
        if replicas:  # a CPU-only machine split into logical devices: to try mirrored without GPUs
            if not replicas.isdigit() or int(replicas) < 1:
                raise SignwriteError(f"SIGNWRITE_CPU_REPLICAS must be a whole number of at least 1; "
                                     f"received {replicas!r}")
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * int(replicas))
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
            strategy = tf.distribute.MirroredStrategy(devices)
        else:
            strategy = tf.distribute.MirroredStrategy()
        log.info("distribute: MirroredStrategy over %d replica(s): %s", strategy.num_replicas_in_sync,
                 ", ".join(strategy.extended.worker_devices))
        return strategy, True
    tf_config = os.environ.get("TF_CONFIG")
    try:
        cluster = json.loads(tf_config or "")
        workers, index = cluster["cluster"]["worker"], int(cluster["task"]["index"])
    except (ValueError, KeyError, TypeError):
        raise SignwriteError(
            "--distribute multiworker needs TF_CONFIG, the same cluster on every machine and each its own "
            'index, e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": '
            '{"type": "worker", "index": 0}}\'. Received: TF_CONFIG=' + repr(tf_config)) from None
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    log.info("distribute: MultiWorkerMirroredStrategy, worker %d of %d (%s), %d replica(s) in all",
             index, len(workers), workers[index], strategy.num_replicas_in_sync)
    return strategy, index == 0


def build_and_train(s: TrainSettings, run_dir: Path, train, val, labels, strategy=None):
    """The whole classifier (raw frames -> probabilities), trained as the settings say, under
    the current tf.distribute strategy; the copy returned is an ordinary one-device model."""
    import tensorflow as tf

    with (strategy or tf.distribute.get_strategy()).scope():
        model = build_and_fit(s, run_dir, train, val, labels)
    return inference_copy(model)


def build_and_fit(s: TrainSettings, run_dir: Path, train, val, labels):
    from signwrite import backbones, data, features

    extractor = backbones.build_feature_extractor(s.backbone, s.weights, s.image_size)
    resize = extractor.get_layer("resize")
    head = backbones.build_head(extractor.output_shape[-1], len(labels), s.dropout)
    y_fit, y_val = targets_of(val.train, labels), targets_of(val.val, labels)
    epoch = 0

    if s.mode == "frozen" or s.weights != "none":  # a head on cached features (or its warm-up)
        cache = features.cache_dir(s.data_dir, s.backbone, backbones.weights_tag(s.weights, s.seed), s.image_size,
                                   s.input)
        features.extract_features(train, extractor, resize, cache, s.batch_size)
        x_fit, x_val = features.load_features(val.train, cache), features.load_features(val.val, cache)
        import tensorflow as tf

        fit_ds = (tf.data.Dataset.from_tensor_slices((x_fit, y_fit)).shuffle(len(x_fit), seed=s.seed)
                  .batch(s.batch_size))
        epochs = s.epochs if s.mode == "frozen" else s.warmup_epochs
        lr = s.learning_rate if s.mode == "frozen" else 1e-3
        epoch = fit_phase("head", head, fit_ds, x_val, val.val, labels, s, run_dir, epochs, lr, epoch)

    model = backbones.build_classifier(extractor, head)
    if s.mode == "end-to-end":
        n = backbones.set_trainable(extractor, s.backbone, "all" if s.weights == "none" else "top")
        log.info("end-to-end: %d backbone layers train (%s)", n,
                 "all, from scratch" if s.weights == "none" else "the top blocks")
        augment = data.sign_augmentation(s.seed, s.flip, s.colour) if s.augment else None
        fit_ds = data.frame_dataset(list(val.train.path), y_fit, resize, s.batch_size, shuffle=True,
                                    augment=augment, seed=s.seed)
        val_ds = data.frame_dataset(list(val.val.path), y_val, resize, s.batch_size) if len(val.val) else None
        fit_phase("end-to-end", model, fit_ds, val_ds, val.val, labels, s, run_dir, s.epochs,
                  s.learning_rate, epoch)
    backbones.set_trainable(extractor, s.backbone, "none")  # a saved model is for inference
    return model


def inference_copy(model):
    """The same network and weights, uncompiled: no optimizer state (a third of the file) and
    no optimizer or schedule in the saved config, so the file names nothing but layers."""
    import keras

    clean = keras.Model.from_config(model.get_config())  # clone_model would keep the compile config
    clean.set_weights(model.get_weights())
    return clean


# -- the stage ---------------------------------------------------------------------------------

def run_config(s: TrainSettings, extract_config: dict, summary: dict) -> dict:
    import keras
    import tensorflow as tf

    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(s).items()}
    config.update(extract_config=extract_config, data=summary,
                  versions={"tensorflow": tf.__version__, "keras": keras.__version__})
    return config


def check_config(run_dir: Path, config: dict) -> None:
    """A run folder belongs to one set of settings; resuming with others would mix them."""
    path = run_dir / "config.json"
    if not path.is_file():
        return
    old = json.loads(path.read_text())

    def same(k):
        if k in ("versions", "logdir", "deterministic"):  # the run folder was found, so logdir matches;
            # determinism changes how, not what, a run trains
            return True
        if k == "data_dir":
            return Path(old.get(k, "")).resolve() == Path(config[k]).resolve()
        return old.get(k) == config.get(k)

    keys = sorted(k for k in set(old) | set(config) if not same(k))
    if keys:
        changes = "; ".join(f"{k}: {old.get(k)!r} -> {config.get(k)!r}" for k in keys)
        raise SignwriteError(f"{run_dir} holds a run with other settings ({changes}); choose another "
                             "--run name, or delete the folder to start it again")


def train(s: TrainSettings) -> dict | None:
    """Train, save and score one run; returns the test metrics (None without a test split)."""
    from signwrite import data

    t0 = time.time()
    s = s.resolved()
    extract_config = data.read_extract_config(s.data_dir)
    if s.input == "landmarks":
        from signwrite.train_landmarks import train_landmarks

        return train_landmarks(s, extract_config)
    import_tensorflow()  # settings and data checked first: their errors come without the wait
    strategy, chief = (None, True) if s.distribute == "none" else make_strategy(s)
    if not chief:  # another worker writes the run; this one trains in step and keeps nothing
        import tempfile

        with tempfile.TemporaryDirectory(prefix="signwrite-worker-") as scratch:
            train_run(dataclasses.replace(s, logdir=Path(scratch)), extract_config, strategy, t0, chief=False)
        print(f"run {s.logdir / s.run}: trained as a worker; the chief (worker 0) wrote the run")
        return None
    return train_run(s, extract_config, strategy, t0)


def train_run(s: TrainSettings, extract_config: dict, strategy, t0: float, chief: bool = True) -> dict | None:
    run_dir = s.logdir / s.run
    with folder_lock(run_dir, "train"):
        remove_stale_temps(run_dir)
        # the feature cache is shared by every run on this data folder: take only the temps of
        # writers that are gone (another run may be filling it right now)
        remove_stale_temps(s.data_dir / "features", only_dead_writers=True)
        train_frames, val, test, labels, summary = load_data(s)
        config = run_config(s, extract_config, summary)
        if strategy is not None:
            config["replicas"] = int(strategy.num_replicas_in_sync)
        check_config(run_dir, config)
        write_json(run_dir / "config.json", config)
        write_json(run_dir / "labels.json", labels)
        if (run_dir / "metrics.json").is_file():
            log.info("%s: already finished; `python -m signwrite.evaluate --run %s` re-scores it", run_dir, run_dir)
            metrics = json.loads((run_dir / "metrics.json").read_text())
        else:
            import keras

            keras.utils.set_random_seed(s.seed)
            if s.deterministic:
                import tensorflow as tf

                tf.config.experimental.enable_op_determinism()
            model_file = run_dir / "model.keras"
            if model_file.is_file():
                model = keras.saving.load_model(model_file, compile=False, safe_mode=True)
            else:
                log.info("%s: %s, weights %s, %d px, %s; %d labels", run_dir, s.backbone, s.weights,
                         s.image_size, s.mode, len(labels))
                model = build_and_train(s, run_dir, train_frames, val, labels, strategy)
                with atomic_path(model_file) as tmp:
                    model.save(tmp)
                shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
            if not chief:
                return None  # a worker's scratch run: the chief scores the model
            from signwrite.evaluate import hands_run_extras, test_and_report

            extra = {}
            if s.input == "hands":  # test clips without a hand are scored too: wrong at every k
                from signwrite.data import read_clips

                clips = read_clips(s.data_dir, check_files=False)
                extra = hands_run_extras(clips[clips.split == "test"], s.data_dir)
            metrics = test_and_report(model, labels, config, test, run_dir, s.batch_size, **extra)
    log.info("%s: done in %.0f s", run_dir, time.time() - t0)
    from signwrite.reports import print_summary

    print_summary(metrics, run_dir)
    return metrics


# -- command line ------------------------------------------------------------------------------

def parse_args(argv=None) -> tuple[TrainSettings, bool]:
    d = TrainSettings()
    p = argparse.ArgumentParser(prog="signwrite train", description=__doc__.split("\n\n")[0],
                                epilog="example (CPU, from scratch): python -m signwrite.train --weights none "
                                       "--image-size 96")
    p.add_argument("--data-dir", type=Path, default=d.data_dir,
                   help="folder holding frames/ from extract_frames (default: %(default)s)")
    p.add_argument("--logdir", type=Path, default=d.logdir, help="runs go to LOGDIR/RUN/ (default: %(default)s)")
    p.add_argument("--run", default=None, help="run name (default: <backbone>_<weights>_<size>px_<mode>, or "
                   "landmarks_<model>); the same command again resumes it")
    p.add_argument("--input", default=d.input, choices=INPUTS,
                   help="what the model sees: frames (whole frames into the backbone; the default), hands (the "
                        "hand crops into the backbone) or landmarks (a small model on the signing hand's "
                        "landmarks: seconds on a CPU, and the best on people the model never saw); hands and "
                        "landmarks need `signwrite extract-frames --hands`")
    p.add_argument("--landmark-model", default=d.landmark_model, choices=["auto", "pool", "temporal"],
                   help="with --input landmarks: pool (a per-frame model averaged over the clip), temporal (a "
                        "model over the clip's frames in order, for signs made with motion) or auto (the "
                        "default: both, keeping the better on validation)")
    p.add_argument("--backbone", default=d.backbone, choices=["inception_v3", "mobilenet_v2", "small_cnn"],
                   help="default: %(default)s; mobilenet_v2 is the fast option; small_cnn has no pretrained "
                        "weights and learns from scratch on little data (the demo uses it)")
    p.add_argument("--weights", default=d.weights, help="imagenet (downloaded once by Keras; the default), "
                   "none (from scratch) or the path of a weights file")
    p.add_argument("--image-size", type=int, default=None, help="input size in px (default: the backbone's "
                   "own, 299 / 224 / 64); down to 75 / 32 / 32 for CPU work")
    p.add_argument("--mode", default=d.mode, choices=["auto", "frozen", "end-to-end"],
                   help="auto (the default): frozen with pretrained weights, end-to-end from scratch")
    p.add_argument("--epochs", type=int, default=None,
                   help="most epochs; the learning rate decays over them (default: 200 frozen, 30 end-to-end)")
    p.add_argument("--warmup-epochs", type=int, default=d.warmup_epochs,
                   help="head-only epochs before fine-tuning pretrained weights end-to-end (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="default: %(default)s")
    p.add_argument("--learning-rate", type=float, default=None,
                   help="Adam's starting rate (default: 1e-3; 1e-4 fine-tuning pretrained blocks)")
    p.add_argument("--patience", type=int, default=d.patience,
                   help="epochs without a better validation score before stopping (default: %(default)s)")
    p.add_argument("--monitor", default=d.monitor, choices=["val_loss", "val_accuracy", "val_clip_top1"],
                   help="validation score that picks the kept checkpoint and stops training (default: %(default)s). "
                        "val_clip_top1 breaks its ties by frame accuracy, then loss: it suits a few validation "
                        "signers, where one confident mistake can dominate val_loss")
    p.add_argument("--val-fraction", type=float, default=d.val_fraction,
                   help="share of training videos (or clips, or frames) held out for validation (default: %(default)s)")
    p.add_argument("--aggregate", default=d.aggregate, choices=["mean", "logmean", "vote"],
                   help="how frame probabilities make a clip's (default: %(default)s)")
    p.add_argument("--dropout", type=float, default=d.dropout, help="before the head (default: %(default)s)")
    p.add_argument("--no-augment", dest="augment", action="store_false", help="train end-to-end without augmentation")
    p.add_argument("--flip", action="store_true", help="also flip frames left-right (swaps the signing hand)")
    p.add_argument("--colour", action="store_true",
                   help="also jitter hue, saturation and grey, swap colour channels and invert half the "
                        "frames: for signers who differ in skin, clothes and backdrop far more than your few "
                        "training videos show")
    p.add_argument("--seed", type=int, default=d.seed, help="default: %(default)s")
    p.add_argument("--deterministic", action="store_true",
                   help="TensorFlow's op determinism: the same command on the same data, machine and versions "
                        "gives the same model bit for bit (no slower on a CPU, as measured; may be on a GPU)")
    p.add_argument("--backup-seconds", type=float, default=d.backup_seconds,
                   help="save a backup to resume from at most this often, at an epoch's end (default: %(default)s)")
    p.add_argument("--distribute", default=d.distribute, choices=["none", "mirrored", "multiworker"],
                   help="mirrored: tf.distribute.MirroredStrategy over every visible GPU (or, with "
                        "SIGNWRITE_CPU_REPLICAS=N, the CPU split in N); multiworker: "
                        "MultiWorkerMirroredStrategy over the machines TF_CONFIG names, each running this same "
                        "command on the same data (end-to-end from scratch). Default: %(default)s")
    p.add_argument("-v", "--verbose", action="store_true")
    a = vars(p.parse_args(argv))
    verbose = a.pop("verbose")
    return TrainSettings(**a), verbose


def main(argv: list[str] | None = None) -> int:
    settings, verbose = parse_args(argv)
    setup_logging(verbose)
    return run_stage("train", train, settings)


if __name__ == "__main__":
    import sys

    sys.exit(main())
