"""Classify new videos with a trained run, or transcribe a long video into signs with times.

Everything about how frames are chosen and prepared comes from the run folder (the
sampling extract_frames used, the run's preprocessing and aggregation), so a prediction
sees a video exactly as training saw its clips.

    python -m signwrite.predict --run logs/NAME VIDEO [VIDEO ...] [--start S --end E] [--top-k K] [--json]
    python -m signwrite.predict --run logs/NAME LONG_VIDEO --transcribe [--window SEC] [--stride SEC]

Transcription decodes the long video once, front to back, and gives the model each
sampled frame once; each window's prediction is the run's aggregation of the frame
probabilities it holds, so overlapping windows cost nothing extra. How a frame becomes
model input is the run's own (signwrite.run).

A run trained on hands (``--input hands`` or ``landmarks``) finds the hands itself, with
MediaPipe's tracker over the video's own frames, as extract-frames --hands did: a landmark
run classifies each window's sequence of hand landmarks, a hands run the crops of the
signing hand. Where no hand is found there is no prediction (and, transcribing, no sign).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from signwrite import transcribe as tr
from signwrite.errors import SignwriteError, VideoError
from signwrite.hand_model import hand_model_path
from signwrite.hands import HandFrames, track_frames
from signwrite.run import DEFAULT_WINDOW, open_run, sampling_kwargs, stdout_to_stderr, training_clip_seconds
from signwrite.transcribe import plan_windows, window_grid
from signwrite.video import iter_frames, probe, read_sampled, sample_indices

log = logging.getLogger(__name__)

STRIDE_FRACTION = 0.25  # default stride = window / 4


@dataclass
class PredictSettings:
    run: Path
    videos: list[Path]
    start: float | None = None  # span of each video to classify, seconds (None: whole video)
    end: float | None = None
    top_k: int = 3
    json: bool = False
    transcribe: bool = False
    window: float | None = None  # None: the run's median training clip duration
    stride: float | None = None  # None: window / 4
    threshold: float = tr.DEFAULT_THRESHOLD
    min_windows: int = 1
    out: Path | None = None  # segments CSV; None: <run>/transcripts/<video stem>.csv
    srt: Path | None = None
    expect: str | None = None  # the signs the video is known to hold, to score the transcript
    batch_size: int = 32


@dataclass
class ClipPrediction:
    video: Path
    start: float
    end: float
    n_frames: int
    probs: np.ndarray  # (C,)
    timings: dict = field(default_factory=dict)  # seconds spent decoding / in the model
    has_hand: bool = True  # a hand-based run found a hand (else probs are zeros: no prediction)


# -- spans --------------------------------------------------------------------------------------

def frame_span(info, start: float | None, end: float | None) -> tuple[int, int]:
    """[first, stop) frame indices of the span; a VideoError if it is not inside the video."""
    duration = info.duration
    s = 0.0 if start is None else float(start)
    e = duration if end is None else float(end)
    if s < 0 or e <= s or s >= duration or e > duration + 1 / info.fps:
        raise VideoError(f"{info.path}: the span {s:g}-{e:g} s is not inside the video (0-{duration:.3f} s); "
                         "pick --start/--end within it, with start < end")
    first = int(round(s * info.fps))
    stop = max(first + 1, min(info.n_frames, int(round(e * info.fps))))
    return first, stop



# -- the two jobs ---------------------------------------------------------------------------

def classify_video(run, path: Path, start: float | None = None, end: float | None = None) -> ClipPrediction:
    """One clip (a whole video or a span of it) -> the run's aggregated class probabilities."""
    span = []

    def choose(info) -> list[int]:
        first, stop = frame_span(info, start, end)
        span[:] = [first / info.fps, stop / info.fps]
        return [first + i for i in sample_indices(stop - first, info.fps, **sampling_kwargs(run))]

    t0 = time.perf_counter()
    hand_based = run.input != "frames"  # hands are found at the video's own resolution
    info, got, frames = read_sampled(path, choose, transform=None if hand_based else run.as_extracted)
    t1 = time.perf_counter()
    wanted = len(choose(info))
    if len(got) < wanted:
        log.warning("%s: only %d of the %d sampled frames decode (the file may be truncated); "
                    "classified from those", path, len(got), wanted)
    has_hand = True
    with stdout_to_stderr():
        if hand_based:
            found = track_frames(frames, got, info.fps, hand_model_path())
            probs, has = run.classify_hands([found], [frames])
            probs, has_hand = probs[0], bool(has[0])
        else:
            probs = run.aggregate(run.predict_frames(frames))
    t2 = time.perf_counter()
    return ClipPrediction(Path(path), span[0], span[1], len(got), np.asarray(probs),
                          {"decode_s": t1 - t0, "model_s": t2 - t1}, has_hand)


