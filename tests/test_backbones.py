"""Backbones: their own preprocessing, size limits, weights from a local file, offline imagenet."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest

from signwrite import backbones
from signwrite.errors import SignwriteError, WeightsError


@pytest.mark.parametrize("name", sorted(backbones.BACKBONES))
def test_preprocessing_is_the_backbones_own_preprocess_input(name):
    import importlib

    spec = backbones.BACKBONES[name]
    frames = np.random.default_rng(0).uniform(0, 255, (2, 40, 56, 3)).astype("float32")
    # small_cnn is ours, with no keras.applications module: it takes the same [-1, 1] pixels
    module = spec.module or "mobilenet_v2"
    ref = importlib.import_module(f"keras.applications.{module}").preprocess_input(frames.copy())
    resize, rescale = backbones.frame_preprocessing(name, 40)
    ours = np.asarray(rescale(frames))
    np.testing.assert_allclose(ours, np.asarray(ref), atol=1e-5)
    assert ours.min() < -0.9 and ours.max() > 0.9  # [-1, 1], never a bare 1/255
    # the resize keeps the centre square: a 40x56 frame loses 8 px on each side
    marked = np.zeros((1, 40, 56, 3), "float32")
    marked[:, :, :8] = 255
    assert np.asarray(resize(marked)).max() < 1


@pytest.mark.parametrize("name,minimum", [("inception_v3", 75), ("mobilenet_v2", 32), ("small_cnn", 32)])
def test_image_size_below_the_backbones_minimum_is_refused_with_the_value(name, minimum):
    assert backbones.check_image_size(name, minimum) == minimum
    with pytest.raises(SignwriteError, match=rf"at least {minimum} px.*image_size={minimum - 1}"):
        backbones.check_image_size(name, minimum - 1)


def test_unknown_backbone_repeats_the_value():
    with pytest.raises(SignwriteError, match="backbone='resnet'"):
        backbones.get_spec("resnet")


def test_weights_from_a_local_file_are_loaded(tmp_path):
    source = backbones.build_backbone("mobilenet_v2", "none", 32)
    rng = np.random.default_rng(1)
    source.set_weights([rng.normal(0, 0.1, w.shape).astype("float32") for w in source.get_weights()])
    path = tmp_path / "mine.weights.h5"
    source.save_weights(path)

    loaded = backbones.build_backbone("mobilenet_v2", str(path), 32)
    fresh = backbones.build_backbone("mobilenet_v2", "none", 32)
    layer = "block_16_project"
    np.testing.assert_array_equal(loaded.get_layer(layer).get_weights()[0], source.get_layer(layer).get_weights()[0])
    assert not np.allclose(fresh.get_layer(layer).get_weights()[0], source.get_layer(layer).get_weights()[0])
    # the cache key follows the file's content
    assert backbones.weights_tag(str(path), 0).startswith("file-")


def test_weights_in_the_legacy_h5_layout_keras_downloads_are_loaded(tmp_path):
    """--weights PATH with the very file Keras would have downloaded (Keras 2 .h5 layout)."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    source = backbones.build_backbone("mobilenet_v2", "none", 32)
    rng = np.random.default_rng(2)
    source.set_weights([rng.normal(0, 0.1, w.shape).astype("float32") for w in source.get_weights()])
    path = tmp_path / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, source)
    loaded = backbones.build_backbone("mobilenet_v2", str(path), 32)
    np.testing.assert_array_equal(loaded.get_layer("Conv1").get_weights()[0], source.get_layer("Conv1").get_weights()[0])


def test_a_file_that_is_not_weights_gives_a_weights_error(tmp_path):
    bad = tmp_path / "notes.weights.h5"
    bad.write_text("not hdf5")
    with pytest.raises(WeightsError, match="not usable as mobilenet_v2 weights"):
        backbones.build_backbone("mobilenet_v2", str(bad), 32)
    with pytest.raises(WeightsError, match="no such weights file"):
        backbones.build_backbone("mobilenet_v2", str(tmp_path / "absent.h5"), 32)


