"""extract-frames --hands: MediaPipe landmarks and hand crops per sampled frame.

Real hands come from ../shared/data (skipped when absent); clips without a hand are the
generated numbered videos of test_extract_frames. The hand model is the one
scripts/setup.sh put in the user cache (a missing one fails the test: setup must make it).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from signwrite import hands, video
from signwrite.clip_times import clip_id
from signwrite.extract_frames import ExtractSettings, extract_frames
from signwrite.fsutil import TMP_MARK
from test_extract_frames import CLIPS, SIZE, stamps, write_clips

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def hand_model():
    from signwrite.hand_model import hand_model_path

    return hand_model_path(download=False)  # put there by scripts/setup.sh


def extract(data_dir, hand_model, **kw):
    kw.setdefault("jobs", 1)
    kw.setdefault("size", SIZE)
    return extract_frames(ExtractSettings(data_dir=data_dir, hands=True, hand_model=hand_model, **kw))


def cut_junaid(junaid_dir: Path, data_dir: Path, letters: str) -> None:
    """Clips of a few letters of both junaid videos, the way fetch writes them."""
    times = pd.read_csv(junaid_dir / "video_clip_times_long.csv")
    rows = []
    for r in times[times.label.isin(list(letters))].itertuples():
        cid = clip_id(r.video, r.label, r.start, r.end)
        split = {"junaid_abc1": "train", "junaid_abc2": "test"}[r.video]
        rel = f"clips/{split}/{r.label}/{cid}.mp4"
        video.cut_clip(junaid_dir / f"{r.video}.mp4", data_dir / rel, r.start, r.end)
        rows.append({"clip_id": cid, "label": r.label, "video": r.video, "start": r.start, "end": r.end,
                     "split": split, "path": rel, "frames": video.probe(data_dir / rel).n_frames})
    pd.DataFrame(rows).sort_values(["split", "label", "clip_id"]).to_csv(data_dir / "clips" / "clips.csv",
                                                                         index=False)


def frames_table(data_dir: Path) -> pd.DataFrame:
    return pd.read_csv(data_dir / "frames" / "frames.csv", dtype=str, keep_default_na=False)


@pytest.mark.realdata
@pytest.mark.slow  # real footage: a while
def test_real_hands_are_found_inside_the_frame_right_handed_and_cropped(junaid_dir, tmp_path, hand_model):
    data_dir = tmp_path / "data"
    cut_junaid(junaid_dir, data_dir, "ABLVY")
    report = extract(data_dir, hand_model, size=128, jobs=2)
    assert report.failed == [] and report.hands_found == 10
    table = frames_table(data_dir)
    root = data_dir / "hands"
    rates, right, inside, crops_with_hand, n_crops = [], 0, 0, 0, 0
    with hands.HandTracker(hand_model) as tracker:
        for row in table.itertuples():
            found = hands.HandFrames.load(root / row.landmarks)
            assert found.image.shape == (16, 2, 21, 3) and (found.width, found.height) == (640, 480)
            assert [int(n[-8:-4]) for n in row.frames.split(";")] == found.frame_index.tolist()
            rates.append(found.found.mean())
            slot = found.signing_slot()
            seen = found.handedness[:, slot] != hands.ABSENT
            right += (found.handedness[seen, slot] == hands.RIGHT).sum()
            pts = found.image[seen, slot]
            # the hand is in the picture (its wrist may sit just below the bottom edge: the
            # forearm runs out of frame, and MediaPipe places the wrist where it must be)
            in_frame = ((pts[..., :2] >= 0) & (pts[..., :2] <= 1)).all(axis=2).mean(axis=1)
            inside += ((in_frame >= 0.9) & (np.abs(pts[..., :2] - 0.5) < 0.75).all(axis=(1, 2))).sum()
            crops = row.crops.split(";")
            assert int(row.hand_frames) == len(crops) == seen.sum()
            for t, rel in enumerate(crops):
                crop = cv2.imread(str(root / rel))
                assert crop.shape == (128, 128, 3)
                n_crops += 1
                crops_with_hand += tracker.detect(crop, 1000 * n_crops)[2][0] != hands.ABSENT or \
                    tracker.detect(crop, 1000 * n_crops + 1)[2][1] != hands.ABSENT
    rate = float(np.mean(rates))
    print(f"hands found in {rate:.1%} of junaid frames (letters ABLVY)")
    assert rate >= 0.9
    assert right >= 0.95 * sum(int(r) for r in table.hand_frames)  # junaid signs with the right hand
    assert inside >= 0.95 * sum(int(r) for r in table.hand_frames)
    assert crops_with_hand >= 0.9 * n_crops  # a crop holds the hand: MediaPipe finds it there again
    assert "hands: found in" in report.summary()


def test_clips_without_a_hand_are_recorded_as_such(tmp_path, hand_model, capsys):
    data_dir = tmp_path / "data"
    write_clips(data_dir, CLIPS)
    report = extract(data_dir, hand_model)
    assert report.failed == [] and report.hands_found == 5
    table = frames_table(data_dir)
    assert (table.hand_frames == "0").all() and (table.crops == "").all()
    for row in table.itertuples():
        found = hands.HandFrames.load(data_dir / "hands" / row.landmarks)
        assert len(found.frame_index) == int(row.n_frames) and not found.found.any()
        assert np.isnan(found.image).all() and (found.score == 0).all()
    text = report.summary()
    assert "no hand found in 5 clip(s)" in text and table.clip_id[0] in text


def test_hands_are_added_to_frames_already_extracted(tmp_path, hand_model):
    data_dir = tmp_path / "data"
    write_clips(data_dir, CLIPS)
    extract_frames(ExtractSettings(data_dir=data_dir, jobs=1, size=SIZE))
    before = frames_table(data_dir)
    assert (before.landmarks == "").all()
    frames_before = stamps(data_dir / "frames" / "train")
    report = extract(data_dir, hand_model)
    assert report.extracted == 0 and report.already_done == 5 and report.hands_found == 5
    assert stamps(data_dir / "frames" / "train") == frames_before  # no frame rewritten
    after = frames_table(data_dir)
    assert (after.landmarks != "").all() and list(after.frames) == list(before.frames)
    again = extract(data_dir, hand_model)  # and a re-run finds nothing to do
    assert again.hands_found == 0 and again.extracted == 0
    # a run without --hands keeps listing the hands it finds on disk
    extract_frames(ExtractSettings(data_dir=data_dir, jobs=1, size=SIZE))
    assert list(frames_table(data_dir).landmarks) == list(after.landmarks)


def _npz_arrays(folder: Path) -> dict:
    out = {}
    for p in sorted(folder.rglob("*.npz")):
        with np.load(p) as z:
            out[p.relative_to(folder).as_posix()] = {k: z[k].tobytes() for k in z.files}
    return out


@pytest.mark.slow
def test_stopped_hands_run_then_rerun_equals_uninterrupted_run(tmp_path, hand_model):
    clips = [("train" if i < 6 else "test", "AB"[i % 2], f"v{i // 6}", str(i * 10), str(i * 10 + 2), 2.0)
             for i in range(8)]
    template = tmp_path / "template"
    write_clips(template, clips, fps=25, width=320, height=240)
    reference = tmp_path / "reference"
    shutil.copytree(template, reference)
    extract(reference, hand_model, all_frames=True, size=64)
    data_dir = tmp_path / "data"
    shutil.copytree(template, data_dir)
    proc = subprocess.Popen([sys.executable, "-m", "signwrite.extract_frames", "--data-dir", str(data_dir),
                             "--all-frames", "--size", "64", "--hands", "--hand-model", str(hand_model),
                             "--jobs", "2"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        while proc.poll() is None and not list((data_dir / "hands").glob("*/*/*/*.npz")):
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    done = list((data_dir / "hands").glob("*/*/*/*.npz"))
    assert 0 < len(done) < 8, "the run was not stopped midway"
    report = extract(data_dir, hand_model, all_frames=True, size=64, jobs=2)
    assert report.failed == []
    assert _npz_arrays(data_dir / "hands") == _npz_arrays(reference / "hands")
    crops = sorted(p.relative_to(data_dir / "hands") for p in (data_dir / "hands").rglob("*.jpg"))
    assert crops == sorted(p.relative_to(reference / "hands") for p in (reference / "hands").rglob("*.jpg"))
    assert list((data_dir).rglob(f"*{TMP_MARK}*")) == []
    assert frames_table(data_dir).equals(frames_table(reference))


def test_skeleton_is_drawn_where_a_hand_was_found():
    image = np.zeros((100, 100, 3), np.uint8)
    points = np.full((2, 21, 3), np.nan, np.float32)
    hands.draw_skeleton(image, points)
    assert not image.any()  # no hand: nothing drawn
    rng = np.random.default_rng(0)
    points[0] = rng.uniform(0.2, 0.8, (21, 3))
    hands.draw_skeleton(image, points)
    orange = (np.abs(image.astype(int) - hands.SLOT_COLOURS[0]).sum(-1) < 60)
    assert orange.sum() > 50 and not (np.abs(image.astype(int) - hands.SLOT_COLOURS[1]).sum(-1) < 60).any()


def test_crop_is_square_centred_and_padded_at_the_border():
    frame = np.full((100, 200, 3), 255, np.uint8)
    points = np.zeros((21, 3), np.float32)
    points[:, 0] = np.linspace(0.0, 0.1, 21)  # x from 0 to 20 px: the box runs off the left edge
    points[:, 1] = np.linspace(0.4, 0.6, 21)  # y from 40 to 60 px
    x0, y0, side = hands.crop_box(points, 200, 100)
    assert side == round(20 * (1 + 2 * hands.CROP_MARGIN)) and x0 < 0
    crop = hands.crop_hand(frame, points, 32)
    assert crop.shape == (32, 32, 3)
    assert crop[:, 0].max() == 0 and crop[:, -1].min() == 255  # outside the frame is black
