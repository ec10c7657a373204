"""signwrite.live: a video played as a camera, the rolling window, the SQLite record.

The logic is tested against ColourRun (a fake run that classifies frames by colour);
the end-to-end test at the bottom runs the command on a small trained model.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from model_fixture import small_run  # noqa: F401  (the session-wide trained model)
from model_fixture import SMALL_CLIP_SECONDS, ColourRun, class_video, colour_video, truth_times
from signwrite import live

STRETCHES = [("R", 2.0), ("G", 2.0)]  # 40 frames at 10 fps; the fake run's window is 1 s


def rows(db, session=None):
    with sqlite3.connect(db) as conn:
        q = "SELECT label, probability, run, source, session, stream_time FROM predictions"
        args = ()
        if session:
            q, args = q + " WHERE session = ?", (session,)
        return conn.execute(q + " ORDER BY id", args).fetchall()


def settings(tmp_path, video, **kw):
    kw = {"show": False, "realtime": False, **kw}
    return live.LiveSettings(run=tmp_path / "logs" / "run1", video=video, db=tmp_path / "live.sqlite", **kw)


def test_video_rows_name_the_sign_on_screen(tmp_path):
    video = colour_video(tmp_path / "v.mp4", STRETCHES)
    s = settings(tmp_path, video)
    summary = live.live(s, run=ColourRun())
    assert (summary["frames"], summary["dropped"]) == (40, 0)  # --no-realtime: every frame, none dropped
    got = rows(s.db)
    assert len(got) == summary["rows"] > 0
    # predictions start once the window (1 s = 10 frames) is full: the 10th frame, at 0.9 s
    assert min(r[5] for r in got) == pytest.approx(0.9)
    by_time = {round(r[5], 2): r[0] for r in got}
    assert all(label == "R" for t, label in by_time.items() if t < 2.4)  # window mostly red
    assert all(label == "G" for t, label in by_time.items() if t > 2.6)  # window mostly green
    assert by_time[3.9] == "G"
    assert all(p >= live.DEFAULT_THRESHOLD for p in (r[1] for r in got))
    assert {(r[2], r[3]) for r in got} == {(str(s.run), str(video))}


def test_a_new_session_appends(tmp_path):
    video = colour_video(tmp_path / "v.mp4", STRETCHES)
    s = settings(tmp_path, video)
    first = live.live(s, run=ColourRun())
    before = rows(s.db)
    second = live.live(s, run=ColourRun())  # at once: even in the same millisecond, a new session
    after = rows(s.db)
    assert after[:len(before)] == before
    assert len(after) == first["rows"] + second["rows"] == 2 * len(before)
    assert len({r[4] for r in after}) == 2
    assert [r[0] for r in rows(s.db, second["session"])] == [r[0] for r in before]
    assert {r[4] for r in after} == {first["session"], second["session"]}


def test_sessions_started_in_the_same_millisecond_stay_apart(tmp_path, monkeypatch):
    video = colour_video(tmp_path / "v.mp4", STRETCHES)
    s = settings(tmp_path, video, max_frames=15)
    monkeypatch.setattr(live, "now_iso", lambda: "2026-01-01T00:00:00.000+00:00")  # a frozen clock
    names = [live.live(s, run=ColourRun())["session"] for _ in range(3)]
    assert len(set(names)) == 3 and names[0] == "2026-01-01T00:00:00.000+00:00"
    assert [len(rows(s.db, name)) for name in names] == [6, 6, 6]  # frames 10..15 of each session


def test_threshold_controls_what_is_recorded(tmp_path):
    video = colour_video(tmp_path / "v.mp4", STRETCHES)
    loose = live.live(settings(tmp_path, video, threshold=0.0), run=ColourRun())
    assert loose["rows"] == 31  # every classified frame: 0.9 s .. 3.9 s
    strict = live.live(settings(tmp_path, video, threshold=0.999), run=ColourRun())
    assert strict["rows"] < loose["rows"]


def test_stopping_with_ctrl_c_keeps_every_row(tmp_path):
    video = colour_video(tmp_path / "v.mp4", STRETCHES)
    s = settings(tmp_path, video)

    class InterruptedRun(ColourRun):
        def predict_frames(self, frames):
            if self.frames_seen == 25:
                os.kill(os.getpid(), signal.SIGINT)  # as if the user pressed Ctrl-C here
            return super().predict_frames(frames)

    summary = live.live(s, run=InterruptedRun())
    assert summary["frames"] == 26  # the frame being classified is finished, then the loop stops
    with sqlite3.connect(s.db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert len(rows(s.db)) == summary["rows"] == 26 - 9
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back
    again = live.live(s, run=ColourRun())
    assert len(rows(s.db)) == summary["rows"] + again["rows"]


def test_max_frames(tmp_path):
    video = colour_video(tmp_path / "v.mp4", STRETCHES)
    assert live.live(settings(tmp_path, video, max_frames=12), run=ColourRun())["frames"] == 12


def test_realtime_video_drops_frames_when_the_model_is_slow(tmp_path):
    video = colour_video(tmp_path / "fast.mp4", [("R", 1.0), ("G", 1.0)], fps=50)
    s = settings(tmp_path, video, realtime=True)
    run = ColourRun(delay=0.05)  # 20 frames/s against a 50 fps video
    summary = live.live(s, run=run)
    assert summary["frames"] == run.frames_seen
    assert summary["dropped"] > 0
    assert summary["frames"] + summary["dropped"] <= 100  # never more than the video holds
    assert summary["frames"] + summary["dropped"] >= 99  # ... and played to (nearly) its last frame


def test_rolling_window_holds_the_last_seconds_and_samples_like_training():
    w = live.RollingWindow(1.0, {"frames_per_clip": 4, "rate": None, "all_frames": False})
    for i in range(25):
        p = np.zeros(25)
        p[i] = 1
        w.add(i / 10, p)
        assert w.full(0.1) == (i >= 9)
    assert [t for t, _ in w.items] == pytest.approx([1.5 + i / 10 for i in range(10)])
    # 4 frames spread over the 10 held (indices 1, 3, 6, 8 -> frames 16, 18, 21, 23)
    assert np.flatnonzero(w.probs(lambda p: p.mean(0))).tolist() == [16, 18, 21, 23]


def test_command_prints_top3_and_uses_the_default_db(tmp_path, monkeypatch, capsys):
    video = colour_video(tmp_path / "v.mp4", STRETCHES)
    run_dir = tmp_path / "logs" / "run1"
    run_dir.mkdir(parents=True)
    monkeypatch.setattr(live, "open_run", lambda path: ColourRun())
    assert live.main(["--run", str(run_dir), "--video", str(video), "--no-window", "--no-realtime"]) == 0
    cap = capsys.readouterr()
    lines = cap.out.splitlines()
    assert lines and all(line.count("|") == 2 and line.endswith("fps)") for line in lines)
    assert lines[0].split()[2] == "R" and lines[-1].split()[2] == "G"
    assert (tmp_path / "logs" / "live.sqlite").is_file()  # default: next to the run folder
    assert len(rows(tmp_path / "logs" / "live.sqlite")) > 0
    assert "fps" in cap.err and "dropped" in cap.err


def test_not_a_database_is_one_clear_line(tmp_path, monkeypatch, capsys):
    video = colour_video(tmp_path / "v.mp4", STRETCHES)
    bad = tmp_path / "notes.txt"
    bad.write_text("these are my notes, not a database\n" * 100)
    monkeypatch.setattr(live, "open_run", lambda path: ColourRun())
    assert live.main(["--run", str(tmp_path), "--video", str(video), "--no-window", "--db", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "notes.txt" in err[0] and "--db" in err[0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="only Linux needs DISPLAY")
def test_no_display_is_a_clear_error_not_a_crash(tmp_path, monkeypatch, capsys):
    video = colour_video(tmp_path / "v.mp4", STRETCHES)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(live, "open_run", lambda path: pytest.fail("the model is loaded before the check"))
    assert live.main(["--run", str(tmp_path), "--video", str(video), "--db", str(tmp_path / "x.sqlite")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--no-window" in err[0]


def test_overlay_draws_the_top3():
    frame = np.zeros((240, 320, 3), np.uint8)
    out = live.draw_overlay(frame.copy(), [{"label": "A", "probability": 0.9}, {"label": "B", "probability": 0.05},
                                           {"label": "C", "probability": 0.05}], 12.5)
    assert out[:100].any() and out[-20:].any() and not out[110:200].any()


# -- end to end: the command on a small trained model, stopped midway with Ctrl-C ---------------

SEQUENCE = [("red_disk", 4.0), ("green_bar", 4.0), ("blue_box", 4.0)]


def readline_within(proc, seconds: float) -> str:
    """The process's next stdout line, or a failure after ``seconds`` (never a hang)."""
    import queue
    import threading

    lines = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=seconds)
    except queue.Empty:
        proc.kill()
        pytest.fail(f"no line on stdout within {seconds} s; stderr: {proc.stderr.read()[-2000:]}")


