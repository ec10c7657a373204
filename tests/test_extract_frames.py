"""extract_frames: exact sampled frames, the frames.csv contract, idempotence, atomicity
under kill/Ctrl-C, bad clips, refused setting changes, contact sheets, jobs and shards.

Clips are tiny generated videos whose frames carry their own index (videotools), so a
test decodes each written JPEG and checks which frame of the clip it is.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from signwrite import cli, video
from signwrite.clip_times import clip_id
from signwrite.errors import InputError, SignwriteError
from signwrite.extract_frames import ExtractSettings, extract_frames, main
from signwrite.fsutil import TMP_MARK
from videotools import frame_number, make_numbered_video

REPO = Path(__file__).resolve().parents[1]
FPS = 10
SIZE = 48  # small frames keep the tests fast; frame_number still reads them

# (split, label, video, start, end, seconds of footage): the clip file holds
# round(seconds * FPS) frames, numbered from 0.
CLIPS = [
    ("train", "A", "v1", "0.5", "3", 2.5),  # 25 frames
    ("train", "A", "v1", "3.25", "7.25", 4.0),  # 40 frames
    ("train", "B", "v1", "8", "8.7", 0.7),  # 7 frames: fewer than 16, all kept once
    ("test", "A", "v2", "1", "3", 2.0),  # 20 frames
    ("test", "B", "v2", "4", "7", 3.0),  # 30 frames
]


def write_clips(data_dir: Path, clips, *, fps=FPS, **video_kw) -> pd.DataFrame:
    """Make the clip files and data/clips/clips.csv the way fetch writes them (with the frames
    column an older fetch also wrote: extract_frames ignores it)."""
    rows = []
    for split, label, vid, start, end, seconds in clips:
        cid = clip_id(vid, label, float(start), float(end))
        rel = Path("clips", split, label, f"{cid}.mp4")
        make_numbered_video(data_dir / rel, seconds, fps, gop=10, **video_kw)
        rows.append({"clip_id": cid, "label": label, "video": vid, "start": start, "end": end,
                     "split": split, "path": rel.as_posix(), "frames": video.probe(data_dir / rel).n_frames})
    table = pd.DataFrame(rows).sort_values(["split", "label", "clip_id"])
    table.to_csv(data_dir / "clips" / "clips.csv", index=False)
    return table


def read_clips_csv(data_dir: Path) -> pd.DataFrame:
    return pd.read_csv(data_dir / "clips" / "clips.csv", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    data = tmp_path_factory.mktemp("template") / "data"
    write_clips(data, CLIPS)
    return data


@pytest.fixture
def data_dir(template, tmp_path):
    """A fresh copy of the template data folder (clips and clips.csv only)."""
    dst = tmp_path / "data"
    shutil.copytree(template, dst)
    return dst


def extract(data_dir, **kw):
    kw.setdefault("jobs", 1)
    kw.setdefault("size", SIZE)
    return extract_frames(ExtractSettings(data_dir=data_dir, **kw))


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes), the lock file aside."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.endswith(".lock")}


def backdate(folder: Path, seconds: int = 3600) -> None:
    """Move every mtime under ``folder`` an hour back, so that any rewrite shows in the mtimes
    (instead of sleeping past the file system's timestamp granularity)."""
    for p in [folder, *folder.rglob("*")]:
        st = p.stat()
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns - seconds * 10**9))


def stamps(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.rglob("*")}


def temps(folder: Path) -> list[Path]:
    return list(folder.rglob(f"*{TMP_MARK}*"))


def jpegs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.jpg"))


# --------------------------------------------------------------------------- which frames


