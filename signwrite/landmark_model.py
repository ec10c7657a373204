"""A small Keras model on MediaPipe hand landmarks: signs from a hand's shape, orientation and motion.

Pixels tell a signer's skin, clothes and room as much as the sign; 21 hand points tell the
sign, so a model on them can recognise a person it never saw (as the Kaggle ASL winners
found, working from normalised landmarks). One clip goes

    image landmarks (T, 2, 21, 3) --signing_hand--> points (T, 21, 3) pixels, a left hand
    mirrored --frame_features--> (T, F) --pad--> the model: per-frame MLP, masked mean
    over frames [+ Conv1D over the hand's path, masked mean], softmax

``points`` are aspect-correct pixels (x*width, y*height, z*width; y down). A frame without
the hand has mask False: its features are zeros and the model never sees them (every
pooling and every temporal step is masked), so padding a clip changes nothing.

Plain numpy here; Keras is imported only by the functions that build, train or run a
model. Every layer is a built-in one, so a saved model loads with ``safe_mode=True``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from signwrite.errors import SignwriteError

log = logging.getLogger(__name__)

N_POINTS = 21
WRIST, MIDDLE_MCP = 0, 9
PALM = (5, 9, 17)  # index, middle and pinky MCP: palm size is their mean distance from the wrist
FINGERS = {"thumb": (1, 2, 3, 4), "index": (5, 6, 7, 8), "middle": (9, 10, 11, 12),
           "ring": (13, 14, 15, 16), "pinky": (17, 18, 19, 20)}
TIPS = (4, 8, 12, 16, 20)
# (previous, joint, next): the bend at each finger joint (thumb CMC, MCP, IP; the others' MCP, PIP, DIP)
JOINTS = tuple((a, b, c) for chain in FINGERS.values() for a, b, c in zip((WRIST,) + chain[:2], chain[:3], chain[1:]))
PAIRS = {"all": [(i, j) for i in range(N_POINTS) for j in range(i + 1, N_POINTS)]}
PAIRS["tips"] = [(i, j) for i, j in PAIRS["all"] if i in TIPS or j in TIPS]
PAIRS["none"] = []
DISTANCES = tuple(PAIRS)
KINDS = ("pool", "temporal")
EPS = 1e-6

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


# -- the signing hand ------------------------------------------------------------------------

def signing_hand(image, handedness, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """A clip's signing hand: (points (T, 21, 3) float32 pixels, mask (T,) bool).

    The signing hand is the slot found in more frames (ties: slot 0, the Right-labelled
    one). If MediaPipe calls it Left in most of its frames, x is negated: a left hand
    mirrored is a right hand, so a left-handed signer matches a right-handed training
    set (and her motion is mirrored with it). Coordinates are x*width, y*height, z*width,
    so angles and distances are true to the picture. Points are 0 where mask is False.

    Live, call it on the rolling window of frames: the window is the clip.
    """
    image = np.asarray(image, np.float32)
    handedness = np.asarray(handedness)
    if image.ndim != 4 or image.shape[1:] != (2, N_POINTS, 3) or handedness.shape != image.shape[:2]:
        raise SignwriteError(f"expected image landmarks (T, 2, {N_POINTS}, 3) and handedness (T, 2); "
                             f"received shapes {image.shape} and {handedness.shape}")
    present = np.isfinite(image).all(axis=(2, 3))
    slot = int(present[:, 1].sum() > present[:, 0].sum())
    mask = present[:, slot]
    labels = handedness[mask, slot]
    left = (labels == 0).sum() > (labels == 1).sum()
    points = image[:, slot] * np.array([width, height, width], np.float32)
    if left:
        points[..., 0] *= -1
    points[~mask] = 0
    return points.astype(np.float32), mask


def read_hand(path) -> tuple[np.ndarray, np.ndarray]:
    """signing_hand of the .npz extract-frames --hands wrote for a clip."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return signing_hand(z["image"], z["handedness"], int(z["width"]), int(z["height"]))
    except (OSError, KeyError, ValueError) as exc:
        raise SignwriteError(f"{path}: not a hand landmarks file ({type(exc).__name__}: {exc}); run "
                             "`signwrite extract-frames --hands` again for its clip") from None


# -- normalisation ---------------------------------------------------------------------------

