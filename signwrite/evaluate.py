"""Score a model on the test clips: clip-level top-1/3/10, reports, TensorBoard.

    python -m signwrite.evaluate --run logs/NAME [--data-dir data] [--batch-size N]

train calls ``test_and_report`` once, at the end of training; this command re-scores a
saved run (the same code path, so it reproduces the run's metrics.json) and rewrites its
reports. By default it reads the data folder the run was trained from.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from signwrite import metrics as M
from signwrite.process import run_stage, setup_logging
from signwrite.errors import SignwriteError

log = logging.getLogger(__name__)

TOPK = (1, 3, 10)


@dataclass
class Scores:
    clips: object  # DataFrame, one row per clip: clip_id, video, label, target, predicted, ...
    clip_probs: np.ndarray  # (n_clips, C)
    rank: np.ndarray  # 0-based rank of the true label per clip (ties count against)
    metrics: dict


def predict_table(model, frames, resize, batch_size: int = 32) -> np.ndarray:
    """Frame probabilities for every row of a per-frame table, in its order."""
    from signwrite.data import frame_dataset

    ds = frame_dataset(list(frames.path), np.zeros(len(frames)), resize, batch_size, cache=False)
    return model.predict(ds, verbose=0).astype(np.float32)


NO_PREDICTION = "(no hand)"  # predicted_label of a clip a hand-based run could not classify


def score(frames, frame_probs: np.ndarray, labels: list[str], method: str = "mean", unpredicted=None) -> Scores:
    """Clip-level and frame-level scores of a per-frame table with its probabilities.

    ``unpredicted``: clips (clip_id, video, label) that have no frames to classify (a
    hand-based run where no hand was found): they count as wrong at every k.
    """
    import pandas as pd

    from signwrite.data import clip_numbers

    index = {label: i for i, label in enumerate(labels)}
    clips = frames.drop_duplicates("clip_id")[["clip_id", "video", "label"]].reset_index(drop=True)
    clip_probs = (M.aggregate_clips(frame_probs, clip_numbers(frames), method) if len(frames)
                  else np.zeros((0, len(labels)), np.float32))
    has = np.ones(len(clips), bool)
    if unpredicted is not None and len(unpredicted):
        clips = pd.concat([clips, unpredicted[["clip_id", "video", "label"]]], ignore_index=True)
        clip_probs = np.concatenate([clip_probs, np.zeros((len(unpredicted), len(labels)), np.float32)])
        has = np.concatenate([has, np.zeros(len(unpredicted), bool)])
    scores = clip_scores(clips, clip_probs, has, labels, method)
    frame_top1 = M.topk_accuracy(frame_probs, frames.label.map(index).to_numpy(), (1,))[1] if len(frames) else None
    scores.metrics.update(frame_top1=frame_top1, n_test_frames=len(frames),
                          frame_top1_correct=None if frame_top1 is None else int(round(frame_top1 * len(frames))))
    return scores


def clip_scores(clips, clip_probs: np.ndarray, has_prediction: np.ndarray, labels: list[str],
                method: str) -> Scores:
    """Clip-level scores of clips (clip_id, video, label) with their probabilities; a clip
    without a prediction is wrong at every k and named in the metrics."""
    index = {label: i for i, label in enumerate(labels)}
    clips = clips[["clip_id", "video", "label"]].reset_index(drop=True)
    clips["target"] = clips.label.map(index)
    has = np.asarray(has_prediction, bool)
    clip_probs = np.where(has[:, None], np.nan_to_num(clip_probs), 0).astype(np.float32)
    targets = clips.target.to_numpy()
    rank = (clip_probs >= clip_probs[np.arange(len(targets)), targets][:, None]).sum(1) - 1
    rank[~has] = len(labels)  # below every class
    clips["predicted"] = np.where(has, clip_probs.argmax(1), -1)
    clips["predicted_label"] = [labels[i] if i >= 0 else NO_PREDICTION for i in clips.predicted]
    clips["correct"] = clips.predicted == clips.target
    n, n_classes = len(clips), len(labels)
    topk = {k: (float((rank < k).mean()) if k < n_classes else None) for k in TOPK}
    metrics = {f"clip_top{k}": topk[k] for k in TOPK}
    metrics.update({f"clip_top{k}_correct": (int((rank < k).sum()) if topk[k] is not None else n) for k in TOPK})
    metrics.update({f"chance_top{k}": M.chance_level(n_classes, k) for k in TOPK})
    metrics["topk_notes"] = {f"clip_top{k}": f"k={k} >= n_classes={n_classes}: every class is in the "
                             f"top {k}, so it is not reported" for k in TOPK if topk[k] is None}
    metrics.update(n_test_clips=n, n_classes=n_classes, majority_top1=float(clips.target.value_counts().max() / n),
                   aggregate=method)
    if not has.all():
        metrics.update(n_test_clips_without_hand=int((~has).sum()),
                       test_clips_without_hand=clips.clip_id[~has].tolist())
    return Scores(clips, clip_probs, rank, metrics)


def usable_test_frames(frames, labels: list[str]):
    """Test frames whose label the model knows; the others are logged and left out."""
    unseen = sorted(set(frames.label) - set(labels))
    if unseen:
        n = frames[frames.label.isin(unseen)].clip_id.nunique()
        log.warning("%d test clip(s) have labels never seen in training (%s); they are left out of "
                    "the scores", n, ", ".join(unseen[:10]) + (" ..." if len(unseen) > 10 else ""))
    return frames[frames.label.isin(labels)].reset_index(drop=True)


def test_and_report(model, labels: list[str], config: dict, test_frames, run_dir: Path,
                    batch_size: int = 32, unpredicted=None, thumbnails: dict | None = None,
                    extra_metrics: dict | None = None, hands_of_clip: dict | None = None) -> dict | None:
    """Score the test split once and write every report; None when there is no test split.

    ``unpredicted``: test clips with nothing to classify (a hands run: no hand found),
    wrong at every k; ``thumbnails``: clip id -> frame paths for the prediction grid
    (default: the frames classified).
    """
    from signwrite import reports
    from signwrite.backbones import frame_preprocessing

    test_frames = usable_test_frames(test_frames, labels)
    if unpredicted is not None:
        unpredicted = unpredicted[unpredicted.label.isin(labels)]
    if test_frames.empty and (unpredicted is None or unpredicted.empty):
        log.warning("no test clips: nothing to score (frames.csv has no usable 'test' rows)")
        return None
    resize = frame_preprocessing(config["backbone"], config["image_size"])[0]
    log.info("test: scoring %d clips (%d frames)", test_frames.clip_id.nunique(), len(test_frames))
    probs = (predict_table(model, test_frames, resize, batch_size) if len(test_frames)
             else np.zeros((0, len(labels)), np.float32))
    scores = score(test_frames, probs, labels, config["aggregate"], unpredicted)
    scores.metrics.update(extra_metrics or {})
    frames_of_clip = thumbnails or {cid: list(g.path) for cid, g in test_frames.groupby("clip_id", sort=False)}
    return reports.write_reports(Path(run_dir), scores, labels, config, frames_of_clip, hands_of_clip)


def evaluate_run(run_path: Path, data_dir: Path | None = None, batch_size: int = 32) -> dict:
    """Re-score a saved run on the test split of ``data_dir`` (default: the run's own)."""
    from signwrite import data, tables
    from signwrite.run import load_run

    r = load_run(run_path)
    data_dir = Path(data_dir or r.config.get("data_dir") or "data")
    sampling = data.read_extract_config(data_dir)
    if r.sampling and {k: sampling.get(k) for k in r.sampling} != r.sampling:
        log.warning("%s: frames were extracted with %s, the run was trained on frames made with %s",
                    data_dir, sampling, r.sampling)
    clips = tables.read_frames_csv(data_dir)
    if r.input == "landmarks":
        from signwrite.train_landmarks import score_run

        metrics = score_run(r, clips, data_dir)
    elif r.input == "hands":
        data.check_hands(clips, data_dir)
        test = clips[clips.split == "test"]
        crops = data.explode_crops(test, data_dir)
        metrics = test_and_report(r.model, r.labels, r.config, crops, r.path, batch_size,
                                  **hands_run_extras(test, data_dir))
    else:
        frames = data.explode_frames(clips, data_dir)
        metrics = test_and_report(r.model, r.labels, r.config, frames[frames.split == "test"], r.path, batch_size)
    if metrics is None:
        raise SignwriteError(f"{data.frames_dir(data_dir) / 'frames.csv'}: no test clips with the run's "
                             "labels; extract frames for a test split first")
    from signwrite.reports import summary_text

    print(summary_text(metrics, r.path))
    return metrics


def hands_run_extras(test_clips, data_dir: Path) -> dict:
    """test_and_report's arguments for a hands run: the clips with no hand, thumbnails of
    whole frames, and the share of test frames with a hand."""
    from signwrite.data import clips_without_hand

    n_frames = test_clips.n_frames.astype(int).sum()
    with_hand = sum(len([f for f in str(c).split(";") if f]) for c in test_clips.crops)
    return dict(unpredicted=clips_without_hand(test_clips), thumbnails=thumbnails(test_clips, data_dir),
                extra_metrics={"hands_found": float(with_hand / max(n_frames, 1))},
                hands_of_clip=hands_of_clip(test_clips, data_dir))


def hands_of_clip(clips, data_dir: Path) -> dict:
    """clip id -> its landmarks file, for the skeleton on the prediction grid."""
    root = Path(data_dir) / "hands"
    return {c.clip_id: str(root / c.landmarks) for c in clips.itertuples(index=False) if c.landmarks}


def thumbnails(clips, data_dir: Path) -> dict:
    """clip id -> its frames' paths, for the prediction grid."""
    from signwrite.data import frames_dir

    root = frames_dir(data_dir).resolve()
    return {c.clip_id: [str(root / f) for f in c.frames.split(";") if f] for c in clips.itertuples(index=False)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="signwrite evaluate", description="Re-score a saved run on the test clips "
                                "and rewrite its reports (metrics.json, predictions.csv, pictures).")
    p.add_argument("--run", required=True, type=Path, help="the run folder, e.g. logs/NAME")
    p.add_argument("--data-dir", type=Path, default=None, help="data folder (default: the one the run was trained on)")
    p.add_argument("--batch-size", type=int, default=32, help="frames per forward pass (default: 32)")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(argv)
    setup_logging(a.verbose)
    return run_stage("evaluate", evaluate_run, a.run, a.data_dir, a.batch_size)


if __name__ == "__main__":
    import sys

    sys.exit(main())
