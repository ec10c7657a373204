"""``train --input landmarks``: a small model on the signing hand's landmarks, per clip.

Reads the landmarks extract-frames --hands wrote (data/hands/, listed in frames.csv),
keeps the signing hand of each clip (a left hand mirrored onto a right one), carves
validation out of train by whole videos as the frame models do (data.carve_validation),
trains signwrite.landmark_model's models and keeps the one that scores best on validation
(a per-frame model pooled over the clip, or a temporal one over the clip's frames), then
scores the test split once. A clip with no hand found gets no prediction: it counts as
wrong in every top-k and is listed in the report.

It trains in seconds on a CPU, so a stopped run simply trains again.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np

from signwrite.errors import SignwriteError
from signwrite.fsutil import atomic_path, folder_lock, remove_stale_temps, write_csv, write_json

log = logging.getLogger(__name__)

KINDS = ("pool", "temporal")
HANDS_FIX = "run `signwrite extract-frames --hands` on this data folder first"


@dataclasses.dataclass
class ClipHands:
    """One clip's signing hand: points (T, 21, 3) aspect-corrected, mask (T,), in time order."""
    clip_id: str
    label: str
    video: str
    points: np.ndarray
    mask: np.ndarray
    frame_index: np.ndarray


def load_clip_hands(clips, data_dir: Path) -> list[ClipHands]:
    """Every clip's signing hand, from the .npz files frames.csv lists."""
    from signwrite.extract_hands import hands_dir
    from signwrite.hands import HandFrames
    from signwrite.landmark_features import signing_hand

    if "landmarks" not in clips.columns or (clips.landmarks.astype(str) == "").all():
        raise SignwriteError(f"{Path(data_dir) / 'frames' / 'frames.csv'}: lists no hand landmarks; {HANDS_FIX}")
    missing = clips[clips.landmarks.astype(str) == ""].clip_id.tolist()
    if missing:
        raise SignwriteError(f"{Path(data_dir) / 'frames' / 'frames.csv'}: {len(missing)} clip(s) have no "
                             f"landmarks (e.g. {missing[0]}); {HANDS_FIX}")
    root = hands_dir(data_dir)
    out = []
    for c in clips.itertuples(index=False):
        path = root / c.landmarks
        try:
            h = HandFrames.load(path)
        except (OSError, ValueError, KeyError) as exc:
            raise SignwriteError(f"{path}: unreadable ({exc}); delete its folder and {HANDS_FIX}") from None
        points, mask = signing_hand(h.image, h.handedness, h.width, h.height)
        out.append(ClipHands(c.clip_id, c.label, c.video, points, mask, h.frame_index))
    return out


def split_for_validation(train: list[ClipHands], fraction: float, seed: int):
    """(fit, val, note): whole videos held out when train has several, as for frames
    (data.carve_validation); with one video, the time tail of every clip."""
    import pandas as pd

    from signwrite.data import carve_validation

    rows = [(c.clip_id, c.label, c.video, p) for c in train for p in range(len(c.mask))]
    table = pd.DataFrame(rows, columns=["clip_id", "label", "video", "position"])
    v = carve_validation(table, fraction, seed)
    val_positions = v.val.groupby("clip_id").position.apply(set).to_dict()
    fit, val = [], []
    for c in train:
        held = val_positions.get(c.clip_id, set())
        if not held:
            fit.append(c)
        elif len(held) == len(c.mask):
            val.append(c)
        else:  # the time tail of this clip validates, its head trains
            keep = np.array([p not in held for p in range(len(c.mask))])
            fit.append(dataclasses.replace(c, points=c.points[keep], mask=c.mask[keep],
                                           frame_index=c.frame_index[keep]))
            val.append(dataclasses.replace(c, points=c.points[~keep], mask=c.mask[~keep],
                                           frame_index=c.frame_index[~keep]))
    return fit, val, v.strategy, v.note


def landmark_settings(s, kind: str, max_frames: int):
    from signwrite.landmark_features import FeatureSpec
    from signwrite.landmark_model import LandmarkTrainSettings

    fields = {f.name for f in dataclasses.fields(LandmarkTrainSettings)}
    given = dict(kind=kind, seed=s.seed, max_frames=max_frames, augment=s.augment, feature_spec=FeatureSpec())
    if s.epochs is not None:
        given["epochs"] = s.epochs
    if s.learning_rate is not None:
        given["learning_rate"] = s.learning_rate
    return LandmarkTrainSettings(**{k: v for k, v in given.items() if k in fields})


