"""Backbones wrapped with their own pixel preprocessing, so nobody feeds them wrong pixels.

``build_feature_extractor`` returns a Keras model that takes raw RGB frames (float 0..255,
any height and width) and returns pooled features:

    frames -> centre crop to a square + resize to image_size -> preprocess_input -> backbone

Every step is a built-in Keras layer, so a saved model loads in safe mode and carries its
preprocessing with it. The pixel scaling is the one ``keras.applications.<name>.preprocess_input``
applies (checked when the extractor is built).

Weights: ``imagenet`` (downloaded once by Keras into ~/.keras/models), ``none`` (random
initialisation, for training from scratch) or the path of a local weights file.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from signwrite.errors import SignwriteError, WeightsError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    application: str | None  # the keras.applications constructor; None: built here (small_cnn)
    module: str | None  # the keras.applications module holding its preprocess_input
    min_size: int  # smallest input Keras accepts
    default_size: int  # the size it was designed (and pretrained) for
    scale: float  # preprocess_input == x * scale + offset for RGB 0..255 input
    offset: float
    frozen_through: str  # fine-tuning after a head warm-up trains only the layers after this one

    @property
    def pretrained(self) -> bool:
        return self.application is not None

    def imagenet_file(self, image_size: int) -> tuple[str, str]:
        """(file name, URL) Keras downloads for the notop imagenet weights."""
        base = "https://storage.googleapis.com/tensorflow/keras-applications/"
        if self.name == "inception_v3":
            fname = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
            return fname, base + "inception_v3/" + fname
        rows = image_size if image_size in (96, 128, 160, 192, 224) else 224  # as Keras picks them
        fname = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5"
        return fname, base + "mobilenet_v2/" + fname


BACKBONES = {
    # Both use preprocess_input(mode="tf"): pixels scaled to [-1, 1]. Fine-tuning trains the
    # top two inception blocks (as in the Keras guide), or MobileNetV2's blocks 13-16.
    "inception_v3": BackboneSpec("inception_v3", "InceptionV3", "inception_v3", 75, 299,
                                 1 / 127.5, -1.0, frozen_through="mixed8"),
    "mobilenet_v2": BackboneSpec("mobilenet_v2", "MobileNetV2", "mobilenet_v2", 32, 224,
                                 1 / 127.5, -1.0, frozen_through="block_12_add"),
    # A plain VGG-style network (4 blocks of two 3x3 convolutions, 300k weights) with no
    # pretrained weights: it learns from scratch on a few hundred frames in a minute or two
    # on a CPU, where MobileNetV2 from scratch needs far more data. For demos and tiny
    # datasets; pixels in [-1, 1] like the others.
    "small_cnn": BackboneSpec("small_cnn", None, None, 32, 64, 1 / 127.5, -1.0, frozen_through="block3_pool"),
}
SMALL_CNN_WIDTHS = (16, 32, 64, 128)
IMAGENET_HASHES = {"inception_v3": "bcbd6486424b2319ff4ef7d526e38f63"}
SCRATCH_BN_MOMENTUM = 0.9  # Keras' 0.99 leaves BN statistics unsettled after a few hundred steps


def get_spec(name: str) -> BackboneSpec:
    if name not in BACKBONES:
        raise SignwriteError(f"unknown backbone; choose one of {', '.join(BACKBONES)}. "
                             f"Received: backbone={name!r}")
    return BACKBONES[name]


def check_image_size(name: str, image_size: int) -> int:
    spec = get_spec(name)
    if not isinstance(image_size, int) or image_size < spec.min_size:
        raise SignwriteError(f"--image-size must be at least {spec.min_size} px for {name} "
                             f"(its smallest input). Received: image_size={image_size!r}")
    return image_size


def weights_tag(weights: str, seed: int) -> str:
    """A short name for the weights, used to key cached features."""
    if weights == "imagenet":
        return "imagenet"
    if weights == "none":
        return f"none-seed{seed}"  # random weights differ with the seed
    digest = hashlib.sha1()
    with open(weights, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"file-{digest.hexdigest()[:12]}"


def check_weights(weights: str) -> str:
    if weights in ("imagenet", "none"):
        return weights
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file; use --weights imagenet, --weights none "
                           f"or the path of a .h5 / .weights.h5 file. Received: weights={weights!r}")
    return str(path.resolve())


def fetch_imagenet_weights(spec: BackboneSpec, image_size: int) -> str:
    """The cached imagenet weights file, downloading it once; a WeightsError when that fails."""
    import keras

    if not spec.pretrained:
        raise WeightsError(f"{spec.name} has no imagenet weights: it is for training from scratch. Use "
                           f"--weights none, or --weights PATH with {spec.name} weights you saved, or a "
                           f"pretrained backbone ({', '.join(n for n, b in BACKBONES.items() if b.pretrained)})")
    fname, url = spec.imagenet_file(image_size)
    cache_dir = os.environ.get("KERAS_HOME") or None  # Keras reads KERAS_HOME only at import
    where = Path(cache_dir or "~/.keras").expanduser() / "models" / fname
    try:
        return keras.utils.get_file(fname, url, cache_subdir="models", cache_dir=cache_dir,
                                    file_hash=IMAGENET_HASHES.get(spec.name))
    except Exception as exc:  # urllib, socket and hash errors all mean "could not get it"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(
            f"could not download the imagenet weights for {spec.name} ({fname}): {reason}. "
            f"Without network, train from scratch with --weights none, or copy {fname} "
            f"(from {url}) here and pass --weights PATH (Keras would have cached it as {where})") from None


def build_backbone(name: str, weights: str, image_size: int):
    """The bare keras.applications network (no top, average-pooled), with its weights."""
    import keras

    spec = get_spec(name)
    check_image_size(name, image_size)
    weights = check_weights(weights)
    path = fetch_imagenet_weights(spec, image_size) if weights == "imagenet" else None
    if weights not in ("imagenet", "none"):
        path = weights
    if spec.pretrained:
        app = getattr(keras.applications, spec.application)
        model = app(include_top=False, weights=None, input_shape=(image_size, image_size, 3), pooling="avg")
    else:
        model = small_cnn(image_size)
    if path:
        try:
            model.load_weights(path)
        except Exception as exc:
            raise WeightsError(f"{path}: not usable as {name} weights ({type(exc).__name__}: "
                               f"{(str(exc).splitlines() or [''])[0][:200]}); pass weights saved from "
                               "the same backbone without its top, or --weights imagenet / none") from None
    else:
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = SCRATCH_BN_MOMENTUM
    return model


def small_cnn(image_size: int, widths: tuple[int, ...] = SMALL_CNN_WIDTHS):
    """Blocks of conv-BN-ReLU, conv-BN-ReLU, 2x2 max pool; global average pooling on top.

    Built-in layers only, so a saved run loads in Keras' safe mode like any other.
    """
    import keras

    L = keras.layers
    inputs = keras.Input((image_size, image_size, 3), name="input_layer")
    x = inputs
    for b, width in enumerate(widths, 1):
        for c in (1, 2):
            x = L.Conv2D(width, 3, padding="same", use_bias=False, name=f"block{b}_conv{c}")(x)
            x = L.BatchNormalization(momentum=SCRATCH_BN_MOMENTUM, name=f"block{b}_bn{c}")(x)
            x = L.ReLU(name=f"block{b}_relu{c}")(x)
        x = L.MaxPooling2D(name=f"block{b}_pool")(x)
    return keras.Model(inputs, L.GlobalAveragePooling2D(name="avg_pool")(x), name="small_cnn")


def frame_preprocessing(name: str, image_size: int) -> list:
    """Layers turning raw RGB frames (0..255, any size) into the backbone's input."""
    import keras

    spec = get_spec(name)
    return [keras.layers.Resizing(image_size, image_size, crop_to_aspect_ratio=True, antialias=True,
                                  name="resize"),
            keras.layers.Rescaling(spec.scale, offset=spec.offset, name="preprocess_input")]