def transcribe_video(run, path: Path, *, window: float | None = None, stride: float | None = None,
                     threshold: float = tr.DEFAULT_THRESHOLD, min_windows: int = 1,
                     start: float | None = None, end: float | None = None, batch_size: int = 32) -> dict:
    """Slide a window over the video -> {"segments", "text", "windows", ...} (times in seconds)."""
    info = probe(path)
    first, stop = frame_span(info, start, end)
    given_window, given_stride = window, stride
    window = window or training_clip_seconds(run) or DEFAULT_WINDOW
    stride = stride or window * STRIDE_FRACTION
    if window <= 0 or stride <= 0:
        raise SignwriteError(f"--window {window:g} and --stride {stride:g} must be positive seconds")
    length, step = window_grid(window, stride, info.fps, sampling_kwargs(run),
                               tune_length=not given_window, tune_stride=not given_stride)
    window, stride = length / info.fps, step / info.fps
    plan = plan_windows(first, stop, info.fps, length, step, sampling_kwargs(run))
    wanted = sorted({i for _, _, idx in plan for i in idx})
    log.info("%s: %d windows of %.2f s every %.2f s; %d frames to classify",
             path, len(plan), window, stride, len(wanted))

    if run.input == "landmarks":
        return transcribe_landmarks(run, path, info, plan, wanted, window, stride, threshold, min_windows)
    frame_probs: dict[int, np.ndarray] = {}
    batch: list[tuple[int, np.ndarray]] = []

    def flush():
        with stdout_to_stderr():
            probs = np.asarray(run.predict_frames([f for _, f in batch]))
        frame_probs.update(zip([i for i, _ in batch], probs))
        batch.clear()

    decoded = 0
    with contextlib.ExitStack() as stack:
        tracker = stack.enter_context(run.hand_tracker()) if run.input == "hands" else None
        for i, frame in sampled_frames(path, wanted):
            decoded += 1
            if tracker is None:
                batch.append((i, run.as_extracted(frame)))
            else:  # the crop of the hand, where there is one; no hand, no probabilities
                found = HandFrames.empty([i], *frame.shape[1::-1])
                found.image[0], _, found.handedness[0], _ = tracker.detect(frame, i * 1000 / info.fps)
                batch += [(i, crop) for crop in run.hand_crops([frame], found)]
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
    if decoded < len(wanted):
        log.warning("%s: %d of %d frames could not be decoded (the file promises more than it holds)",
                    path, len(wanted) - decoded, len(wanted))

    starts, ends, window_probs = [], [], []
    for a, b, idx in plan:
        have = [frame_probs[i] for i in idx if i in frame_probs]
        if have:
            starts.append(a / info.fps)
            ends.append(b / info.fps)
            window_probs.append(np.asarray(run.aggregate(np.stack(have))))
    if not window_probs:
        if decoded and run.input != "frames":
            raise VideoError(f"{path}: no hand was found in any frame, so this hand-based run cannot "
                             "transcribe it; check that the signing hand is in the picture")
        raise VideoError(f"{path}: no frame could be decoded; the file may be truncated")
    done = sorted(frame_probs)
    return transcript(run, path, window, stride, threshold, min_windows, starts, ends, np.stack(window_probs),
                      (np.array(done) + 0.5) / info.fps, np.stack([frame_probs[i] for i in done]))


def transcribe_landmarks(run, path: Path, info, plan, wanted, window: float, stride: float,
                         threshold: float, min_windows: int) -> dict:
    """transcribe_video for a landmark run: the hands of every sampled frame, tracked once in
    order, then each window's sequence of them through the model."""
    found = None
    with run.hand_tracker() as tracker:
        for t, (i, frame) in enumerate(sampled_frames(path, wanted)):
            if found is None:
                found = HandFrames.empty(wanted, *frame.shape[1::-1])
            found.image[t], found.world[t], found.handedness[t], found.score[t] = \
                tracker.detect(frame, i * 1000 / info.fps)
    if found is None:
        raise VideoError(f"{path}: no frame could be decoded; the file may be truncated")
    row = {i: t for t, i in enumerate(wanted)}
    windows = [HandFrames(found.frame_index[rows], found.image[rows], found.world[rows], found.handedness[rows],
                          found.score[rows], found.width, found.height)
               for rows in ([row[i] for i in idx] for _, _, idx in plan)]
    with stdout_to_stderr():
        probs, has_hand = run.classify_hands(windows)
    if not has_hand.any():
        raise VideoError(f"{path}: no hand was found in any frame, so this landmark run cannot transcribe it; "
                         "check that the signing hand is in the picture")
    starts = [a / info.fps for (a, _, _), h in zip(plan, has_hand) if h]
    ends = [b / info.fps for (_, b, _), h in zip(plan, has_hand) if h]
    # a frame's probabilities: the mean of the windows that hold it (the model sees windows, not frames)
    frame_sum = np.zeros((len(wanted), len(run.labels)))
    frame_n = np.zeros(len(wanted))
    for (_, _, idx), p, h in zip(plan, probs, has_hand):
        if h:
            rows = [row[i] for i in idx]
            frame_sum[rows] += p
            frame_n[rows] += 1
    keep = frame_n > 0
    return {**transcript(run, path, window, stride, threshold, min_windows, starts, ends, probs[has_hand],
                         (np.asarray(wanted)[keep] + 0.5) / info.fps, frame_sum[keep] / frame_n[keep, None]),
            "hands_found": float(found.found.mean())}