@pytest.mark.parametrize("mode,counts", [
    ({}, [16, 16, 7, 16, 16]),
    ({"fps": 2.5}, [6, 10, 1, 5, 7]),
    ({"all_frames": True}, [25, 40, 7, 20, 30]),
])
def test_writes_exactly_the_sampled_frames(data_dir, mode, counts):
    report = extract(data_dir, **mode)
    assert (report.extracted, report.failed) == (5, [])
    clips = read_clips_csv(data_dir)
    by_id = {clip_id(v, lab, float(s), float(e)): n for (_, lab, v, s, e, _), n in zip(CLIPS, counts)}
    for row in clips.itertuples():
        info = video.probe(data_dir / row.path)
        expected = video.sample_indices(info.n_frames, info.fps, frames_per_clip=16 if not mode else None,
                                        rate=mode.get("fps"), all_frames=mode.get("all_frames", False))
        assert len(expected) == by_id[row.clip_id]
        folder = data_dir / "frames" / row.split / row.label / row.clip_id
        files = jpegs(folder)
        assert [p.name for p in files] == [f"{row.clip_id}-{i:04d}.jpg" for i in expected]
        assert [frame_number(cv2.imread(str(p))) for p in files] == expected


@pytest.mark.parametrize("size,shape", [(32, (32, 40)), (299, (299, 374))])
def test_short_side_is_size_and_aspect_kept(data_dir, size, shape):
    extract(data_dir, size=size)
    files = list((data_dir / "frames").glob("*/*/*/*.jpg"))
    assert len(files) == 16 + 16 + 7 + 16 + 16
    assert {cv2.imread(str(p)).shape[:2] for p in files} == {shape}  # 80x64 -> aspect 5:4 kept


# --------------------------------------------------------------------------- outputs


def test_frames_csv_and_config_follow_the_contract(data_dir):
    extract(data_dir)
    frames_dir = data_dir / "frames"
    lines = (frames_dir / "frames.csv").read_text().splitlines()
    assert lines[0] == "split,label,clip_id,video,start,end,fps,n_frames,frames,landmarks,hand_frames,crops"
    table = pd.read_csv(frames_dir / "frames.csv", dtype=str, keep_default_na=False)
    assert (table[["landmarks", "hand_frames", "crops"]] == "").all().all()  # no --hands: no hands listed
    clips = read_clips_csv(data_dir)
    assert list(zip(table.split, table.label, table.clip_id)) == sorted(zip(clips.split, clips.label, clips.clip_id))
    assert [r.split for r in table.itertuples()] == ["test", "test", "train", "train", "train"]
    merged = table.merge(clips, on="clip_id", suffixes=("", "_clip"))
    assert len(merged) == 5
    for r in merged.itertuples():
        assert (r.label, r.video, r.start, r.end, r.split) == (r.label_clip, r.video_clip, r.start_clip,
                                                               r.end_clip, r.split_clip)
        assert float(r.fps) == FPS
        paths = r.frames.split(";")
        assert int(r.n_frames) == len(paths) == len(jpegs(frames_dir / r.split / r.label / r.clip_id))
        prefix = f"{r.split}/{r.label}/{r.clip_id}/{r.clip_id}-"
        assert all(p.startswith(prefix) and p.endswith(".jpg") for p in paths)
        idx = [int(p[len(prefix):-4]) for p in paths]
        assert idx == sorted(idx)
        # a frame's time is start + NNNN / fps: the JPEG holds that frame of the clip
        assert [frame_number(cv2.imread(str(frames_dir / p))) for p in paths] == idx
    assert json.loads((frames_dir / "extract_config.json").read_text()) == {
        "frames_per_clip": 16, "fps": None, "all_frames": False, "size": SIZE, "jpeg_quality": 95}


def test_fps_mode_config(data_dir):
    extract(data_dir, fps=2.5)
    config = json.loads((data_dir / "frames" / "extract_config.json").read_text())
    assert (config["frames_per_clip"], config["fps"], config["all_frames"]) == (None, 2.5, False)


def test_rerun_is_a_no_op(data_dir):
    assert main(["--data-dir", str(data_dir), "--jobs", "1", "--size", str(SIZE)]) == 0
    frames_dir = data_dir / "frames"
    backdate(frames_dir)
    before = stamps(frames_dir)
    report = extract(data_dir)
    assert (report.extracted, report.already_done, report.listed) == (0, 5, 5)
    assert stamps(frames_dir) == before
    assert "0 extracted, 5 already done" in report.summary()