def fit_best(s, fit, val, labels, max_frames: int):
    """Train every kind asked for; keep the best on validation (clip top-1, then loss)."""
    from signwrite import landmark_model as lm

    index = {label: i for i, label in enumerate(labels)}
    kinds = KINDS if s.landmark_model == "auto" else (s.landmark_model,)
    data = ([(c.points, c.mask) for c in fit], np.array([index[c.label] for c in fit]))
    val_data = ([(c.points, c.mask) for c in val], np.array([index[c.label] for c in val])) if val else (None, None)
    tried = {}
    for kind in kinds:
        t0 = time.time()
        ls = landmark_settings(s, kind, max_frames)
        model, history = lm.fit(data[0], data[1], val_data[0], val_data[1], ls)
        score = (float("nan"), float("nan"))
        if val:
            probs, has = lm.predict(model, val_data[0], ls.feature_spec, max_frames)
            right = has & (np.nan_to_num(probs).argmax(1) == val_data[1])
            p_true = np.where(has, np.nan_to_num(probs)[np.arange(len(probs)), val_data[1]], 0)
            score = (float(right.mean()), float(-np.log(np.clip(p_true, 1e-7, 1)).mean()))
        tried[kind] = dict(model=model, history=history, settings=ls, val_clip_top1=score[0], val_loss=score[1],
                           seconds=time.time() - t0)
        log.info("landmarks, %s model: validation clip top-1 %.3f, loss %.3f (%d clips; %.1f s)", kind,
                 score[0], score[1], len(val), time.time() - t0)
    best = min(tried, key=lambda k: (-np.nan_to_num(tried[k]["val_clip_top1"], nan=-1),
                                     np.nan_to_num(tried[k]["val_loss"], nan=np.inf), KINDS.index(k)))
    if len(tried) > 1:
        log.info("landmarks: kept the %s model (best on validation)", best)
    return best, tried


def score_clips(test: list[ClipHands], probs: np.ndarray, has_hand: np.ndarray, labels: list[str],
                method: str):
    """evaluate.Scores of the test clips; a clip with no hand is wrong at every k."""
    import pandas as pd

    from signwrite.evaluate import clip_scores

    clips = pd.DataFrame({"clip_id": [c.clip_id for c in test], "video": [c.video for c in test],
                          "label": [c.label for c in test]})
    scores = clip_scores(clips, probs, has_hand, labels, method)
    n_frames = int(sum(len(c.mask) for c in test))
    scores.metrics.update(frame_top1=None, frame_top1_correct=None, n_test_frames=n_frames,
                          hands_found=float(sum(c.mask.sum() for c in test) / max(n_frames, 1)))
    return scores