def sampled_frames(path: Path, wanted: list[int]):
    """The wanted frames of the video, decoded once in order, with a progress bar."""
    from tqdm import tqdm

    return tqdm(iter_frames(path, wanted), total=len(wanted), unit="frame", desc="transcribe", file=sys.stderr,
                disable=None)


def transcript(run, path: Path, window: float, stride: float, threshold: float, min_windows: int,
               starts, ends, window_probs, frame_times, frame_probs) -> dict:
    """The windows' probabilities -> segments, their edges tightened by the frames' own."""
    segments = tr.segments_from_windows(starts, ends, window_probs, run.labels, threshold=threshold,
                                        min_windows=min_windows)
    segments = tr.tighten_edges(segments, frame_times, frame_probs, run.labels, threshold=threshold)
    return {"video": str(path), "window": window, "stride": stride, "threshold": threshold,
            "segments": segments, "text": tr.transcript_text(segments, run.labels),
            "windows": {"start": starts, "end": ends, "probs": window_probs}}


# -- the command -----------------------------------------------------------------------------

def default_csv(run_dir: Path, video: Path) -> Path:
    return Path(run_dir) / "transcripts" / f"{Path(video).stem}.csv"


def refuse_overwriting(out: Path, inputs: list[Path]) -> None:
    for p in inputs:
        if Path(out).resolve() == Path(p).resolve():
            raise SignwriteError(f"{out}: that is the input video; choose another path for --out/--srt")


def transcribe_command(run, s: PredictSettings) -> int:
    from signwrite import fsutil

    video = s.videos[0]
    out = s.out or default_csv(s.run, video)
    for path in (out, s.srt):
        if path:
            refuse_overwriting(path, s.videos)
    result = transcribe_video(run, video, window=s.window, stride=s.stride, threshold=s.threshold,
                              min_windows=s.min_windows, start=s.start, end=s.end, batch_size=s.batch_size)
    segments = result["segments"]
    settings_file = out.with_suffix(".json") if out.suffix != ".json" else out.with_name(out.name + ".json")
    for path in (out, s.srt, settings_file):  # what a killed predict left half-written
        if path:
            fsutil.remove_stale_temps_of(path)
    fsutil.write_csv(out, tr.segments_frame(segments))
    log.info("%d segments -> %s", len(segments), out)
    if s.srt:
        fsutil.write_text(s.srt, tr.to_srt(segments))
        log.info("subtitles -> %s", s.srt)
    obj = {"run": str(s.run), "video": str(video), "window": result["window"], "stride": result["stride"],
           "threshold": s.threshold, "csv": str(out), "srt": str(s.srt) if s.srt else None,
           "segments": [seg.as_dict() for seg in segments], "text": result["text"]}
    if s.expect is not None:
        ref = tr.split_signs(s.expect, run.labels)
        hyp = [seg.label for seg in segments]
        obj["edit_distance"] = tr.edit_distance(hyp, ref)
        obj["in_order"] = tr.in_order(hyp, ref)
        log.info("against the expected %d signs: edit distance %d, %d in the right order",
                 len(ref), obj["edit_distance"], obj["in_order"])
    fsutil.write_json(settings_file, {**obj, "min_windows": s.min_windows, "sampling": run.sampling})
    if s.json:
        print(json.dumps(obj))
    else:
        for seg in segments:
            log.info("  %8.2f-%8.2f s  %s  (%.2f)", seg.start, seg.end, seg.label, seg.confidence)
        print(result["text"])
    return 0


