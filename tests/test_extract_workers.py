"""extract_frames' worker processes: one that dies inside a clip (a native crash in the hand
tracker, the OOM killer, a kill) fails that clip alone; the other clips go on, and a re-run
finishes it.

The death comes from a test hook read by the workers: SIGNWRITE_TEST_DIE_ON_CLIP=<clip id>
makes signwrite.extract_clip.run_task SIGKILL its own worker when it begins that clip.
Workers start from a fork server that keeps the environment of the run that started it, so
each run with the hook is a process of its own, given the hook in its environment.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from signwrite.clip_times import clip_id
from signwrite.extract_frames import ExtractSettings, extract_frames
from test_extract_frames import CLIPS, SIZE, temps, tree, write_clips

REPO = Path(__file__).resolve().parents[1]
HOOK = "SIGNWRITE_TEST_DIE_ON_CLIP"
# The 40-frame clip: the longest, so the first one a worker begins; every other clip comes after
# the death (with one job, all of them on the worker that replaced the dead one).
DOOMED = clip_id(CLIPS[1][2], CLIPS[1][1], float(CLIPS[1][3]), float(CLIPS[1][4]))


@pytest.fixture(scope="module")
def hand_model():
    from signwrite.hand_model import hand_model_path

    return hand_model_path(download=False)  # put there by scripts/setup.sh


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    data = tmp_path_factory.mktemp("workers") / "data"
    write_clips(data, CLIPS)
    return data


def flags(hand_model, hands: bool) -> list[str]:
    return ["--size", str(SIZE)] + (["--hands", "--hand-model", str(hand_model)] if hands else [])


def settings(data_dir: Path, hand_model, hands: bool, jobs: int) -> ExtractSettings:
    return ExtractSettings(data_dir=data_dir, size=SIZE, jobs=jobs, hands=hands,
                           hand_model=hand_model if hands else None)


def frames_and_hands(data_dir: Path) -> dict[str, bytes]:
    """Every output file; of the landmarks (.npz: zip entries carry a time) only the name."""
    files = tree(data_dir / "frames")
    if (data_dir / "hands").is_dir():
        files |= {f"hands/{k}": b"" if k.endswith(".npz") else v for k, v in tree(data_dir / "hands").items()}
    return files


@pytest.mark.timeout(300)  # a regression hangs rather than fails
@pytest.mark.parametrize("jobs,hands", [(1, False), (2, False), (2, True)])
def test_a_worker_dying_in_a_clip_fails_that_clip_alone_and_a_rerun_finishes_it(
        template, tmp_path, hand_model, jobs, hands):
    reference = tmp_path / "reference"
    shutil.copytree(template, reference)
    assert extract_frames(settings(reference, hand_model, hands, jobs=1)).failed == []
    data_dir = tmp_path / "data"
    shutil.copytree(template, data_dir)

    proc = subprocess.run([sys.executable, "-m", "signwrite.extract_frames", "--data-dir", str(data_dir),
                           "--jobs", str(jobs), *flags(hand_model, hands)], cwd=REPO,
                          env={**os.environ, HOOK: DOOMED}, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 1, proc.stderr
    assert "5 clips: 4 extracted" in proc.stdout and "0 already done, 1 failed" in proc.stdout
    doomed = [line for line in proc.stdout.splitlines() if line.startswith(f"  {DOOMED}: ")]
    assert len(doomed) == 1, proc.stdout
    assert f"{DOOMED}.mp4: the worker extracting it died (signal {signal.SIGKILL.value}: " in doomed[0]
    assert doomed[0].endswith("run again to retry it")
    assert "Traceback" not in proc.stderr
    listed = pd.read_csv(data_dir / "frames" / "frames.csv", dtype=str, keep_default_na=False)
    clips = pd.read_csv(data_dir / "clips" / "clips.csv", dtype=str)
    assert sorted(listed.clip_id) == sorted(set(clips.clip_id) - {DOOMED})
    assert (listed.landmarks != "").all() if hands else (listed.landmarks == "").all()
    assert not list(data_dir.glob(f"*/*/*/{DOOMED}"))  # nothing of it on disk: whole or absent
    assert temps(data_dir) == []

    report = extract_frames(settings(data_dir, hand_model, hands, jobs))  # no hook: it finishes
    assert (report.failed, report.extracted, report.already_done) == ([], 1, 4)
    assert frames_and_hands(data_dir) == frames_and_hands(reference)
    assert temps(data_dir) == []


@pytest.mark.timeout(120)
def test_the_pool_gives_each_item_once_and_a_dead_workers_item_to_died():
    """The pool on its own: results as they come, fewer items than workers, an exception
    raised in a worker raised here (with the worker's traceback as its cause), an item whose
    worker dies handed to ``died``, and a worker found dead between items replaced without
    costing the next item."""
    from signwrite.workers import WorkerTraceback, worker_pool

    def died(item, how):
        return ("died", item, how)

    with worker_pool(2) as pool:
        assert sorted(pool.map_unordered(len, ["a", "bb", "ccc", "dddd", "eeeee"], died)) == [1, 2, 3, 4, 5]
        assert list(pool.map_unordered(len, ["abc"], died)) == [3]  # one item for two workers
        with pytest.raises(FileNotFoundError) as err:
            list(pool.map_unordered(os.stat, ["/no/such/file"], died))
        assert isinstance(err.value.__cause__, WorkerTraceback) and "func(item)" in str(err.value.__cause__)
        # os._exit(3): the worker holding item 3 exits with code 3 midway
        assert sorted(pool.map_unordered(os._exit, [3], died)) == [("died", 3, "exit code 3")]
        assert sorted(pool.map_unordered(len, ["a", "bb", "ccc"], died)) == [1, 2, 3]  # its replacement works
        for proc in list(pool._procs.values()):  # killed while waiting for an item
            proc.kill()
            proc.join()
        assert sorted(pool.map_unordered(len, ["a", "bb", "ccc"], died)) == [1, 2, 3]
