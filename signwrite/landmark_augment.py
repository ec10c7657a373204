"""Augmentation of hand landmarks: a plausible other take of the same sign (augment), in numpy.

signwrite.landmark_model.fit draws a fresh one of every training clip each epoch.
"""

from __future__ import annotations

import numpy as np

from signwrite.landmark_features import FINGERS, N_POINTS, WRIST, palm_size

# Augmentation strengths (augment). Jitter and finger noise are in palm sizes.
ROTATE_DEG = 15.0  # in-plane camera tilt
TILT_DEG = 10.0  # the hand turned a little out of the image plane (yaw, pitch)
SCALE = 1.25  # overall size, 1/SCALE..SCALE (normalisation removes it; motion stays relative to it)
ASPECT = 1.1  # x against y stretch, 1/ASPECT..ASPECT
SHEAR = 0.1
DEPTH = 1.25  # MediaPipe's z is a rough estimate: scaled 1/DEPTH..DEPTH
JITTER = 0.02  # per point per frame
HAND_NOISE = 0.05  # per point, the same in all of a clip's frames: another hand's proportions
SPEED = 0.25  # signing speed 1-SPEED..1+SPEED
FINGER_P, FINGER_NOISE = 0.2, 0.1  # a clip with one badly tracked finger, and how badly
FRAME_DROP = 0.1  # frames where the hand detector missed


# -- augmentation ----------------------------------------------------------------------------

def augment(points, mask, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A plausible other take of the same sign, on raw points (before normalisation).

    (T, 21, 3) pixels and (T,) mask, or a batch (N, T, ...): each clip gets its own draw.
    Per clip: signing speed +-25% (resampled along time by linear interpolation, T kept:
    a faster sign holds its ends, a slower one loses them); a small 3D tilt of the hand
    (+-10 deg), in-plane rotation (+-15 deg), scale, x/y aspect and shear about the clip's
    mean wrist, z scaled (MediaPipe's depth is rough), and every point moved by its own
    offset of ~5% of the palm size, the same in all frames (another hand's proportions:
    without it a model learns each training clip's small quirks of shape by heart). Per
    frame: gaussian jitter of 2% of the palm size, and 10% of frames dropped (masked, as a
    missed detection; a clip keeps at least one).

    A badly tracked finger: in 20% of clips one finger's three outer points get noise of
    0.1 palm sizes in every frame. Not collapsing the finger onto its base: a folded
    finger is another letter (V would become D), so that would teach wrong labels.

    Never a left-right mirror: every transform has a positive determinant, so the hand's
    chirality (the sign of its palm normal) is kept; a mirrored right hand is a left hand,
    and signing_hand already maps left hands onto right ones.
    """
    p = np.array(points, np.float32)
    m = np.array(mask, bool)
    batch_shape, t = m.shape[:-1], m.shape[-1]
    p, m = p.reshape(-1, t, N_POINTS, 3), m.reshape(-1, t)
    n = len(m)
    weights = m / np.maximum(m.sum(1, keepdims=True), 1)
    size = (palm_size(p) * weights).sum(1)  # (N,)
    p, m = _resample_time(p, m, rng)

    centre = (p[:, :, WRIST] * weights[..., None]).sum(1)[:, None, None, :]  # (N, 1, 1, 3)
    matrix = _transforms(n, rng)
    p = np.einsum("ntpj,nij->ntpi", p - centre, matrix) + centre

    p += rng.normal(size=p.shape).astype(np.float32) * (JITTER * size)[:, None, None, None]
    p += rng.normal(size=(n, 1, N_POINTS, 3)).astype(np.float32) * (HAND_NOISE * size)[:, None, None, None]
    finger = rng.integers(len(FINGERS), size=n)
    outer = np.array([chain[1:] for chain in FINGERS.values()])[finger]  # (N, 3) point indices
    hit = rng.random(n) < FINGER_P
    for clip in np.flatnonzero(hit):
        p[clip][:, outer[clip]] += rng.normal(size=(t, 3, 3)) * FINGER_NOISE * size[clip]

    dropped = m & (rng.random(m.shape) >= FRAME_DROP)
    m = np.where(dropped.any(1, keepdims=True), dropped, m)
    p = np.where(m[..., None, None], p, 0)
    return p.reshape(*batch_shape, t, N_POINTS, 3).astype(np.float32), m.reshape(*batch_shape, t)


def _resample_time(p, m, rng):
    """Each clip played at a random speed over its present span; T kept."""
    n, t = m.shape
    idx = np.arange(t, dtype=np.float64)
    any_hand = m.any(1)
    first = np.where(any_hand, m.argmax(1), 0).astype(np.float64)[:, None]
    last = np.where(any_hand, t - 1 - m[:, ::-1].argmax(1), -1).astype(np.float64)[:, None]
    speed = rng.uniform(1 - SPEED, 1 + SPEED, size=(n, 1))
    centre = (first + last) / 2 + rng.uniform(-0.1, 0.1, size=(n, 1)) * (last - first)
    u = np.clip(centre + (idx - centre) * speed, first, np.maximum(last, first))
    lo = np.floor(u).astype(int)
    hi = np.minimum(lo + 1, t - 1)
    w = (u - lo)[..., None, None].astype(np.float32)
    rows = np.arange(n)[:, None]
    m_lo, m_hi = m[rows, lo], m[rows, hi]
    near = np.where(w[..., 0, 0] < 0.5, lo, hi)
    both = m_lo & m_hi
    mixed = p[rows, lo] * (1 - w) + p[rows, hi] * w
    out = np.where(both[..., None, None], mixed, p[rows, near])
    in_span = (idx >= first) & (idx <= last)
    out_mask = in_span & (both | m[rows, near])
    return np.where(out_mask[..., None, None], out, 0).astype(np.float32), out_mask


def _transforms(n, rng):
    """(N, 3, 3) proper (determinant > 0) transforms: tilt, then scale/aspect/depth, shear, rotation."""
    def rot(angle, i, j):
        r = np.tile(np.eye(3), (n, 1, 1))
        c, s = np.cos(angle), np.sin(angle)
        r[:, i, i], r[:, i, j], r[:, j, i], r[:, j, j] = c, -s, s, c
        return r

    deg = np.pi / 180
    yaw = rot(rng.uniform(-TILT_DEG, TILT_DEG, n) * deg, 0, 2)
    pitch = rot(rng.uniform(-TILT_DEG, TILT_DEG, n) * deg, 1, 2)
    scale, aspect = np.exp(rng.uniform(-1, 1, (2, n)) * np.log([[SCALE], [ASPECT]]))
    depth = np.exp(rng.uniform(-1, 1, n) * np.log(DEPTH))
    stretch = np.zeros((n, 3, 3))
    stretch[:, 0, 0], stretch[:, 1, 1], stretch[:, 2, 2] = scale * aspect, scale / aspect, scale * depth
    shear = np.tile(np.eye(3), (n, 1, 1))
    shear[:, 0, 1] = rng.uniform(-SHEAR, SHEAR, n)
    turn = rot(rng.uniform(-ROTATE_DEG, ROTATE_DEG, n) * deg, 0, 1)
    return (turn @ shear @ stretch @ pitch @ yaw).astype(np.float32)
