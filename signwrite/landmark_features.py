"""MediaPipe hand landmarks -> per-frame features: the signing hand, normalised, as numbers.

One clip goes

    image landmarks (T, 2, 21, 3) --signing_hand--> points (T, 21, 3) pixels, a left hand
    mirrored --frame_features--> (T, F) --pad--> the model's inputs (model_inputs)

``points`` are aspect-correct pixels (x*width, y*height, z*width; y down). A frame without
the hand has mask False: its features are zeros and the model never sees them.
Plain numpy: the Keras models that read these are in signwrite.landmark_model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from signwrite.errors import SignwriteError

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
EPS = 1e-6


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
