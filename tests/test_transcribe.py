"""Window probabilities -> segments, text and subtitles, on hand-made probabilities."""

import numpy as np
import pytest

from signwrite import transcribe as tr

LABELS = ["A", "B", "C"]


def windows(rows, window=1.0, stride=0.25):
    """Windows every ``stride`` s, each ``window`` long, with the given probabilities."""
    starts = [i * stride for i in range(len(rows))]
    return starts, [s + window for s in starts], np.array(rows, float)


A, B, C = [0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.0, 0.3, 0.7]
NONE = [0.4, 0.35, 0.25]  # best sign below the 0.5 default


def test_neighbours_that_agree_merge_and_unconfident_windows_split():
    s, e, p = windows([A, A, A, NONE, B, B, C])
    segs = tr.segments_from_windows(s, e, p, LABELS)
    assert [x.label for x in segs] == ["A", "B", "C"]
    # window i is centred at 0.5 + 0.25 i; it stands for +-0.125 s around its centre
    a, b, c = segs
    assert (a.start, a.end) == (0.0, pytest.approx(0.5 + 2 * 0.25 + 0.125))
    assert (b.start, b.end) == (pytest.approx(0.5 + 4 * 0.25 - 0.125), pytest.approx(0.5 + 5 * 0.25 + 0.125))
    assert (c.start, c.end) == (pytest.approx(0.5 + 6 * 0.25 - 0.125), pytest.approx(6 * 0.25 + 1.0))
    assert a.confidence == pytest.approx(0.9)
    assert b.confidence == pytest.approx(0.8)
    assert c.confidence == pytest.approx(0.7)


def test_confidence_is_the_mean_of_the_merged_windows():
    s, e, p = windows([[0.6, 0.4, 0], [0.9, 0.1, 0], [0.75, 0.25, 0]])
    (seg,) = tr.segments_from_windows(s, e, p, LABELS)
    assert seg.confidence == pytest.approx(0.75)


def test_threshold_decides_what_is_left_out():
    s, e, p = windows([A, NONE, A])
    assert [x.label for x in tr.segments_from_windows(s, e, p, LABELS)] == ["A", "A"]
    assert [x.label for x in tr.segments_from_windows(s, e, p, LABELS, threshold=0.3)] == ["A"]
    assert tr.segments_from_windows(s, e, p, LABELS, threshold=0.95) == []


def test_min_windows_drops_blips():
    s, e, p = windows([A, A, B, A, A])
    assert [x.label for x in tr.segments_from_windows(s, e, p, LABELS)] == ["A", "B", "A"]
    assert [x.label for x in tr.segments_from_windows(s, e, p, LABELS, min_windows=2)] == ["A", "A"]


def test_irregular_last_window_still_ends_at_the_end():
    segs = tr.segments_from_windows([0.0, 0.5, 0.8], [1.0, 1.5, 1.8], np.array([A, A, A]), LABELS)
    assert [(x.start, x.end) for x in segs] == [(0.0, 1.8)]


def test_no_windows_and_mismatched_shapes():
    assert tr.segments_from_windows([], [], np.zeros((0, 3)), LABELS) == []
    with pytest.raises(ValueError, match="3 labels"):
        tr.segments_from_windows([0], [1], np.array([[0.5, 0.5]]), LABELS)


def test_edges_tighten_to_the_frames_that_show_the_sign():
    # a 2 s window made confident by frames 1.0-2.0 s also covers 0.5-1.0 s of rest
    segs = [tr.Segment("A", 0.5, 2.5, 0.7), tr.Segment("B", 2.5, 3.0, 0.9), tr.Segment("C", 3.0, 4.0, 0.6)]
    times = [0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.25, 3.75]
    probs = [NONE, NONE, A, A, NONE, B, NONE, NONE]
    out = tr.tighten_edges(segs, times, probs, LABELS)
    assert [(s.label, s.start, s.end, s.confidence) for s in out] == [
        ("A", 1.0, 2.0, 0.7),  # midpoints to the unsure neighbours
        ("B", 2.5, 3.0, 0.9),  # confirmed up to both edges: unchanged
        ("C", 3.0, 4.0, 0.6),  # no frame confirms it: kept as it was
    ]
    assert tr.tighten_edges(segs, [], np.zeros((0, 3)), LABELS) == segs


def test_letters_make_a_word_other_signs_are_spaced():
    assert tr.join_signs(["H", "E", "L", "L", "O"]) == "HELLO"
    assert tr.join_signs(["hello", "thanks"]) == "hello thanks"
    # the run's vocabulary decides: single letters from a word vocabulary stay spaced
    assert tr.join_signs(["A", "B"], vocabulary=["A", "B", "yes"]) == "A B"
    segs = [tr.Segment("yes", 0, 1, 0.9), tr.Segment("no", 1, 2, 0.8)]
    assert tr.transcript_text(segs) == "yes no"
    assert tr.split_signs("HELLO", ["H", "E", "L", "O"]) == ["H", "E", "L", "L", "O"]
    assert tr.split_signs("yes no", ["yes", "no"]) == ["yes", "no"]


def test_edit_distance_and_signs_in_order():
    ref = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    assert tr.edit_distance(ref, ref) == 0
    assert tr.edit_distance("ABDEFXGHIJKLMNOPQRSTUVWXYZ", ref) == 2  # C missing, X inserted
    assert tr.edit_distance("", ref) == 26
    assert tr.edit_distance(["yes", "no"], ["yes", "please", "no"]) == 1
    assert tr.in_order("ABDEFXGHIJKLMNOPQRSTUVWXYZ", ref) == 25
    assert tr.in_order("ZYX", ref) == 1
    assert tr.in_order("", ref) == 0


def test_srt_format():
    segs = [tr.Segment("A", 0.0, 1.25, 0.9), tr.Segment("hello", 61.5, 3725.0415, 0.8)]
    assert tr.to_srt(segs) == (
        "1\n00:00:00,000 --> 00:00:01,250\nA\n\n"
        "2\n00:01:01,500 --> 01:02:05,042\nhello\n")
    assert tr.srt_time(-0.2) == "00:00:00,000"


def test_segments_csv_columns():
    df = tr.segments_frame([tr.Segment("A", 0.0, 1.23456, 0.98765)])
    assert list(df.columns) == ["label", "start", "end", "confidence"]
    assert df.iloc[0].tolist() == ["A", 0.0, 1.235, 0.988]
    assert list(tr.segments_frame([]).columns) == ["label", "start", "end", "confidence"]


def test_default_grid_lets_windows_share_frames():
    kw = {"frames_per_clip": 16, "rate": None, "all_frames": False}
    # 1.8 s at 50 fps: 90 frames sampled every 5.625 frames share almost none with a 22-frame stride
    length, step = tr.window_grid(1.8, 0.45, 50, kw, tune_length=True, tune_stride=True)
    assert abs(length - 90) <= 2 and 18 <= step <= 22

    def model_frames(n, k):
        return len({i for _, _, idx in tr.plan_windows(0, 2500, 50, n, k, kw) for i in idx})

    assert model_frames(length, step) * 2 < model_frames(90, 22)
    # what the user set stays as set
    assert tr.window_grid(1.8, 0.45, 50, kw) == (90, 22)
