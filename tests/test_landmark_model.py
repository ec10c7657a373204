"""landmark_model on generated hands: normalisation, masking, augmentation, and models that
recognise signers they never saw (including a left-handed one) from shape and from motion."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from signwrite import landmark_augment as la
from signwrite import landmark_features as lf
from signwrite import landmark_model as lm

T = 16  # frames per clip, as extract-frames samples them by default

# -- a generated hand --------------------------------------------------------------------------
# A right hand, palm to the camera, fingers up, thumb towards +x; palm-size units, wrist at 0,
# y down, z towards the camera negative (MediaPipe's: smaller is closer).
BASES = {"index": (0.38, -0.95), "middle": (0.12, -1.0), "ring": (-0.12, -0.95), "pinky": (-0.34, -0.85)}
SEGMENTS = {"thumb": (0.35, 0.3, 0.25), "index": (0.42, 0.25, 0.2), "middle": (0.47, 0.29, 0.21),
            "ring": (0.44, 0.27, 0.2), "pinky": (0.34, 0.2, 0.18)}
SPLAY = {"thumb": 55, "index": 6, "middle": 0, "ring": -6, "pinky": -14}  # degrees towards +x from up
BENDS = {"ext": (5, 5, 5), "fold": (85, 100, 60), "spread": (5, 5, 5)}
THUMB_BENDS = {"ext": (0, 10, 10), "fold": (40, 30, 20)}
SHAPES = {  # thumb, index, middle, ring, pinky
    "fist": ("fold", "fold", "fold", "fold", "fold"),
    "flat": ("fold", "ext", "ext", "ext", "ext"),
    "v": ("fold", "spread", "spread", "fold", "fold"),
    "point": ("fold", "ext", "fold", "fold", "fold"),
    "y": ("ext", "fold", "fold", "fold", "ext"),
    "l": ("ext", "ext", "fold", "fold", "fold"),
    "pinky": ("fold", "fold", "fold", "fold", "ext"),
}
# The last two share a shape and differ only in motion (like ASL I and J).
CLASSES = [(name, shape, "still") for name, shape in SHAPES.items()] + [("pinky_circle", SHAPES["pinky"], "circle")]
MOTION_CLASSES = [len(CLASSES) - 2, len(CLASSES) - 1]


def hand_shape(states, rng=None, lengths=None, bend_noise=0.0):
    """(21, 3) points of one hand in palm units."""
    rng = rng or np.random.default_rng(0)
    lengths = lengths or {}
    pts = np.zeros((21, 3))
    for name, state in zip(lf.FINGERS, states):
        chain = lf.FINGERS[name]
        if name == "thumb":
            pts[1] = (0.25, -0.25, 0)
            start, splay = 1, SPLAY["thumb"] if state == "ext" else -25
            bends = THUMB_BENDS[state]
        else:
            pts[chain[0]] = (*BASES[name], 0)
            start, bends = chain[0], BENDS[state]
            splay = SPLAY[name] + (12 if state == "spread" and name == "index" else
                                   -10 if state == "spread" else 0)
        phi = np.radians(splay)
        up = np.array([np.sin(phi), -np.cos(phi), 0.0])
        towards = np.array([0.0, 0.0, -1.0])
        beta, p = 0.0, pts[start]
        for k, (seg, bend) in enumerate(zip(SEGMENTS[name], bends)):
            beta += np.radians(bend + bend_noise * rng.normal())
            p = p + seg * lengths.get(name, 1.0) * (np.cos(beta) * up + np.sin(beta) * towards)
            pts[chain[k + 1] if name != "thumb" else 2 + k] = p
    return pts


def rotation(yaw=0.0, pitch=0.0, roll=0.0):
    def r(a, i, j):
        m = np.eye(3)
        m[i, i], m[i, j], m[j, i], m[j, j] = np.cos(a), -np.sin(a), np.sin(a), np.cos(a)
        return m

    return r(np.radians(roll), 0, 1) @ r(np.radians(pitch), 1, 2) @ r(np.radians(yaw), 0, 2)


def make_signer(seed, left=False):
    rng = np.random.default_rng(seed)
    width, height = [(640, 480), (480, 640), (1280, 720)][seed % 3]
    return dict(rng=rng, left=left, width=width, height=height, size=rng.uniform(50, 110),
                roll=rng.uniform(-20, 20), yaw=rng.uniform(-15, 15), pitch=rng.uniform(-15, 15),
                lengths={f: rng.uniform(0.9, 1.1) for f in lf.FINGERS},
                centre=(rng.uniform(0.35, 0.65) * width, rng.uniform(0.35, 0.65) * height))


def make_clip(signer, shape, motion, missing=0.1, other_hand=0.3):
    """One clip as extract-frames --hands writes it: image (T, 2, 21, 3), handedness (T, 2)."""
    rng, size, (cx, cy) = signer["rng"], signer["size"], signer["centre"]
    hand = hand_shape(shape, rng, signer["lengths"], bend_noise=6.0)
    turn = rotation(signer["yaw"], signer["pitch"], signer["roll"] + rng.uniform(-8, 8))
    hand = hand @ turn.T * size
    t = np.arange(T)
    if motion == "circle":
        phase = rng.uniform(0, 2 * np.pi) + 2 * np.pi * t / T
        path = 0.8 * size * np.stack([np.cos(phase), np.sin(phase)], 1)
    elif motion in ("down_right", "right_down"):  # the same two strokes, in either order
        first, second = np.clip(t / (T / 2 - 1), 0, 1), np.clip(t / (T / 2 - 1) - 1, 0, 1)
        down, right = (first, second) if motion == "down_right" else (second, first)
        path = 1.5 * size * np.stack([right, down], 1) + rng.normal(0, 0.02 * size, (T, 2))
    else:  # a still hand drifts a little
        path = np.cumsum(rng.normal(0, 0.02 * size, (T, 2)), 0)
    frames = hand[None] + np.concatenate([path, np.zeros((T, 1))], 1)[:, None]
    frames += rng.normal(0, 0.015 * size, frames.shape)
    frames[..., 0] += cx
    frames[..., 1] += cy
    rest = hand_shape(SHAPES["flat"]) * size * 0.9 + (cx - 2.5 * size, cy + 2 * size, 0)
    image = np.full((T, 2, 21, 3), np.nan, np.float32)
    handedness = np.full((T, 2), -1, np.int8)
    width, height = signer["width"], signer["height"]
    for i in range(T):
        for slot, label, pts, p in ((0, 1, frames[i], 1 - missing), (1, 0, rest, other_hand)):
            if rng.random() < p:
                pts = pts.copy()
                if signer["left"]:  # the whole scene mirrored: a left-handed signer
                    pts[:, 0] = width - pts[:, 0]
                    slot, label = 1 - slot, 1 - label
                image[i, slot] = pts / (width, height, width)
                handedness[i, slot] = label
    return image, handedness, width, height


def make_dataset(signers, clips_per_class=3, classes=CLASSES):
    clips, labels = [], []
    for signer in signers:
        for y, (_, shape, motion) in enumerate(classes):
            for _ in range(clips_per_class):
                clips.append(lf.signing_hand(*make_clip(signer, shape, motion)))
                labels.append(y)
    return clips, np.array(labels)


def right_hand_clip(seed=0, motion="circle"):
    return make_clip(make_signer(seed), SHAPES["v"], motion, missing=0.0, other_hand=0.0)


def shape_columns(spec):
    g = spec.groups()
    return np.r_[g["coords"], g["distances"], g["angles"]]


# -- features ----------------------------------------------------------------------------------

def test_shape_features_ignore_shift_scale_and_rotation_but_orientation_does_not():
    spec = lf.FeatureSpec(distances="all")
    image, handedness, w, h = right_hand_clip()
    points, mask = lf.signing_hand(image, handedness, w, h)
    a = np.radians(40)
    turn = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    moved = (points - points[0, 0]) @ turn.T * 2.7 + (123.0, -45.0, 0.0)
    f, g = lf.frame_features(points, mask, spec), lf.frame_features(moved.astype(np.float32), mask, spec)
    assert f.shape == (T, spec.n_features) == (T, 60 + 210 + 15 + 5 + 6 + 60)
    cols = shape_columns(spec)
    np.testing.assert_allclose(g[:, cols], f[:, cols], atol=1e-4)
    orient = spec.groups()["orientation"]
    turned_by = np.arctan2(g[:, orient][:, 0], g[:, orient][:, 1]) - np.arctan2(f[:, orient][:, 0], f[:, orient][:, 1])
    np.testing.assert_allclose(np.angle(np.exp(1j * turned_by)), a, atol=1e-4)  # sin, cos of the angle moved
    np.testing.assert_allclose(g[:, orient][:, 2:], f[:, orient][:, 2:], atol=1e-4)  # the palm's facing did not
    fingers_moving = spec.groups()["shape_motion"]
    np.testing.assert_allclose(g[:, fingers_moving], f[:, fingers_moving], atol=1e-4)
    speed = spec.groups()["motion"].start
    np.testing.assert_allclose(g[:, speed], f[:, speed], atol=1e-4)  # in palm sizes: unchanged by scale


def test_normalise_puts_the_wrist_at_0_the_palm_at_1_and_the_middle_finger_up():
    points, _ = lf.signing_hand(*right_hand_clip())
    q = lf.normalise(points)
    np.testing.assert_allclose(q[:, 0], 0, atol=1e-6)
    np.testing.assert_allclose(lf.palm_size(q), 1, atol=1e-5)
    np.testing.assert_allclose(q[:, 9, 0], 0, atol=1e-5)
    assert (q[:, 9, 1] < 0).all()


def test_a_left_hand_reads_as_the_same_right_hand():
    image, handedness, w, h = right_hand_clip()
    mirrored = image.copy()
    mirrored[..., 0] = 1 - mirrored[..., 0]
    left = (mirrored[:, ::-1], np.where(handedness[:, ::-1] >= 0, 1 - handedness[:, ::-1], -1))
    assert np.isnan(left[0][:, 0]).all() and (left[1][:, 1] == 0).all()  # in the Left slot, labelled Left
    spec = lf.FeatureSpec()
    right = lf.frame_features(*lf.signing_hand(image, handedness, w, h), spec)
    np.testing.assert_allclose(lf.frame_features(*lf.signing_hand(*left, w, h), spec), right, atol=1e-4)
    # without the mirror the palm would face the other way: the check has teeth
    raw = mirrored[:, 0] * (w, h, w)
    unmirrored = lf.frame_features(raw.astype(np.float32), np.ones(T, bool), spec)
    normal_z = spec.groups()["orientation"].start + 4
    assert np.all(np.sign(unmirrored[:, normal_z]) == -np.sign(right[:, normal_z]))


def test_signing_hand_takes_the_slot_found_in_more_frames():
    image, handedness, w, h = right_hand_clip()
    image, handedness = image.copy(), handedness.copy()
    image[:, 1], handedness[:, 1] = image[:, 0] + 0.1, 0  # a left hand in every frame
    image[::2, 0], handedness[::2, 0] = np.nan, -1  # the right one in half of them
    points, mask = lf.signing_hand(image, handedness, w, h)
    assert mask.all()
    np.testing.assert_allclose(points[:, 0, 0], -(image[:, 1, 0, 0] * w), rtol=1e-6)  # Left: mirrored
    image[:, 1], handedness[:, 1] = np.nan, -1
    points, mask = lf.signing_hand(image, handedness, w, h)
    assert mask.sum() == T // 2 and (points[~mask] == 0).all()


def test_absent_frames_give_zero_features_and_no_velocity_across_them():
    points, mask = lf.signing_hand(*right_hand_clip())
    mask = mask.copy()
    mask[5] = False
    points = points.copy()
    points[5] = np.nan
    f = lf.frame_features(points, mask)
    assert np.isfinite(f).all() and (f[5] == 0).all() and (f[4] != 0).any()
    g = lf.frame_features(np.where(mask[:, None, None], points, 1e6), mask)
    np.testing.assert_array_equal(f, g)


def test_feature_spec_switches_and_round_trip():
    sizes = [lf.FeatureSpec(**s).n_features for s in
             (dict(distances="none", angles=False, orientation=False, motion=False, shape_motion=False),
              dict(distances="all"), {})]
    assert sizes == [60, 60 + 210 + 15 + 5 + 6 + 60, 60 + 90 + 15 + 5 + 6 + 60]
    spec = lf.FeatureSpec(distances="all", motion=False)
    assert lf.FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    points, mask = lf.signing_hand(*right_hand_clip())
    assert lf.frame_features(points, mask, spec).shape == (T, spec.n_features)
    settings = lm.LandmarkTrainSettings(kind="pool", feature_spec=spec)
    assert lm.LandmarkTrainSettings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings
    with pytest.raises(lm.SignwriteError, match="distances"):
        lf.FeatureSpec(distances="some")
    with pytest.raises(lm.SignwriteError, match="unknown"):
        lf.FeatureSpec.from_dict({"colour": True})


# -- augmentation -------------------------------------------------------------------------------

def chirality(points):
    v1, v2 = points[..., 5, :2] - points[..., 0, :2], points[..., 17, :2] - points[..., 0, :2]
    return np.sign(v1[..., 0] * v2[..., 1] - v1[..., 1] * v2[..., 0])


def test_augment_never_mirrors_and_keeps_shapes():
    points, mask = lf.signing_hand(*right_hand_clip())
    batch = np.stack([points] * 200), np.stack([mask] * 200)
    rng = np.random.default_rng(1)
    p, m = la.augment(*batch, rng)
    assert p.shape == batch[0].shape and m.shape == batch[1].shape and p.dtype == np.float32
    assert (chirality(p)[m] == chirality(points[0])).all()
    assert (p[~m] == 0).all() and m.any(1).all() and (~m).any()
    assert np.abs(p - batch[0])[m].mean() > 1  # pixels: it did change things
    one_p, one_m = la.augment(points, mask, rng)
    assert one_p.shape == points.shape and one_m.shape == mask.shape
    # features of augmented hands stay close to the original shape (plausible takes, not other signs)
    spec = lf.FeatureSpec(motion=False, orientation=False)
    f0 = lf.frame_features(points, mask, spec)
    fa = lf.frame_features(p, m, spec)
    assert np.abs(fa - f0)[m].mean() < 0.1


def test_augment_changes_speed():
    image, handedness, w, h = right_hand_clip(motion="circle")
    points, mask = lf.signing_hand(image, handedness, w, h)
    p, m = la.augment(np.stack([points] * 300), np.stack([mask] * 300), np.random.default_rng(2))
    step = np.linalg.norm(np.diff(p[:, :, 0, :2], axis=1), axis=-1)
    ok = m[:, 1:] & m[:, :-1]
    speeds = np.array([s[o].mean() for s, o in zip(step, ok)]) / np.linalg.norm(np.diff(points[:, 0, :2], axis=0),
                                                                             axis=-1).mean()
    assert speeds.min() < 0.85 and speeds.max() > 1.15


# -- models --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, path", [("pool", None), ("temporal", None), ("temporal", [1, 4])])
def test_masked_and_padded_frames_change_nothing(kind, path):
    model = lm.build_model(7, 4, 24, kind=kind, width=16, path_columns=path)
    rng = np.random.default_rng(0)
    f = rng.normal(size=(3, 10, 7)).astype(np.float32)
    m = (rng.random((3, 10)) > 0.3).astype(np.float32)
    m[:, 0] = 1
    out = np.asarray(model({"features": f, "mask": m}))
    assert out.shape == (3, 4)
    np.testing.assert_allclose(out.sum(1), 1, atol=1e-5)
    g = np.where(m[..., None] > 0, f, rng.normal(size=f.shape) * 100).astype(np.float32)
    np.testing.assert_allclose(np.asarray(model({"features": g, "mask": m})), out, atol=1e-6)
    padded = [lf.pad(f[i], m[i], 24) for i in range(3)]
    pf, pm = np.stack([a for a, _ in padded]), np.stack([b for _, b in padded])
    assert pf.shape == (3, 24, 7)
    np.testing.assert_allclose(np.asarray(model({"features": pf, "mask": pm})), out, atol=1e-6)
    # and the model does read the frames it keeps
    other = np.where(m[..., None] > 0, rng.normal(size=f.shape), f).astype(np.float32)
    assert np.abs(np.asarray(model({"features": other, "mask": m})) - out).max() > 1e-3


def test_pad_thins_a_long_clip_evenly():
    f = np.arange(40, dtype=np.float32)[:, None].repeat(3, 1)
    pf, pm = lf.pad(f, np.ones(40, bool), 8)
    assert pf.shape == (8, 3) and pm.all() and pf[0, 0] == 0 and pf[-1, 0] == 39


@pytest.fixture(scope="module")
def signers():
    train = [make_signer(s) for s in (1, 2, 3, 4)]
    val = [make_signer(5)]
    test = [make_signer(6), make_signer(7, left=True)]
    return [make_dataset(group) for group in (train, val, test)]


def accuracy(probs, y, classes=None):
    keep = np.isin(y, classes) if classes is not None else np.ones(len(y), bool)
    return float((probs.argmax(1) == y)[keep].mean())


@pytest.mark.slow  # trains to a held-out accuracy: 60-80 epochs
def test_a_temporal_model_recognises_new_signers_and_motion(signers):
    """Held-out signers (one left-handed): shapes and the motion-only pair from the temporal
    model; a shape-only model cannot tell the motion pair apart."""
    (train, y_train), (val, y_val), (test, y_test) = signers
    assert 80 <= len(train) <= 100 and any(not m.all() for _, m in train)
    t0 = time.time()
    settings = lm.LandmarkTrainSettings(kind="temporal", epochs=60, patience=30, seed=0)
    model, history = lm.fit(train, y_train, val, y_val, settings)
    seconds = time.time() - t0
    probs, has_hand = lm.predict(model, test, settings.feature_spec, settings.max_frames)
    assert has_hand.all() and probs.shape == (len(test), len(CLASSES))
    overall, motion = accuracy(probs, y_test), accuracy(probs, y_test, MOTION_CLASSES)
    print(f"temporal: {seconds:.1f} s, {len(history['loss'])} epochs; held-out accuracy {overall:.3f}, "
          f"motion pair {motion:.3f}")
    assert overall >= 0.8  # chance: 1/8
    assert motion >= 0.9
    assert seconds < 60  # ~10 s on 2 idle cores
    assert set(history) >= {"loss", "accuracy", "val_loss", "val_clip_accuracy", lm.SELECTION}
    assert len({len(v) for v in history.values()}) == 1

    shape_only = lm.LandmarkTrainSettings(kind="pool", epochs=40, seed=0,
                                          feature_spec=lf.FeatureSpec(motion=False, shape_motion=False))
    model, _ = lm.fit(train, y_train, None, None, shape_only)
    probs, _ = lm.predict(model, test, shape_only.feature_spec, shape_only.max_frames)
    print(f"shape only: held-out accuracy {accuracy(probs, y_test):.3f}, motion pair "
          f"{accuracy(probs, y_test, MOTION_CLASSES):.3f}")
    assert accuracy(probs, y_test, MOTION_CLASSES) <= 0.75
    still = np.setdiff1d(np.arange(len(CLASSES)), MOTION_CLASSES)
    assert accuracy(probs, y_test, still) >= 0.8  # it does learn the shapes


def test_fit_is_deterministic_drops_handless_clips_and_predicts_them_as_none(signers, caplog):
    (train, y_train), _, (test, _) = signers
    empty = (np.zeros((T, 21, 3), np.float32), np.zeros(T, bool))
    settings = lm.LandmarkTrainSettings(kind="pool", epochs=3, width=16, seed=3)
    with caplog.at_level("WARNING"):
        a, history = lm.fit(train[:20] + [empty], np.r_[y_train[:20], 0], None, None, settings,
                            n_classes=len(CLASSES))
    assert "1 of 21 training clips have no hand" in caplog.text
    assert len(history["loss"]) == 3 and "val_loss" not in history
    b, _ = lm.fit(train[:20], y_train[:20], None, None, settings, n_classes=len(CLASSES))
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    probs, has_hand = lm.predict(a, [test[0], empty, test[1]], settings.feature_spec, settings.max_frames)
    assert has_hand.tolist() == [True, False, True]
    assert (probs[1] == 0).all() and np.allclose(probs[[0, 2]].sum(1), 1, atol=1e-5)
    with pytest.raises(lm.SignwriteError, match="none of the 1 training clips"):
        lm.fit([empty], [0], None, None, settings)


def test_a_saved_model_loads_in_safe_mode_and_predicts_the_same(signers, tmp_path):
    import keras

    from signwrite.run import refuse_code

    (train, y_train), _, (test, _) = signers
    spec = lf.FeatureSpec()
    trained, _ = lm.fit(train[:16], y_train[:16], None, None, lm.LandmarkTrainSettings(epochs=1, width=16))
    inputs = lf.model_inputs(test, spec, 64)
    stats = lm.feature_stats(inputs["features"], inputs["mask"])
    pooled = lm.build_model(spec.n_features, 8, 64, kind="pool", width=16, feature_stats=stats)
    for name, model in (("temporal", trained), ("pool", pooled)):
        path = tmp_path / f"{name}.keras"
        model.save(path)
        refuse_code(path)  # names nothing but Keras' own modules
        loaded = keras.saving.load_model(path, compile=False, safe_mode=True)
        before = lm.predict(model, test[:5], spec, 64)[0]
        np.testing.assert_allclose(lm.predict(loaded, test[:5], spec, 64)[0], before, atol=1e-6)
    assert trained.get_layer("path_columns").get_weights()[0].sum() == len(lm.path_columns(spec))


@pytest.mark.slow  # trains to a held-out accuracy: 60-80 epochs
def test_only_the_temporal_model_tells_the_order_of_a_motion():
    """Down then right against right then down: the same frames, in another order. A pooled
    per-frame model sees the same bag of frames; the temporal one sees their order."""
    classes = [("down_right", SHAPES["point"], "down_right"), ("right_down", SHAPES["point"], "right_down")]
    train, y_train = make_dataset([make_signer(s) for s in (1, 2, 3)], 5, classes)
    test, y_test = make_dataset([make_signer(6), make_signer(7, left=True)], 5, classes)
    scores = {}
    for kind in lm.KINDS:
        settings = lm.LandmarkTrainSettings(kind=kind, epochs=80, batch_size=8, seed=0)
        model, _ = lm.fit(train, y_train, None, None, settings)
        scores[kind] = accuracy(lm.predict(model, test, settings.feature_spec, settings.max_frames)[0], y_test)
    print(f"order of strokes: {scores}")
    assert scores["temporal"] >= 0.85
    assert scores["pool"] <= 0.75  # chance: 0.5