def test_missing_clips_csv_says_run_fetch(tmp_path, capsys):
    assert main(["--data-dir", str(tmp_path / "data")]) == 1
    err = capsys.readouterr().err
    assert "clips.csv" in err and "signwrite fetch" in err
    assert not (tmp_path / "data" / "frames").exists()


def test_bad_clips_csv_rows_are_all_reported_before_writing(data_dir):
    clips = read_clips_csv(data_dir)
    clips.loc[0, "split"] = "val"
    clips.loc[1, "label"] = "../x"
    clips.to_csv(data_dir / "clips" / "clips.csv", index=False)
    with pytest.raises(InputError) as err:
        extract(data_dir)
    assert len(err.value.problems) == 2 and "line 2" in str(err.value) and "line 3" in str(err.value)
    assert not (data_dir / "frames").exists()


# --------------------------------------------------------------------------- interruption


def _clip_folders(frames_dir: Path) -> list[Path]:
    return [p for p in frames_dir.glob("*/*/*") if p.is_dir() and not p.name.startswith(".")
            and p.parent.parent.name in ("train", "test")]


def _descendants(pid: int) -> list[int]:
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    found, todo = [], [pid]
    while todo:
        kids = [c for c, p in parents.items() if p == todo[-1]]
        todo.pop()
        found += kids
        todo += kids
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def big_template(tmp_path_factory):
    """Eight clips large enough (100 frames, 320x240) that a run can be stopped midway."""
    data = tmp_path_factory.mktemp("big") / "data"
    clips = [("train" if i < 6 else "test", "AB"[i % 2], f"v{i // 6}", str(i * 10), str(i * 10 + 4), 4.0)
             for i in range(8)]
    write_clips(data, clips, fps=25, width=320, height=240)
    reference = tmp_path_factory.mktemp("big_ref") / "data"
    shutil.copytree(data, reference)
    extract_frames(ExtractSettings(data_dir=reference, all_frames=True, jobs=1))
    return data, tree(reference / "frames")


