"""signwrite.predict: classify videos and transcribe long ones.

The logic is tested against ColourRun (a fake run that classifies frames by colour);
the end-to-end tests at the bottom use a small model trained on generated clips.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from model_fixture import small_run  # noqa: F401  (the session-wide trained model)
from model_fixture import SMALL_CLIP_SECONDS, SMALL_LABELS, ColourRun, class_video, colour_video, truth_times
from signwrite import predict
from signwrite.errors import RunError, VideoError
from signwrite.video import sample_indices
from videotools import frame_number


@pytest.fixture
def fake(monkeypatch):
    """The ColourRun that ``predict --run ANY_FOLDER`` will load."""
    run = ColourRun()
    monkeypatch.setattr(predict, "open_run", lambda path: run)
    return run


def test_samples_exactly_like_extract_frames(numbered_video):
    run = ColourRun(sampling={"size": 64, "frames_per_clip": 5})  # 64 = the test video's short side
    path = numbered_video(seconds=4, fps=10)
    predict.classify_video(run, path)
    assert [frame_number(f) for f in run.calls[0]] == sample_indices(40, 10, frames_per_clip=5)
    predict.classify_video(run, path, start=1.0, end=3.0)
    assert [frame_number(f) for f in run.calls[1]] == [10 + i for i in sample_indices(20, 10, frames_per_clip=5)]


def test_rate_sampling_and_extract_size(numbered_video):
    run = ColourRun(sampling={"size": 32, "frames_per_clip": None, "fps": 2})
    predict.classify_video(run, numbered_video(seconds=3, fps=10))
    frames = run.calls[0]
    assert [frame_number(f) for f in frames] == [2, 7, 12, 17, 22, 27]
    assert {f.shape for f in frames} == {(32, 40, 3)}  # short side resized as extract_frames stores it


def test_classifies_videos_and_prints_top_k(fake, tmp_path, capsys):
    red = colour_video(tmp_path / "red.mp4", [("R", 2)])
    green = colour_video(tmp_path / "green.mp4", [("G", 1), ("R", 0.5)])
    assert predict.main(["--run", str(tmp_path), str(red), str(green), "--top-k", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{red} (0.00-2.00 s, 4 frames)")
    assert out[1].split()[:2] == ["1.", "R"] and out[2].split()[0] == "2."
    assert out[4].split()[:2] == ["1.", "G"]
    assert len(out) == 6


def test_json_is_the_only_thing_on_stdout(fake, tmp_path, capsys):
    video = colour_video(tmp_path / "v.mp4", [("B", 1), ("G", 2)])
    assert predict.main(["--run", str(tmp_path), str(video), "--start", "1", "--end", "3", "--json", "--top-k", "5"]) == 0
    cap = capsys.readouterr()
    obj = json.loads(cap.out)
    (v,) = obj["videos"]
    assert (v["start"], v["end"], v["frames"]) == (1.0, 3.0, 4)
    assert [t["label"] for t in v["top_k"]][0] == "G"
    assert len(v["top_k"]) == 3 and obj["n_classes"] == 3  # all there is, and it says so
    assert "more than the run's 3 classes" in cap.err


def test_bad_video_is_one_line_and_the_others_still_run(fake, tmp_path, capsys):
    good = colour_video(tmp_path / "good.mp4", [("R", 1)])
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video" * 50)
    assert predict.main(["--run", str(tmp_path), str(bad), str(good), "--json"]) == 1
    cap = capsys.readouterr()
    obj = json.loads(cap.out)
    assert "bad.mp4" in obj["videos"][0]["error"]
    assert obj["videos"][1]["top_k"][0]["label"] == "R"
    errors = [line for line in cap.err.splitlines() if "error" in line]
    assert len(errors) == 1 and "bad.mp4" in errors[0]


@pytest.mark.parametrize("start,end", [(2.5, 4.0), (-1, 1), (1.5, 1.0), (0, 9)])
def test_span_outside_the_video_is_refused(tmp_path, start, end):
    video = colour_video(tmp_path / "v.mp4", [("R", 2)])
    with pytest.raises(VideoError, match=r"v\.mp4: the span .* is not inside the video \(0-2\.000 s\)"):
        predict.classify_video(ColourRun(), video, start, end)


def test_span_error_from_the_command_is_one_line(fake, tmp_path, capsys):
    video = colour_video(tmp_path / "v.mp4", [("R", 2)])
    assert predict.main(["--run", str(tmp_path), str(video), "--transcribe", "--start", "3"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("signwrite predict: error:") and "v.mp4" in err[0]


def test_missing_run_folder_is_a_run_error(tmp_path, capsys):
    with pytest.raises(RunError, match="no such run folder"):
        predict.open_run(tmp_path / "nope")
    assert predict.main(["--run", str(tmp_path / "nope"), str(tmp_path / "v.mp4")]) == 1
    assert capsys.readouterr().err.count("\n") == 1


STRETCHES = [(None, 0.8), ("R", 2.0), (None, 1.0), ("G", 1.5), ("B", 2.5), (None, 0.7)]


def test_transcribe_finds_the_sequence_within_a_stride(tmp_path):
    run = ColourRun()
    video = colour_video(tmp_path / "long.mp4", STRETCHES, fps=10)
    result = predict.transcribe_video(run, video, window=1.0, stride=0.25)
    segs = result["segments"]
    assert [s.label for s in segs] == ["R", "G", "B"] and result["text"] == "RGB"
    for seg, (label, start, end) in zip(segs, truth_times(STRETCHES)):
        assert abs(seg.start - start) <= 0.25 and abs(seg.end - end) <= 0.25, (seg, start, end)
        assert seg.confidence > 0.5


def test_transcribe_decodes_once_and_classifies_each_frame_once(tmp_path, monkeypatch):
    run = ColourRun()
    video = colour_video(tmp_path / "long.mp4", STRETCHES, fps=10)
    passes = []
    real = predict.iter_frames
    monkeypatch.setattr(predict, "iter_frames", lambda path, wanted: passes.append(1) or real(path, wanted))
    monkeypatch.setattr(predict, "read_sampled", None)  # the per-clip reader must not be used
    result = predict.transcribe_video(run, video, window=1.0, stride=0.25, batch_size=7)
    assert passes == [1]
    n_windows = len(result["windows"]["start"])
    assert result["stride"] == 0.2  # 0.25 s is 2.5 frames at 10 fps: a whole number of frames
    assert n_windows == 39  # 85 frames: windows of 10 start at 0, 2, ... 74, and 75 to reach the end
    # every sampled frame goes through the model once, however many windows share it
    plan = predict.plan_windows(0, 85, 10, 10, 2, predict.sampling_kwargs(run))
    assert run.frames_seen == len({i for _, _, idx in plan for i in idx}) < n_windows * 4
    assert max(len(c) for c in run.calls) <= 7


def test_default_window_comes_from_the_run(tmp_path):
    video = colour_video(tmp_path / "v.mp4", [("R", 4)], fps=10)
    r = predict.transcribe_video(ColourRun(sampling={"frames_per_clip": 5}), video)
    assert (r["window"], r["stride"]) == (1.0, 0.2)  # 10 frames every 2: the sampling step, shared
    r = predict.transcribe_video(ColourRun(config={}, sampling={"frames_per_clip": 5}), video)
    assert (r["window"], r["stride"]) == (1.5, 0.3)  # no clip length in the run: 1.5 s


def test_transcribe_command_writes_csv_srt_and_json(fake, tmp_path, capsys):
    video = colour_video(tmp_path / "long.mp4", STRETCHES, fps=10)
    run_dir = tmp_path / "logs" / "run1"
    run_dir.mkdir(parents=True)
    srt = tmp_path / "long.srt"
    argv = ["--run", str(run_dir), str(video), "--transcribe", "--window", "1", "--stride", "0.25",
            "--srt", str(srt), "--json", "--expect", "RGBR"]
    assert predict.main(argv) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["text"] == "RGB" and [s["label"] for s in obj["segments"]] == ["R", "G", "B"]
    assert set(obj["segments"][0]) == {"label", "start", "end", "confidence"}
    assert (obj["edit_distance"], obj["in_order"]) == (1, 3)
    csv = run_dir / "transcripts" / "long.csv"  # the default: next to the model that made it
    assert obj["csv"] == str(csv)
    df = pd.read_csv(csv)
    assert df["label"].tolist() == ["R", "G", "B"]
    assert np.allclose(df["start"], [s["start"] for s in obj["segments"]])
    saved = json.loads((run_dir / "transcripts" / "long.json").read_text())  # the settings used
    assert saved["text"] == "RGB" and saved["stride"] == obj["stride"] and saved["min_windows"] == 1
    assert srt.read_text().startswith("1\n00:00:00,")
    assert srt.read_text().count(" --> ") == 3


def test_transcribe_prints_the_text_and_never_overwrites_the_video(fake, tmp_path, capsys):
    video = colour_video(tmp_path / "long.mp4", STRETCHES, fps=10)
    before = video.read_bytes()
    assert predict.main(["--run", str(tmp_path), str(video), "--transcribe", "--out", str(tmp_path / "t.csv")]) == 0
    assert capsys.readouterr().out == "RGB\n"
    assert predict.main(["--run", str(tmp_path), str(video), "--transcribe", "--out", str(video)]) == 1
    assert "input video" in capsys.readouterr().err
    assert video.read_bytes() == before


def test_transcribe_takes_one_video(tmp_path):
    with pytest.raises(SystemExit):
        predict.main(["--run", str(tmp_path), "a.mp4", "b.mp4", "--transcribe"])


def test_a_folder_that_is_not_a_run_is_one_line(tmp_path, capsys):
    video = colour_video(tmp_path / "v.mp4", [("R", 1)])
    (tmp_path / "notrun").mkdir()
    (tmp_path / "notrun" / "config.json").write_text("{}")
    assert predict.main(["--run", str(tmp_path / "notrun"), str(video)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.keras: missing" in err[0]


# -- end to end, with a small model trained on generated frames (tests/model_fixture.py) ------

SEQUENCE = [("red_disk", 2.0), ("green_bar", 2.5), ("blue_box", 2.0), ("red_disk", 1.5), ("blue_box", 2.0)]


@pytest.mark.slow
def test_predict_names_the_class_of_held_out_clips(small_run, tmp_path, capsys):
    videos = [class_video(tmp_path / f"{label}.mp4", [(label, 2.0)], seed=10 + i)
              for i, label in enumerate(SMALL_LABELS)]
    assert predict.main(["--run", str(small_run), *map(str, videos), "--json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert [v["video"] for v in obj["videos"]] == list(map(str, videos))  # one answer per video, in order
    assert all(v["frames"] == 6 for v in obj["videos"])  # the run's sampling: 6 frames per clip
    # Margins any correct model clears on these four shapes (not one machine's exact figures):
    # every clip's own class in its top 2, at least 3 of 4 first, and those with a clear lead
    ranks = [[t["label"] for t in v["top_k"]].index(label) for v, label in zip(obj["videos"], SMALL_LABELS)]
    assert max(ranks) <= 1 and ranks.count(0) >= len(SMALL_LABELS) - 1, ranks
    leads = [v["top_k"][0]["probability"] - v["top_k"][1]["probability"] for v, r in zip(obj["videos"], ranks) if r == 0]
    assert min(leads) > 0.2, leads


@pytest.mark.slow
def test_transcribe_a_long_video_of_known_signs(small_run, tmp_path):
    from signwrite.run import load_run

    video = class_video(tmp_path / "long.mp4", SEQUENCE, seed=20)
    result = predict.transcribe_video(load_run(small_run), video)
    # from the run's config, give or take the 2 frames that let windows share frames
    assert abs(result["window"] - SMALL_CLIP_SECONDS) <= 0.2 + 1e-9
    stride = result["stride"]
    segs = result["segments"]
    truth = truth_times(SEQUENCE)
    # the five signs in order (what a correct model reads on these shapes on any machine); the
    # text is the segments' labels
    assert [s.label for s in segs] == [label for label, _, _ in truth]
    assert result["text"] == " ".join(s.label for s in segs)
    for seg, (label, start, end) in zip(segs, truth):
        # within one stride of the truth; the epsilon only absorbs float rounding (8.3 - 8.0 = 0.3000000000000007)
        assert abs(seg.start - start) <= stride + 1e-9 and abs(seg.end - end) <= stride + 1e-9, (seg, start, end, stride)


@pytest.mark.slow
def test_transcribe_command_prints_only_json_on_stdout(small_run, tmp_path):
    video = class_video(tmp_path / "long.mp4", SEQUENCE[:3], seed=30)
    srt = tmp_path / "long.srt"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"}  # TensorFlow's chatter must stay on stderr
    proc = subprocess.run([sys.executable, "-m", "signwrite.predict", "--run", str(small_run), str(video),
                           "--transcribe", "--json", "--srt", str(srt)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    obj = json.loads(proc.stdout)
    assert obj["text"] == "red_disk green_bar blue_box"
    assert [s["label"] for s in obj["segments"]] == ["red_disk", "green_bar", "blue_box"]
    assert (small_run / "transcripts" / "long.csv").is_file()
    assert srt.read_text().count(" --> ") == 3
    # TensorFlow's native start-up lines (CUDA probing, oneDNN notes) are filtered without -v;
    # signwrite's own lines stay
    assert "cuInit" not in proc.stderr and "absl::InitializeLog" not in proc.stderr, proc.stderr
    assert "windows of" in proc.stderr
