"""Which clips go to train and which to test (by whole videos), and which to a shard.

A clip's split is, in order: its ``split`` column; else ``--test-videos``; else a
deterministic choice of about ``--test-fraction`` of the videos. A shard (``--shard I/N``)
takes the keys whose stable hash falls to it, so machines need no coordination.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import replace

from signwrite.clip_times import Clip
from signwrite.errors import SignwriteError
from signwrite.tables import SPLITS

log = logging.getLogger(__name__)


def _video_rank(video: str) -> str:
    return hashlib.sha1(video.encode()).hexdigest()


def assign_splits(clips: list[Clip], test_videos: list[str] | None = None,
                  test_fraction: float = 0.25) -> list[Clip]:
    """Give every clip a split, by whole videos: split column, else --test-videos, else a
    deterministic choice of about ``test_fraction`` of the remaining videos."""
    if not 0 <= test_fraction < 1:
        raise SignwriteError(f"--test-fraction must be in [0, 1); received {test_fraction}")
    videos = sorted({c.video for c in clips})
    fixed = {c.video: c.split for c in clips if c.split}
    if test_videos:
        unknown = [v for v in test_videos if v not in videos]
        if unknown:
            raise SignwriteError(f"--test-videos: {', '.join(unknown)} not in the clip-times file "
                                 f"(videos with clips: {', '.join(videos)})")
        overruled = [v for v in test_videos if fixed.get(v) == "train"]
        if overruled:
            log.warning("--test-videos: %s marked train by the split column, which wins", ", ".join(overruled))
        chosen = {v: ("test" if v in test_videos else "train") for v in videos if v not in fixed}
    else:
        free = sorted((v for v in videos if v not in fixed), key=_video_rank)
        want = round(len(videos) * test_fraction)
        if test_fraction > 0 and len(videos) > 1:
            want = min(max(want, 1), len(videos) - 1)  # both sides get at least one video
        n_test = min(max(want - sum(1 for s in fixed.values() if s == "test"), 0), len(free))
        chosen = {v: ("test" if i < n_test else "train") for i, v in enumerate(free)}
    chosen.update(fixed)
    return [replace(c, split=chosen[c.video]) for c in clips]


def split_summary(clips: list[Clip]) -> str:
    lines = []
    labels = {s: {c.label for c in clips if c.split == s} for s in SPLITS}
    for s in SPLITS:
        side = [c for c in clips if c.split == s]
        vids = sorted({c.video for c in side})
        lines.append(f"{s:5s}: {len(side)} clips, {len(labels[s])} labels, {len(vids)} videos: {', '.join(vids) or '-'}")
    only_train = sorted(labels["train"] - labels["test"])
    only_test = sorted(labels["test"] - labels["train"])
    if only_train:
        lines.append(f"labels with no test clip: {', '.join(only_train)}")
    if only_test:
        lines.append(f"labels with no train clip (the model cannot learn them): {', '.join(only_test)}")
    return "\n".join(lines)


def shard_filter(key: str, shard: tuple[int, int] | None) -> bool:
    """Whether ``key`` belongs to shard (i, n): a stable hash, so machines need no coordination."""
    if shard is None:
        return True
    i, n = shard
    return int(hashlib.sha1(key.encode()).hexdigest(), 16) % n == i


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    m = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not m or not 0 <= int(m.group(1)) < int(m.group(2)):
        raise SignwriteError(f"--shard must look like I/N with 0 <= I < N (e.g. 0/4); received {text!r}")
    return int(m.group(1)), int(m.group(2))
