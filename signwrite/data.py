"""Frames for training: frames.csv per frame, carve validation out of train, tf.data pipelines.

frames.csv (written by extract_frames, read by signwrite.tables) has one row per clip; here it
becomes one row per frame: split, label, clip_id, video, path (absolute), index (the
frame's number in its clip) and position (0.. in time order within the clip).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from signwrite.errors import SignwriteError
from signwrite.tables import EXTRACT_FIX, frame_index

log = logging.getLogger(__name__)

CACHE_BUDGET_BYTES = 1.5e9  # decoded training frames are kept in memory below this size


def frames_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "frames"


def read_extract_config(data_dir: Path) -> dict:
    path = frames_dir(data_dir) / "extract_config.json"
    if not path.is_file():
        raise SignwriteError(f"{path}: not found; {EXTRACT_FIX}")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise SignwriteError(f"{path}: not valid JSON ({exc}); {EXTRACT_FIX}") from None


def explode_frames(clips, data_dir: Path):
    """One row per frame, in clip then time order."""
    import pandas as pd

    root = frames_dir(data_dir).resolve()
    rows = []
    for clip in clips.itertuples(index=False):
        for position, rel in enumerate(f for f in clip.frames.split(";") if f):
            rows.append((clip.split, clip.label, clip.clip_id, clip.video, str(root / rel),
                         frame_index(rel), position))
    return pd.DataFrame(rows, columns=["split", "label", "clip_id", "video", "path", "index", "position"])


HANDS_FIX = "run `signwrite extract-frames --hands` on this data folder first"


def check_hands(clips, data_dir: Path) -> None:
    """A SignwriteError unless extract-frames --hands has found the hands of every clip."""
    missing = clips[clips.get("landmarks", "").astype(str) == ""].clip_id.tolist() if "landmarks" in clips else \
        clips.clip_id.tolist()
    if missing:
        raise SignwriteError(f"{frames_dir(data_dir) / 'frames.csv'}: {len(missing)} of {len(clips)} clip(s) "
                             f"have no hands listed (e.g. {missing[0]}); {HANDS_FIX}")


def explode_crops(clips, data_dir: Path):
    """Like explode_frames, for the signing hand's crops (data/hands): one row per crop.
    A clip whose hand was never found has no rows (see clips_without_hand)."""
    import pandas as pd

    root = (Path(data_dir) / "hands").resolve()
    rows = []
    for clip in clips.itertuples(index=False):
        for position, rel in enumerate(f for f in str(clip.crops).split(";") if f):
            rows.append((clip.split, clip.label, clip.clip_id, clip.video, str(root / rel),
                         frame_index(rel), position))
    return pd.DataFrame(rows, columns=["split", "label", "clip_id", "video", "path", "index", "position"])


def clips_without_hand(clips):
    return clips[clips.crops.astype(str) == ""]


def clip_numbers(frames) -> np.ndarray:
    """Each frame's clip as 0..n_clips-1, in order of first appearance."""
    import pandas as pd

    return pd.factorize(frames.clip_id)[0]


# -- validation ----------------------------------------------------------------------------

@dataclass
class Validation:
    train: object  # per-frame DataFrames
    val: object
    strategy: str  # "videos" | "clips" | "time-tail" | "none"
    note: str


def carve_validation(train, fraction: float, seed: int) -> Validation:
    """Hold out part of the training frames for validation, never a label's only data.

    In order of preference: whole videos (when train has several); whole clips of the
    labels that have more than one; the last ``fraction`` of every clip's frames in time.
    """
    if fraction <= 0:
        return Validation(train, train.iloc[:0], "none", "no validation (--val-fraction 0): "
                          "the last epoch is kept")
    rng = np.random.default_rng(seed)
    clips = train.drop_duplicates("clip_id")[["clip_id", "label", "video"]]

    videos = list(clips.video.unique())
    if len(videos) > 1:
        held, left = [], clips
        for v in rng.permutation(videos):
            rest = left[left.video != v]
            # at least one video, more while the held-out share stays within the fraction,
            # and never one whose removal would leave a label without training clips
            share = (len(clips) - len(rest)) / len(clips)
            if set(rest.label) == set(clips.label) and (not held or share <= fraction):
                held.append(str(v))
                left = rest
        if held:
            val = train[train.video.isin(held)]
            return Validation(train[~train.video.isin(held)], val, "videos",
                              f"validation: {len(held)} of {len(videos)} training videos held out "
                              f"({', '.join(sorted(held))}): {val.clip_id.nunique()} clips, {len(val)} frames")

    per_label = clips.groupby("label").clip_id.apply(list)
    held = []
    for label, ids in per_label.items():
        if len(ids) > 1:
            n = min(len(ids) - 1, max(1, round(fraction * len(ids))))
            held += list(rng.choice(sorted(ids), size=n, replace=False))
    why = "train holds a single video" if len(videos) == 1 else "no training video can be held out without losing a label"
    if held:
        val = train[train.clip_id.isin(held)]
        return Validation(train[~train.clip_id.isin(held)], val, "clips",
                          f"validation: {why}, so {len(held)} whole clips are held out of it "
                          f"({val.label.nunique()} of {clips.label.nunique()} labels; a label's only "
                          f"clip is never held out): {len(val)} frames")

    n_frames = train.groupby("clip_id").position.transform("size")
    tail = (n_frames > 1) & (train.position >= n_frames - np.maximum(1, np.round(fraction * n_frames)))
    val = train[tail]
    return Validation(train[~tail], val, "time-tail",
                      f"validation: {why} and every label has a single clip, so the last "
                      f"{fraction:.0%} of each clip's frames (in time) are held out: {len(val)} frames")


