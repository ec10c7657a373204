"""Window probabilities -> signs with times: the "transcribing" in signwrite.

Pure logic, no video and no TensorFlow: ``signwrite.predict --transcribe`` slides a window
over a long video (``window_grid`` and ``plan_windows`` say which frames each window
samples), classifies every window, and hands the probabilities to
``segments_from_windows``. Neighbouring windows that agree are merged into one segment;
windows whose best sign is below the threshold are left out (nothing is being signed,
or the window straddles two signs).

Each window stands for the stretch of time around its centre, halfway to the next
window's centre on either side (the first window also covers its start, the last its
end), so segment times are accurate to about half a stride, whatever the window length.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from signwrite.video import sample_indices

DEFAULT_THRESHOLD = 0.5  # the best sign must outweigh all others together
CSV_COLUMNS = ["label", "start", "end", "confidence"]


@dataclass(frozen=True)
class Segment:
    label: str
    start: float  # seconds in the video
    end: float
    confidence: float  # mean top-1 probability of the windows merged into this segment

    def as_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def window_grid(window: float, stride: float, fps: float, sampling: dict, *,
                tune_length: bool = False, tune_stride: bool = False) -> tuple[int, int]:
    """Window length and stride in frames.

    A window samples its frames like a training clip, so two windows share frames only
    when the stride fits the sampling step. Where the user left them to us, the length may
    move by up to 2 frames and the stride shrink by up to a fifth (never grow: timing stays
    as fine as asked) to where windows share the most frames; each frame goes through the
    model once, so that cuts the model's work (2-3x at 50 fps with 16 frames a window).
    """
    base_len, base_step = max(1, round(window * fps)), max(1, round(stride * fps))
    lengths = range(max(1, base_len - 2), base_len + 3) if tune_length else [base_len]
    steps = range(max(1, int(base_step * 0.8)), base_step + 1) if tune_stride else [base_step]

    def frames_per_step(length: int, step: int) -> float:
        offsets = sample_indices(length, fps, **sampling)
        return len({k * step + i for k in range(20) for i in offsets}) / (20 * step)

    return min(((n, k) for n in lengths for k in steps),
               key=lambda nk: (round(frames_per_step(*nk), 6), abs(nk[0] - base_len) + abs(nk[1] - base_step)))


def plan_windows(first: int, stop: int, fps: float, length: int, step: int,
                 sampling: dict) -> list[tuple[int, int, list[int]]]:
    """(start, stop, sampled frame indices) of every window, each sampled like a training clip."""
    if stop - first <= length:
        starts, length = [first], stop - first
    else:
        starts = list(range(first, stop - length + 1, step))
        if starts[-1] < stop - length:  # let the last window reach the end of the span
            starts.append(stop - length)
    return [(a, a + length, [a + i for i in sample_indices(length, fps, **sampling)]) for a in starts]


def window_slots(starts, ends) -> list[tuple[float, float]]:
    """The stretch of time each window stands for: between the midpoints to its neighbours' centres."""
    starts, ends = np.asarray(starts, float), np.asarray(ends, float)
    centres = (starts + ends) / 2
    mids = (centres[1:] + centres[:-1]) / 2
    lo = np.concatenate([starts[:1], mids])
    hi = np.concatenate([mids, ends[-1:]])
    return list(zip(lo.tolist(), hi.tolist()))


def segments_from_windows(starts, ends, probs, labels: list[str], *,
                          threshold: float = DEFAULT_THRESHOLD, min_windows: int = 1) -> list[Segment]:
    """Merge stretches of confident windows that agree on the best sign into segments.

    ``starts``/``ends``: each window's span in seconds, in time order; ``probs``: (n, C)
    class probabilities per window. A window is confident when its best probability is at
    least ``threshold``; a stretch shorter than ``min_windows`` windows is dropped as a blip.
    """
    probs = np.asarray(probs, dtype=float)
    if len(probs) == 0:
        return []
    if probs.ndim != 2 or probs.shape[1] != len(labels) or len(starts) != len(probs) or len(ends) != len(probs):
        raise ValueError(f"probs {probs.shape} do not match {len(starts)} windows x {len(labels)} labels")
    best = probs.argmax(axis=1)
    conf = probs[np.arange(len(probs)), best]
    # -1 marks a window that is not confident; it splits stretches and is never reported.
    cls = np.where(conf >= threshold, best, -1)
    slots = window_slots(starts, ends)
    segments, i = [], 0
    while i < len(cls):
        j = i
        while j + 1 < len(cls) and cls[j + 1] == cls[i]:
            j += 1
        if cls[i] >= 0 and j - i + 1 >= min_windows:
            segments.append(Segment(labels[cls[i]], slots[i][0], slots[j][1], float(conf[i:j + 1].mean())))
        i = j + 1
    return segments


