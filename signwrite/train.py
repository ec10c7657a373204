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
run resumes where it was when the same command runs again: each phase keeps a backup
(weights, optimizer and its state at one epoch) and a state.json sidecar under
<run>/checkpoints/<phase>/ until the model is saved (signwrite.callbacks).

The settings and config.json are in signwrite.train_settings, the Keras callbacks and the
resume state in signwrite.callbacks, --distribute in signwrite.distribute.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from signwrite.process import (import_tensorflow, interrupts_held, interrupts_kept, raise_if_interrupted,
                               run_stage, setup_logging)
from signwrite.errors import SignwriteError
from signwrite.fsutil import atomic_path, folder_lock, remove_stale_temps, write_json
from signwrite.train_settings import INPUTS, TrainSettings, check_config, run_config

log = logging.getLogger(__name__)


# -- data --------------------------------------------------------------------------------------

def load_data(s: TrainSettings):
    """Frames of train (split into fit/validation) and test, the labels, and a summary."""
    from signwrite import data, tables

    clips = tables.read_frames_csv(s.data_dir)
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


# -- training ----------------------------------------------------------------------------------

@dataclass
class Phase:
    """One stretch of training with its own optimizer: the head on cached features, or the
    whole network end-to-end. Its folder is <run>/checkpoints/<name>/ (see signwrite.callbacks)."""
    name: str
    epochs: int
    learning_rate: float
    first_epoch: int  # epochs of the run before this phase: history.csv counts across phases


@dataclass
class Trainer:
    """What every phase of a run shares: the settings, the run folder, the validation frames and labels."""
    s: TrainSettings
    run_dir: Path
    val_frames: object  # pandas DataFrame of the validation frames
    labels: list
    randomness: object = None  # data.EpochRandomness: each epoch's shuffle and seeds from (seed, epoch)

    def fit(self, phase: Phase, model, train_data, val_inputs) -> int:
        """Train ``model`` for one phase, keep its best-on-validation weights; returns the next epoch.

        A finished phase is skipped on a re-run (its best weights are loaded instead); a stopped
        one resumes from its backup and its sidecar.
        """
        import keras

        from signwrite import callbacks as C
        from signwrite.distribute import fit_multiworker, predict_locally

        s, multiworker = self.s, self.s.distribute == "multiworker"
        phase_dir = self.run_dir / "checkpoints" / phase.name
        best = phase_dir / "best.weights.h5"
        state = C.read_state(phase_dir)
        if state["done"]:
            with interrupts_held():
                model.load_weights(best)
            log.info("phase %s: already done, weights restored", phase.name)
            return state["epoch"]
        phase_dir.mkdir(parents=True, exist_ok=True)
        # A stopped phase goes on from its last backup, with the state it had then (the sidecar
        # may be epochs ahead of it); without one, it starts again from its first epoch.
        backup = None if multiworker else C.read_backup(phase_dir)
        first_epoch, state = (backup.epoch, backup.state) if backup else (phase.first_epoch, C.fresh_state(phase_dir))
        # cosine decay over the planned epochs: big steps early, settled weights at the end
        steps = phase.epochs * int(train_data.cardinality())  # negative when tf.data cannot tell
        schedule = (keras.optimizers.schedules.CosineDecay(phase.learning_rate, decay_steps=steps, alpha=0.01)
                    if steps > 0 else phase.learning_rate)
        with interrupts_held():  # Keras' compile and callbacks, like model building (see build_and_fit)
            model.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy",
                          metrics=["accuracy"])
            callbacks = C.make_callbacks(s, self.run_dir, phase_dir, val_inputs, self.val_frames, self.labels,
                                         state, predict_locally if multiworker else None)
            if self.randomness is not None:
                callbacks.insert(0, C.EpochSeeds(self.randomness))
            if backup:
                model.optimizer.build(model.trainable_variables)  # its variables exist before loading
                model.load_weights(backup.weights)
        log.info("phase %s: up to %d epochs from epoch %d, learning rate %g, %d trainable weights",
                 phase.name, phase.epochs, first_epoch + 1, phase.learning_rate, len(model.trainable_weights))
        if multiworker:
            next_epoch = fit_multiworker(model, train_data, callbacks, phase.first_epoch, phase.epochs, s.batch_size)
        else:
            history = model.fit(train_data, epochs=phase.first_epoch + phase.epochs, initial_epoch=first_epoch,
                                callbacks=callbacks, shuffle=False, verbose=0)  # tf.data shuffles
            next_epoch = max(history.epoch, default=first_epoch - 1) + 1
        with interrupts_held():
            if not best.is_file():  # nothing was ever better than the start: keep what we have
                model.save_weights(best)
            model.load_weights(best)
            C.mark_done(phase_dir, next_epoch)
        return next_epoch


