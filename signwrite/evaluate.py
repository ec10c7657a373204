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
from signwrite.cli import run, setup_logging
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


def score(frames, frame_probs: np.ndarray, labels: list[str], method: str = "mean") -> Scores:
    """Clip-level and frame-level scores of a per-frame table with its probabilities."""
    from signwrite.data import clip_numbers

    index = {label: i for i, label in enumerate(labels)}
    frame_targets = frames.label.map(index).to_numpy()
    clip_idx = clip_numbers(frames)
    clips = frames.drop_duplicates("clip_id")[["clip_id", "video", "label"]].reset_index(drop=True)
    clips["target"] = clips.label.map(index)
    clip_probs = M.aggregate_clips(frame_probs, clip_idx, method)
    clips["predicted"] = clip_probs.argmax(1)
    clips["predicted_label"] = [labels[i] for i in clips.predicted]
    clips["correct"] = clips.predicted == clips.target
    targets = clips.target.to_numpy()
    rank = (clip_probs >= clip_probs[np.arange(len(targets)), targets][:, None]).sum(1) - 1
    topk = M.topk_accuracy(clip_probs, targets, TOPK)
    n, n_classes = len(clips), len(labels)
    metrics = {f"clip_top{k}": topk[k] for k in TOPK}
    metrics.update({f"clip_top{k}_correct": (int(round(topk[k] * n)) if topk[k] is not None else n) for k in TOPK})
    metrics.update({f"chance_top{k}": M.chance_level(n_classes, k) for k in TOPK})
    metrics["topk_notes"] = {f"clip_top{k}": f"k={k} >= n_classes={n_classes}: every class is in the "
                             f"top {k}, so it is not reported" for k in TOPK if topk[k] is None}
    frame_top1 = M.topk_accuracy(frame_probs, frame_targets, (1,))[1]
    metrics.update(frame_top1=frame_top1, frame_top1_correct=int(round(frame_top1 * len(frames))),
                   n_test_clips=n, n_test_frames=len(frames), n_classes=n_classes,
                   majority_top1=float(clips.target.value_counts().max() / n), aggregate=method)
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
                    batch_size: int = 32) -> dict | None:
    """Score the test split once and write every report; None when there is no test split."""
    from signwrite import reports
    from signwrite.backbones import frame_preprocessing

    test_frames = usable_test_frames(test_frames, labels)
    if test_frames.empty:
        log.warning("no test clips: nothing to score (frames.csv has no usable 'test' rows)")
        return None
    resize = frame_preprocessing(config["backbone"], config["image_size"])[0]
    log.info("test: scoring %d clips (%d frames)", test_frames.clip_id.nunique(), len(test_frames))
    probs = predict_table(model, test_frames, resize, batch_size)
    scores = score(test_frames, probs, labels, config["aggregate"])
    frames_of_clip = {cid: list(g.path) for cid, g in test_frames.groupby("clip_id", sort=False)}
    return reports.write_reports(Path(run_dir), scores, labels, config, frames_of_clip)


def evaluate_run(run_path: Path, data_dir: Path | None = None, batch_size: int = 32) -> dict:
    """Re-score a saved run on the test split of ``data_dir`` (default: the run's own)."""
    from signwrite import data
    from signwrite.run import load_run

    r = load_run(run_path)
    data_dir = Path(data_dir or r.config.get("data_dir") or "data")
    sampling = data.read_extract_config(data_dir)
    if r.sampling and {k: sampling.get(k) for k in r.sampling} != r.sampling:
        log.warning("%s: frames were extracted with %s, the run was trained on frames made with %s",
                    data_dir, sampling, r.sampling)
    frames = data.explode_frames(data.read_clips(data_dir), data_dir)
    metrics = test_and_report(r.model, r.labels, r.config, frames[frames.split == "test"], r.path, batch_size)
    if metrics is None:
        raise SignwriteError(f"{data.frames_dir(data_dir) / 'frames.csv'}: no test clips with the run's "
                             "labels; extract frames for a test split first")
    from signwrite.reports import summary_text

    print(summary_text(metrics, r.path))
    return metrics


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="signwrite evaluate", description="Re-score a saved run on the test clips "
                                "and rewrite its reports (metrics.json, predictions.csv, pictures).")
    p.add_argument("--run", required=True, type=Path, help="the run folder, e.g. logs/NAME")
    p.add_argument("--data-dir", type=Path, default=None, help="data folder (default: the one the run was trained on)")
    p.add_argument("--batch-size", type=int, default=32, help="frames per forward pass (default: 32)")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(argv)
    setup_logging(a.verbose)
    return run("evaluate", evaluate_run, a.run, a.data_dir, a.batch_size)


if __name__ == "__main__":
    import sys

    sys.exit(main())