@pytest.mark.parametrize("name,fname", [
    ("inception_v3", "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ("mobilenet_v2", "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5"),
])
def test_imagenet_download_failing_offline_names_the_other_choices(name, fname, tmp_path, monkeypatch):
    from keras.src.utils import file_utils

    calls = []

    def offline(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.setattr(file_utils, "urlretrieve", offline)
    with pytest.raises(WeightsError) as info:
        backbones.build_backbone(name, "imagenet", 96)
    msg = str(info.value)
    assert calls and calls[0].endswith(fname)  # it did try, and only through our patched download
    assert "--weights none" in msg and "--weights PATH" in msg and fname in msg
    assert str(tmp_path / "keras-home" / "models" / fname) in msg
    assert "\n" not in msg  # one clear line


def test_fine_tuning_trains_only_the_top_blocks_and_pretrained_bn_stays_in_inference():
    extractor = backbones.build_feature_extractor("mobilenet_v2", "none", 32)
    inner = extractor.get_layer(backbones.backbone_name_of(extractor))
    assert backbones.set_trainable(extractor, "mobilenet_v2", "none") == 0 and not extractor.trainable_weights
    n_top = backbones.set_trainable(extractor, "mobilenet_v2", "top")
    assert inner.get_layer("block_13_expand").trainable and not inner.get_layer("block_12_add").trainable
    assert not inner.get_layer("Conv1").trainable
    n_all = backbones.set_trainable(extractor, "mobilenet_v2", "all")
    assert 0 < n_top < n_all and inner.get_layer("Conv1").trainable
    # from scratch, BatchNorm statistics move fast enough to settle in a short run
    bn = [layer for layer in inner.layers if layer.__class__.__name__ == "BatchNormalization"]
    assert bn and all(layer.momentum == backbones.SCRATCH_BN_MOMENTUM for layer in bn)


def test_small_cnn_has_no_imagenet_weights_and_says_what_to_use(tmp_path, monkeypatch):
    from keras.src.utils import file_utils

    monkeypatch.setattr(file_utils, "urlretrieve", lambda *a, **k: pytest.fail("tried to download"))
    with pytest.raises(WeightsError) as info:
        backbones.build_backbone("small_cnn", "imagenet", 64)
    assert "--weights none" in str(info.value) and "inception_v3" in str(info.value)


def test_small_cnn_trains_from_scratch_loads_weights_and_fine_tunes_its_top_block(tmp_path):
    net = backbones.build_backbone("small_cnn", "none", 48)
    assert net.output_shape == (None, backbones.SMALL_CNN_WIDTHS[-1])
    bn = [layer for layer in net.layers if layer.__class__.__name__ == "BatchNormalization"]
    assert len(bn) == 2 * len(backbones.SMALL_CNN_WIDTHS)
    assert all(layer.momentum == backbones.SCRATCH_BN_MOMENTUM for layer in bn)
    rng = np.random.default_rng(2)
    net.set_weights([rng.normal(0, 0.1, w.shape).astype("float32") for w in net.get_weights()])
    path = tmp_path / "small.weights.h5"
    net.save_weights(path)
    loaded = backbones.build_backbone("small_cnn", str(path), 48)
    for a, b in zip(loaded.get_weights(), net.get_weights()):
        np.testing.assert_array_equal(a, b)

    extractor = backbones.build_feature_extractor("small_cnn", "none", 48)
    inner = extractor.get_layer(backbones.backbone_name_of(extractor))
    n_top = backbones.set_trainable(extractor, "small_cnn", "top")
    assert n_top == 4  # block 4: two convolutions, two batch norms
    assert inner.get_layer("block4_conv1").trainable and not inner.get_layer("block3_conv2").trainable
    assert backbones.set_trainable(extractor, "small_cnn", "all") == 4 * len(backbones.SMALL_CNN_WIDTHS)


def test_colour_augmentation_swaps_channels_and_inverts_but_leaves_inference_alone():
    from signwrite.data import sign_augmentation, swap_and_invert

    frames = np.random.default_rng(4).uniform(0, 255, (200, 6, 5, 3)).astype("float32")
    augment = sign_augmentation(seed=3, colour=True)
    np.testing.assert_array_equal(np.asarray(augment(frames, training=False)), frames)
    assert np.asarray(augment(frames, training=True)).shape == frames.shape

    out = np.asarray(swap_and_invert(frames, seed=5))
    orders, inverted = set(), 0
    for before, after in zip(frames, out):
        flipped = bool(np.allclose(after.sum(-1), (255 - before).sum(-1), atol=1e-3))
        source = 255 - before if flipped else before
        # each output channel is one whole input channel: the frame's own channel order
        order = tuple(int(np.argmin([np.abs(after[..., c] - source[..., k]).max() for k in range(3)]))
                      for c in range(3))
        np.testing.assert_allclose(after, source[..., list(order)], atol=1e-3)
        assert sorted(order) == [0, 1, 2]
        orders.add(order)
        inverted += flipped
    assert len(orders) == 6 and 60 < inverted < 140


def test_an_epochs_augmentation_depends_on_the_epoch_alone():
    """EpochRandomness.begin(epoch) puts every random part of the augmentation (the colour
    changes too) at the epoch's state: epoch 2 draws the same after any other epochs."""
    import tensorflow as tf

    from signwrite.data import EpochRandomness, sign_augmentation

    frames = tf.constant(np.random.default_rng(4).uniform(0, 255, (6, 8, 8, 3)).astype("float32"))
    augment = sign_augmentation(seed=3, flip=True, colour=True)
    randomness = EpochRandomness(3)
    randomness.track(augment)

    def epoch(e):
        randomness.begin(e)
        return [np.asarray(augment(frames, training=True)) for _ in range(2)]

    first = epoch(2)
    epoch(0), epoch(1)
    again = epoch(2)
    assert not np.array_equal(first[0], first[1])  # draws differ within an epoch
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(epoch(3)[0], first[0])


@pytest.mark.parametrize("name,layer", [("small_cnn", "block4_bn2")])
def test_fine_tuning_a_pretrained_backbone_leaves_its_batchnorm_statistics_alone(tmp_path, name, layer):
    """Pretrained BatchNorm statistics stay fixed even when top blocks are fine-tuned (the
    promise in backbones.build_feature_extractor; the same path for every backbone, shown on
    the smallest: small_cnn from a weights file, at 32 px)."""
    source = backbones.build_backbone(name, "none", 32)
    path = tmp_path / "mine.weights.h5"
    source.save_weights(path)
    extractor = backbones.build_feature_extractor(name, str(path), 32)
    model = backbones.build_classifier(extractor, backbones.build_head(extractor.output_shape[-1], 2))
    backbones.set_trainable(extractor, name, "top")
    bn = extractor.get_layer(backbones.backbone_name_of(extractor)).get_layer(layer)
    assert bn.trainable
    gamma, beta, mean, variance = (np.array(w) for w in bn.get_weights())
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    model.fit(x, np.array([0, 1] * 4), epochs=1, verbose=0)
    after = bn.get_weights()
    assert not np.array_equal(after[0], gamma)  # the layer trained...
    np.testing.assert_array_equal(after[2], mean)  # ...its statistics did not
    np.testing.assert_array_equal(after[3], variance)


def test_a_backbone_trained_from_scratch_still_learns_its_batchnorm_statistics():
    """The other side of the test above: with weights none the whole backbone trains, and its
    BatchNorm layers run in training mode, moving their statistics."""
    extractor = backbones.build_feature_extractor("small_cnn", "none", 32)
    model = backbones.build_classifier(extractor, backbones.build_head(extractor.output_shape[-1], 2))
    backbones.set_trainable(extractor, "small_cnn", "all")
    bn = extractor.get_layer(backbones.backbone_name_of(extractor)).get_layer("block4_bn2")
    mean, variance = (np.array(w) for w in bn.get_weights()[2:])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    model.fit(x, np.array([0, 1] * 4), epochs=1, verbose=0)
    after = bn.get_weights()
    assert not np.array_equal(after[2], mean) and not np.array_equal(after[3], variance)
