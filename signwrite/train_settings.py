"""The settings of ``signwrite train`` (every --input), their checks, and the config.json they become.

TrainSettings.resolved() fills in the defaults and refuses a bad value with one line; run_config
is what a run folder's config.json holds, and check_config refuses to resume a run folder with
other settings. Used by signwrite.train and signwrite.train_landmarks.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from signwrite.errors import SignwriteError

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
