"""The Keras callbacks of one training phase, and the phase's resume state.

A phase keeps, under ``<run>/checkpoints/<phase>/``:
  best.weights.h5  the best-on-validation weights (AtomicCheckpoint)
  backup/          the last backup (TimedBackup): weights and optimizer of one epoch, and
                   backup.json naming them with the phase's state at that epoch; a stopped
                   phase resumes from it
  state.json       the sidecar, written atomically at every epoch's end (PhaseState) and once
                   more, with ``done``, when the phase ends: a finished phase is not trained again

Imported by the training code only, after TensorFlow: it imports Keras at the top.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np

from signwrite import metrics as M
from signwrite.data import clip_numbers
from signwrite.errors import SignwriteError
from signwrite.fsutil import TMP_MARK, atomic_path, write_json, write_text, writer_tag
from signwrite.process import interrupts_held, raise_if_interrupted

log = logging.getLogger(__name__)

CLIP_SELECTION = "val_clip_top1_tiebreak"  # what --monitor val_clip_top1 ranks epochs by
STATE = "state.json"
BACKUP, BACKUP_STATE = "backup", "backup.json"


def targets_of(frames, labels) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    return frames.label.map(index).to_numpy().astype(np.int32)


def monitor_key(s, val_frames) -> str:
    """The logged value that picks the kept checkpoint and stops training."""
    if val_frames.empty:
        return "loss"
    return CLIP_SELECTION if s.monitor == "val_clip_top1" else s.monitor


# -- the sidecar -------------------------------------------------------------------------------

def read_state(phase_dir: Path) -> dict:
    """The phase's sidecar; a fresh state when the phase has not finished an epoch yet.

    A phase folder from signwrite before the sidecar (a backup/ or done.json, no state.json)
    cannot be resumed: its best score was only in history.csv. One line says what to do.
    """
    path = phase_dir / STATE
    if path.is_file():
        return json.loads(path.read_text())
    if (phase_dir / BACKUP).exists() or (phase_dir / "done.json").exists():
        raise SignwriteError(f"{phase_dir}: a checkpoint written by an older signwrite, without the {STATE} "
                             f"resuming needs; delete {phase_dir.parent} and run the same command again to "
                             "train this run from its first epoch")
    return fresh_state(phase_dir)


def fresh_state(phase_dir: Path) -> dict:
    """The state of a phase that has not finished an epoch."""
    return {"phase": phase_dir.name, "epoch": None, "best": None, "best_epoch": None, "wait": 0, "done": False}


class PhaseState(keras.callbacks.Callback):
    """Writes the sidecar at each epoch's end, after the best checkpoint and before the backup:
    the best monitored value (the one best.weights.h5 holds) and the epochs waited since."""

    def __init__(self, phase_dir: Path, monitor: str, state: dict):
        super().__init__()
        self.path, self.monitor = phase_dir / STATE, monitor
        self.state = {**state, "monitor": monitor}
        self.better = np.less if monitor.endswith("loss") else np.greater

    def on_epoch_end(self, epoch, logs=None):
        value, st = (logs or {}).get(self.monitor), self.state
        if value is not None:
            if st["best"] is None or self.better(value, st["best"]):
                st.update(best=float(value), best_epoch=epoch, wait=0)
            else:
                st["wait"] += 1
        st["epoch"] = epoch + 1  # epochs finished so far in the run
        write_json(self.path, st)


def mark_done(phase_dir: Path, next_epoch: int) -> None:
    """The phase is over: a re-run loads best.weights.h5 and goes on from ``next_epoch``."""
    state = read_state(phase_dir)
    write_json(phase_dir / STATE, {**state, "epoch": next_epoch, "done": True})


# -- the callbacks -----------------------------------------------------------------------------

class ValidationScores(keras.callbacks.Callback):
    """val_loss, val_accuracy (frames) and val_clip_top1 (clips) from one pass."""

    def __init__(self, val_inputs, val_frames, labels, aggregate: str, predict=None):
        super().__init__()
        self.val_inputs, self.val_frames, self.labels, self.aggregate = val_inputs, val_frames, labels, aggregate
        self.predict = predict  # how to run the model over val_inputs; default: model.predict

    def on_epoch_end(self, epoch, logs=None):
        val_frames, labels = self.val_frames, self.labels
        if val_frames.empty:
            return
        probs = self.predict(self.model, self.val_inputs) if self.predict else \
            self.model.predict(self.val_inputs, verbose=0)
        y = targets_of(val_frames, labels)
        logs["val_loss"] = float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-7, 1)).mean())
        logs["val_accuracy"] = M.topk_accuracy(probs, y, (1,))[1]
        clip_probs = M.aggregate_clips(probs, clip_numbers(val_frames), self.aggregate)
        clip_y = targets_of(val_frames.drop_duplicates("clip_id"), labels)
        logs["val_clip_top1"] = M.topk_accuracy(clip_probs, clip_y, (1,))[1]
        # With a few validation clips, clip top-1 ties for many epochs (often from an early,
        # half-trained one); ties go to the better frame accuracy and lower loss. The
        # tie-break stays under half of one clip's worth, so it never outranks a clip.
        half_step = 0.5 / max(len(clip_y), 1)
        logs[CLIP_SELECTION] = logs["val_clip_top1"] + half_step * (
            logs["val_accuracy"] + 1 / (1 + logs["val_loss"])) / 2


class EpochSeeds(keras.callbacks.Callback):
    """At each epoch's start, the epoch's random state (data.EpochRandomness): the shuffle,
    the augmentation's and the model's (dropout) seed generators."""

    def __init__(self, randomness):
        super().__init__()
        self.randomness = randomness

    def on_epoch_begin(self, epoch, logs=None):
        self.randomness.begin(epoch, self.model)


class SwallowedInterrupts(keras.callbacks.Callback):
    """Raises a Ctrl-C that was swallowed on its way (signwrite.process.interrupts_kept)."""

    def on_train_batch_end(self, batch, logs=None):
        raise_if_interrupted()

    on_epoch_begin = on_epoch_end = on_train_begin = lambda self, *args, **kwargs: raise_if_interrupted()


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


class TimedBackup(keras.callbacks.Callback):
    """A backup to resume from, at an epoch's end, at most every ``seconds`` (saving
    InceptionV3 with its optimizer takes seconds, as long as a whole epoch of a small run).

    Keras' BackupAndRestore writes its weights file in place and its epoch in a second file,
    so a run killed while it saves leaves a torn file the next run cannot load, or weights
    of one epoch with the epoch number of another. Here a backup is
    ``backup/epoch-NNNN.weights.h5`` (weights and optimizer, renamed into place) and
    ``backup/backup.json``, written atomically after it, which names that file and holds
    the phase's state at that epoch: the one file decides what a re-run resumes from, so
    it is always one whole epoch, whatever moment the run was stopped at. Older weights
    files go once ``backup.json`` no longer names them.
    """

    def __init__(self, phase_dir: Path, seconds: float, state: dict):
        super().__init__()
        self.dir, self.seconds = Path(phase_dir) / BACKUP, seconds
        self.state = state  # the phase's sidecar state, as PhaseState keeps it up to date

    def on_train_begin(self, logs=None):
        self.last = time.time()

    def on_epoch_end(self, epoch, logs=None):
        if time.time() - self.last < self.seconds:
            return
        name = f"epoch-{epoch + 1:04d}.weights.h5"
        with atomic_path(self.dir / name, suffix=".weights.h5") as tmp:  # Keras wants that ending
            self.model.save_weights(str(tmp))
        write_json(self.dir / BACKUP_STATE, {"epoch": epoch + 1, "weights": name, "state": dict(self.state)})
        for old in self.dir.glob("epoch-*.weights.h5"):
            if old.name != name:
                old.unlink(missing_ok=True)
        self.last = time.time()

    def on_train_end(self, logs=None):
        shutil.rmtree(self.dir, ignore_errors=True)  # the phase is over (a stop never gets here)


class Backup(NamedTuple):
    epoch: int  # epochs done: the one to go on from
    weights: Path  # weights and optimizer
    state: dict  # the phase's state then


def read_backup(phase_dir: Path) -> Backup | None:
    """The phase's last backup, or None when there is none (a backup folder of an older
    signwrite included: the phase then starts again from its first epoch)."""
    path = Path(phase_dir) / BACKUP / BACKUP_STATE
    if not path.is_file():
        return None
    backup = json.loads(path.read_text())
    return Backup(backup["epoch"], path.with_name(backup["weights"]), backup["state"])


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping that remembers, after a restart, how long it had been waiting."""

    def __init__(self, state: dict, **kw):
        super().__init__(**kw)
        self.state = state

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.state["best"] is not None:
            self.best, self.wait = self.state["best"], self.state["wait"]


