"""Tiny extracted-frame datasets (the data/frames layout of docs/CONTRACTS.md) for training tests.

Each class is a shape in its own colour on a grey, noisy background; the shape wanders a
little from frame to frame, so a model must learn the class, not memorise one image.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# (BGR colour, shape) per class: visibly different even at 32 px
CLASSES = {
    "red_disk": ((40, 40, 220), "disk"),
    "green_bar": ((40, 200, 40), "bar"),
    "blue_box": ((220, 60, 30), "box"),
    "yellow_cross": ((30, 220, 230), "cross"),
}


def class_frame(label: str, rng: np.random.Generator, width: int = 64, height: int = 48) -> np.ndarray:
    import cv2

    colour, shape = CLASSES[label]
    img = np.full((height, width, 3), 128, np.uint8)
    img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
    cx = int(width / 2 + rng.integers(-8, 9))
    cy = int(height / 2 + rng.integers(-6, 7))
    r = int(height * 0.3)
    if shape == "disk":
        cv2.circle(img, (cx, cy), r, colour, -1)
    elif shape == "bar":
        cv2.rectangle(img, (cx - r, cy - r // 3), (cx + r, cy + r // 3), colour, -1)
    elif shape == "box":
        cv2.rectangle(img, (cx - r, cy - r), (cx + r, cy + r), colour, 3)
    else:
        cv2.line(img, (cx - r, cy - r), (cx + r, cy + r), colour, 4)
        cv2.line(img, (cx - r, cy + r), (cx + r, cy - r), colour, 4)
    return img


def make_frames_dataset(data_dir: Path, *, labels=tuple(CLASSES), videos=None, clips_per_video: int = 1,
                        frames_per_clip: int = 6, width: int = 64, height: int = 48, seed: int = 0) -> Path:
    """Write data_dir/frames/<split>/<label>/<clip_id>/<clip_id>-NNNN.jpg, frames.csv and
    extract_config.json. ``videos`` maps split -> video ids (default: 2 train, 1 test)."""
    import cv2
    import pandas as pd

    videos = videos or {"train": ["vid_a", "vid_b"], "test": ["vid_c"]}
    rng = np.random.default_rng(seed)
    frames_dir = Path(data_dir) / "frames"
    rows = []
    fps = 10.0
    for split, ids in videos.items():
        for video in ids:
            t = 0.0
            for label in labels:
                for _ in range(clips_per_video):
                    start, end = t, t + frames_per_clip * 3 / fps
                    t = end + 0.5
                    clip_id = f"{video}_{label}_{round(start * 1000)}-{round(end * 1000)}"
                    rel = []
                    for i in range(frames_per_clip):
                        index = 3 * i + 1  # every third frame of the clip, as sampling would
                        p = Path(split) / label / clip_id / f"{clip_id}-{index:04d}.jpg"
                        (frames_dir / p).parent.mkdir(parents=True, exist_ok=True)
                        cv2.imwrite(str(frames_dir / p), class_frame(label, rng, width, height),
                                    [cv2.IMWRITE_JPEG_QUALITY, 95])
                        rel.append(p.as_posix())
                    rows.append(dict(split=split, label=label, clip_id=clip_id, video=video, start=start,
                                     end=end, fps=fps, n_frames=len(rel), frames=";".join(rel)))
    table = pd.DataFrame(rows).sort_values(["split", "label", "clip_id"])
    table.to_csv(frames_dir / "frames.csv", index=False)
    (frames_dir / "extract_config.json").write_text(json.dumps(
        {"frames_per_clip": frames_per_clip, "fps": None, "all_frames": False, "size": min(width, height),
         "jpeg_quality": 95}))
    return Path(data_dir)
