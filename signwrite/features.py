"""Frozen-backbone features, computed once per frame and cached on disk.

data/features/<backbone>_<weights>_<size>px/<split>/<label>/<clip_id>.npz holds one clip:
``features`` (n_frames, D) in the order frames.csv lists them, plus a ``stamp`` of those
JPEGs (names, sizes, modification times) so re-extracted frames are never matched with
stale features. Each file is written atomically when its clip is complete, so a stopped
extraction resumes at the next clip; later runs with the same backbone, weights and size
reuse the files. Frames stream through tf.data: memory does not grow with their number.
"""

from __future__ import annotations

import hashlib
import logging
import os
import weakref
from pathlib import Path

import numpy as np

from signwrite.fsutil import atomic_path

log = logging.getLogger(__name__)


def cache_dir(data_dir: Path, backbone: str, weights_tag: str, image_size: int, input: str = "frames") -> Path:
    """Hand crops are named like the frames they come from: they get their own cache."""
    suffix = "" if input == "frames" else f"_{input}"
    return Path(data_dir) / "features" / f"{backbone}_{weights_tag}_{image_size}px{suffix}"


def clip_file(cache: Path, clip) -> Path:
    return cache / clip.split / clip.label / f"{clip.clip_id}.npz"


def stamp(paths) -> str:
    """Names, sizes and modification times of a clip's frames, hashed."""
    h = hashlib.sha1()
    for p in paths:
        st = os.stat(p)
        h.update(f"{Path(p).name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


def read_cached(path: Path, expected_stamp: str) -> np.ndarray | None:
    """The cached features of a clip, or None when absent, unreadable or stale."""
    try:
        with np.load(path, allow_pickle=False) as f:
            if str(f["stamp"]) == expected_stamp:
                return f["features"]
    except (OSError, KeyError, ValueError):
        pass
    return None


def write_cached(path: Path, features: np.ndarray, clip_stamp: str) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, features=features.astype(np.float32), stamp=np.array(clip_stamp))


def clips_of(frames):
    """(clip row, its frames) for each clip of a per-frame table, in order."""
    for _, group in frames.groupby("clip_id", sort=False):
        yield group.iloc[0], group


def missing_clips(frames, cache: Path) -> list[tuple]:
    """(clip row, frame paths, stamp) of the clips whose cached features are absent or stale."""
    todo = []
    for clip, group in clips_of(frames):
        paths = list(group.path)
        s = stamp(paths)
        cached = read_cached(clip_file(cache, clip), s)
        if cached is None or len(cached) != len(paths):
            todo.append((clip, paths, s))
    return todo


def extract_features(frames, extractor, resize, cache: Path, batch_size: int = 32) -> int:
    """Compute and cache the features of every clip of ``frames`` (whole clips, per-frame
    table) that is not cached yet; returns how many frames were computed.

    One streaming pass: each clip's file is written as soon as its last frame is through.
    """
    from tqdm import tqdm

    from signwrite.data import frame_dataset

    todo = missing_clips(frames, cache)
    n = sum(len(paths) for _, paths, _ in todo)
    if not todo:
        log.info("features: all %d clips cached in %s", frames.clip_id.nunique(), cache)
        return 0
    log.info("features: computing %d frames of %d clips into %s", n, len(todo), cache)
    ds = frame_dataset([p for _, paths, _ in todo for p in paths], np.zeros(n), resize, batch_size,
                       cache=False)
    forward = compiled_forward(extractor)
    pending, buffered = [], 0
    with tqdm(total=n, unit="frame", desc="features", leave=False, disable=None) as bar:
        for x, _ in ds:
            feats = forward(x).numpy()
            pending.append(feats)
            buffered += len(feats)
            bar.update(len(feats))
            while todo and buffered >= len(todo[0][1]):  # write out every clip that is complete
                clip, paths, s = todo.pop(0)
                block = np.concatenate(pending)
                write_cached(clip_file(cache, clip), block[:len(paths)], s)
                pending, buffered = [block[len(paths):]], buffered - len(paths)
    return n


_FORWARD = weakref.WeakKeyDictionary()


def compiled_forward(extractor):
    """One traced inference function per extractor, reused by every call (tracing
    InceptionV3 takes seconds: as long as extracting a few hundred small frames)."""
    import tensorflow as tf

    if extractor not in _FORWARD:
        _FORWARD[extractor] = tf.function(lambda x: extractor(x, training=False), reduce_retracing=True)
    return _FORWARD[extractor]


def load_features(frames, cache: Path) -> np.ndarray:
    """(n_frames, D) features of the rows of ``frames``, in its order, from the cache.

    The table may hold part of a clip (a validation tail): rows are picked by position.
    """
    out = None
    positions = frames.position.to_numpy()
    for clip_id, rows in frames.groupby("clip_id", sort=False).indices.items():
        clip = frames.iloc[rows[0]]
        with np.load(clip_file(cache, clip), allow_pickle=False) as f:
            feats = f["features"]
        if out is None:
            out = np.empty((len(frames), feats.shape[1]), np.float32)
        out[rows] = feats[positions[rows]]
    return out
