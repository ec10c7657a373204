"""The alignment behind ``signwrite annotate``: a video's signals -> one span per sign, in order.

Pure numpy, no video and no model, so every piece can be tested on hand-made arrays.

    cores = align_segments(score, n, min_len)          # exactly n segments, in order (dynamic programming)
    holds = find_holds(x, n, min_len, change)          # --by motion: the n spans where the hand is held
    spans = sign_spans(holds.cores, present, change)   # each hold grown over its hand's coming and going

The count is what makes it an alignment, not a threshold: the timeline is cut into exactly
as many segments as the list has signs, each at least ``min_len`` samples long, so a sign
that pauses twice is one segment when that is the better fit for the whole video, and two
signs that run together are split where the picture changes most.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NEG = -1e18  # log-space minus infinity that stays finite under addition

# --by motion. x per sample: 0 no hand, MOVING a hand moving fast, 1 a hand held still
MOVING = 0.3  # a moving hand is more a sign than no hand (signs made with motion)...
NEUTRAL = 0.05  # ...and about as much a sign as a gap: x - (MOVING + NEUTRAL) is what a sample adds
SPEED_SCALE = 1.0  # palm sizes a second that make a hand half still (fingerspelling holds: ~0.1-0.3)
EDGE_WEIGHT = 1.0  # a cut between signs at the sharpest change earns EDGE_WEIGHT * (1 - CUT_COST)...
CUT_COST = 0.5  # ...and one where the picture does not change costs EDGE_WEIGHT * CUT_COST
SPIKE_FULL = 0.6  # a change this sharp at a cut leaves no doubt about it
FG_LEVEL, FG_EMPTY, FG_FULL = 30.0, 0.001, 0.004  # grey levels; shares of the picture: empty, surely something

# --by model
PRESENCE_WEIGHT = 2.0  # log-odds against "nothing is signed" where a hand is in the picture

DOUBTFUL = 0.5  # spans below this confidence are marked for review


# --------------------------------------------------------------------------- the dynamic programme

def align_segments(score, n: int, min_len: int, boundary=None) -> list[tuple[int, int]]:
    """Exactly ``n`` segments [a, b) of samples, in order, not overlapping, each >= ``min_len``
    long, maximising the sum of ``score`` inside them plus ``boundary`` at the cut between
    each two neighbours.

    ``score``: (T,) shared by every segment, or (T, n), column k for segment k (a forced
    alignment of a known sequence); samples outside every segment score 0, so a score is
    "how much better this sample fits segment k than a gap". ``boundary[t]``: the reward for
    cutting between samples t - 1 and t, once between each two neighbouring segments,
    anywhere from the end of the one to the start of the next (they may touch).
    """
    score = np.asarray(score, float)
    t_len = len(score)
    score = np.broadcast_to(score[:, None], (t_len, n)) if score.ndim == 1 else score
    if score.shape != (t_len, n) or n < 1:
        raise ValueError(f"score of shape {score.shape} does not fit {n} segments")
    L = max(1, int(min_len))
    if n * L > t_len:
        raise ValueError(f"{n} segments of at least {L} samples do not fit in {t_len} samples")
    cut = np.zeros(t_len) if boundary is None else np.asarray(boundary, float)

    # before[k]: in the gap before segment k, not yet cut from segment k - 1 (k = 0: the
    # lead-in; k = n: after the last); after[k]: in that gap, cut made; core[k, j]: j + 1
    # samples into segment k (j = L - 1: L or more). Flags record how each was entered at t.
    before, after = np.full(n + 1, NEG), np.full(n + 1, NEG)
    core = np.full((n, L), NEG)
    before[0] = 0.0
    core[0, 0] = score[0, 0]
    to_before = np.zeros((t_len, n + 1), bool)  # from the end of segment k - 1 (else: stayed)
    to_after = np.zeros((t_len, n + 1), np.int8)  # 0 stayed, 1 cut from before[k], 2 cut right after the segment
    to_start = np.zeros((t_len, n), np.int8)  # 0 from after[k], 1 cut from before[k], 2 straight from segment k - 1
    stayed = np.zeros((t_len, n), bool)
    for t in range(1, t_len):
        done = np.full(n + 1, NEG)
        done[1:] = core[:, L - 1]  # segment k - 1 ended at t - 1
        new_before = np.maximum(before, done)
        to_before[t] = done > before
        options = np.stack([after, before + cut[t], done + cut[t]])
        options[:, 0] = options[:, n] = NEG  # no cut before the first segment or after the last
        to_after[t] = options.argmax(0)
        new_after = options.max(0)
        starts = np.stack([after[:n], before[:n] + cut[t], done[:n] + cut[t]])
        starts[0, 0], starts[1, 0] = NEG, before[0]  # the first segment needs no cut
        to_start[t] = starts.argmax(0)
        start = starts.max(0)
        new_core = np.empty_like(core)
        if L > 1:
            new_core[:, 0] = start
            new_core[:, 1:L - 1] = core[:, :L - 2]
            stayed[t] = core[:, L - 1] >= core[:, L - 2]
            new_core[:, L - 1] = np.maximum(core[:, L - 1], core[:, L - 2])
        else:
            stayed[t] = core[:, 0] >= start
            new_core[:, 0] = np.maximum(core[:, 0], start)
        new_core += score[t][:, None]
        before, after, core = new_before, new_after, new_core

    # walk back from the better way to end: after the last segment, or inside it
    starts_at, ends_at = [0] * n, [t_len] * n
    state = ("before", n) if before[n] >= core[n - 1, L - 1] else ("core", n - 1, L - 1)
    for t in range(t_len - 1, 0, -1):
        kind, k = state[0], state[1]
        if kind == "before":
            if k > 0 and to_before[t, k]:
                ends_at[k - 1] = t
                state = ("core", k - 1, L - 1)
            continue
        if kind == "after":
            how = to_after[t, k]
            if how == 1:
                state = ("before", k)
            elif how == 2:
                ends_at[k - 1] = t
                state = ("core", k - 1, L - 1)
            continue
        j = state[2]
        if j == L - 1 and stayed[t, k]:
            continue
        if j > 0:
            state = ("core", k, j - 1)
            continue
        starts_at[k] = t
        how = to_start[t, k]
        if how == 2:
            ends_at[k - 1] = t
            state = ("core", k - 1, L - 1)
        else:
            state = ("after", k) if how == 0 else ("before", k)
    if state[0] == "core":
        starts_at[state[1]] = 0
    return list(zip(starts_at, ends_at))


# --------------------------------------------------------------------------- --by motion

@dataclass
class Holds:
    cores: list[tuple[int, int]]  # [a, b) sample spans, one per sign
    theta: float  # the level of x that separates a held sign from the rest
    level: float  # mean x inside the holds
    floor: float  # mean x outside them


def find_holds(x, n: int, min_len: int, change=None, *, edge_weight: float = EDGE_WEIGHT) -> Holds:
    """The ``n`` spans where a hand is held, in order. x per sample: 1 a hand held still,
    MOVING a hand moving fast, 0 no hand. A held sample pulls a sign in, an empty one
    pushes it out, a moving one is about neutral: a sign made with motion, or the hand
    travelling between two held signs, goes to whichever side makes the whole video fit
    best. ``change`` (0..1 per sample, the change from the sample before) rewards a cut
    between signs where the picture changes and charges one where it does not."""
    x = np.asarray(x, float)
    change = np.zeros(len(x)) if change is None else np.asarray(change, float)
    theta = MOVING + NEUTRAL
    cores = align_segments(x - theta, n, min_len, edge_weight * (change - CUT_COST))
    inside = span_mask(cores, len(x))
    level = float(x[inside].mean())
    floor = float(x[~inside].mean()) if (~inside).any() else 0.0
    return Holds(cores, theta, level, floor)


def span_mask(spans, length: int) -> np.ndarray:
    mask = np.zeros(length, bool)
    for a, b in spans:
        mask[a:b] = True
    return mask


def boundaries(cores, change) -> list[int]:
    """Between each two neighbouring cores, the sample where the picture changes most
    (a boundary B lies between samples B - 1 and B)."""
    change = np.asarray(change, float)
    out = []
    for (_, b), (a, _) in zip(cores[:-1], cores[1:]):
        out.append(b + int(np.argmax(change[b:a + 1])) if a > b else a)
    return out


def sign_spans(cores, present, change, max_extend: int) -> list[tuple[int, int]]:
    """Each core grown outwards over neighbouring samples that show a hand (forming the sign,
    or leaving it), up to ``max_extend`` samples a side and never past the boundary with
    the next sign (``boundaries``)."""
    present = np.asarray(present, bool)
    bounds = boundaries(cores, change)
    lefts = [0] + bounds
    rights = bounds + [len(present)]
    spans = []
    for (a, b), lo, hi in zip(cores, lefts, rights):
        lo, hi = max(lo, a - max_extend), min(hi, b + max_extend)
        while a > lo and present[a - 1]:
            a -= 1
        while b < hi and present[b]:
            b += 1
        spans.append((a, b))
    return spans


def hold_confidence(holds: Holds, x, change) -> list[float]:
    """Per sign, 0..1: the weaker of how much its core holds (its mean x against a moving
    hand's) and how clearly it is cut from each neighbour: a gap that dips towards no hand
    (relative to the two signs' own levels), or a sharp change in the picture at the cut.
    Two signs cut apart in the middle of one steady hold score 0: that cut is a guess."""
    x, change = np.asarray(x, float), np.asarray(change, float)
    means = [float(x[a:b].mean()) for a, b in holds.cores]
    inner = [float(np.clip(m / MOVING, 0, 1)) for m in means]
    cuts = []
    for k, ((_, b), (a, _)) in enumerate(zip(holds.cores[:-1], holds.cores[1:])):
        level = max(min(means[k], means[k + 1]), 1e-6)
        dip = float(np.clip((level - x[b:a].min()) / level, 0, 1)) if a > b else 0.0
        cuts.append(max(dip, float(np.clip(change[b:a + 1].max() / SPIKE_FULL, 0, 1))))
    left, right = [1.0] + cuts, cuts + [1.0]
    return [min(i, lft, rgt) for i, lft, rgt in zip(inner, left, right)]


# --------------------------------------------------------------------------- signals

def hold_signal(present, stillness) -> np.ndarray:
    """x per sample: 0 with no hand, MOVING for a hand moving fast, 1 for a hand held still."""
    return np.asarray(present, float) * (MOVING + (1 - MOVING) * np.asarray(stillness, float))


def stillness_from_speed(speed, scale: float = SPEED_SCALE) -> np.ndarray:
    """1 for no motion, 0.5 at ``scale``, towards 0 for fast motion; NaN stays NaN."""
    return 1 / (1 + (np.asarray(speed, float) / scale) ** 2)


def landmark_speed(points, present, times) -> np.ndarray:
    """Mean landmark displacement from the sample before, in palm sizes a second; NaN where
    the hand is missing in either sample. ``points``: (T, 21, 2+) pixels of the signing hand."""
    p = np.asarray(points, float)[..., :2]
    present = np.asarray(present, bool)
    speed = np.full(len(p), np.nan)
    if len(p) < 2:
        return speed
    palm = np.linalg.norm(p[:, [5, 9, 17]] - p[:, :1], axis=-1).mean(-1)
    both = present[1:] & present[:-1]
    dt = np.maximum(np.diff(np.asarray(times, float)), 1e-6)
    with np.errstate(invalid="ignore", divide="ignore"):
        moved = np.linalg.norm(p[1:] - p[:-1], axis=-1).mean(-1)
        size = np.maximum((palm[1:] + palm[:-1]) / 2, 1e-6)
        speed[1:] = np.where(both, moved / size / dt, np.nan)
    return speed


def frame_change(diff) -> tuple[np.ndarray, np.ndarray]:
    """From the mean absolute difference between neighbouring samples (grey levels): the
    stillness of the picture (1 still, 0.5 at a typical motion), and the change: 0..1, how
    far the difference stands out from the samples either side. A cut, a hand appearing or
    a new hand shape is a one-sample spike; a hand sweeping across changes as much from
    sample to sample, but it does so for several samples, and is no change of sign."""
    d = np.asarray(diff, float)
    floor = float(np.quantile(d, 0.1))
    moving = np.maximum(d - floor, 0)
    scale = max(1.0, float(np.median(moving)))
    around = np.maximum(np.r_[moving[1:2], moving[:-1]], np.r_[moving[1:], moving[-2:-1]]) if len(d) > 1 else moving
    spike = np.maximum(moving - around, 0)
    top = max(float(np.quantile(spike, 0.99)), 4 * scale)
    return 1 / (1 + (moving / scale) ** 2), np.clip(spike / top, 0, 1)


def smooth_presence(found, change) -> np.ndarray:
    """A hand missed in one sample between two that show it, with the picture unchanged
    around it, is still there (the detector blinked)."""
    f = np.asarray(found, bool).copy()
    calm = np.asarray(change, float) < 0.2
    if len(f) > 2:
        f[1:-1] |= f[:-2] & f[2:] & calm[1:-1] & calm[2:]
    return f


def foreground(small_frames, diff, candidates) -> np.ndarray | None:
    """Where no hand is found: 0..1 per sample, whether something is in the picture at all
    (a fingertip at the edge, a hand the detector misses, a made-up sign in the demo), by
    the difference from the empty scene: the median of the stillest samples among
    ``candidates`` (those without a hand). None when the scene is never empty (a signer
    always in the picture): then this tells nothing. ``small_frames``: (T, h, w, 3) uint8."""
    import cv2

    candidates = np.asarray(candidates, bool)
    diff = np.asarray(diff, float)
    if candidates.sum() < 5:
        return None
    still = np.flatnonzero(candidates & (diff <= np.median(diff[candidates])))
    still = still[np.linspace(0, len(still) - 1, min(len(still), 200)).round().astype(int)]  # bounded memory
    empty = np.median(np.stack([np.asarray(small_frames[i], np.float32) for i in still]), axis=0)
    kernel = np.ones((3, 3), np.uint8)
    share = np.array([cv2.erode((np.abs(np.asarray(f, np.float32) - empty).max(axis=-1) > FG_LEVEL)
                                .astype(np.uint8), kernel).mean() for f in small_frames])
    if (share[candidates] < FG_EMPTY).mean() < 0.1 or (share < FG_EMPTY).mean() < 0.05:
        return None
    return np.clip(share / FG_FULL, 0, 1)


# --------------------------------------------------------------------------- --by model

def forced_alignment(probs, columns: list[int], min_len: int, present=None) -> list[tuple[int, int]]:
    """A run's per-sample class probabilities (T, C) and the known order (``columns``: the
    class of each sign) -> one span per sign, left to right: Viterbi over sign_1..sign_N
    with a background state between them.

    A sample fits sign k by its scaled likelihood, p(k) over the mean of p(k) across the
    video (as hybrid HMM/neural-network recognisers do): a sign the run under-calls (J
    taken for I in still photos) still claims the stretch where it is likelier than
    elsewhere. The background is "nothing": 1 - the best class, and, given ``present``
    (a hand, or something, in the picture), unlikely where something is there."""
    p = np.clip(np.asarray(probs, float), 1e-4, 1.0)
    prior = p[:, columns].mean(axis=0)
    nothing = 1 - np.asarray(probs, float).max(axis=1)
    if present is not None:  # where nothing is in the picture, nothing is signed, whatever the run says
        nothing = np.where(np.asarray(present, bool), nothing, 1.0)
    score = np.log(p[:, columns]) - np.log(prior)[None, :] - np.log(np.clip(nothing, 1e-4, 1.0))[:, None]
    if present is not None:
        score += np.where(np.asarray(present, bool), PRESENCE_WEIGHT, -PRESENCE_WEIGHT)[:, None]
    return align_segments(score, len(columns), min_len)


def span_probability(probs, spans, columns: list[int]) -> list[float]:
    """The mean probability of each sign over its span: the --by model confidence."""
    p = np.asarray(probs, float)
    return [float(p[a:b, c].mean()) if b > a else 0.0 for (a, b), c in zip(spans, columns)]