def label_at(t: float, window: float = SMALL_CLIP_SECONDS):
    """The sign a window ending at stream time t shows, if it lies wholly inside one sign."""
    for label, start, end in truth_times(SEQUENCE):
        if start <= t - window + 0.1 and t + 0.1 <= end:
            return label
    return None


@pytest.mark.slow
def test_live_command_records_the_signs_and_survives_ctrl_c(small_run, tmp_path):
    video = class_video(tmp_path / "signs.mp4", SEQUENCE, seed=40)
    db = tmp_path / "live.sqlite"
    cmd = [sys.executable, "-m", "signwrite.live", "--run", str(small_run), "--video", str(video),
           "--no-window", "--db", str(db)]
    # first session: in real time, stopped with Ctrl-C once it has printed a prediction
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first_line = readline_within(proc, 180)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert first_line.split()[2] == "red_disk", (first_line, err)
    assert proc.returncode == 0, err
    assert "fps" in err and "recorded" in err
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    first = rows(db)
    assert first and len({r[4] for r in first}) == 1
    assert max(r[5] for r in first) < 12 - 1  # stopped before the video's end

    # second session: every frame, to the end; it appends
    done = subprocess.run(cmd + ["--no-realtime"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    every = rows(db)
    assert every[:len(first)] == first
    second = every[len(first):]
    assert len({r[4] for r in second}) == 1 and second[0][4] != first[0][4]
    # 12 s at 10 fps; the first prediction once the 1.8 s window is full (the 18th frame, 1.7 s)
    assert len(second) <= 120 - 17
    assert {r[2] for r in every} == {str(small_run)} and {r[3] for r in every} == {str(video)}
    judged = [(r[0], label_at(r[5])) for r in second if label_at(r[5])]
    assert len(judged) >= 50
    # a margin a correct model clears on any machine, not one machine's exact count: nine in ten
    # windows that lie wholly inside a sign name it, and each sign is what most of its windows say
    assert sum(got == want for got, want in judged) >= 0.9 * len(judged), judged
    for label, _ in SEQUENCE:
        said = [got for got, want in judged if want == label]
        assert said and max(set(said), key=said.count) == label, (label, said)
    assert [r[0] for r in second][-1] == "blue_box"