def classify_command(run, s: PredictSettings) -> int:
    n_classes = len(run.labels)
    if s.top_k > n_classes:
        log.warning("--top-k %d is more than the run's %d classes; showing all %d", s.top_k, n_classes, n_classes)
    results, failed = [], 0
    for video in s.videos:
        try:
            pred = classify_video(run, video, s.start, s.end)
        except SignwriteError as exc:
            failed += 1
            log.error("signwrite predict: error: %s", exc)
            results.append({"video": str(video), "error": str(exc)})
            continue
        log.debug("%s: decode %.3f s, model %.3f s", video, pred.timings["decode_s"], pred.timings["model_s"])
        if not pred.has_hand:
            failed += 1
            why = "no hand found in any sampled frame, so this hand-based run makes no prediction"
            log.error("signwrite predict: %s: %s; check that the signing hand is in the picture", video, why)
            results.append({"video": str(video), "start": round(pred.start, 3), "end": round(pred.end, 3),
                            "frames": pred.n_frames, "error": why})
            continue
        top = run.top_k(pred.probs, s.top_k)
        results.append({"video": str(video), "start": round(pred.start, 3), "end": round(pred.end, 3),
                        "frames": pred.n_frames, "top_k": top})
        if not s.json:
            print(f"{video} ({pred.start:.2f}-{pred.end:.2f} s, {pred.n_frames} frames)")
            for rank, t in enumerate(top, 1):
                print(f"  {rank}. {t['label']}  {t['probability']:.3f}")
    if s.json:
        print(json.dumps({"run": str(s.run), "top_k": s.top_k, "n_classes": n_classes, "videos": results}))
    if failed:
        log.error("%d of %d videos could not be classified", failed, len(s.videos))
    return 1 if failed else 0


def predict(s: PredictSettings) -> int:
    run = open_run(s.run)
    return transcribe_command(run, s) if s.transcribe else classify_command(run, s)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="signwrite predict", description=__doc__.split("\n\n")[0],
        epilog="Frame sampling, preprocessing and aggregation always come from the run folder. "
               "With --json, stdout carries only JSON; logs and progress go to stderr.")
    p.add_argument("--run", type=Path, required=True, help="a run folder written by train (logs/NAME)")
    p.add_argument("videos", type=Path, nargs="+", metavar="VIDEO", help="video file(s) to classify")
    p.add_argument("--start", type=float, help="classify only from this second on")
    p.add_argument("--end", type=float, help="classify only up to this second")
    p.add_argument("--top-k", type=int, default=3, help="how many signs to show (default 3)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    t = p.add_argument_group("transcription (one long video)")
    t.add_argument("--transcribe", action="store_true", help="slide a window over the video and list the signs")
    t.add_argument("--window", type=float, help="window length in seconds (default: the median "
                   f"training clip duration recorded in the run, else {DEFAULT_WINDOW:g})")
    t.add_argument("--stride", type=float, help="seconds between windows (default: window / 4)")
    t.add_argument("--threshold", type=float, default=tr.DEFAULT_THRESHOLD,
                   help="leave out windows whose best sign has a lower probability (default %(default)s)")
    t.add_argument("--min-windows", type=int, default=1,
                   help="drop segments made of fewer windows than this (default 1)")
    t.add_argument("--out", type=Path, help="segments CSV (label,start,end,confidence); default "
                   "RUN/transcripts/<video name>.csv, next to the model that made it. The text and "
                   "the settings used go next to it as .json")
    t.add_argument("--srt", type=Path, help="also write the segments as SubRip subtitles here")
    t.add_argument("--expect", help="the signs the video is known to show (e.g. ABCDEFGHIJKLMNOPQRSTUVWXYZ): "
                   "report the edit distance and how many come out in order")
    p.add_argument("--batch-size", type=int, default=32, help="frames per model call (default 32)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    from signwrite.process import run_stage, setup_logging

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.transcribe and len(args.videos) != 1:
        parser.error("--transcribe takes exactly one video")
    if args.top_k < 1:
        parser.error(f"--top-k must be at least 1 (received {args.top_k})")
    if not 0 <= args.threshold <= 1:
        parser.error(f"--threshold is a probability between 0 and 1 (received {args.threshold})")
    for name in ("window", "stride"):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            parser.error(f"--{name} must be a positive number of seconds (received {getattr(args, name)})")
    setup_logging(args.verbose)
    settings = PredictSettings(
        run=args.run, videos=args.videos, start=args.start, end=args.end, top_k=args.top_k, json=args.json,
        transcribe=args.transcribe, window=args.window, stride=args.stride, threshold=args.threshold,
        min_windows=args.min_windows, out=args.out, srt=args.srt, expect=args.expect, batch_size=args.batch_size)
    return run_stage("predict", predict, settings)


if __name__ == "__main__":
    sys.exit(main())