def train_landmarks(s, extract_config: dict) -> dict | None:
    """The whole ``--input landmarks`` run: train, save, score once, report."""
    from signwrite import data, tables
    from signwrite.process import import_tensorflow
    from signwrite.evaluate import hands_of_clip, thumbnails
    from signwrite.reports import print_summary, write_reports
    from signwrite.train_settings import check_config, run_config

    t0 = time.time()
    clips = tables.read_frames_csv(s.data_dir)
    all_hands = load_clip_hands(clips, s.data_dir)
    train = [c for c in all_hands if clips.set_index("clip_id").split[c.clip_id] == "train"]
    if not train:
        raise SignwriteError(f"{data.frames_dir(s.data_dir) / 'frames.csv'}: no training clips")
    labels = sorted({c.label for c in train})
    test = [c for c in all_hands if clips.set_index("clip_id").split[c.clip_id] == "test" and c.label in labels]
    max_frames = max(len(c.mask) for c in all_hands)
    fit, val, strategy, note = split_for_validation(train, s.val_fraction, s.seed)
    log.info(note)
    no_hand_train = [c.clip_id for c in train if not c.mask.any()]
    if no_hand_train:
        log.warning("%d training clip(s) have no hand in any frame and teach nothing: %s", len(no_hand_train),
                    ", ".join(no_hand_train[:10]))
    summary = {"n_labels": len(labels), "n_train_clips": len(train), "n_fit_clips": len(fit), "n_val_clips": len(val),
               "n_test_clips": len(test), "validation": strategy, "validation_note": note,
               "max_frames": max_frames, "train_clips_without_hand": no_hand_train,
               "median_clip_seconds": float((clips[clips.split == "train"].end
                                             - clips[clips.split == "train"].start).median())}
    run_dir = s.logdir / s.run
    import_tensorflow()
    with folder_lock(run_dir, "train"):
        remove_stale_temps(run_dir)
        config = run_config(s, extract_config, summary)
        check_config(run_dir, config)
        write_json(run_dir / "labels.json", labels)
        if (run_dir / "metrics.json").is_file():
            log.info("%s: already finished; `signwrite evaluate --run %s` re-scores it", run_dir, run_dir)
            metrics = json.loads((run_dir / "metrics.json").read_text())
            print_summary(metrics, run_dir)
            return metrics
        import keras

        from signwrite import landmark_model as lm

        keras.utils.set_random_seed(s.seed)
        if s.deterministic:
            import tensorflow as tf

            tf.config.experimental.enable_op_determinism()
        best, tried = fit_best(s, fit, val, labels, max_frames)
        chosen = tried[best]
        config["landmarks"] = {"kind": best, "max_frames": max_frames,
                               "feature_spec": chosen["settings"].feature_spec.to_dict(),
                               "settings": _plain(dataclasses.asdict(chosen["settings"])),
                               "validation": {k: {"val_clip_top1": v["val_clip_top1"], "val_loss": v["val_loss"],
                                                  "seconds": round(v["seconds"], 2)} for k, v in tried.items()}}
        write_json(run_dir / "config.json", config)
        _write_history(run_dir, chosen["history"])
        with atomic_path(run_dir / "model.keras") as tmp:
            chosen["model"].save(tmp)
        metrics = None
        if test:
            probs, has_hand = lm.predict(chosen["model"], [(c.points, c.mask) for c in test],
                                         chosen["settings"].feature_spec, max_frames)
            scores = score_clips(test, probs, has_hand, labels, s.aggregate)
            metrics = write_reports(run_dir, scores, labels, config, thumbnails(clips, s.data_dir),
                                    hands_of_clip(clips, s.data_dir))
    log.info("%s: done in %.0f s", run_dir, time.time() - t0)
    print_summary(metrics, run_dir)
    return metrics


def _write_history(run_dir: Path, history: dict) -> None:
    """history.csv (one row per epoch) and TensorBoard curves for the kept model."""
    import pandas as pd
    import tensorflow as tf

    table = pd.DataFrame(history)
    table.insert(0, "epoch", range(len(table)))
    write_csv(run_dir / "history.csv", table)
    for sub, keys in (("train", [k for k in history if not k.startswith("val_")]),
                      ("validation", [k for k in history if k.startswith("val_")])):
        if not keys:
            continue
        writer = tf.summary.create_file_writer(str(run_dir / sub))
        with writer.as_default():
            for key in keys:
                name = "epoch_" + (key[4:] if key.startswith("val_") else key)
                for epoch, value in enumerate(history[key]):
                    tf.summary.scalar(name, float(value), step=epoch)
        writer.close()


def _plain(obj):
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def score_run(run, clips, data_dir: Path) -> dict | None:
    """Re-score a saved landmark run on the test clips of ``clips`` (evaluate's job)."""
    from signwrite import landmark_model as lm
    from signwrite.evaluate import hands_of_clip, thumbnails
    from signwrite.landmark_features import FeatureSpec
    from signwrite.reports import write_reports

    test = [c for c in load_clip_hands(clips[clips.split == "test"], data_dir) if c.label in run.labels]
    if not test:
        return None
    spec = FeatureSpec.from_dict(run.config["landmarks"]["feature_spec"])
    probs, has_hand = lm.predict(run.model, [(c.points, c.mask) for c in test], spec,
                                 int(run.config["landmarks"]["max_frames"]))
    scores = score_clips(test, probs, has_hand, run.labels, run.config.get("aggregate", "mean"))
    return write_reports(run.path, scores, run.labels, run.config, thumbnails(clips, data_dir),
                         hands_of_clip(clips, data_dir))
