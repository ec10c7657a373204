"""annotate: the alignment on hand-made arrays, and whole runs on generated videos with exact spans.

The generated videos have no real hands, so they exercise --by motion's frame differencing
(``hands=False``, as --no-hands does; one test runs MediaPipe on them to see it fall back).
--by model runs on a fake run whose probabilities are known.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from signwrite import align, annotate as an, annotate_track, clip_times
from signwrite.annotate import AnnotateSettings
from signwrite.errors import InputError, SignwriteError, VideoError
from signwrite.hands import HandFrames
from signwrite.video import write_video

FPS = 10  # one sample per frame (annotate samples ~12.5 a second), so spans are exact to the frame


# --------------------------------------------------------------------------- the dynamic programme

def placements(T, n, L, start=0):
    """Every way to place n ordered segments [a, b), each >= L long, in samples start..T."""
    if n == 0:
        yield []
        return
    for a in range(start, T - n * L + 1):
        for b in range(a + L, T - (n - 1) * L + 1):
            for rest in placements(T, n - 1, L, b):
                yield [(a, b)] + rest


def brute_force(score, n, L, boundary):
    return max(objective(score, spans, boundary) for spans in placements(len(score), n, L))


def objective(score, spans, boundary):
    total = sum(score[a:b, k].sum() for k, (a, b) in enumerate(spans))
    return total + sum(max(boundary[b:a + 1]) for (_, b), (a, _) in zip(spans[:-1], spans[1:]))


@pytest.mark.parametrize("seed", range(12))
def test_the_alignment_is_the_best_of_all_placements(seed):
    rng = np.random.default_rng(seed)
    T, n, L = int(rng.integers(5, 10)), int(rng.integers(1, 4)), int(rng.integers(1, 3))
    if n * L > T:
        n = 1
    score = rng.normal(size=(T, n))
    boundary = rng.normal(size=T)
    spans = align.align_segments(score, n, L, boundary)
    assert len(spans) == n and all(b - a >= L for a, b in spans)
    assert all(b1 <= a2 for (_, b1), (a2, _) in zip(spans[:-1], spans[1:]))
    assert objective(score, spans, boundary) == pytest.approx(brute_force(score, n, L, boundary))


def test_segments_that_cannot_fit_are_refused():
    with pytest.raises(ValueError, match="do not fit"):
        align.align_segments(np.zeros(5), 3, 2)


def holds_signal(pattern: str):
    """x and change from a pattern: '#' a held hand, '~' a moving one, '.' none; '|' a sharp
    change (a new hand shape) before the next sample. The picture changes where a hand comes
    or goes, a little where it moves."""
    x, change, sharp = [], [], False
    for ch in pattern:
        if ch == "|":
            sharp = True
            continue
        x.append({"#": 1.0, "~": align.MOVING, ".": 0.0}[ch])
        flip = len(x) > 1 and (x[-1] == 0) != (x[-2] == 0)
        change.append(1.0 if sharp or flip else 0.3 if ch == "~" or (len(x) > 1 and x[-2] == align.MOVING) else 0.0)
        sharp = False
    return np.array(x), np.array(change)


def test_holds_come_out_in_the_right_count_when_a_sign_pauses_twice_and_two_run_together():
    # sign 1 holds, the hand shifts, holds again (one sign, two pauses); signs 2 and 3 are one
    # hold with a sharp change (a new hand shape) in the middle; sign 4 is plain
    x, change = holds_signal("..######~######....#######|#######...~~######..")
    holds = align.find_holds(x, 4, 3, change)
    assert holds.cores == [(2, 15), (19, 26), (26, 33), (38, 44)]
    conf = align.hold_confidence(holds, x, change)
    assert min(conf) > align.DOUBTFUL


def test_two_signs_run_together_without_a_change_are_split_but_doubtful():
    x, change = holds_signal("..##############....######..")
    holds = align.find_holds(x, 3, 3, change)
    assert len(holds.cores) == 3 and holds.cores[2] == (20, 26)
    conf = align.hold_confidence(holds, x, change)
    assert conf[0] < align.DOUBTFUL and conf[1] < align.DOUBTFUL and conf[2] > align.DOUBTFUL


def test_a_span_grows_over_the_hand_coming_and_going_up_to_the_cut():
    present = np.array([0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1], bool)
    change = np.zeros(15)
    change[6] = 1.0  # the cut between the signs, inside the moving stretch 5..7
    spans = align.sign_spans([(2, 5), (8, 9), (12, 14)], present, change, max_extend=10)
    assert spans == [(1, 6), (6, 9), (11, 15)]
    assert align.sign_spans([(2, 5)], present[:6], change[:6], max_extend=0) == [(2, 5)]


def test_landmark_speed_is_in_palm_sizes_a_second():
    hand = np.zeros((21, 2))
    hand[[5, 9, 17]] = [[0, -10], [0, -10], [0, -10]]  # palm size 10 px
    points = np.stack([hand + [5.0 * t, 0] for t in range(4)])  # 5 px a sample
    times = np.array([0, 0.25, 0.5, 0.75])
    speed = align.landmark_speed(points, np.array([1, 1, 0, 1], bool), times)
    assert np.isnan(speed[0]) and speed[1] == pytest.approx(2.0) and np.isnan(speed[2:]).all()


def test_forced_alignment_follows_the_order_and_the_scaled_likelihood():
    # 3 classes; the video shows 2, 0, 1. Class 1 is always under-called (0.3 where it is
    # shown, against 0.6 for class 0), so plain probabilities give its span to class 0
    p = np.full((12, 3), 0.05)
    p[0:4, 2] = 0.9
    p[4:8, 0] = 0.9
    p[8:12, 0], p[8:12, 1] = 0.6, 0.3
    spans = align.forced_alignment(p, [2, 0, 1], 2)
    assert spans == [(0, 4), (4, 8), (8, 12)]
    assert align.span_probability(p, spans, [2, 0, 1]) == pytest.approx([0.9, 0.9, 0.3])
    # with nothing in the picture over 6..7, those samples are background, whatever the run says
    present = np.ones(12, bool)
    present[6:8] = False
    assert align.forced_alignment(p, [2, 0, 1], 2, present) == [(0, 4), (4, 6), (8, 12)]


def test_presence_needs_an_empty_scene():
    frames = np.full((20, 24, 24, 3), 100, np.uint8)
    for i, f in enumerate(frames):  # something is always there, here or there
        x = 4 * (i % 5)
        f[8:14, x:x + 6] = 250
    diff = np.r_[0, np.ones(19)]
    assert align.foreground(frames, diff, np.ones(20, bool)) is None
    frames[::3] = 100  # now one frame in three is empty
    share = align.foreground(frames, diff, np.ones(20, bool))
    assert share is not None and (share[::3] == 0).all() and (np.delete(share, np.s_[::3]) == 1).all()


# --------------------------------------------------------------------------- generated videos

# (label, first frame, end frame, how the blob moves): rests in between show no blob
SIGNS = [("wave", 10, 25, "sway"), ("hold", 30, 60, "pause"), ("ring", 65, 80, "circle"), ("jump", 80, 95, "sway")]
N_FRAMES = 105


def blob_frames(signs=SIGNS, n_frames=N_FRAMES, size=(96, 72), seed=0):
    import cv2

    rng = np.random.default_rng(seed)
    w, h = size
    for i in range(n_frames):
        frame = np.full((h, w, 3), (150, 140, 130), np.float32)
        for k, (_, a, b, how) in enumerate(signs):
            if not a <= i < b:
                continue
            u = (i - a) / (b - a)
            x, y = w * (0.35 + 0.3 * (k % 2)), h * 0.5  # a new place for each sign
            if how == "sway":
                x += 12 * np.sin(2 * np.pi * 1.5 * u)
            elif how == "circle":
                x, y = x + 10 * np.cos(2 * np.pi * u), y + 8 * np.sin(2 * np.pi * u)
            elif how == "pause":  # moves for 0.8 s, holds still for 1.4 s, moves again
                k_in = i - a
                x += 12 * np.sin(2 * np.pi * (k_in if k_in < 8 else 0 if k_in < 22 else k_in - 22) / 8)
            colour = [(40, 40, 220), (40, 200, 40), (220, 60, 40), (30, 200, 220)][k]
            cv2.circle(frame, (int(round(x)), int(round(y))), 9 + 2 * k, colour, -1, cv2.LINE_AA)
        frame += rng.normal(0, 2.0, frame.shape)
        yield np.clip(frame, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def blob_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("videos") / "blobs.mp4"
    write_video(path, blob_frames(), FPS, crf=18)
    return path


def settings(tmp_path, videos, **kw):
    base = dict(signs=[s[0] for s in SIGNS], sources=tmp_path / "none.csv", data_dir=tmp_path / "data",
                out=tmp_path / "proposed.csv", hands=False)
    base.update(kw)
    return AnnotateSettings(videos=[str(v) for v in videos], **base)


def test_motion_recovers_every_span_of_a_generated_video(tmp_path, blob_video):
    s = settings(tmp_path, [blob_video])
    assert an.annotate(s) == 0
    got = pd.read_csv(s.out)
    assert list(got.columns) == ["label", "video", "start", "end"]
    assert list(got.label) == [x[0] for x in SIGNS] and set(got.video) == {"blobs"}
    for (_, a, b, _), start, end in zip(SIGNS, got.start, got.end):
        assert abs(start - a / FPS) <= 1 / FPS + 1e-6 and abs(end - b / FPS) <= 1 / FPS + 1e-6
    # fetch reads what annotate writes (it refuses unknown columns, hence the separate confidence file)
    sources = tmp_path / "sources.csv"
    sources.write_text(f"video,url\nblobs,{blob_video}\n")
    clips = clip_times.read_clip_times(s.out, clip_times.read_sources(sources))
    assert [c.label for c in clips] == [x[0] for x in SIGNS]
    conf = pd.read_csv(an.sidecar(s.out, ".confidence.csv"))
    assert list(conf.columns) == ["label", "video", "start", "end", "confidence", "doubtful"]
    assert (conf.confidence > align.DOUBTFUL).all() and not conf.doubtful.any()
    with pytest.raises(InputError, match="unknown column"):
        clip_times.read_clip_times(an.sidecar(s.out, ".confidence.csv"), clip_times.read_sources(sources))
    review = an.sidecar(s.out, ".review")
    srt = (review / "blobs.srt").read_text()
    assert srt.count(" --> ") == 4 and "00:00:01,000 --> 00:00:02,500\nwave" in srt
    import cv2

    sheet = cv2.imread(str(review / "blobs.jpg"))
    assert sheet is not None and sheet.shape[1] > 4 * 96
    mark = json.loads(an.sidecar(s.out, ".annotate.json").read_text())
    assert mark["written_by"] == "signwrite annotate" and mark["videos"]["blobs"]["signs"] == 4


def test_a_second_run_reuses_the_track_and_replaces_its_own_output(tmp_path, blob_video, monkeypatch):
    s = settings(tmp_path, [blob_video])
    an.annotate(s)
    first = s.out.read_text()

    def no_tracking(*a, **k):
        raise AssertionError("tracked again")

    monkeypatch.setattr(annotate_track, "track_video", no_tracking)
    an.annotate(s)  # our own file, unedited: replaced
    assert s.out.read_text() == first


def test_never_overwrites_clip_times_a_person_wrote(tmp_path, blob_video):
    s = settings(tmp_path, [blob_video])
    s.out.write_text("label,video,start,end\nwave,blobs,1,2\n")
    with pytest.raises(SignwriteError, match="not written by signwrite annotate"):
        an.annotate(s)
    assert s.out.read_text() == "label,video,start,end\nwave,blobs,1,2\n"
    assert not an.sidecar(s.out, ".confidence.csv").exists()
    an.annotate(settings(tmp_path, [blob_video], force=True))
    with open(s.out, "a") as f:  # the proposal, corrected by hand, is now theirs
        f.write("ring,blobs,9,9.5\n")
    with pytest.raises(SignwriteError, match="or was edited since"):
        an.annotate(s)


def outputs(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("proposed"))


@pytest.mark.parametrize("signs, why", [(",", "sign 1 of 2"), ("  ", "the list of signs is empty"),
                                        ("a,b/c", "path separator")])
def test_a_bad_list_is_one_line(tmp_path, blob_video, capsys, signs, why):
    code = an.main([str(blob_video), "--signs", signs, "--out", str(tmp_path / "proposed.csv"),
                    "--data-dir", str(tmp_path / "data"), "--sources", str(tmp_path / "none.csv"), "--no-hands"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and why in err[0] and err[0].startswith("signwrite annotate: error:")
    assert outputs(tmp_path) == [] and not (tmp_path / "data").exists()


def test_a_list_longer_than_the_video_can_hold_is_refused(tmp_path, blob_video, capsys):
    code = an.main([str(blob_video), "--signs", ",".join(f"s{i}" for i in range(40)), "--out",
                    str(tmp_path / "proposed.csv"), "--data-dir", str(tmp_path / "data"),
                    "--sources", str(tmp_path / "none.csv"), "--no-hands"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert "40 signs do not fit in its 10.5 s (at least 0.3 s each: 35 at most)" in err[0]
    assert outputs(tmp_path) == [] and not (tmp_path / "data").exists()


def test_a_video_with_no_hand_falls_back_to_frame_differencing(tmp_path, blob_video, caplog):
    from signwrite.hand_model import hand_model_path

    try:
        model = hand_model_path(download=False)
    except SignwriteError:
        pytest.skip("no hand model in the cache (scripts/setup.sh puts one there)")
    s = settings(tmp_path, [blob_video], hands=True, hand_model=model)
    with caplog.at_level(logging.INFO, logger="signwrite.annotate"):
        assert an.annotate(s) == 0
    assert "no hand found in blobs" in caplog.text and "frame differencing" in caplog.text
    got = pd.read_csv(s.out)
    assert np.allclose(got.start, [a / FPS for _, a, _, _ in SIGNS], atol=1 / FPS + 1e-6)


def test_signs_come_from_a_signs_column_in_sources(tmp_path, blob_video):
    sources = tmp_path / "sources.csv"
    sources.write_text(f'video,url,signs\nmyvideo,{blob_video},"wave,hold,ring,jump"\n')
    s = settings(tmp_path, ["myvideo"], signs=None, sources=sources)
    an.annotate(s)
    got = pd.read_csv(s.out)
    assert set(got.video) == {"myvideo"} and list(got.label) == ["wave", "hold", "ring", "jump"]
    with pytest.raises(SignwriteError, match="not a video id in"):
        an.annotate(settings(tmp_path, ["other"], signs=None, sources=sources))


# --------------------------------------------------------------------------- --by model

class FakeRun:
    """A landmark run that sees the sign of a window's middle sample (its probabilities known)."""
    input = "landmarks"
    config: dict = {}
    sampling: dict = {}

    def __init__(self, labels, truth, found=True):
        self.labels, self.truth, self.found = labels, truth, found

    def classify_hands(self, windows):
        probs = np.full((len(windows), len(self.labels)), 0.02)
        for i, w in enumerate(windows):
            probs[i, self.labels.index(self.truth(int(w.frame_index[len(w.frame_index) // 2])))] = 0.9
        return probs, np.full(len(windows), self.found)


def fake_track(n=60, found=True):
    hands = HandFrames.empty(np.arange(n), 64, 48)
    if found:
        hands.image[:, 0] = 0.5
        hands.handedness[:, 0] = 1
    import cv2

    thumb = cv2.imencode(".jpg", np.zeros((12, 16, 3), np.uint8))[1].tobytes()
    return annotate_track.Track("v", Path("v.mp4"), 10.0, n, hands, np.zeros(n), np.full(n, np.nan), [thumb] * n)


def test_model_aligns_the_run_probabilities_to_the_order():
    truth = lambda i: "abc"[min(i // 20, 2)]  # noqa: E731
    track = fake_track()
    run = FakeRun(["c", "b", "a", "d"], truth)
    p = an.propose_by_model(run, track, ["a", "b", "c"], [2, 1, 0], AnnotateSettings(videos=[], run=Path("r")))
    assert p.spans == [(0.0, pytest.approx(2.0, abs=0.1)), (pytest.approx(2.0, abs=0.1), pytest.approx(4.0, abs=0.1)),
                       (pytest.approx(4.0, abs=0.1), 6.0)]
    assert min(p.confidence) > 0.8


def test_model_refuses_a_video_with_no_hand(tmp_path):
    track = fake_track(found=False)
    run = FakeRun(["a", "b"], lambda i: "a", found=False)
    with pytest.raises(VideoError, match="no hand was found in any frame"):
        an.propose_by_model(run, track, ["a", "b"], [0, 1], AnnotateSettings(videos=[], run=Path("r")))


def test_model_refuses_signs_the_run_does_not_know(tmp_path, blob_video, monkeypatch):
    monkeypatch.setattr("signwrite.run.open_run", lambda path: FakeRun(["wave", "hold"], None))
    s = settings(tmp_path, [blob_video], by="model", run=tmp_path / "run")
    with pytest.raises(SignwriteError, match="sign\\(s\\) jump, ring are not among the run's 2 labels"):
        an.annotate(s)
    assert outputs(tmp_path) == []


# --------------------------------------------------------------------------- real footage

@pytest.mark.slow
@pytest.mark.realdata
def test_real_fingerspelling_by_motion(junaid_dir, tmp_path):
    """junaid_abc1: A..Z, each letter's clip cut from the next by a jump in the footage."""
    from signwrite.hand_model import hand_model_path

    try:
        model = hand_model_path(download=False)
    except SignwriteError:
        pytest.skip("no hand model in the cache (scripts/setup.sh puts one there)")
    s = AnnotateSettings(videos=["junaid_abc1"], signs=list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
                         sources=junaid_dir / "sources.csv", data_dir=tmp_path / "data", out=tmp_path / "abc1.csv",
                         hand_model=model)
    an.annotate(s)
    got = pd.read_csv(s.out)
    truth = pd.read_csv(junaid_dir / "video_clip_times_long.csv")
    truth = truth[truth.video == "junaid_abc1"].reset_index(drop=True)
    iou = (np.minimum(got.end, truth.end) - np.maximum(got.start, truth.start)).clip(0) / \
        (np.maximum(got.end, truth.end) - np.minimum(got.start, truth.start))
    assert (iou >= 0.5).sum() >= 25  # measured: 26 of 26
    assert (got.start - truth.start).abs().median() < 0.2 and (got.end - truth.end).abs().median() < 0.2


def test_model_needs_the_hands_for_a_landmark_run(tmp_path, blob_video, monkeypatch):
    monkeypatch.setattr("signwrite.run.open_run", lambda path: FakeRun([x[0] for x in SIGNS], None))
    with pytest.raises(SignwriteError, match="leave --no-hands out"):
        an.annotate(settings(tmp_path, [blob_video], by="model", run=tmp_path / "run"))
    assert outputs(tmp_path) == []


def test_a_video_given_twice_is_refused(tmp_path, blob_video):
    with pytest.raises(SignwriteError, match="given twice"):
        an.annotate(settings(tmp_path, [blob_video, blob_video]))


def test_the_review_sheet_frames_doubtful_spans_in_red():
    import cv2

    track = fake_track()
    track.thumbs = [cv2.imencode(".jpg", np.full((48, 64, 3), 128, np.uint8))[1].tobytes()] * 60
    p = an.Proposal(track, ["a", "b"], [(0.0, 2.0), (2.0, 6.0)], [0.9, 0.2], [10, 40], "a test")
    sheet = cv2.imdecode(np.frombuffer(an.review_sheet(p), np.uint8), cv2.IMREAD_COLOR)
    tile = 64 + 8
    left, right = sheet[30:, :tile], sheet[30:, tile:2 * tile]
    red = lambda img: ((img[..., 2] > 180) & (img[..., 0] < 80) & (img[..., 1] < 80)).mean()  # noqa: E731
    assert red(left) < 0.01 < red(right)
    assert "CHECK" in an.to_srt(p).split("\n\n")[1] and "CHECK" not in an.to_srt(p).split("\n\n")[0]