class ResumedCSVLogger(keras.callbacks.CSVLogger):
    """CSVLogger appending to history.csv; the epochs a resumed phase is about to train again
    (those after its last backup) are dropped first, so each epoch has one row."""

    def on_train_begin(self, logs=None):
        self.opened = False  # the first epoch is known only when it begins

    def on_epoch_begin(self, epoch, logs=None):
        if not self.opened:
            path = Path(self.filename)
            lines = path.read_text().splitlines(keepends=True) if path.is_file() else []
            if lines:
                header, *rows = lines
                kept = [r for r in rows if r.endswith("\n") and _epoch_of(r, self.sep) < epoch]
                if len(kept) < len(rows):
                    write_text(path, "".join([header, *kept]))
            super().on_train_begin()
            self.opened = True


def _epoch_of(row: str, sep: str) -> float:
    head = row.split(sep, 1)[0]
    return int(head) if head.isdigit() else float("inf")  # a torn row goes


def make_callbacks(s, run_dir: Path, phase_dir: Path, val_inputs, val_frames, labels, state: dict, predict=None):
    """Validation scores first (the others read them from the epoch's logs), then Keras'; the
    sidecar after the best checkpoint, the backup last. ``state`` is the phase's state to go on
    from: its last backup's, or a fresh one.

    Under multiworker every worker must run the same epochs in step, so there is no early
    stopping (each worker's validation may differ in the last digits) and no timed backup
    (time differs between machines); the best-on-validation checkpoint is still kept.
    """
    monitor = monitor_key(s, val_frames)
    mode = "min" if monitor.endswith("loss") else "max"
    sidecar = PhaseState(phase_dir, monitor, state)
    kept = [AtomicCheckpoint(phase_dir / "best.weights.h5", monitor=monitor, mode=mode, save_best_only=True,
                             save_weights_only=True, initial_value_threshold=state["best"]),
            ResumableEarlyStopping(state, monitor=monitor, mode=mode, patience=s.patience),
            sidecar,
            ResumedCSVLogger(str(run_dir / "history.csv"), append=True),
            keras.callbacks.TensorBoard(str(run_dir), write_graph=False, profile_batch=0),
            TimedBackup(phase_dir, s.backup_seconds, sidecar.state)]
    if s.distribute == "multiworker":
        kept = [c for c in kept if not isinstance(c, (ResumableEarlyStopping, TimedBackup))]
    return [ValidationScores(val_inputs, val_frames, labels, s.aggregate, predict), EpochLog(),
            HeldEpochEnd(kept), SwallowedInterrupts()]


class HeldEpochEnd(keras.callbacks.CallbackList):
    """The epoch's bookkeeping (checkpoint, sidecar, history row, backup) in one piece: Ctrl-C
    is held over their on_epoch_end, so a stop never leaves a backup's weights of one epoch
    with the metadata of the one before, or a sidecar ahead of its backup."""

    def on_epoch_end(self, epoch, logs=None):
        with interrupts_held():
            super().on_epoch_end(epoch, logs)