# -- tf.data ----------------------------------------------------------------------------------

class EpochRandomness:
    """An epoch's random numbers as a function of (seed, epoch) alone, not of the epochs before.

    So a run resumed at epoch k in a new process draws what the uninterrupted run drew in
    epoch k: the same shuffle of the training frames (``shuffle``) and the same augmentation
    and dropout (``begin`` puts every Keras seed generator of the layers it is given, and of
    those ``track`` was given, at a state fixed by the epoch). Train calls ``begin`` at every
    epoch's start (signwrite.callbacks.EpochSeeds).
    """

    DRAWS_PER_EPOCH = 1 << 32  # a seed generator's counter moves by one a draw

    def __init__(self, seed: int):
        import tensorflow as tf

        self.seed = int(seed)
        with tf.init_scope():
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.tracked = []

    def shuffle(self, ds, n: int):
        """``ds`` (``n`` elements) in an order drawn from (seed, epoch) each time it is iterated."""
        import tensorflow as tf

        seed, epoch = tf.constant(self.seed * 100003, tf.int64), self.epoch

        def one_epoch(_):
            # the shuffle's seed pair is (this graph's seed, seed + epoch); the graph's is set
            # here, not left to the global seed: tf.random's get_seed compares the pair with
            # (0, 0) in Python, which a tensor seed cannot take when the global seed is 0
            tf.compat.v1.get_default_graph().seed = 1
            return ds.shuffle(max(n, 1), seed=seed + epoch.read_value(), reshuffle_each_iteration=False)

        return tf.data.Dataset.range(1).flat_map(one_epoch).apply(tf.data.experimental.assert_cardinality(n))

    def track(self, *owners) -> None:
        """Layers (or augmentations from sign_augmentation) whose random state ``begin`` sets."""
        for o in owners:
            if o is not None:
                self.tracked += list(getattr(o, "random_parts", [o]))

    def begin(self, epoch: int, *owners) -> None:
        import numpy as np

        self.epoch.assign(epoch)
        for gen in seed_generators(*self.tracked, *owners):
            first = int(np.asarray(gen.state.value)[0])  # the generator's own seed: kept
            gen.state.assign(np.array([first, epoch * self.DRAWS_PER_EPOCH], dtype="int64"))


def seed_generators(*layers) -> list:
    """The Keras seed generators of the layers and of every layer inside them, each once."""
    import keras

    found, seen = [], set()
    for owner in layers:
        gens = [owner] if isinstance(owner, keras.random.SeedGenerator) else [
            gen for layer in owner._flatten_layers(include_self=True, recursive=True)
            for gen in getattr(layer, "_seed_generators", [])]
        for gen in gens:
            if id(gen) not in seen:
                seen.add(id(gen))
                found.append(gen)
    return found