def check_preprocessing(name: str) -> None:
    """Our Rescaling must equal keras.applications' preprocess_input for this backbone."""
    import importlib

    import numpy as np

    spec = get_spec(name)
    if spec.module is None:  # ours: the scaling in BACKBONES is its definition
        return
    probe = np.linspace(0, 255, 12, dtype="float32").reshape(1, 2, 2, 3)
    ref = importlib.import_module(f"keras.applications.{spec.module}").preprocess_input(probe.copy())
    if not np.allclose(np.asarray(ref), probe * spec.scale + spec.offset, atol=1e-5):  # pragma: no cover
        raise AssertionError(f"{name}: preprocess_input changed; update BACKBONES")


def build_feature_extractor(name: str, weights: str, image_size: int, *, backbone=None):
    """Raw frames -> pooled features. ``backbone`` may be passed in if already built."""
    import keras

    check_preprocessing(name)
    backbone = backbone or build_backbone(name, weights, image_size)
    frames = keras.Input((None, None, 3), name="frames")
    x = frames
    for layer in frame_preprocessing(name, image_size):
        x = layer(x)
    if weights != "none":
        # Pretrained BatchNorm statistics stay fixed even when top blocks are fine-tuned.
        features = backbone(x, training=False)
        keep_inference_mode(backbone)
    else:
        features = backbone(x)
    return keras.Model(frames, features, name=f"{name}_features")