def build_and_train(s: TrainSettings, run_dir: Path, train, val, labels, strategy=None):
    """The whole classifier (raw frames -> probabilities), trained as the settings say, under
    the current tf.distribute strategy; the copy returned is an ordinary one-device model."""
    import tensorflow as tf

    with (strategy or tf.distribute.get_strategy()).scope():
        model = build_and_fit(s, run_dir, train, val, labels)
    with interrupts_held():
        return inference_copy(model)


def build_and_fit(s: TrainSettings, run_dir: Path, train, val, labels):
    """Builds the models and trains them phase by phase.

    Ctrl-C is held over every building step (Keras' functional construction, set_trainable,
    the tf.data pipelines' tracing, compile): a KeyboardInterrupt raised inside optree's C
    extension there is swallowed and the run would go on. Held, it arrives when the step is
    done, as a plain KeyboardInterrupt. Feature extraction and fitting are not held.
    """
    from signwrite import backbones, data, features
    from signwrite.callbacks import targets_of

    with interrupts_held():
        extractor = backbones.build_feature_extractor(s.backbone, s.weights, s.image_size)
        resize = extractor.get_layer("resize")
        head = backbones.build_head(extractor.output_shape[-1], len(labels), s.dropout)
    y_fit, y_val = targets_of(val.train, labels), targets_of(val.val, labels)
    with interrupts_held():
        randomness = data.EpochRandomness(s.seed)
    trainer = Trainer(s, run_dir, val.val, labels, randomness)
    epoch = 0

    if s.mode == "frozen" or s.weights != "none":  # a head on cached features (or its warm-up)
        cache = features.cache_dir(s.data_dir, s.backbone, backbones.weights_tag(s.weights, s.seed), s.image_size,
                                   s.input)
        features.extract_features(train, extractor, resize, cache, s.batch_size)
        x_fit, x_val = features.load_features(val.train, cache), features.load_features(val.val, cache)
        import tensorflow as tf

        with interrupts_held():
            fit_ds = randomness.shuffle(tf.data.Dataset.from_tensor_slices((x_fit, y_fit)), len(x_fit)).batch(
                s.batch_size)
        epochs = s.epochs if s.mode == "frozen" else s.warmup_epochs
        lr = s.learning_rate if s.mode == "frozen" else 1e-3
        epoch = trainer.fit(Phase("head", epochs, lr, epoch), head, fit_ds, x_val)

    with interrupts_held():  # the phase change
        model = backbones.build_classifier(extractor, head)
    if s.mode == "end-to-end":
        with interrupts_held():
            n = backbones.set_trainable(extractor, s.backbone, "all" if s.weights == "none" else "top")
            augment = data.sign_augmentation(s.seed, s.flip, s.colour) if s.augment else None
            fit_ds = data.frame_dataset(list(val.train.path), y_fit, resize, s.batch_size, shuffle=True,
                                        augment=augment, seed=s.seed, randomness=randomness)
            val_ds = data.frame_dataset(list(val.val.path), y_val, resize, s.batch_size) if len(val.val) else None
        log.info("end-to-end: %d backbone layers train (%s)", n,
                 "all, from scratch" if s.weights == "none" else "the top blocks")
        trainer.fit(Phase("end-to-end", s.epochs, s.learning_rate, epoch), model, fit_ds, val_ds)
    with interrupts_held():
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
    from signwrite.distribute import make_strategy

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
    # a Ctrl-C swallowed by the garbage collector (a TensorFlow resource's __del__) still stops
    # the run: raised again at the next held step or batch (signwrite.process.interrupts_kept)
    with interrupts_kept(), folder_lock(run_dir, "train"):
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
                with interrupts_held():  # Keras' functional construction again (see build_and_fit)
                    model = keras.saving.load_model(model_file, compile=False, safe_mode=True)
            else:
                log.info("%s: %s, weights %s, %d px, %s; %d labels", run_dir, s.backbone, s.weights,
                         s.image_size, s.mode, len(labels))
                model = build_and_train(s, run_dir, train_frames, val, labels, strategy)
                with interrupts_held(), atomic_path(model_file) as tmp:
                    model.save(tmp)
                shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
            if not chief:
                return None  # a worker's scratch run: the chief scores the model
            from signwrite import tables
            from signwrite.evaluate import hands_run_extras, test_and_report

            extra = {}
            if s.input == "hands":  # test clips without a hand are scored too: wrong at every k
                clips = tables.read_frames_csv(s.data_dir, check_files=False)
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