def tighten_edges(segments: list[Segment], times, frame_probs, labels: list[str], *,
                  threshold: float = DEFAULT_THRESHOLD) -> list[Segment]:
    """Pull each segment's edges in to the first and last frames that show its sign by themselves.

    A window half over a rest and half over a sign is often confident about the sign (the
    rest frames are unsure, the sign frames sure), so window times overshoot into rests by
    up to half a window. Frame probabilities (``times``: each classified frame's time,
    ascending; ``frame_probs``: (n, C)) say where the sign really starts and ends. Edges
    only move inwards, so segments never overlap; a segment no frame confirms is kept as is.
    """
    times = np.asarray(times, float)
    frame_probs = np.asarray(frame_probs, float)
    if len(times) == 0:
        return list(segments)
    best = frame_probs.argmax(axis=1)
    sure = frame_probs[np.arange(len(times)), best] >= threshold
    out = []
    for seg in segments:
        k = labels.index(seg.label)
        inside = np.flatnonzero((times >= seg.start) & (times < seg.end))
        hits = inside[(best[inside] == k) & sure[inside]]
        if len(hits) == 0:
            out.append(seg)
            continue
        first, last = hits[0], hits[-1]
        # the edge lies between a confirming frame and its unconfirming neighbour: take the midpoint
        start = (times[first - 1] + times[first]) / 2 if first > inside[0] else seg.start
        end = (times[last] + times[last + 1]) / 2 if last < inside[-1] else seg.end
        out.append(Segment(seg.label, max(seg.start, float(start)), min(seg.end, float(end)), seg.confidence))
    return out


def join_signs(signs: list[str], vocabulary: list[str] | None = None) -> str:
    """The signs in order as text: letters (every label one character) make a word."""
    letters = all(len(s) == 1 for s in (vocabulary if vocabulary is not None else signs))
    return ("" if letters else " ").join(signs)


def transcript_text(segments: list[Segment], vocabulary: list[str] | None = None) -> str:
    return join_signs([s.label for s in segments], vocabulary)


def edit_distance(hypothesis, reference) -> int:
    """Levenshtein distance between two sequences (strings compare letter by letter)."""
    hyp, ref = list(hypothesis), list(reference)
    prev = list(range(len(ref) + 1))
    for i, h in enumerate(hyp, 1):
        cur = [i]
        for j, r in enumerate(ref, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (h != r)))
        prev = cur
    return prev[-1]


def in_order(hypothesis, reference) -> int:
    """How many signs of ``reference`` come out in the right order (longest common subsequence)."""
    hyp, ref = list(hypothesis), list(reference)
    prev = [0] * (len(ref) + 1)
    for h in hyp:
        cur = [0]
        for j, r in enumerate(ref, 1):
            cur.append(prev[j - 1] + 1 if h == r else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def split_signs(text: str, vocabulary: list[str]) -> list[str]:
    """Undo ``join_signs``: a word of letters becomes its letters, otherwise split on spaces."""
    if all(len(v) == 1 for v in vocabulary):
        return [c for c in text if not c.isspace()]
    return text.split()


def srt_time(seconds: float) -> str:
    ms = max(0, int(round(seconds * 1000)))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def to_srt(segments: list[Segment]) -> str:
    """Subtitles showing each sign while it is signed (SubRip: index, times, text, blank line)."""
    cues = [f"{n}\n{srt_time(s.start)} --> {srt_time(s.end)}\n{s.label}\n"
            for n, s in enumerate(segments, 1)]
    return "\n".join(cues)


def segments_frame(segments: list[Segment]):
    import pandas as pd

    return pd.DataFrame([s.as_dict() for s in segments], columns=CSV_COLUMNS)