def keep_inference_mode(backbone) -> None:
    """Let ``backbone`` keep the training=False it was called with inside a functional model.

    Keras 3 replays a functional model's calls with the training flag of the outer call
    (fit's training=True) in place of the one a layer was called with, so a nested backbone
    called with training=False still ran its BatchNormalization layers in training mode and
    moved their moving mean and variance. Taking ``training`` out of the backbone's
    propagated call-context arguments keeps its recorded training=False: its BatchNorm layers
    normalise with the pretrained statistics, while their scale and offset still train when
    set_trainable makes them trainable (unlike freezing them, the Keras guide's way).

    Not saved with the model: a run's saved model is for inference, and a resumed run builds
    its extractor here again.
    """
    context = getattr(backbone, "_call_context_args", None)
    if not isinstance(context, (set, frozenset)) or "training" not in context:  # pragma: no cover
        raise AssertionError("Keras changed how layers propagate training=; update keep_inference_mode")
    backbone._call_context_args = set(context) - {"training"}


def build_head(n_features: int, n_classes: int, dropout: float = 0.3):
    import keras

    features = keras.Input((n_features,), name="features")
    x = keras.layers.Dropout(dropout, name="dropout")(features)
    probs = keras.layers.Dense(n_classes, activation="softmax", name="probs")(x)
    return keras.Model(features, probs, name="head")


def build_classifier(extractor, head):
    """The model saved in a run: raw RGB frames in, class probabilities out."""
    import keras

    frames = keras.Input((None, None, 3), name="frames")
    return keras.Model(frames, head(extractor(frames)), name="signwrite_classifier")


def set_trainable(extractor, backbone_name: str, which: str) -> int:
    """Freeze the backbone ('none'), train all of it ('all') or its top blocks ('top').

    Returns the number of trainable backbone layers.
    """
    spec = get_spec(backbone_name)
    backbone = extractor.get_layer(backbone_name_of(extractor))
    names = [layer.name for layer in backbone.layers]
    if spec.frozen_through not in names:  # pragma: no cover - keras changed layer names
        raise AssertionError(f"{backbone_name}: no layer {spec.frozen_through}")
    last_frozen = names.index(spec.frozen_through) if which == "top" else -1
    backbone.trainable = which != "none"
    for i, layer in enumerate(backbone.layers):
        layer.trainable = which != "none" and i > last_frozen
    return sum(1 for layer in backbone.layers if layer.trainable and layer.weights) if backbone.trainable else 0


def backbone_name_of(extractor) -> str:
    """The keras.applications model nested inside a feature extractor."""
    import keras

    nested = [layer for layer in extractor.layers if isinstance(layer, keras.Model)]
    return nested[0].name
