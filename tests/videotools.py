"""Tiny test videos whose frames say which frame they are.

Each frame carries its index as a row of black/white blocks (10 bits) and a background
colour that changes every second, so a test can decode exactly which frames a cut or a
sample holds, even after lossy H.264 encoding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from signwrite.video import write_video

BITS = 10
BLOCK = 8
WIDTH, HEIGHT = BITS * BLOCK, 64

PALETTE = [(40, 40, 200), (40, 200, 40), (200, 40, 40), (40, 200, 200), (200, 40, 200), (200, 200, 40)]


def numbered_frame(index: int, fps: float, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = PALETTE[int(index // fps) % len(PALETTE)]
    for bit in range(BITS):
        value = 255 if (index >> bit) & 1 else 0
        frame[:BLOCK, bit * BLOCK:(bit + 1) * BLOCK] = value
    return frame


def frame_number(frame: np.ndarray) -> int:
    """Read the index back from a decoded (possibly resized) frame."""
    h, w = frame.shape[:2]
    block_w = w / BITS
    block_h = h * BLOCK / HEIGHT
    row = frame[int(block_h / 2)]
    value = 0
    for bit in range(BITS):
        px = row[int((bit + 0.5) * block_w)]
        if px.mean() > 127:
            value |= 1 << bit
    return value


def make_numbered_video(path: Path, seconds: float, fps: float = 10, gop: int | None = 50,
                        width: int = WIDTH, height: int = HEIGHT) -> Path:
    n = int(round(seconds * fps))
    write_video(path, (numbered_frame(i, fps, width, height) for i in range(n)), fps, crf=10, gop=gop)
    return Path(path)