def sign_augmentation(seed: int, flip: bool = False, colour: bool = False):
    """Random changes a sign survives: small shifts, zoom, tilt, lighting. No left-right
    flip unless asked: a mirrored sign is signed with the other hand.

    ``colour`` is for data where signers differ in skin, clothes and backdrop far more than
    a few training videos show: it adds hue, saturation and grey-scale changes, swaps the
    colour channels and inverts half the frames (a light hand on a dark backdrop becomes a
    dark hand on a light one), so that only shape, place and motion stay informative.

    Returns a callable ``augment(frames, training=True)`` on batches of RGB 0..255 frames.
    """
    import keras

    L = keras.layers
    layers = [L.RandomTranslation(0.08, 0.08, fill_mode="nearest", seed=seed),
              L.RandomZoom((-0.15, 0.1), fill_mode="nearest", seed=seed + 1),
              L.RandomRotation(0.03, fill_mode="nearest", seed=seed + 2),  # about +-11 degrees
              L.RandomContrast(0.2, seed=seed + 3),
              L.RandomBrightness(0.15, value_range=(0, 255), seed=seed + 4)]
    if flip:
        layers.append(L.RandomFlip("horizontal", seed=seed + 5))
    if colour:
        layers += [L.RandomHue(0.5, value_range=(0, 255), seed=seed + 6),
                   L.RandomSaturation(0.5, value_range=(0, 255), seed=seed + 7),
                   L.RandomGrayscale(0.2, seed=seed + 8)]
    geometry_and_light = keras.Sequential(layers, name="sign_augmentation")
    if not colour:
        return geometry_and_light

    channels = keras.random.SeedGenerator(seed + 9, name="swap_and_invert")

    def augment(frames, training=True):
        x = geometry_and_light(frames, training=training)
        return swap_and_invert(x, channels) if training else x

    augment.random_parts = [geometry_and_light, channels]  # their random state: for EpochRandomness
    return augment


def swap_and_invert(frames, seed):
    """Each frame of a batch (RGB 0..255) in one of the 6 channel orders at random, and half
    of them inverted (255 - x). ``seed``: a keras.random.SeedGenerator (new draws each call,
    its state set per epoch by EpochRandomness), or an int (the same draws every call)."""
    import keras
    import tensorflow as tf

    orders = tf.constant(list(itertools.permutations(range(3))), tf.int32)
    n = tf.shape(frames)[0]
    draws = tf.convert_to_tensor(keras.random.uniform((n, 2), seed=seed))
    order = tf.gather(orders, tf.minimum(tf.cast(draws[:, 0] * len(orders), tf.int32), len(orders) - 1))
    x = tf.gather(frames, order, axis=-1, batch_dims=1)
    invert = tf.cast(tf.reshape(draws[:, 1], (-1, 1, 1, 1)) < 0.5, x.dtype)
    return x + invert * (255.0 - 2.0 * x)


def load_frame(path, resize):
    """One JPEG -> RGB float 0..255 of the model's size, exactly as ``resize`` (the model's
    Resizing layer, centre crop + antialiased resize) would make it from the decoded frame."""
    import tensorflow as tf

    # INTEGER_ACCURATE decodes exactly as OpenCV does (predict/live read frames with cv2);
    # TensorFlow's default (fast) DCT differs by up to ~9 levels per pixel
    frame = tf.io.decode_jpeg(tf.io.read_file(path), channels=3, dct_method="INTEGER_ACCURATE")
    # the centre square, cut where Resizing(crop_to_aspect_ratio=True) cuts it ...
    h, w = tf.shape(frame)[0], tf.shape(frame)[1]
    side = tf.minimum(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = tf.cast(frame[top:top + side, left:left + side], tf.float32)
    # ... and resized unless it already has the size: resizing to the same size is the
    # identity but costs more than decoding (299 px frames for a 299 px model)
    out = tf.cond(side == resize.height, lambda: square, lambda: resize(square))
    return tf.ensure_shape(out, (resize.height, resize.width, 3))


def frame_dataset(paths, targets, resize, batch_size: int, *, shuffle: bool = False,
                  augment=None, seed: int = 0, cache: bool | None = None, randomness: EpochRandomness | None = None):
    """JPEG paths -> batches of (RGB float 0..255 frames of the model's size, target).

    ``resize`` is the run's own Resizing layer (backbones.frame_preprocessing), so frames
    reach the network exactly as a saved model would resize them. With ``randomness``, the
    shuffle is its epoch's (and the augmentation is tracked by it); without, tf.data's seeded
    reshuffle, which depends on how many epochs this dataset has run.
    """
    import tensorflow as tf

    paths = [str(p) for p in paths]
    targets = np.asarray(targets, dtype=np.int32)

    def load(path, target):
        return load_frame(path, resize), target

    ds = tf.data.Dataset.from_tensor_slices((paths, targets))
    # A fixed pool, one decoder per core: on a small CPU, AUTOTUNE's extra threads fight the
    # model for cores (measured in benchmarks/bench_train.py)
    ds = ds.map(load, num_parallel_calls=os.cpu_count() or 2, deterministic=True)
    if cache is None:
        cache = len(paths) * resize.height * resize.width * 3 * 4 < CACHE_BUDGET_BYTES
    if cache:
        ds = ds.cache()
    if shuffle and randomness is not None:
        ds = randomness.shuffle(ds, len(paths))
        randomness.track(augment)
    elif shuffle:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if augment is not None:
        ds = ds.map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=os.cpu_count() or 2)
    return ds.prefetch(2)
