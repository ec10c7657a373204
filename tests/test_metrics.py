"""Clip aggregation, top-k and chance level on hand-made probabilities with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from signwrite import metrics as M
from signwrite.evaluate import score

# three frames of one clip, three classes
FRAMES = np.array([[0.6, 0.3, 0.1],
                   [0.6, 0.3, 0.1],
                   [0.0, 0.9, 0.1]])


def test_mean_aggregation_averages_probabilities():
    np.testing.assert_allclose(M.aggregate(FRAMES, "mean"), [0.4, 0.5, 0.1], atol=1e-6)


def test_logmean_is_the_renormalised_geometric_mean():
    p = np.array([[0.5, 0.5], [0.9, 0.1]])
    g = np.sqrt([0.5 * 0.9, 0.5 * 0.1])
    np.testing.assert_allclose(M.aggregate(p, "logmean"), g / g.sum(), atol=1e-6)
    # a class that one frame rules out entirely loses under logmean but not under mean
    assert M.aggregate(FRAMES, "logmean").argmax() == 1
    assert M.aggregate(FRAMES, "logmean")[0] < 1e-3


def test_vote_counts_each_frames_top1():
    out = M.aggregate(FRAMES, "vote")
    assert out.argmax() == 0  # two frames vote class 0, one votes class 1: unlike mean
    np.testing.assert_allclose(out, [2 / 3, 1 / 3, 0], atol=1e-5)
    assert M.aggregate(FRAMES, "mean").argmax() == 1


def test_vote_ties_are_broken_by_mean_probability():
    p = np.array([[0.51, 0.49], [0.1, 0.9]])
    assert M.aggregate(p, "vote").argmax() == 1


def test_aggregate_refuses_unknown_method_and_empty_input():
    with pytest.raises(ValueError, match="median"):
        M.aggregate(FRAMES, "median")
    with pytest.raises(ValueError):
        M.aggregate(np.zeros((0, 3)), "mean")


def test_aggregate_clips_groups_frames_by_clip():
    probs = np.array([[1, 0], [0, 1], [0, 1], [0.2, 0.8]], float)
    out = M.aggregate_clips(probs, [0, 0, 1, 1])
    np.testing.assert_allclose(out, [[0.5, 0.5], [0.1, 0.9]], atol=1e-6)


def test_topk_accuracy_known_answers():
    probs = np.array([[0.5, 0.3, 0.1, 0.06, 0.04],   # target 0: rank 1
                      [0.5, 0.3, 0.1, 0.06, 0.04],   # target 2: rank 3
                      [0.1, 0.2, 0.3, 0.35, 0.05],   # target 4: rank 5
                      [0.1, 0.6, 0.1, 0.1, 0.1]])    # target 1: rank 1
    acc = M.topk_accuracy(probs, [0, 2, 4, 1], topk=(1, 2, 3, 4))
    assert acc == {1: 0.5, 2: 0.5, 3: 0.75, 4: 0.75}


def test_k_at_or_above_the_number_of_classes_is_reported_as_such():
    probs = np.eye(3)[[0, 1, 2]]
    acc = M.topk_accuracy(probs, [1, 1, 1], topk=(1, 2, 3, 10))
    assert acc[1] == pytest.approx(1 / 3) and acc[2] == pytest.approx(1 / 3)
    assert acc[3] is None and acc[10] is None  # not 1.0: every class is in the top 3


def test_ties_count_against_the_model():
    uniform = np.full((4, 5), 0.2)
    assert M.topk_accuracy(uniform, [0, 1, 2, 3], topk=(1, 4)) == {1: 0.0, 4: 0.0}


def test_chance_level():
    assert M.chance_level(26) == pytest.approx(1 / 26)
    assert M.chance_level(26, 3) == pytest.approx(3 / 26)
    assert M.chance_level(4, 10) == 1.0


def test_score_builds_clip_metrics_from_frames():
    frames = pd.DataFrame({"clip_id": ["a", "a", "b", "b", "c"], "video": "v",
                           "label": ["x", "x", "y", "y", "z"]})
    probs = np.array([[0.7, 0.2, 0.1], [0.5, 0.4, 0.1],    # clip a (x): right
                      [0.6, 0.3, 0.1], [0.2, 0.7, 0.1],    # clip b (y): mean [0.4,0.5,0.1] right
                      [0.5, 0.3, 0.2]])                    # clip c (z): rank 3
    s = score(frames, probs, ["x", "y", "z"], "mean")
    m = s.metrics
    assert m["clip_top1"] == pytest.approx(2 / 3) and m["clip_top1_correct"] == 2
    assert m["clip_top3"] is None and m["clip_top10"] is None and "clip_top3" in m["topk_notes"]
    assert m["frame_top1"] == pytest.approx(3 / 5) and m["frame_top1_correct"] == 3
    assert (m["n_test_clips"], m["n_test_frames"], m["n_classes"]) == (3, 5, 3)
    assert m["chance_top1"] == pytest.approx(1 / 3)
    assert list(s.clips.predicted_label) == ["x", "y", "x"]
    assert list(s.rank) == [0, 0, 2]