@pytest.mark.parametrize("sig,jobs", [(signal.SIGKILL, 2), (signal.SIGINT, 2), (signal.SIGINT, 1)])
def test_stopped_run_then_rerun_equals_uninterrupted_run(big_template, tmp_path, sig, jobs):
    template, reference = big_template
    data_dir = tmp_path / "data"
    shutil.copytree(template, data_dir)
    frames_dir = data_dir / "frames"
    proc = subprocess.Popen([sys.executable, "-m", "signwrite.extract_frames", "--data-dir", str(data_dir),
                             "--all-frames", "--jobs", str(jobs)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    workers = set()
    try:
        while proc.poll() is None and not _clip_folders(frames_dir):
            if sys.platform.startswith("linux"):
                workers.update(_descendants(proc.pid))
            time.sleep(0.002)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    done = _clip_folders(frames_dir)
    assert 0 < len(done) < 8, "the run was not stopped midway"
    assert not (frames_dir / "frames.csv").exists()
    for folder in done:  # whatever was renamed into place is whole
        assert len(jpegs(folder)) == 100
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and b"interrupted" in err
        assert temps(data_dir) == []  # the stopped workers' temp folders are removed on the way out
    else:
        assert proc.returncode == -signal.SIGKILL
        # the fork server and the pool workers die with the run instead of living on as orphans
        assert workers or not sys.platform.startswith("linux")
        deadline = time.monotonic() + 30
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(map(_alive, workers))

    report = extract_frames(ExtractSettings(data_dir=data_dir, all_frames=True, jobs=jobs))
    assert report.failed == [] and report.extracted == 8 - len(done)
    assert tree(frames_dir) == reference
    assert temps(data_dir) == []


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("jobs", [1, 2])
def test_unreadable_clips_are_reported_and_skipped(data_dir, capsys, jobs):
    clips = read_clips_csv(data_dir)
    garbage, empty, missing = clips.iloc[0], clips.iloc[2], clips.iloc[4]
    (data_dir / garbage.path).write_bytes(b"not a video at all " * 200)
    (data_dir / empty.path).write_bytes(b"")
    (data_dir / missing.path).unlink()

    rc = main(["--data-dir", str(data_dir), "--jobs", str(jobs), "--size", str(SIZE)])
    out = capsys.readouterr().out
    assert rc == 1
    assert "2 extracted, 0 already done, 3 failed" in out
    for bad in (garbage, empty, missing):
        assert f"  {bad.clip_id}: " in out and Path(bad.path).name in out
        assert not (data_dir / "frames" / bad.split / bad.label / bad.clip_id).exists()
    assert "empty (0 bytes)" in out and "no such video file" in out
    listed = pd.read_csv(data_dir / "frames" / "frames.csv", dtype=str)
    good = set(clips.clip_id) - {garbage.clip_id, empty.clip_id, missing.clip_id}
    assert set(listed.clip_id) == good and len(good) == 2
    for cid in good:
        row = clips[clips.clip_id == cid].iloc[0]
        assert len(jpegs(data_dir / "frames" / row.split / row.label / cid)) == 16
    assert temps(data_dir) == []


@pytest.mark.parametrize("flags", [["--frames-per-clip", "8"], ["--fps", "5"], ["--all-frames"],
                                   ["--size", "32"]])
def test_changed_settings_are_refused(data_dir, capsys, flags):
    extract(data_dir)
    before = stamps(data_dir / "frames")
    if "--size" not in flags:
        flags = flags + ["--size", str(SIZE)]
    assert main(["--data-dir", str(data_dir), "--jobs", "1", *flags]) == 1
    err = capsys.readouterr().err
    assert "extract_config.json" in err and f"delete {data_dir / 'frames'}" in err
    assert f"--frames-per-clip 16 --size {SIZE}" in err  # how to carry on with the old settings
    assert stamps(data_dir / "frames") == before
    assert main(["--data-dir", str(data_dir), "--jobs", "1", "--size", str(SIZE)]) == 0


def test_frames_without_a_config_are_not_mixed(data_dir):
    extract(data_dir)
    (data_dir / "frames" / "extract_config.json").unlink()
    with pytest.raises(SignwriteError, match="no extract_config.json"):
        extract(data_dir, size=32)


def test_bad_flags(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--fps", "2", "--all-frames"])
    assert exc.value.code == 2 and "not allowed with" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--size", "0"])
    assert exc.value.code == 2 and "received '0'" in capsys.readouterr().err
    assert main(["--data-dir", str(tmp_path), "--shard", "2/2"]) == 1
    assert "--shard must look like I/N" in capsys.readouterr().err


# --------------------------------------------------------------------------- contact sheets


def _height(path: Path) -> int:
    return cv2.imread(str(path)).shape[0]


def test_contact_sheet_has_one_row_per_clip_and_redraws_only_what_changed(tmp_path):
    data_dir = tmp_path / "data"
    clips = [("train", "A", "v1", "0", "2", 2.0),
             ("train", "B", "v1", "10", "12", 2.0), ("test", "B", "v2", "0", "2", 2.0),
             ("train", "C", "v1", "20", "22", 2.0), ("train", "C", "v1", "30", "32", 2.0),
             ("test", "C", "v2", "10", "12", 2.0)]
    write_clips(data_dir, clips)
    report = extract(data_dir)
    sheets = data_dir / "frames" / "contact_sheets"
    assert report.sheets_written == 3
    assert sorted(p.name for p in sheets.glob("*.jpg")) == ["A.jpg", "B.jpg", "C.jpg"]
    h1, h2, h3 = (_height(sheets / f"{lab}.jpg") for lab in "ABC")
    assert h1 < h2 < h3 and h3 - h2 == h2 - h1  # one equal-height row per clip

    backdate(sheets)
    before = stamps(sheets)
    write_clips(data_dir, clips + [("test", "A", "v2", "20", "22", 2.0)])  # a second clip of A
    report = extract(data_dir)
    assert (report.extracted, report.sheets_written) == (1, 1)
    assert _height(sheets / "A.jpg") == h2
    after = stamps(sheets)
    assert after["A.jpg"] != before["A.jpg"]
    assert (after["B.jpg"], after["C.jpg"]) == (before["B.jpg"], before["C.jpg"])

    (sheets / "B.jpg").unlink()  # a missing sheet is drawn again
    assert extract(data_dir).sheets_written == 1 and (sheets / "B.jpg").is_file()


def test_clips_dropped_from_clips_csv_leave_the_index_and_sheets(data_dir, caplog):
    extract(data_dir)
    clips = read_clips_csv(data_dir)
    clips[clips.label != "B"].to_csv(data_dir / "clips" / "clips.csv", index=False)
    report = extract(data_dir)
    assert report.listed == 3 and report.labels == 1
    assert set(pd.read_csv(data_dir / "frames" / "frames.csv").label) == {"A"}
    sheets = data_dir / "frames" / "contact_sheets"
    assert sorted(p.name for p in sheets.glob("*.jpg")) == ["A.jpg"]  # B's sheet would mislead
    assert "2 clip folder(s)" in caplog.text and "not in clips.csv" in caplog.text
    assert len(_clip_folders(data_dir / "frames")) == 5  # left alone, not deleted


def test_labels_beyond_ascii(tmp_path):
    data_dir = tmp_path / "data"
    write_clips(data_dir, [("train", "привет", "v1", "0", "2", 2.0), ("test", "día", "v2", "0", "1.5", 1.5)])
    report = extract(data_dir)
    assert (report.extracted, report.failed) == (2, [])
    table = pd.read_csv(data_dir / "frames" / "frames.csv")
    assert set(table.label) == {"привет", "día"} and list(table.n_frames) == [15, 16]
    for path in ";".join(table.frames).split(";"):
        assert (data_dir / "frames" / path).is_file()
    assert {p.name for p in (data_dir / "frames" / "contact_sheets").glob("*.jpg")} == {"привет.jpg", "día.jpg"}


# --------------------------------------------------------------------------- jobs and shards


def test_one_and_two_jobs_write_identical_files(data_dir, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(data_dir / "clips", other / "clips")
    extract(data_dir, jobs=1)
    extract(other, jobs=2)
    one, two = tree(data_dir / "frames"), tree(other / "frames")
    assert len([k for k in one if k.endswith(".jpg") and "contact_sheets" not in k]) == 71
    assert one == two


def threads_asleep(timeout: float = 10) -> None:
    """Wait until every other thread of this process is asleep (Linux: state S in /proc),
    as OpenCV's pool threads are once they stop spinning after their work."""
    if not sys.platform.startswith("linux"):
        time.sleep(0.5)
        return
    me = threading.get_native_id()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = []
        for task in Path("/proc/self/task").iterdir():
            if int(task.name) != me:
                try:
                    states.append((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
                except OSError:  # the thread ended meanwhile
                    pass
        if all(state in "SD" for state in states):
            return
        time.sleep(0.01)
    pytest.fail(f"threads still running after {timeout} s: {states}")


@pytest.mark.timeout(120)  # a regression hangs rather than fails
def test_workers_start_clean_whatever_the_caller_did_before(data_dir, tmp_path):
    """A caller that ran OpenCV's own thread pool, and has threads of its own, still gets
    working workers (forked copies of that pool used to hang them) and the same files."""
    other = tmp_path / "other"
    shutil.copytree(data_dir / "clips", other / "clips")
    extract(data_dir, jobs=1)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(2)
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        big = np.zeros((1080, 1920, 3), np.uint8)
        for _ in range(3):
            cv2.resize(big, (1000, 560), interpolation=cv2.INTER_AREA)  # starts OpenCV's pool
        threads_asleep()  # its threads stop spinning and sleep on a condition variable
        report = extract(other, jobs=2)
    finally:
        stop.set()
        thread.join()
        cv2.setNumThreads(threads)
    assert report.extracted == 5
    assert tree(other / "frames") == tree(data_dir / "frames")


def test_shards_then_a_full_run_write_the_index(data_dir, tmp_path):
    reference = tmp_path / "reference"
    shutil.copytree(data_dir / "clips", reference / "clips")
    extract(reference)
    r0 = extract(data_dir, shard=(0, 2))
    r1 = extract(data_dir, shard=(1, 2))
    assert r0.clips + r1.clips == 5 and r0.extracted + r1.extracted == 5
    assert not (data_dir / "frames" / "frames.csv").exists()
    assert not (data_dir / "frames" / "contact_sheets").exists()
    report = extract(data_dir)
    assert (report.extracted, report.already_done) == (0, 5)
    assert tree(data_dir / "frames") == tree(reference / "frames")


def test_command_line_entry_points_and_no_tensorflow(data_dir, tmp_path):
    help_text = subprocess.run([sys.executable, "-m", "signwrite.extract_frames", "--help"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout
    for flag in ("--data-dir", "--frames-per-clip", "--fps", "--all-frames", "--size", "--jobs", "--shard"):
        assert flag in help_text
    proc = subprocess.run([sys.executable, "-m", "signwrite.extract_frames", "--data-dir", str(data_dir),
                           "--jobs", "2", "--size", str(SIZE)], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "5 extracted" in proc.stdout and "Warning" not in proc.stderr

    other = tmp_path / "other"
    shutil.copytree(data_dir / "clips", other / "clips")
    code = ("import sys; from signwrite.cli import main; rc = main(sys.argv[1:]); "
            "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, "extract-frames", "--data-dir", str(other),
                           "--jobs", "2", "--size", str(SIZE)], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "5 extracted" in proc.stdout
    assert cli.main(["extract_frames", "--data-dir", str(other), "--jobs", "1", "--size", str(SIZE)]) == 0


# --------------------------------------------------------------------------- real footage


@pytest.mark.realdata
@pytest.mark.slow  # real footage: a while
def test_real_footage(junaid_dir, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    data_dir = tmp_path / "data"
    times = pd.read_csv(junaid_dir / "video_clip_times_long.csv")
    rows = []
    for r in times.itertuples():
        cid = clip_id(r.video, r.label, r.start, r.end)
        split = {"junaid_abc1": "train", "junaid_abc2": "test"}[r.video]
        rows.append({"clip_id": cid, "label": r.label, "video": r.video, "start": r.start, "end": r.end,
                     "split": split, "path": f"clips/{split}/{r.label}/{cid}.mp4"})

    def cut(row):
        video.cut_clip(junaid_dir / f"{row['video']}.mp4", data_dir / row["path"], row["start"], row["end"])
        return video.probe(data_dir / row["path"]).n_frames

    with ThreadPoolExecutor(2) as pool:  # each cut is an ffmpeg process
        counts = list(pool.map(cut, rows))
    clips = pd.DataFrame(rows).assign(frames=counts).sort_values(["split", "label", "clip_id"])
    clips.to_csv(data_dir / "clips" / "clips.csv", index=False)

    report = extract_frames(ExtractSettings(data_dir=data_dir, jobs=2))
    assert (report.extracted, report.failed, report.labels) == (52, [], 26)
    folders = _clip_folders(data_dir / "frames")
    assert len(folders) == 52 and all(len(jpegs(f)) == 16 for f in folders)
    table = pd.read_csv(data_dir / "frames" / "frames.csv")
    assert table.label.nunique() == 26 and (table.n_frames == 16).all()
    assert table.groupby("split").clip_id.count().to_dict() == {"test": 26, "train": 26}
    assert set(table[table.split == "train"].video) == {"junaid_abc1"}
    assert (table.fps == 50).all()
    assert cv2.imread(str(data_dir / "frames" / table.frames[0].split(";")[0])).shape == (299, 399, 3)
    assert len(list((data_dir / "frames" / "contact_sheets").glob("*.jpg"))) == 26
