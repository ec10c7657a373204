"""Clip-level scoring: aggregate frame probabilities per clip, then top-k accuracy.

Plain numpy, no TensorFlow, so evaluate, predict and the tests share one definition.
"""

from __future__ import annotations

import numpy as np

AGGREGATIONS = ("mean", "logmean", "vote")


def aggregate(probs, method: str = "mean") -> np.ndarray:
    """(n_frames, C) frame probabilities -> (C,) clip probabilities (summing to 1).

    mean: average probability (the pytorchvideo/mmaction habit); logmean: geometric mean,
    renormalised; vote: share of frames whose top-1 is each class, ties broken by mean.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or len(p) == 0:
        raise ValueError(f"expected a non-empty (n_frames, n_classes) array; received shape {p.shape}")
    if method == "mean":
        out = p.mean(0)
    elif method == "logmean":
        log_mean = np.log(np.clip(p, 1e-12, 1.0)).mean(0)
        out = np.exp(log_mean - log_mean.max())
    elif method == "vote":
        out = np.bincount(p.argmax(1), minlength=p.shape[1]) + 1e-6 * p.mean(0)
    else:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}; received {method!r}")
    return (out / out.sum()).astype(np.float32)


def aggregate_clips(probs, clip_index, method: str = "mean") -> np.ndarray:
    """Frame probabilities and each frame's clip number (0..n_clips-1) -> (n_clips, C)."""
    probs, clip_index = np.asarray(probs), np.asarray(clip_index)
    return np.stack([aggregate(probs[clip_index == c], method) for c in range(clip_index.max() + 1)])


def topk_accuracy(probs, targets, topk=(1, 3, 10)) -> dict[int, float | None]:
    """Share of rows whose target is among the k highest probabilities, for each k.

    A k at or above the number of classes is None: every class is in the top k, so the
    score would be 1.0 whatever the model does (reported as such, never clipped to C).
    """
    probs, targets = np.asarray(probs), np.asarray(targets)
    n_classes = probs.shape[1]
    # rank of the target = how many other classes score at least as high: a tie counts
    # against the model, so a constant output never looks right
    rank = (probs >= probs[np.arange(len(targets)), targets][:, None]).sum(1) - 1
    return {k: (float((rank < k).mean()) if k < n_classes else None) for k in topk}


def chance_level(n_classes: int, k: int = 1) -> float:
    """Top-k accuracy of a uniform random guess."""
    return min(k, n_classes) / n_classes