def palm_size(points) -> np.ndarray:
    """(..., 21, 3) -> (...): mean distance from the wrist to the index, middle and pinky MCP."""
    p = np.asarray(points, np.float32)
    return np.linalg.norm(p[..., PALM, :] - p[..., :1, :], axis=-1).mean(-1)


def inplane_angle(points) -> np.ndarray:
    """(..., 21, 3) -> (...): the image-plane angle of wrist -> middle MCP, 0 when it points
    up, positive turning towards +x (clockwise on screen), in (-pi, pi]."""
    v = np.asarray(points, np.float32)[..., MIDDLE_MCP, :2] - np.asarray(points, np.float32)[..., WRIST, :2]
    return np.arctan2(v[..., 0], -v[..., 1])


def normalise(points) -> np.ndarray:
    """The hand's shape, free of where it is, how big and how turned in the picture.

    (..., 21, 3) pixels -> (..., 21, 3): wrist at the origin, palm size 1 (mean distance
    wrist -> index, middle, pinky MCP, in 3D so a hand pointing at the camera does not
    shrink), turned in the image plane so wrist -> middle MCP points straight up (-y).

    Why turn it, and why only in the plane: ASL has letters that differ only by how the
    hand is held (H and U, K and P, G and Q), so orientation cannot be thrown away, but
    the hand's shape should read the same however it is held. So shape features come from
    these points, and the orientation is kept apart, explicitly (``orientation``: the
    in-plane angle this undoes and the palm's normal); the model sees both and learns
    which letters need which. z is only scaled, never turned: MediaPipe's depth is rough.
    A degenerate hand (palm size ~0, e.g. an absent frame's zeros) gives zeros.
    """
    p = np.asarray(points, np.float32)
    rel = p - p[..., :1, :]
    size = palm_size(p)
    inv = np.where(size > EPS, 1 / np.maximum(size, EPS), 0)[..., None]
    theta = inplane_angle(p)[..., None]
    c, s = np.cos(theta), np.sin(theta)
    x, y, z = rel[..., 0], rel[..., 1], rel[..., 2]
    # the rotation by -theta: takes (sin t, -cos t), the wrist -> MCP direction, to (0, -1)
    return (np.stack([c * x + s * y, -s * x + c * y, z], -1) * inv[..., None]).astype(np.float32)


def palm_normal(shape) -> np.ndarray:
    """(..., 21, 3) normalised points -> (..., 3): unit normal of the palm (index MCP x pinky
    MCP, from the wrist). Its sign is the hand's chirality: a mirror flips it."""
    n = np.cross(shape[..., 5, :], shape[..., 17, :])
    length = np.linalg.norm(n, axis=-1, keepdims=True)
    return np.where(length > EPS, n / np.maximum(length, EPS), 0).astype(np.float32)


def orientation(points) -> np.ndarray:
    """(..., 21, 3) pixels -> (..., 5): sin and cos of the in-plane angle, and the palm
    normal of the turned-upright hand (so palm-to-camera vs side-on, apart from the angle)."""
    theta = inplane_angle(points)
    return np.concatenate([np.sin(theta)[..., None], np.cos(theta)[..., None], palm_normal(normalise(points))],
                          -1).astype(np.float32)


# -- features --------------------------------------------------------------------------------

