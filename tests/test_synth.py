"""The generated demo dataset: files parse, times are true, classes are learnable, runs repeat."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from signwrite.demo import synth
from signwrite.clip_times import check_durations, read_clip_times, read_sources
from signwrite.errors import SignwriteError
from signwrite.video import cut_clip, probe, read_frames

N_CLASSES, N_SIGNERS, TAKES = 6, 2, 2
SMALL = dict(n_classes=3, n_signers=2, takes_per_sign=1, transcribe_signs=3, size=(96, 72))


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    return synth.make_dataset(tmp_path_factory.mktemp("synth") / "demo", n_classes=N_CLASSES,
                              n_signers=N_SIGNERS, takes_per_sign=TAKES, seed=3)


@pytest.fixture(scope="module")
def decoded(ds):
    """All frames of every video, decoded once for the whole module."""
    return {v: read_frames(ds.video_path(v))[1] for v in [*ds.videos, synth.TRANSCRIBE_ID]}


def hand_pixels(frame: np.ndarray, style: synth.SignerStyle) -> np.ndarray:
    """Where a decoded frame shows the signer's hand colour (the generator keeps every
    other colour in the video at least 110 away from it)."""
    diff = frame.astype(np.float32) - np.array(style.hand_bgr, np.float32)
    return np.sqrt((diff ** 2).sum(-1)) < 60


def test_files_parse_and_counts_match(ds):
    for path in (ds.sources_csv, ds.clip_times_csv, ds.clip_times_long_csv, ds.transcribe_video,
                 ds.transcribe_truth_csv, ds.readme):
        assert path.is_file(), path
    sources = read_sources(ds.sources_csv)
    assert list(sources) == list(ds.videos) == [f"signer{k}" for k in range(1, N_SIGNERS + 1)]
    assert all(s.kind == "local" and Path(s.location) == ds.video_path(v).resolve() for v, s in sources.items())

    wide = read_clip_times(ds.clip_times_csv, sources)
    long = read_clip_times(ds.clip_times_long_csv, sources)
    assert len(wide) == ds.n_wide_clips == N_CLASSES * N_SIGNERS
    assert len(long) == ds.n_clips == N_CLASSES * N_SIGNERS * TAKES
    assert ds.labels == tuple(c.label for c in synth.CLASSES[:N_CLASSES])
    assert {c.label for c in wide} == {c.label for c in long} == set(ds.labels)
    for label in ds.labels:
        for video in ds.videos:
            assert sum(c.label == label and c.video == video for c in long) == TAKES
    # the wide file holds the first take of every (label, video)
    first = {}
    for c in sorted(long, key=lambda c: c.start):
        first.setdefault((c.label, c.video), (c.start, c.end))
    assert {(c.label, c.video): (c.start, c.end) for c in wide} == first

    durations = {v: probe(ds.video_path(v)).duration for v in ds.videos}
    check_durations(long, durations, ds.clip_times_long_csv)  # raises if a clip ends past its video
    readme = ds.readme.read_text()
    assert "generated" in readme.lower() and all(label in readme for label in ds.labels)


def test_wide_layout_is_two_rows_per_sign_one_column_per_video(ds):
    rows = list(csv.reader(ds.clip_times_csv.open()))
    assert len(rows) == 2 * N_CLASSES
    assert [r[0] for r in rows[0::2]] == [r[0] for r in rows[1::2]] == list(ds.labels)
    assert all(len(r) == 1 + N_SIGNERS for r in rows)
    for starts, ends in zip(rows[0::2], rows[1::2]):
        assert all(float(s) < float(e) for s, e in zip(starts[1:], ends[1:]))


def test_times_are_exact_frame_boundaries(ds):
    sources = read_sources(ds.sources_csv)
    fps = ds.config.fps
    for clip in read_clip_times(ds.clip_times_long_csv, sources):
        for t in (clip.start, clip.end):
            assert abs(t * fps - round(t * fps)) < 1e-6, clip
        assert 1.0 <= clip.end - clip.start <= 1.5 + 1e-9, clip


def test_clip_times_point_at_frames_that_show_the_sign(ds, decoded):
    fps = ds.config.fps
    clips = read_clip_times(ds.clip_times_long_csv, read_sources(ds.sources_csv))
    for clip in clips:
        frames, style = decoded[clip.video], ds.signers[clip.video]
        first, last = round(clip.start * fps), round(clip.end * fps) - 1
        for i in (first, (first + last) // 2, last):
            assert hand_pixels(frames[i], style).sum() > 80, (clip, i)
        for i in (first - 1, last + 1):  # the rest frames either side
            assert hand_pixels(frames[i], style).sum() == 0, (clip, i)


def test_cutting_at_the_csv_times_gives_exactly_the_signs_frames(ds, tmp_path):
    """What fetch does with the times: every frame of the cut shows the hand, and none is lost."""
    sources = read_sources(ds.sources_csv)
    for clip in read_clip_times(ds.clip_times_csv, sources)[:3]:
        out = tmp_path / f"{clip.clip_id}.mp4"
        cut_clip(ds.video_path(clip.video), out, clip.start, clip.end)
        _, frames = read_frames(out)
        assert len(frames) == round((clip.end - clip.start) * ds.config.fps)
        assert all(hand_pixels(f, ds.signers[clip.video]).sum() > 80 for f in frames), clip


def test_transcription_truth_matches_the_held_out_video(ds, decoded):
    rows = list(csv.DictReader(ds.transcribe_truth_csv.open()))
    assert list(rows[0]) == ["label", "start", "end"]
    assert [(r["label"], float(r["start"]), float(r["end"])) for r in rows] == \
        [(p.label, p.start, p.end) for p in ds.transcription]
    assert len(rows) == ds.config.transcribe_signs
    assert set(r["label"] for r in rows) == set(ds.labels)  # 8 signs cover all 6 classes
    assert all(a["label"] != b["label"] for a, b in zip(rows, rows[1:]))
    frames, style = decoded[synth.TRANSCRIBE_ID], ds.signers[synth.TRANSCRIBE_ID]
    assert len(frames) == probe(ds.transcribe_video).n_frames
    shown = np.array([hand_pixels(f, style).sum() > 80 for f in frames])
    truth = np.zeros(len(frames), bool)
    for r in rows:
        truth[round(float(r["start"]) * ds.config.fps):round(float(r["end"]) * ds.config.fps)] = True
    assert (shown == truth).all()
    assert synth.TRANSCRIBE_ID not in ds.videos
    assert ds.signers[synth.TRANSCRIBE_ID].hand_bgr not in {ds.signers[v].hand_bgr for v in ds.videos}


def _centred(mask: np.ndarray, half: int = 34) -> np.ndarray:
    """The hand mask shifted so its centroid is in the middle: shape without position."""
    ys, xs = np.nonzero(mask)
    cy, cx = round(ys.mean()), round(xs.mean())
    return np.pad(mask, half)[cy:cy + 2 * half, cx:cx + 2 * half].astype(np.float32)


def test_classes_differ_more_than_takes_of_one_class(ds, decoded):
    """For every signer and sign, its two takes are nearer each other than any take of another
    sign: distance = mean absolute difference of centred hand masks, each frame of one clip
    matched with its nearest frame of the other (so phase and speed do not count)."""
    for video in ds.videos:
        frames, style = decoded[video], ds.signers[video]
        takes = {(p.label, p.take): np.stack([_centred(hand_pixels(frames[i], style)).ravel()
                                              for i in range(p.start_frame, p.end_frame)])
                 for p in ds.clips if p.video == video}

        def dist(a, b):
            x, y = takes[a], takes[b]  # 0/1 masks: |x - y| summed is x + y - 2xy
            d = (x.sum(1)[:, None] + y.sum(1)[None] - 2 * x @ y.T) / x.shape[1]
            return 0.5 * (d.min(1).mean() + d.min(0).mean())

        for label in ds.labels:
            within = dist((label, 1), (label, 2))
            between = min(dist((label, t), (other, s)) for other in ds.labels if other != label
                          for t in (1, 2) for s in (1, 2))
            assert within < between, (video, label, within, between)


def test_signers_differ_so_a_split_by_video_generalises(ds, decoded):
    """Two signers' rest frames differ far more than one signer's rest frames seconds apart."""
    first, last = ([decoded[v][i].astype(np.float32) for v in ds.videos] for i in (0, -1))
    for v in ds.videos:  # a video starts and ends with a rest
        assert hand_pixels(decoded[v][0], ds.signers[v]).sum() == hand_pixels(decoded[v][-1], ds.signers[v]).sum() == 0
    same_signer = max(np.abs(f - l).mean() for f, l in zip(first, last))
    assert np.abs(first[0] - first[1]).mean() > 2 * same_signer
    a, b = (ds.signers[v] for v in ds.videos)
    assert a.hand_bgr != b.hand_bgr and a.hand_xy != b.hand_xy and a.hand_radius != b.hand_radius


def _csvs(info):
    return [p.read_bytes() for p in (info.sources_csv, info.clip_times_csv, info.clip_times_long_csv,
                                     info.transcribe_truth_csv)]


def _first_frames(info):
    return [read_frames(info.video_path(v), [0])[1][0] for v in [*info.videos, synth.TRANSCRIBE_ID]]


def test_same_seed_same_dataset_other_seed_other_dataset(tmp_path):
    a = synth.make_dataset(tmp_path / "a", seed=7, **SMALL)
    b = synth.make_dataset(tmp_path / "b", seed=7, **SMALL)
    c = synth.make_dataset(tmp_path / "c", seed=8, **SMALL)
    assert _csvs(a) == _csvs(b)
    assert a.readme.read_text() == b.readme.read_text()
    assert all(np.array_equal(x, y) for x, y in zip(_first_frames(a), _first_frames(b)))
    assert _csvs(a)[1:] != _csvs(c)[1:]  # sources.csv names the same files
    assert not any(np.array_equal(x, y) for x, y in zip(_first_frames(a), _first_frames(c)))


def test_same_settings_reuse_the_files_other_settings_replace_them(tmp_path):
    out = tmp_path / "demo"
    synth.make_dataset(out, seed=1, **SMALL)
    video = out / "videos" / "signer1.mp4"
    before = video.stat().st_mtime_ns
    again = synth.make_dataset(out, seed=1, **SMALL)
    assert video.stat().st_mtime_ns == before and again.n_clips == 3 * 2
    other = synth.make_dataset(out, seed=2, **SMALL)
    assert _csvs(other) == _csvs(synth.make_dataset(tmp_path / "fresh", seed=2, **SMALL))
    (out / "transcribe.mp4").unlink()  # an incomplete dataset is made whole again
    synth.make_dataset(out, seed=2, **SMALL)
    assert (out / "transcribe.mp4").is_file()
    assert not list(out.rglob("*signwrite-tmp*"))


@pytest.mark.parametrize("kwargs,name", [
    (dict(n_classes=13), "n_classes=13"),
    (dict(n_classes=1), "n_classes=1"),
    (dict(n_signers=0), "n_signers=0"),
    (dict(takes_per_sign=0), "takes_per_sign=0"),
    (dict(fps=12.5), "fps=12.5"),
    (dict(size=(20, 20)), "size=(20, 20)"),
])
def test_bad_settings_are_refused_before_writing(tmp_path, kwargs, name):
    with pytest.raises(SignwriteError, match=name.replace("(", r"\(").replace(")", r"\)")):
        synth.make_dataset(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_command_line(tmp_path, capsys):
    out = tmp_path / "cli"
    assert synth.main([str(out), "--classes", "2", "--signers", "1", "--takes", "1",
                       "--transcribe-signs", "2", "--seed", "4"]) == 0
    assert len(read_clip_times(out / "video_clip_times_long.csv", read_sources(out / "sources.csv"))) == 2
    assert synth.main([str(tmp_path / "bad"), "--classes", "99"]) == 1
    assert "n_classes=99" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        synth.main(["--help"])
    assert exc.value.code == 0 and "--signers" in capsys.readouterr().out
