"""How the demo's generated videos look: the signs (a shape and its motion), a signer's
picture (background, body, hand) and the frames of one video drawn from them.

``signwrite.demo.synth`` plans the videos (which sign when, each take's variations, each
signer's style) and writes them. The random draws are made there: this module is given the
generator for tremor and sensor noise, and a blotchy background follows its style's seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SUBPIXEL_BITS = 4  # cv2 drawing with fractional coordinates, so slow motion is smooth


@dataclass(frozen=True)
class SignClass:
    label: str
    shape: str
    motion: str


# Every class has its own shape, so one frame can tell them apart; the first six also
# have their own motion, which adds evidence across a clip.
CLASSES = (
    SignClass("hello", "hand", "left-right"),
    SignClass("thanks", "disc", "up-down"),
    SignClass("please", "ring", "circle"),
    SignClass("yes", "square", "grow"),
    SignClass("no", "cross", "spin"),
    SignClass("sorry", "triangle", "still"),
    SignClass("help", "star", "circle"),
    SignClass("more", "ell", "spin"),
    SignClass("stop", "bar", "up-down"),
    SignClass("eat", "crescent", "diagonal"),
    SignClass("drink", "arrow", "left-right"),
    SignClass("love", "heart", "grow"),
)

# Cycles per take (turns for "spin"); each take scales it by a random factor near 1.
MOTION_CYCLES = {"still": 0.0, "left-right": 1.5, "up-down": 1.0, "circle": 1.0,
                 "diagonal": 1.0, "grow": 1.0, "spin": 0.5}


def _circle(r: float, cx: float = 0.0, cy: float = 0.0, n: int = 40) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + r * np.cos(a), cy + r * np.sin(a)], 1)


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)


def _star(points: int = 5, outer: float = 1.0, inner: float = 0.42) -> np.ndarray:
    a = -np.pi / 2 + np.arange(2 * points) * np.pi / points
    r = np.where(np.arange(2 * points) % 2, inner, outer)
    return np.stack([r * np.cos(a), r * np.sin(a)], 1)


def _heart(n: int = 48) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)) - 2.5
    return np.stack([x, y], 1) / 16.5


# Unit shapes (about [-1, 1], y down) as (polygon, fill) steps: 255 paints, 0 cuts a hole.
SHAPES = {
    "hand": [(_rect(-0.6, -0.1, 0.55, 0.95), 255)]
            + [(_rect(x - 0.11, -1.0, x + 0.11, 0.0), 255) for x in (-0.47, -0.16, 0.15, 0.44)]
            + [(np.array([[0.5, 0.25], [0.98, -0.25], [1.08, -0.1], [0.55, 0.6]]), 255)],
    "disc": [(_circle(0.8), 255)],
    "ring": [(_circle(0.95), 255), (_circle(0.55), 0)],
    "square": [(_rect(-0.72, -0.72, 0.72, 0.72), 255)],
    "cross": [(np.array([[-0.3, -1], [0.3, -1], [0.3, -0.3], [1, -0.3], [1, 0.3], [0.3, 0.3],
                         [0.3, 1], [-0.3, 1], [-0.3, 0.3], [-1, 0.3], [-1, -0.3], [-0.3, -0.3]]), 255)],
    "triangle": [(np.array([[0, -1.0], [0.95, 0.7], [-0.95, 0.7]]), 255)],
    "star": [(_star(), 255)],
    "ell": [(np.array([[-0.7, -1], [-0.2, -1], [-0.2, 0.5], [0.75, 0.5], [0.75, 1], [-0.7, 1]]), 255)],
    "bar": [(_rect(-1.05, -0.26, 1.05, 0.26), 255)],
    "crescent": [(_circle(0.9), 255), (_circle(0.72, 0.42, -0.12), 0)],
    "arrow": [(np.array([[0, -1], [0.9, -0.05], [0.33, -0.05], [0.33, 1], [-0.33, 1],
                         [-0.33, -0.05], [-0.9, -0.05]]), 255)],
    "heart": [(_heart(), 255)],
}

BACKGROUNDS = ("flat", "vertical-gradient", "horizontal-gradient", "stripes", "checks", "blotches")


@dataclass(frozen=True)
class SignerStyle:
    """What stays fixed within one video: the nuisances a model must ignore."""

    video: str
    background: str
    bg_bgr: tuple[int, int, int]
    bg2_bgr: tuple[int, int, int]
    texture_period: float
    texture_angle: float
    texture_seed: int
    body_bgr: tuple[int, int, int]
    body_x: float
    hand_bgr: tuple[int, int, int]
    hand_xy: tuple[float, float]  # centre of the signing space, pixels
    hand_radius: float  # pixels
    noise: float  # sensor noise, grey levels (sigma)


@dataclass(frozen=True)
class Performance:
    """One take of one sign. Frames [start_frame, end_frame) show it; times are exact."""

    label: str
    video: str
    take: int  # 1-based, in time order within (label, video)
    start: float
    end: float
    start_frame: int
    end_frame: int
    # what varies between takes
    phase: float
    cycles: float
    angle: float
    scale: float
    dx: float
    dy: float
    gain: float  # light on the hand


# --------------------------------------------------------------------------- drawing


def background(style: SignerStyle, size: tuple[int, int]) -> np.ndarray:
    import cv2

    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = style.background
    if kind == "flat":
        t = np.zeros((h, w), np.float32)
    elif kind == "vertical-gradient":
        t = yy / max(h - 1, 1)
    elif kind == "horizontal-gradient":
        t = xx / max(w - 1, 1)
    elif kind == "stripes":
        u = xx * math.cos(style.texture_angle) + yy * math.sin(style.texture_angle)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * u / style.texture_period)
    elif kind == "checks":
        p = style.texture_period
        t = ((xx // p + yy // p) % 2).astype(np.float32)
        t = cv2.GaussianBlur(t, (0, 0), 1.0)
    else:  # blotches: smooth low-frequency noise
        coarse = np.random.default_rng(style.texture_seed).random((5, 7)).astype(np.float32)
        t = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    a, b = np.array(style.bg_bgr, np.float32), np.array(style.bg2_bgr, np.float32)
    return a + t[..., None] * (b - a)


def _fill(mask: np.ndarray, steps, cx: float, cy: float, radius: float, angle_deg: float) -> None:
    import cv2

    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    for poly, value in steps:
        pts = (poly @ rot.T) * radius + (cx, cy)
        cv2.fillPoly(mask, [np.round(pts * (1 << SUBPIXEL_BITS)).astype(np.int32)], value,
                     cv2.LINE_AA, SUBPIXEL_BITS)


def _hand_pose(sign: SignClass, p: Performance, u: float, style: SignerStyle,
               size: tuple[int, int]) -> tuple[float, float, float, float]:
    """Centre, radius and angle of the hand at progress u (0..1) through take p."""
    w, h = size
    x, y = style.hand_xy[0] + p.dx, style.hand_xy[1] + p.dy
    r, ang = style.hand_radius * p.scale, p.angle
    a = 2 * np.pi * MOTION_CYCLES[sign.motion] * p.cycles * u + p.phase
    ax, ay = 0.13 * w, 0.11 * h
    if sign.motion == "left-right":
        x += ax * math.sin(a)
    elif sign.motion == "up-down":
        y += ay * math.sin(a)
    elif sign.motion == "circle":
        x, y = x + 0.9 * ax * math.cos(a), y + 0.9 * ay * math.sin(a)
    elif sign.motion == "diagonal":
        x, y = x + 0.8 * ax * math.sin(a), y + 0.8 * ay * math.sin(a)
    elif sign.motion == "grow":
        r *= 0.85 + 0.3 * math.sin(a)
    elif sign.motion == "spin":
        ang += math.degrees(a - p.phase)
    return x, y, r, ang


def signer_frames(style: SignerStyle, takes: list[Performance], n_frames: int, fps: int,
            size: tuple[int, int], rng: np.random.Generator):
    """Yield the BGR uint8 frames of one video: rests show only the signer's body."""
    import cv2

    w, h = size
    bg = background(style, size)
    by_class = {c.label: c for c in CLASSES}
    at = {i: p for p in takes for i in range(p.start_frame, p.end_frame)}
    body, hand = np.array(style.body_bgr, np.float32), np.array(style.hand_bgr, np.float32)
    mask = np.empty((h, w), np.uint8)
    for i in range(n_frames):
        t = i / fps
        mask[:] = 0
        bx = style.body_x + 2.0 * math.sin(2 * np.pi * t / 3.0)  # a signer never stands quite still
        cv2.circle(mask, (round(bx * 16), round(0.22 * h * 16)), round(0.11 * h * 16), 255, -1, cv2.LINE_AA, 4)
        cv2.ellipse(mask, (round(bx * 16), round(0.98 * h * 16)), (round(0.24 * w * 16), round(0.45 * h * 16)),
                    0, 0, 360, 255, -1, cv2.LINE_AA, 4)
        frame = bg + (mask[..., None] / np.float32(255)) * (body - bg)
        p = at.get(i)
        if p is not None:
            u = (i - p.start_frame + 0.5) / (p.end_frame - p.start_frame)
            x, y, r, ang = _hand_pose(by_class[p.label], p, u, style, size)
            x, y = x + rng.normal(0, 0.5), y + rng.normal(0, 0.5)  # tremor
            mask[:] = 0
            _fill(mask, SHAPES[by_class[p.label].shape], x, y, r, ang)
            frame += (mask[..., None] / np.float32(255)) * (hand * np.float32(p.gain) - frame)
        frame += rng.standard_normal(frame.shape, np.float32) * style.noise
        yield np.clip(frame, 0, 255).astype(np.uint8)