@dataclass(frozen=True)
class FeatureSpec:
    """Which per-frame features the model sees (saved in a run's config.json via to_dict).

    Normalised coordinates (60: the 20 non-wrist points, x y z) are always in.
    """

    distances: str = "tips"  # none | tips: each fingertip to every point (90) | all: every pair (210)
    angles: bool = True  # the bend at each of the 15 finger joints, 0 straight .. 1 folded back
    orientation: bool = True  # sin, cos of the in-plane angle and the palm normal (5)
    motion: bool = True  # the hand's path, per frame (6): the wrist's speed and velocity in the picture
    # (in palm sizes), and the change of the log palm size (towards the camera) and of sin, cos of the angle
    shape_motion: bool = True  # the change of the 60 normalised coordinates: fingers moving in the hand

    def __post_init__(self):
        if self.distances not in DISTANCES:
            raise SignwriteError(f"FeatureSpec.distances must be one of {', '.join(DISTANCES)}. "
                                 f"Received: distances={self.distances!r}")
        for name in ("angles", "orientation", "motion", "shape_motion"):
            if not isinstance(getattr(self, name), bool):
                raise SignwriteError(f"FeatureSpec.{name} must be true or false. "
                                     f"Received: {name}={getattr(self, name)!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureSpec":
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise SignwriteError(f"feature spec: unknown key(s) {', '.join(unknown)}; this run was made by "
                                 f"another signwrite version. Received: {d!r}")
        return cls(**d)

    def groups(self) -> dict[str, slice]:
        """Where each feature group sits in a frame's feature vector."""
        sizes = {"coords": (N_POINTS - 1) * 3, "distances": len(PAIRS[self.distances]),
                 "angles": len(JOINTS) if self.angles else 0, "orientation": 5 if self.orientation else 0,
                 "motion": 6 if self.motion else 0, "shape_motion": (N_POINTS - 1) * 3 if self.shape_motion else 0}
        out, start = {}, 0
        for name, n in sizes.items():
            if n:
                out[name] = slice(start, start + n)
                start += n
        return out

    @property
    def n_features(self) -> int:
        return max(s.stop for s in self.groups().values())


def velocity(x, mask) -> np.ndarray:
    """(..., T, K) values, (..., T) mask -> (..., T, K) change per frame: the mean of the
    steps to the previous and next frames, where those are present (never across a
    missing frame); 0 for a frame with neither."""
    x, m = np.asarray(x, np.float32), np.asarray(mask, bool)
    step = x[..., 1:, :] - x[..., :-1, :]
    ok = (m[..., 1:] & m[..., :-1])[..., None].astype(np.float32)
    pad = np.zeros_like(step[..., :1, :])
    pad_ok = np.zeros_like(ok[..., :1, :])
    forward, forward_ok = np.concatenate([step * ok, pad], -2), np.concatenate([ok, pad_ok], -2)
    backward, backward_ok = np.concatenate([pad, step * ok], -2), np.concatenate([pad_ok, ok], -2)
    return (forward + backward) / np.maximum(forward_ok + backward_ok, 1)


def frame_features(points, mask, spec: FeatureSpec | None = None) -> np.ndarray:
    """(T, 21, 3) pixels and (T,) mask -> (T, spec.n_features) float32 (also batched: (N, T, ...)).

    Frames with mask False are all zeros, and no velocity reaches across them.
    """
    spec = spec or FeatureSpec()
    m = np.asarray(mask, bool)
    p = np.asarray(points, np.float32)
    if p.shape[-2:] != (N_POINTS, 3) or p.shape[:-2] != m.shape or m.ndim < 1:
        raise SignwriteError(f"expected points (T, {N_POINTS}, 3) and mask (T,); received shapes "
                             f"{p.shape} and {m.shape}")
    p = np.where(m[..., None, None], np.nan_to_num(p), 0).astype(np.float32)
    shape = normalise(p)
    coords = shape[..., 1:, :].reshape(*m.shape, -1)
    parts = [coords]
    if spec.distances != "none":
        i, j = np.array(PAIRS[spec.distances]).T
        parts.append(np.linalg.norm(shape[..., i, :] - shape[..., j, :], axis=-1))
    if spec.angles:
        a, b, c = np.array(JOINTS).T
        u, v = shape[..., b, :] - shape[..., a, :], shape[..., c, :] - shape[..., b, :]
        parts.append(np.arctan2(np.linalg.norm(np.cross(u, v), axis=-1), (u * v).sum(-1)) / np.pi)
    turn = orientation(p)
    if spec.orientation:
        parts.append(turn)
    if spec.motion:
        size = palm_size(p)
        # the clip's typical palm size: the wrist's path in palm sizes, steady over the clip
        clip_size = (size * m).sum(-1, keepdims=True) / np.maximum(m.sum(-1, keepdims=True), 1)
        wrist = p[..., WRIST, :2] / np.maximum(clip_size, EPS)[..., None]
        log_size = np.log(np.maximum(size, EPS))[..., None]
        change = velocity(np.concatenate([wrist, log_size, turn[..., :2]], -1), m)
        # speed apart: a per-frame MLP averaged over a circling hand sees velocities that cancel out
        parts += [np.linalg.norm(change[..., :2], axis=-1, keepdims=True), change]
    if spec.shape_motion:
        parts.append(velocity(coords, m))
    features = np.concatenate(parts, -1)
    return np.where(m[..., None], features, 0).astype(np.float32)


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


# -- model inputs ----------------------------------------------------------------------------

def pad(features, mask, max_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """One clip's (T, F) features and (T,) mask -> (max_frames, F) float32 and (max_frames,)
    float32 0/1: zero frames added at the end, masked. A longer clip keeps max_frames
    evenly spaced frames (its features were computed at its own rate first)."""
    f, m = np.asarray(features, np.float32), np.asarray(mask, bool)
    t = len(m)
    if t > max_frames:
        keep = np.round(np.linspace(0, t - 1, max_frames)).astype(int)
        f, m = f[keep], m[keep]
    out_f = np.zeros((max_frames, f.shape[1]), np.float32)
    out_m = np.zeros(max_frames, np.float32)
    out_f[:len(m)], out_m[:len(m)] = np.where(m[:, None], f, 0), m
    return out_f, out_m


def model_inputs(clips, spec: FeatureSpec, max_frames: int) -> dict[str, np.ndarray]:
    """[(points, mask), ...] -> the model's inputs, every clip padded to the longest (at most max_frames)."""
    length = min(max_frames, max((len(m) for _, m in clips), default=1))
    pairs = [pad(frame_features(p, m, spec), m, length) for p, m in clips]
    return {"features": np.stack([f for f, _ in pairs]), "mask": np.stack([m for _, m in pairs])}


# -- the model -------------------------------------------------------------------------------

def build_model(n_features: int, n_classes: int, max_frames: int, kind: str = "temporal", width: int = 64,
                dropout: float = 0.2, feature_stats: tuple | None = None, path_columns=None):
    """Inputs {"features": (B, T, n_features), "mask": (B, T) float 0/1} -> (B, n_classes) probabilities.

    The features are standardised by a Normalization layer holding ``feature_stats``
    (mean, variance of the training frames; default 0 and 1), so a small velocity weighs
    as much as a coordinate.

    pool: a per-frame MLP (Dense, LayerNorm, GELU, dropout, twice), its mean over the
    frames the mask keeps, a softmax head. It reads the shape, orientation and per-frame
    motion (speed tells a moving hand from a still one), but not their order.

    temporal: the same, plus a branch over time whose masked mean joins the head's input:
    a Dense and two Conv1D blocks (kernel 5, residual) over the ``path_columns`` (the
    hand's orientation and path: fit passes them), picked by a frozen 0/1 Dense. On a few
    dozen clips a Conv1D over all 236 features learns the noise of each clip's shape
    before the order of a motion; over the path alone it learns the order (down-then-right
    against right-then-down), which is what J and Z need. Without path_columns the
    Conv1D blocks run over the per-frame MLP's output.

    Masking, with built-in layers only: the input is multiplied by the mask; every Conv1D
    reads its input multiplied by the mask, so a masked or padded frame is the same zero
    as Conv1D's own 'same' padding; the means are GlobalAveragePooling1D with the mask.
    LayerNorm is per frame (BatchNorm would mix padding into its statistics). The model
    takes any T: ``max_frames`` is the longest clip it is meant for (``pad``), checked
    and kept in the signature for callers.
    """
    import keras

    if kind not in KINDS:
        raise SignwriteError(f"model kind must be one of {', '.join(KINDS)}. Received: kind={kind!r}")
    for name, value in (("n_features", n_features), ("n_classes", n_classes), ("max_frames", max_frames),
                        ("width", width)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise SignwriteError(f"{name} must be a whole number >= 1. Received: {name}={value!r}")
    n_features, L = int(n_features), keras.layers
    features = keras.Input((None, n_features), name="features")
    mask = keras.Input((None,), name="mask")
    steps = L.Reshape((-1, 1), name="mask_steps")(mask)
    mean, variance = feature_stats if feature_stats is not None else (np.zeros(n_features), np.ones(n_features))
    x = L.Normalization(mean=np.asarray(mean, np.float32).tolist(), variance=np.asarray(variance, np.float32).tolist(),
                        name="standardise")(features)
    standardised = x = L.Multiply(name="masked_features")([x, steps])
    for i in (1, 2):
        x = L.Dense(width, name=f"frame_dense{i}")(x)
        x = L.LayerNormalization(name=f"frame_norm{i}")(x)
        x = L.Activation("gelu", name=f"frame_gelu{i}")(x)
        x = L.Dropout(dropout, name=f"frame_dropout{i}")(x)
    pooled = L.GlobalAveragePooling1D(name="frame_mean")(x, mask=mask)
    if kind == "temporal":
        t = x
        if path_columns is not None:
            path_columns = [int(c) for c in path_columns]
            select = L.Dense(len(path_columns), use_bias=False, trainable=False, name="path_columns")
            t = select(standardised)
            kernel = np.zeros((n_features, len(path_columns)), np.float32)
            kernel[path_columns, np.arange(len(path_columns))] = 1
            select.set_weights([kernel])
            t = L.Dense(max(width // 2, 1), activation="gelu", name="path_dense")(t)
        for i in (1, 2):
            h = L.Multiply(name=f"time_masked{i}")([t, steps])
            h = L.Conv1D(t.shape[-1], 5, padding="same", activation="gelu", name=f"time_conv{i}")(h)
            h = L.Dropout(dropout, name=f"time_dropout{i}")(h)
            t = L.Add(name=f"time_residual{i}")([t, h])
            t = L.LayerNormalization(name=f"time_norm{i}")(t)
        t = L.GlobalAveragePooling1D(name="time_mean")(t, mask=mask)
        pooled = L.Concatenate(name="frames_and_time")([pooled, t])
    pooled = L.Dropout(dropout, name="head_dropout")(pooled)
    probs = L.Dense(int(n_classes), activation="softmax", name="probs")(pooled)
    return keras.Model({"features": features, "mask": mask}, probs, name=f"landmarks_{kind}")


def path_columns(spec: FeatureSpec) -> list[int] | None:
    """The feature columns the temporal branch reads: the hand's path (spec.motion)."""
    g = spec.groups()
    return list(range(g["motion"].start, g["motion"].stop)) if "motion" in g else None


# -- training --------------------------------------------------------------------------------

@dataclass
class LandmarkTrainSettings:
    kind: str = "temporal"  # pool | temporal (see build_model)
    epochs: int = 200  # most epochs; the learning rate decays over them
    batch_size: int = 32
    learning_rate: float = 2e-3  # Adam's starting rate, cosine-decayed to 1% of it
    patience: int = 40  # epochs without better validation before stopping
    width: int = 64
    dropout: float = 0.2
    seed: int = 0
    feature_spec: FeatureSpec = field(default_factory=FeatureSpec)
    augment: bool = True  # a fresh augment() of every training clip each epoch
    max_frames: int = 64  # a longer clip keeps this many evenly spaced frames

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LandmarkTrainSettings":
        d = dict(d)
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise SignwriteError(f"landmark settings: unknown key(s) {', '.join(unknown)}. Received: {d!r}")
        if isinstance(d.get("feature_spec"), dict):
            d["feature_spec"] = FeatureSpec.from_dict(d["feature_spec"])
        return cls(**d).checked()

    def checked(self) -> "LandmarkTrainSettings":
        if self.kind not in KINDS:
            raise SignwriteError(f"kind must be one of {', '.join(KINDS)}. Received: kind={self.kind!r}")
        for name in ("epochs", "batch_size", "patience", "width", "max_frames"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise SignwriteError(f"{name} must be a whole number >= 1. Received: {name}={value!r}")
        if not self.learning_rate > 0:
            raise SignwriteError(f"learning_rate must be > 0. Received: learning_rate={self.learning_rate!r}")
        if not 0 <= self.dropout < 1:
            raise SignwriteError(f"dropout must be in [0, 1). Received: dropout={self.dropout!r}")
        if not isinstance(self.feature_spec, FeatureSpec):
            raise SignwriteError(f"feature_spec must be a FeatureSpec. Received: {self.feature_spec!r}")
        return self


SELECTION = "val_selection"  # clip accuracy, ties broken by loss: what picks the kept epoch


def fit(train, y_train, val=None, y_val=None, settings: LandmarkTrainSettings | None = None, *,
        n_classes: int | None = None):
    """Train a model on clips: ([(points, mask), ...], labels 0..C-1) -> (model, history).

    points are signing_hand's (T, 21, 3) pixels; clips may differ in T. A training clip with
    no hand in any frame teaches nothing and is left out (a warning says how many). Each
    epoch sees a fresh augment() of every training clip. With validation clips, training
    stops after ``patience`` epochs without a better validation clip accuracy (ties: lower
    validation loss; a validation clip with no hand counts as wrong), and the best epoch's
    weights are restored; without, it trains all ``epochs``. The same seed and data give
    the same model.

    history: per-epoch lists (Keras' loss, accuracy, learning_rate and, with validation,
    val_loss, val_accuracy over clips with a hand, val_clip_accuracy over all validation
    clips, val_selection), ready for pandas. The model returned is uncompiled: it names
    nothing but layers, so it saves and loads in safe mode.
    """
    import keras

    s = (settings or LandmarkTrainSettings()).checked()
    t0 = time.time()
    y_train = np.asarray(y_train, np.int64)
    if len(train) != len(y_train):
        raise SignwriteError(f"{len(train)} training clips but {len(y_train)} labels")
    keep = [i for i, (_, m) in enumerate(train) if np.asarray(m).any()]
    if len(keep) < len(train):
        log.warning("%d of %d training clips have no hand in any frame: left out of training",
                    len(train) - len(keep), len(train))
    if not keep:
        raise SignwriteError(f"none of the {len(train)} training clips has a hand in any frame: nothing to "
                             "learn from (check that extract-frames --hands found hands)")
    if val and (y_val is None or len(y_val) != len(val)):
        raise SignwriteError(f"{len(val)} validation clips but {0 if y_val is None else len(y_val)} labels")
    labels_seen = [y_train] + ([np.asarray(y_val, np.int64)] if val else [])
    n_classes = n_classes or int(max(int(y.max()) for y in labels_seen if len(y)) + 1)

    keras.utils.set_random_seed(s.seed)
    rng = np.random.default_rng(s.seed)
    points, masks = _stack([train[i] for i in keep])
    y = y_train[keep]
    length = min(s.max_frames, points.shape[1])

    def epoch_inputs():
        p, m = augment(points, masks, rng) if s.augment else (points, masks)
        return _batch_inputs(p, m, s.feature_spec, length, s.max_frames)

    plain = _batch_inputs(points, masks, s.feature_spec, length, s.max_frames)
    model = build_model(s.feature_spec.n_features, n_classes, s.max_frames, s.kind, s.width, s.dropout,
                        feature_stats(plain["features"], plain["mask"]), path_columns(s.feature_spec))
    data = _epoch_data(epoch_inputs, y, s.batch_size, rng)
    schedule = keras.optimizers.schedules.CosineDecay(s.learning_rate, decay_steps=s.epochs * data.steps,
                                                         alpha=0.01)
    # no XLA: compiling it costs seconds, more than such a small model's whole training
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=False)
    callbacks = []
    if val:
        has = np.array([np.asarray(m).any() for _, m in val])
        if has.any():
            val_inputs = model_inputs([c for c, h in zip(val, has) if h], s.feature_spec, s.max_frames)
            callbacks = [_validation_scores(val_inputs, np.asarray(y_val, np.int64)[has], len(val)),
                         keras.callbacks.EarlyStopping(monitor=SELECTION, mode="max", patience=s.patience,
                                                       restore_best_weights=True)]
        else:
            log.warning("none of the %d validation clips has a hand: training all %d epochs", len(val), s.epochs)
    history = model.fit(data, epochs=s.epochs, steps_per_epoch=data.steps, callbacks=callbacks, shuffle=False,
                        verbose=0)
    h = {k: [float(v) for v in values] for k, values in history.history.items()}
    best = callbacks[-1].best_epoch if callbacks else len(history.epoch) - 1
    log.info("landmarks %s: %d clips, %d epochs in %.1f s, kept epoch %d%s", s.kind, len(keep),
             len(history.epoch), time.time() - t0, best + 1,
             f" (validation clip accuracy {h['val_clip_accuracy'][best]:.3f})" if callbacks else "")
    return _inference_copy(model), h


def feature_stats(features, mask, min_std: float = 1e-2) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of each feature over the frames mask keeps; the standard deviation
    at least min_std (some features are constant by construction, e.g. the middle MCP's x)."""
    keep = np.asarray(mask) > 0
    f = np.asarray(features, np.float64)[keep]
    return f.mean(0).astype(np.float32), np.maximum(f.var(0), min_std ** 2).astype(np.float32)


def _stack(clips):
    """[(points, mask)] of different T -> (N, T_max, 21, 3), (N, T_max): masked zeros after each clip."""
    t = max(len(m) for _, m in clips)
    points = np.zeros((len(clips), t, N_POINTS, 3), np.float32)
    masks = np.zeros((len(clips), t), bool)
    for i, (p, m) in enumerate(clips):
        m = np.asarray(m, bool)
        points[i, :len(m)] = np.where(m[:, None, None], np.nan_to_num(np.asarray(p, np.float32)), 0)
        masks[i, :len(m)] = m
    return points, masks


def _batch_inputs(points, masks, spec, length, max_frames):
    features = frame_features(points, masks, spec)
    if points.shape[1] <= max_frames:  # nothing to thin out: already padded with masked zeros
        return {"features": features[:, :length], "mask": masks[:, :length].astype(np.float32)}
    # clip by clip, so each long clip is thinned over its own span (through its last present frame)
    pairs = [pad(f[:_span(m)], m[:_span(m)], length) for f, m in zip(features, masks)]
    return {"features": np.stack([f for f, _ in pairs]), "mask": np.stack([m for _, m in pairs])}


def _span(mask) -> int:
    return int(len(mask) - np.asarray(mask)[::-1].argmax()) if np.any(mask) else 1


def _epoch_data(make_inputs, y, batch_size, rng):
    """A keras PyDataset of shuffled batches, a fresh augmented copy of the data each epoch.

    Endless (fit runs it with steps_per_epoch): Keras remakes the tf.data iterator of a
    finite PyDataset every epoch, which costs more than a small model's epoch of training.
    Batches are asked for in order, from one thread, so the same seed gives the same data.
    """
    import keras

    class EpochData(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.steps = -(-len(y) // batch_size)
            self.epoch = -1

        @property
        def num_batches(self):
            return None

        def __getitem__(self, i):
            epoch, step = divmod(i, self.steps)
            if epoch > self.epoch:  # Keras peeks at batch 0 and 1 before it starts: still epoch 0
                self.inputs, self.order, self.epoch = make_inputs(), rng.permutation(len(y)), epoch
            rows = self.order[step * batch_size:(step + 1) * batch_size]
            return {k: v[rows] for k, v in self.inputs.items()}, y[rows]

    return EpochData()


def _validation_scores(inputs, y, n_val: int):
    """A callback adding, from one pass over the validation clips that have a hand:
    val_loss and val_accuracy (over those), val_clip_accuracy (over all n_val: a clip with
    no hand is wrong) and val_selection: that accuracy plus under half a clip's worth of
    1/(1 + val_loss), so among epochs that get as many clips right the lower loss wins.
    (Keras' own validation_data costs more per epoch than a small model's training.)"""
    import keras

    class ValidationScores(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            probs = _probabilities(self.model, inputs)
            p_true = np.clip(probs[np.arange(len(y)), y], 1e-7, 1)
            logs["val_loss"] = float(-np.log(p_true).mean())
            logs["val_accuracy"] = float((probs.argmax(1) == y).mean())
            logs["val_clip_accuracy"] = logs["val_accuracy"] * len(y) / n_val
            logs[SELECTION] = logs["val_clip_accuracy"] + 0.5 / n_val / (1 + logs["val_loss"])

    return ValidationScores()


def _probabilities(model, inputs, batch_size: int = 256) -> np.ndarray:
    n = len(inputs["mask"])
    return np.concatenate([np.asarray(model.predict_on_batch({k: v[i:i + batch_size] for k, v in inputs.items()}))
                           for i in range(0, n, batch_size)])


def _inference_copy(model):
    """The same network and weights, uncompiled: no optimizer in the saved file."""
    import keras

    clean = keras.Model.from_config(model.get_config())
    clean.set_weights(model.get_weights())
    return clean


# -- prediction ------------------------------------------------------------------------------

def predict(model, clips, spec: FeatureSpec, max_frames: int, batch_size: int = 256, forward=None):
    """[(points, mask), ...] -> (probs (N, C) float32, has_hand (N,) bool).

    A clip with no hand gets a row of zeros and has_hand False: with zeros, every class
    ties with the target, so metrics.topk_accuracy counts it wrong (a NaN row would
    count as right there).
    """
    n_classes = int(model.output_shape[-1])
    has_hand = np.array([np.asarray(m).any() for _, m in clips], bool)
    probs = np.zeros((len(clips), n_classes), np.float32)
    rows = np.flatnonzero(has_hand)
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        inputs = model_inputs([clips[i] for i in chunk], spec, max_frames)
        probs[chunk] = np.asarray(forward(inputs) if forward is not None else model(inputs, training=False))
    return probs, has_hand
