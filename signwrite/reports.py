"""What signwrite leaves for people to look at: reports, pictures, TensorBoard summaries.

write_reports(run_dir, scores, labels, config) writes metrics.json, predictions.csv,
classification_report.txt, confusion_matrix.png, test_predictions.png and, under
<run>/test/, TensorBoard scalars (final clip top-k), images and the run's hparams.
update_contact_sheets draws extract-frames' contact sheets, one per label.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
from pathlib import Path

import numpy as np

from signwrite.errors import SignwriteError
from signwrite.fsutil import atomic_path, write_bytes, write_csv, write_file, write_json, write_text, write_text_if_changed
from signwrite.tables import frame_index

log = logging.getLogger(__name__)

GRID_MAX = 48  # thumbnails in test_predictions.png; wrong clips are shown first


def classification_report(scores, labels) -> tuple[str, dict]:
    from sklearn.metrics import classification_report as sk_report

    kw = dict(labels=list(range(len(labels))), target_names=labels, zero_division=0)
    y, p = scores.clips.target, scores.clips.predicted
    return sk_report(y, p, digits=3, **kw), sk_report(y, p, output_dict=True, **kw)


def confusion_matrix_png(scores, labels) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    side = min(24, 3 + 0.4 * len(labels))
    fig, ax = plt.subplots(figsize=(side, side))
    ConfusionMatrixDisplay.from_predictions(
        scores.clips.target, scores.clips.predicted, labels=list(range(len(labels))),
        display_labels=labels, ax=ax, colorbar=False, include_values=len(labels) <= 40)
    top1 = scores.metrics["clip_top1"]
    ax.set_title(f"test clips: {len(scores.clips)}, clip top-1 {top1:.1%}")
    fig.tight_layout()
    return _png(fig)


def predictions_grid_png(scores, frames_of_clip, hands_of_clip: dict | None = None) -> bytes:
    """Thumbnails of test clips (their middle frame) captioned true / predicted; with
    ``hands_of_clip`` (clip id -> its landmarks .npz), the hand's skeleton drawn on it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clips = scores.clips.assign(wrong=~scores.clips.correct).sort_values(["wrong", "label", "clip_id"],
                                                                         ascending=[False, True, True])
    shown = clips.head(GRID_MAX)
    cols = min(8, max(1, len(shown)))
    rows = max(1, -(-len(shown) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols, 2.1 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, clip in zip(axes.flat, shown.itertuples()):
        paths = frames_of_clip[clip.clip_id]
        ax.imshow(_thumbnail(paths[len(paths) // 2], (hands_of_clip or {}).get(clip.clip_id)))
        mark = "" if clip.correct else "  ✗ WRONG"
        ax.set_title(f"true {clip.label}\npred {clip.predicted_label}{mark}", fontsize=8,
                     color="black" if clip.correct else "red")
        if not clip.correct:
            for side in ax.spines.values():
                side.set_visible(True)
                side.set_color("red")
                side.set_linewidth(3)
            ax.axis("on")
            ax.set_xticks([])
            ax.set_yticks([])
    n_wrong = int((~clips.correct).sum())
    more = f" ({len(shown)} shown, wrong ones first)" if len(shown) < len(clips) else ""
    fig.suptitle(f"test clips: {len(clips) - n_wrong} of {len(clips)} right{more}", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def _thumbnail(path: str, landmarks: str | None = None) -> np.ndarray:
    """A frame as RGB, with the hands found in it drawn when its clip's landmarks are given."""
    import cv2

    image = cv2.imread(str(path))
    if image is None:
        return np.full((8, 8, 3), 200, np.uint8)
    _draw_hands(image, _hands_by_frame(landmarks), frame_index(path))
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _hands_by_frame(landmarks) -> dict[int, np.ndarray]:
    """{frame index: the hands' image points} from a clip's landmarks file; {} without one
    (or if it cannot be read: the picture is still worth drawing)."""
    from signwrite.hands import HandFrames

    if not landmarks:
        return {}
    try:
        found = HandFrames.load(landmarks)
    except (OSError, ValueError, KeyError):
        return {}
    return dict(zip(found.frame_index.tolist(), found.image))


def _draw_hands(image: np.ndarray, hands: dict[int, np.ndarray], index: int | None, **kw) -> None:
    """Draw the hands found in frame ``index`` onto a BGR image (in place), if any were."""
    from signwrite.hands import draw_skeleton

    if index in hands:
        draw_skeleton(image, hands[index], **kw)


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def predictions_table(scores, labels, k: int = 10):
    """One row per test clip: truth, prediction, the true label's rank and the top k."""
    probs = scores.clip_probs
    order = np.argsort(-probs, axis=1, kind="stable")[:, :min(k, len(labels))]
    t = scores.clips[["clip_id", "video", "label", "predicted_label", "correct"]].copy()
    t["p_predicted"] = probs.max(1).round(4)
    t["p_true"] = probs[np.arange(len(probs)), scores.clips.target].round(4)
    t["rank_true"] = scores.rank + 1
    t["top_k"] = [";".join(f"{labels[c]}:{probs[i, c]:.4f}" for c in row) for i, row in enumerate(order)]
    return t


def write_tensorboard(run_dir: Path, metrics: dict, images: dict[str, bytes], hparams: dict) -> None:
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    # hparams at the run's root: TensorBoard's HParams tab then pairs them with the metrics of
    # every sub-run (train/, validation/, test/)
    root = tf.summary.create_file_writer(str(run_dir))
    with root.as_default():
        hp.hparams({k: _hparam(v) for k, v in hparams.items()}, trial_id=run_dir.name)
    root.close()
    writer = tf.summary.create_file_writer(str(run_dir / "test"))
    with writer.as_default():
        for k in ("clip_top1", "clip_top3", "clip_top10", "frame_top1"):
            if metrics.get(k) is not None:
                tf.summary.scalar(k, metrics[k], step=0)
        for name, png in images.items():
            tf.summary.image(name, tf.expand_dims(tf.io.decode_png(png, channels=3), 0), step=0)
    writer.close()


def _hparam(v):
    return v if isinstance(v, (bool, int, float, str)) else str(v)


def write_reports(run_dir: Path, scores, labels: list[str], config: dict, frames_of_clip: dict,
                  hands_of_clip: dict | None = None) -> dict:
    """Write every report of a scored test split; returns metrics.json's content."""
    run_dir = Path(run_dir)
    text, per_class = classification_report(scores, labels)
    metrics = dict(scores.metrics)
    metrics["per_class"] = {name: {k: round(float(v), 4) for k, v in per_class[name].items()} for name in labels}
    metrics["macro_avg"] = {k: round(float(v), 4) for k, v in per_class["macro avg"].items()}
    write_text(run_dir / "classification_report.txt", text)
    write_csv(run_dir / "predictions.csv", predictions_table(scores, labels))
    images = {"confusion_matrix": confusion_matrix_png(scores, labels),
              "test_predictions": predictions_grid_png(scores, frames_of_clip, hands_of_clip)}
    for name, png in images.items():
        write_bytes(run_dir / f"{name}.png", png)
    hparams = {k: v for k, v in config.items() if not isinstance(v, (dict, list))}
    write_tensorboard(run_dir, metrics, images, hparams)
    write_json(run_dir / "metrics.json", metrics)  # last: its presence means the run is complete
    return metrics


def print_summary(metrics: dict | None, run_dir: Path) -> None:
    """What train prints when a run is done."""
    print(f"run {run_dir}: trained; no test split to score" if metrics is None else summary_text(metrics, run_dir))


def summary_text(metrics: dict, run_dir: Path) -> str:
    def pct(v):
        return f"{'n/a':>8}" if v is None else f"{v:8.1%}"

    n = metrics["n_classes"]
    ks = (1, 3, 10)
    lines = [f"run {run_dir}",
             f"test: {metrics['n_test_clips']} clips, {metrics['n_test_frames']} frames, {n} classes "
             f"(chance top-1 {metrics['chance_top1']:.1%}), aggregation {metrics['aggregate']}",
             "      " + "".join(f"{f'top-{k}':>8}" for k in ks),
             "clip  " + "".join(pct(metrics[f"clip_top{k}"]) for k in ks)
             + f"   ({metrics['clip_top1_correct']} of {metrics['n_test_clips']} clips right)",
             "frame " + pct(metrics["frame_top1"])]
    lines += [f"  (top-{k}: k >= {n} classes, so every clip is trivially right: not reported)"
              for k in ks if metrics[f"clip_top{k}"] is None]
    if metrics.get("hands_found") is not None:
        lines.append(f"hands found in {metrics['hands_found']:.1%} of the test frames")
    if metrics.get("n_test_clips_without_hand"):
        missing = metrics["test_clips_without_hand"]
        lines.append(f"no hand found in {len(missing)} test clip(s), counted wrong at every k: "
                     + ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))
    lines += [f"files: {run_dir}/ (metrics.json, predictions.csv, confusion_matrix.png, test_predictions.png)",
              f"see:   tensorboard --logdir {run_dir.parent}"]
    return "\n".join(lines)


# --------------------------------------------------------------------------- contact sheets
# extract-frames draws one per label (data/frames/contact_sheets/<label>.jpg), to check the
# clip times by eye. With OpenCV rather than matplotlib: rows of equal height for up to
# SHEET_MAX_ROWS clips, drawn in the extract workers, in a fraction of the time.

SHEET_FRAMES = 6  # thumbnails across a contact-sheet row: enough to see a sign begin and end
SHEET_THUMB_HEIGHT = 96
SHEET_MAX_ROWS = 500  # JPEG images stop at 65535 pixels high
SHEET_VERSION = 2  # bump when the sheet layout changes, so existing sheets are redrawn


def update_contact_sheets(frames_dir: Path, table, pool=None) -> int:
    """Redraw the sheets whose clips changed (or that are missing); returns how many were drawn."""
    sheets_dir = frames_dir / "contact_sheets"
    index_path = sheets_dir / ".sheets.json"
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        index = {}
    jobs, wanted = [], {}
    for label, group in table.groupby("label", sort=True):
        rows = group[["clip_id", "start", "end", "fps", "frames", "landmarks", "hand_frames"]].astype(str).values.tolist()
        sig = hashlib.sha1(json.dumps([SHEET_VERSION, rows]).encode()).hexdigest()
        wanted[label] = sig
        if index.get(label) != sig or not (sheets_dir / f"{label}.jpg").is_file():
            jobs.append((str(frames_dir), label, group.to_dict("records")))
    for label in set(index) - set(wanted):  # labels gone from frames.csv: their sheets mislead
        with contextlib.suppress(OSError):
            (sheets_dir / f"{label}.jpg").unlink()

    def died(job, how: str) -> None:  # the sheet stays out of the index, so the next run draws it
        log.warning("contact sheet for label %r not drawn: its worker died (%s); run again to draw it",
                    job[1], how)

    from signwrite.workers import pool_map

    for label in pool_map(pool, _draw_sheet_job, jobs, died):
        if label is not None:
            index[label] = wanted[label]
    index = {k: v for k, v in index.items() if k in wanted}
    write_text_if_changed(index_path, json.dumps(index, indent=1, sort_keys=True) + "\n")
    return len(jobs)


def _draw_sheet_job(job) -> str:
    frames_dir, label, records = job
    draw_contact_sheet(Path(frames_dir), label, records)
    return label


def draw_contact_sheet(frames_dir: Path, label: str, records: list[dict]) -> Path:
    """One row per clip: its id and span above a few of its frames, each with its video time."""
    import cv2

    shown = records[:SHEET_MAX_ROWS]
    title = f"{label}: {len(records)} clip(s)"
    if len(shown) < len(records):
        title += f", the first {len(shown)} shown"
    sheet = _stack([_caption(title, 26, 0.6)] + [_sheet_row(frames_dir, rec) for rec in shown])
    ok, buf = cv2.imencode(".jpg", sheet, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise SignwriteError(f"contact sheet for label {label!r} ({sheet.shape[1]}x{sheet.shape[0]} px) "
                             "could not be encoded as JPEG")
    path = frames_dir / "contact_sheets" / f"{label}.jpg"
    with atomic_path(path) as tmp:  # no fsync: a sheet is cheap to redraw, like the frames it shows
        write_file(tmp, buf)
    return path


def _sheet_row(frames_dir: Path, rec: dict) -> np.ndarray:
    """A clip's row of thumbnails, with the hands' skeleton drawn where they were found."""
    import cv2

    from signwrite.extract_hands import hands_dir

    names = rec["frames"].split(";") if rec["frames"] else []
    hands = _hands_by_frame(hands_dir(frames_dir.parent) / rec["landmarks"] if rec.get("landmarks") else None)
    picks = sorted({round(x) for x in np.linspace(0, len(names) - 1, min(SHEET_FRAMES, len(names)))})
    thumbs = []
    for k in picks:
        # Decoding at half size is twice as fast, and thumbnails are smaller still.
        img = cv2.imdecode(np.fromfile(frames_dir / names[k], np.uint8), cv2.IMREAD_REDUCED_COLOR_2)
        if img is None:
            continue
        h, w = img.shape[:2]
        img = cv2.resize(img, (max(1, round(w * SHEET_THUMB_HEIGHT / h)), SHEET_THUMB_HEIGHT),
                         interpolation=cv2.INTER_LINEAR)
        index = frame_index(names[k])
        _draw_hands(img, hands, index, thickness=1)
        t = float(rec["start"]) + index / float(rec["fps"])
        cv2.putText(img, f"{t:.2f}s", (3, SHEET_THUMB_HEIGHT - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 2,
                    cv2.LINE_AA)
        cv2.putText(img, f"{t:.2f}s", (3, SHEET_THUMB_HEIGHT - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (255, 255, 255), 1, cv2.LINE_AA)
        thumbs += [img, np.full((SHEET_THUMB_HEIGHT, 2, 3), 255, np.uint8)]
    strip = np.hstack(thumbs) if thumbs else np.full((SHEET_THUMB_HEIGHT, 200, 3), 200, np.uint8)
    text = f"{rec['clip_id']}  ({rec['start']}-{rec['end']} s, {rec['n_frames']} frames)"
    return _stack([_caption(text, 20, 0.45), strip, np.full((4, 1, 3), 255, np.uint8)])


def _caption(text: str, height: int, scale: float) -> np.ndarray:
    import cv2

    text = text.encode("ascii", "replace").decode()  # Hershey fonts draw ASCII only
    (width, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    band = np.full((height, width + 6, 3), 255, np.uint8)
    cv2.putText(band, text, (3, height - 6), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return band


def _stack(parts: list[np.ndarray]) -> np.ndarray:
    """Stack images top to bottom, padding each on the right with white to the widest."""
    width = max(p.shape[1] for p in parts)
    return np.vstack([np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0)), constant_values=255) for p in parts])
