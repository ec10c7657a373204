"""The fault suite of issue 6, in one place: every stage struck by SIGINT and SIGKILL at
seeded random moments, run twice at once, given a full disk, fed broken videos and run
folders from elsewhere. Each test proves that nothing already done is lost or corrupted.
docs/FAULTS.md is the table of faults, outcomes and the test proving each.

    SIGNWRITE_FAULT_ROUNDS=20 pytest tests/test_faults.py   # the storm (default: 2 rounds)
    SIGNWRITE_FAULT_SEED=7 ...                                # other random moments

Kill rounds go on in one folder, so later rounds strike runs that resume earlier ones; a
run that finished before its strike starts the next round from an empty folder.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import faultlib as F
from faultlib import ROUNDS, SEED
from model_fixture import SMALL_LABELS, small_run  # noqa: F401  (the session's small trained run)
from videotools import make_numbered_video

FPS = 10
HEIGHTS = {"v1": 64, "v2": 48, "v3": 32}  # a clip's size tells its source video
CLIPS = [(f"S{k:02d}", v, round(k * 0.45, 2), round(k * 0.45 + 0.4, 2)) for v in HEIGHTS for k in range(8)]


def rng_for(name: str) -> np.random.Generator:
    """A generator per test, from the suite's seed: a failure reproduces with the same seed."""
    return np.random.default_rng([SEED, sum(map(ord, name))])


def report(name: str, strikes) -> None:
    """Print what each round did (pytest -s shows it; the storm counts in docs/FAULTS.md come from it)."""
    from collections import Counter

    outcomes = Counter(s.outcome for s in strikes)
    print(f"\n[fault storm] {name}: {len(strikes)} rounds: " + ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())))
    for s in strikes:
        print(f"  {s}")


def write_inputs(folder: Path, sources: dict[str, str], clips) -> list[str]:
    """sources.csv and clip_times.csv (v3 is the test video) in ``folder``; returns fetch's arguments."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sources.csv").write_text("video,url\n" + "".join(f"{v},{u}\n" for v, u in sources.items()))
    (folder / "clip_times.csv").write_text("label,video,start,end,split\n" + "".join(
        f"{label},{v},{s},{e},{'test' if v == 'v3' else 'train'}\n" for label, v, s, e in clips))
    return ["--sources", folder / "sources.csv", "--clip-times", folder / "clip_times.csv"]


def fetch_normalise(rel: str, data: bytes) -> bytes:
    if rel.endswith("fetch_config.json"):  # names the data folder itself
        config = json.loads(data)
        config.pop("data_dir", None)
        return json.dumps(config, sort_keys=True).encode()
    return data


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    folder = tmp_path_factory.mktemp("footage")
    for name, height in HEIGHTS.items():
        make_numbered_video(folder / f"{name}.mp4", 4, FPS, gop=20, height=height)
    return folder


# --------------------------------------------------------------------------- interruptions


# What each stage prints on stderr once it is at work (after its start-up, before its end): the
# first SIGINT of every storm lands then, so each storm shows the stage itself stopping on Ctrl-C.
RUNNING = {"fetch": " clips of ", "extract-frames": " clip(s) with ", "train": "phase ",
           "predict": " windows of "}


def storm(stage: str, cmd, data: Path, name: str, longest: float, *, whole, complete, reset,
          normalise=lambda rel, data: data, protect=lambda rel: True, rounds: int = ROUNDS):
    """Strike ``cmd`` ROUNDS times at seeded random moments within ``longest`` seconds, the
    first SIGINT as soon as the stage prints that it is at work (RUNNING).

    After each strike: the exit is right (130 and one line for SIGINT), every file finished
    before it is untouched, and ``whole(rel, digest)`` holds for every file present. A run
    that finished (``complete()`` must then hold) starts the next round from ``reset()``.
    At least one SIGINT must have met the running stage and stopped it with exit 130 and its
    line (a stage that ignored Ctrl-C would finish: exit 0). Returns the strikes, once every
    process they left (an orphaned ffmpeg finishing a cut) is gone.
    """
    strikes = F.plan_strikes(rng_for(name), rounds, longest, running=RUNNING[stage])
    for s in strikes:
        before = F.fingerprint(data, keep=protect, normalise=normalise)
        F.strike(cmd, s)
        s.outcome = F.check_struck_exit(s, stage)
        after = F.fingerprint(data, normalise=normalise)
        assert F.unchanged(before, after) == [], str(s)
        assert [rel for rel, digest in after.items() if not whole(rel, digest)] == [], str(s)
        if s.outcome in ("finished", "exiting"):
            F.end_group(s.pid)
            assert complete(), str(s)
            reset()
    for s in strikes:
        F.end_group(s.pid)
    report(name, strikes)
    assert any(s.outcome in ("interrupted", "killed") for s in strikes), "no round struck a running stage"
    assert F.stopped_by_ctrl_c(strikes, stage), ("no SIGINT stopped the running stage with exit 130 and its line",
                                                 [str(s) for s in strikes])
    return strikes


def run_storm(stage: str, cmd, data: Path, reference: dict[str, str], longest: float, name: str, *,
              whole=None, same=None, normalise=lambda rel, data: data, protect=lambda rel: True):
    """``storm``, then run to the end: exit 0, no temp file, the reference's files byte for byte
    (or as ``same()`` compares them)."""
    whole = whole or (lambda rel, digest: reference.get(rel) == digest)
    same = same or (lambda: F.fingerprint(data, normalise=normalise) == reference)
    strikes = storm(stage, cmd, data, name, longest, whole=whole, complete=same, normalise=normalise,
                    protect=protect, reset=lambda: shutil.rmtree(data, ignore_errors=True))
    final = F.run_stage(cmd)
    assert final.returncode == 0, final.stderr[-3000:]
    assert F.temps(data) == []
    assert same()
    return strikes


def reference_run(cmd, data: Path, normalise=lambda rel, data: data) -> tuple[dict[str, str], float]:
    t0 = time.monotonic()
    proc = F.run_stage(cmd)
    took = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    return F.fingerprint(data, normalise=normalise), took


@pytest.mark.parametrize("where", ["local", "http"])
def test_fetch_struck_at_random_moments_then_rerun_equals_an_uninterrupted_run(tmp_path, footage, where):
    with F.serve(footage, chunk=512, pause=0.01) as url:
        sources = {v: (str(footage / f"{v}.mp4") if where == "local" else f"{url}/{v}.mp4") for v in HEIGHTS}
        args = write_inputs(tmp_path / "in", sources, CLIPS)
        ref_cmd = F.stage_cmd("fetch", *args, "--data-dir", tmp_path / "reference", "--jobs", 2)
        reference, took = reference_run(ref_cmd, tmp_path / "reference", fetch_normalise)
        data = tmp_path / "data"
        cmd = F.stage_cmd("fetch", *args, "--data-dir", data, "--jobs", 2)
        archive = "videos/download-archive.txt"
        ref_archive = (tmp_path / "reference" / archive).read_text().splitlines() if where == "http" else []

        def whole(rel, digest):
            if rel == archive:  # a log: a line per finished download, in the order they finished
                return set((data / rel).read_text().splitlines()) <= set(ref_archive)
            return reference.get(rel) == digest

        def same():  # byte for byte, but for the archive's lines: a kill between a download's
            # rename and its archive line leaves the line out; the video, present, is not fetched again
            done = F.fingerprint(data, normalise=fetch_normalise)
            return ({k: v for k, v in done.items() if k != archive} == {k: v for k, v in reference.items()
                                                                         if k != archive}
                    and (archive not in reference or ((data / archive).exists() and whole(archive, ""))))

        run_storm("fetch", cmd, data, reference, took, f"fetch-{where}", whole=whole, same=same,
                  normalise=fetch_normalise, protect=lambda rel: rel != archive)
    assert len(list(data.glob("clips/*/*/*.mp4"))) == len(CLIPS)


def write_clips(data: Path, n: int = 8, seconds: float = 2.0, fps: int = 25) -> Path:
    """data/clips/<split>/<label>/<clip>.mp4 and clips.csv, as fetch writes them."""
    import pandas as pd

    from signwrite.clip_times import clip_id
    from signwrite.video import probe

    rows = []
    for i in range(n):
        split, label, video = ("train" if i < n - 2 else "test"), "AB"[i % 2], f"v{i // 4}"
        start, end = i * 10.0, i * 10.0 + seconds
        cid = clip_id(video, label, start, end)
        rel = Path("clips", split, label, f"{cid}.mp4")
        make_numbered_video(data / rel, seconds, fps, gop=10, width=160, height=120)
        rows.append({"clip_id": cid, "label": label, "video": video, "start": start, "end": end, "split": split,
                     "path": rel.as_posix(), "frames": probe(data / rel).n_frames})
    pd.DataFrame(rows).sort_values(["split", "label", "clip_id"]).to_csv(data / "clips" / "clips.csv", index=False)
    return data


@pytest.fixture(scope="module")
def clips_data(tmp_path_factory):
    return write_clips(tmp_path_factory.mktemp("clips") / "data")


def extract_cmd(data: Path, *extra):
    return F.stage_cmd("extract_frames", "--data-dir", data, "--all-frames", "--size", 96, "--jobs", 2, *extra)


def test_extract_frames_struck_at_random_moments_then_rerun_equals_an_uninterrupted_run(tmp_path, clips_data):
    shutil.copytree(clips_data, tmp_path / "reference")
    reference, took = reference_run(extract_cmd(tmp_path / "reference"), tmp_path / "reference")
    data = tmp_path / "data"
    shutil.copytree(clips_data, data)
    clips = F.fingerprint(data / "clips")
    storm("extract-frames", extract_cmd(data), data, "extract_frames", took,
          whole=lambda rel, digest: reference.get(rel) == digest, complete=lambda: F.fingerprint(data) == reference,
          reset=lambda: shutil.rmtree(data / "frames", ignore_errors=True))
    final = F.run_stage(extract_cmd(data))
    assert final.returncode == 0, final.stderr[-3000:]
    assert F.temps(data) == []
    assert F.fingerprint(data) == reference
    assert F.fingerprint(data / "clips") == clips  # the input is never touched


# A run in seconds: MobileNetV2 at 32 px, untrained, with a head on its cached features.
TINY_TRAIN = ["--run", "tiny", "--backbone", "mobilenet_v2", "--weights", "none", "--mode", "frozen",
              "--image-size", 32, "--epochs", 8, "--batch-size", 8, "--patience", 8, "--backup-seconds", 0]


def frames_data(folder: Path) -> Path:
    from frames_tools import make_frames_dataset

    return make_frames_dataset(folder, labels=("red_disk", "green_bar"), videos={"train": ["va", "vb"], "test": ["vc"]})


def train_cmd(data: Path, logdir: Path, *extra):
    return F.stage_cmd("train", "--data-dir", data, "--logdir", logdir, *TINY_TRAIN, *extra)


HISTORY_COLUMNS = {"epoch", "accuracy", "loss", "val_accuracy", "val_clip_top1", "val_loss"}  # at least
PREDICTION_COLUMNS = {"clip_id", "video", "label", "predicted_label", "correct", "p_predicted", "top_k"}  # at least


def event_records(path: Path) -> list:
    """Every record of a TensorBoard event file, read back through TensorFlow's reader (a
    record cut short or with a bad checksum raises) and parsed as an Event."""
    import tensorflow as tf
    from tensorboard.compat.proto import event_pb2

    return [event_pb2.Event.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]


def train_outputs_whole(root: Path):
    """``whole`` for train (paths under ``root``): each file a run may leave reads back as what
    it is, or it is not whole. Cached features load; model.keras is a sound archive; JSON
    parses; history.csv has its columns and whole epoch rows; predictions.csv a whole row per
    test clip; the pictures decode; event files read back record by record; weights files open;
    the report names its columns. A file of a kind not listed here is not taken on trust."""
    import zipfile

    import cv2
    import h5py
    import pandas as pd

    def whole(rel: str, digest: str) -> bool:
        path = root / rel
        name = path.name
        if rel.startswith("data/frames/"):  # the input, made by the test
            return True
        if name.endswith(".npz"):
            with np.load(path, allow_pickle=False) as f:
                return f["features"].ndim == 2 and len(str(f["stamp"])) == 40
        if name == "model.keras":
            with zipfile.ZipFile(path) as z:
                return z.testzip() is None and "config.json" in z.namelist()
        if name.endswith(".json"):
            return json.loads(path.read_text()) is not None
        if name == "history.csv":  # opened (empty) when training starts, a row per epoch
            if path.stat().st_size == 0:
                return True
            h = pd.read_csv(path)
            return HISTORY_COLUMNS <= set(h.columns) and not h.isna().any().any() and \
                h.epoch.between(0, 7).all() and path.read_bytes().endswith(b"\n")
        if name == "predictions.csv":
            t = pd.read_csv(path)
            return PREDICTION_COLUMNS <= set(t.columns) and len(t) == 2 and not t.isna().any().any()
        if name.endswith(".png"):
            picture = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED)
            return picture is not None and min(picture.shape[:2]) >= 100
        if name.startswith("events.out.tfevents."):
            records = event_records(path)
            return bool(records) and records[0].file_version.startswith("brain.Event:")
        if name.endswith(".h5"):
            with h5py.File(path, "r") as f:
                return len(f.keys()) > 0
        if name == "classification_report.txt":
            text = path.read_text()
            return "precision" in text and "green_bar" in text and "red_disk" in text
        return False

    return whole


def check_finished_run(run_dir: Path, epochs: int = 8) -> dict:
    """Every file a finished run owes is there and loads; returns its metrics."""
    import pandas as pd

    from signwrite.run import load_run

    run = load_run(run_dir)
    assert run.labels == ["green_bar", "red_disk"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    preds = pd.read_csv(run_dir / "predictions.csv")
    assert metrics["n_test_clips"] == len(preds) == 2
    assert metrics["clip_top1_correct"] == int((preds.predicted_label == preds.label).sum())
    assert metrics["clip_top1"] == metrics["clip_top1_correct"] / 2
    history = pd.read_csv(run_dir / "history.csv")
    assert list(history.epoch) == list(range(epochs))  # each epoch once (patience = epochs: no early stop)
    assert not (run_dir / "checkpoints").exists()
    return metrics


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, small_run):
    """A tiny run trained once, uninterrupted, for the tests below to compare with and build on:
    its folders, how long it took, how many files it renamed into place, and what a second
    run of the same command said while the first was frozen midway (SIGSTOP).

    (It asks for the session's small run first, so that one is trained before this module
    uses TensorFlow in this process: the model other modules test is then the same whether
    this module ran before them or not.)
    """
    from types import SimpleNamespace

    root = tmp_path_factory.mktemp("tiny-run")
    data, logdir = frames_data(root / "data"), root / "logs"
    cmd = train_cmd(data, logdir)
    env = F.enospc_env(tmp_path_factory.mktemp("tiny-run-renames"), root, 10**9)  # counts, fails none
    t0 = time.monotonic()
    with F.running(cmd, env=env) as first:
        F.wait_until(lambda: (logdir / "tiny" / "config.json").exists(), first, "it took its run folder")
        with F.paused(first):
            t_paused = time.monotonic()
            before = F.fingerprint(root)
            second = F.run_stage(cmd)
            second_wrote = F.fingerprint(root) != before
            paused = time.monotonic() - t_paused
        first.wait(timeout=600)
    took = time.monotonic() - t0 - paused
    renames = Path(env["SIGNWRITE_FAULT_ENOSPC_COUNTER"]).stat().st_size
    return SimpleNamespace(root=root, data=data, logdir=logdir, took=took, renames=renames, first=first,
                           second=second, second_wrote=second_wrote)


@pytest.mark.slow  # trains a model: run by CI, skipped by -m "not slow"
def test_a_second_train_run_on_a_run_folder_in_use_is_refused_and_writes_nothing(tiny_run):
    assert tiny_run.first.returncode == 0, tiny_run.first.err[-3000:]
    check_refused(tiny_run.second, "train", tiny_run.logdir / "tiny", "train")
    assert not tiny_run.second_wrote
    check_finished_run(tiny_run.logdir / "tiny")  # the first run was not disturbed


@pytest.mark.slow  # trains a model: run by CI, skipped by -m "not slow"
def test_train_struck_at_random_moments_then_rerun_finishes_a_sound_run(tmp_path, tiny_run):
    root = tmp_path / "work"  # data/ (frames, and the features cache train writes) and logs/
    data, logdir = frames_data(root / "data"), root / "logs"

    def protect(rel):  # finished for good once written: cached features, and a saved model
        return rel.startswith("data/features/") or rel in ("logs/tiny/model.keras", "logs/tiny/labels.json")

    def reset():
        shutil.rmtree(logdir, ignore_errors=True)
        shutil.rmtree(data / "features", ignore_errors=True)

    storm("train", train_cmd(data, logdir), root, "train", tiny_run.took, whole=train_outputs_whole(root),
          complete=lambda: check_finished_run(logdir / "tiny") is not None, reset=reset, protect=protect)
    final = F.run_stage(train_cmd(data, logdir))
    assert final.returncode == 0, final.stderr[-3000:]
    assert F.temps(root) == []
    whole = train_outputs_whole(root)
    assert [rel for rel in F.fingerprint(root) if not whole(rel, "")] == []
    check_finished_run(logdir / "tiny")
    mine, theirs = ({name: json.loads((d / "tiny" / name).read_text()) for name in ("labels.json", "config.json")}
                    for d in (logdir, tiny_run.logdir))
    for config in (mine["config.json"], theirs["config.json"]):
        del config["data_dir"], config["logdir"]
    assert mine == theirs  # the same run as an uninterrupted one, only resumed


@pytest.mark.skipif(ROUNDS < 10, reason="two trainings at once take a while: part of the storm "
                                        "(SIGNWRITE_FAULT_ROUNDS >= 10)")
def test_two_train_runs_on_one_data_folder_at_once_share_the_feature_cache(tmp_path, tiny_run):
    data, logdir = frames_data(tmp_path / "data"), tmp_path / "logs"
    with F.running(train_cmd(data, logdir)) as a, F.running(train_cmd(data, logdir, "--run", "other")) as b:
        assert a.wait(timeout=600) == 0 and b.wait(timeout=600) == 0
    assert F.temps(tmp_path) == []
    metrics = [check_finished_run(logdir / name) for name in ("tiny", "other")]
    assert metrics[0]["clip_top1"] == metrics[1]["clip_top1"]  # same settings and seed, one cache
    whole = train_outputs_whole(tmp_path)
    assert all(whole(p.relative_to(tmp_path).as_posix(), "") for p in (data / "features").rglob("*.npz"))


# --------------------------------------------------------------------------- predict

SIGNS = [("red_disk", 1.8), ("green_bar", 1.8), ("blue_box", 1.8)]


@pytest.fixture(scope="module")
def signs_video(tmp_path_factory):
    from model_fixture import class_video

    return class_video(tmp_path_factory.mktemp("signs") / "signs.mp4", SIGNS)


def transcribe_args(run: Path, video: Path, out: Path) -> list:
    return ["--run", run, video, "--transcribe", "--out", out / "signs.csv", "--srt", out / "signs.srt"]


@pytest.fixture(scope="module")
def transcript(tmp_path_factory, small_run, signs_video):
    """The folder of an uninterrupted ``predict --transcribe`` (signs.csv, .srt, .json), and a
    ``normalise`` that makes another folder's outputs comparable (the JSON names its folder)."""
    from signwrite import predict

    folder = tmp_path_factory.mktemp("transcript")
    assert predict.main([str(a) for a in transcribe_args(small_run, signs_video, folder)]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["signs.csv", "signs.json", "signs.srt"]

    def normalise_from(out: Path):
        return lambda rel, data: data.replace(str(out).encode(), str(folder).encode())

    return folder, F.fingerprint(folder), normalise_from


def test_predict_transcribe_struck_at_random_moments_then_rerun_equals_an_uninterrupted_run(
        tmp_path, small_run, signs_video, transcript):
    _, reference, normalise_from = transcript
    out = tmp_path / "out"
    normalise = normalise_from(out)
    cmd = F.stage_cmd("predict", *transcribe_args(small_run, signs_video, out))
    # First at the worst moment: the CSV is written, the subtitles and the JSON not yet.
    first = F.strike(cmd, F.Strike(signal.SIGKILL, 0, True), when=lambda: (out / "signs.csv").exists())
    first.outcome = F.check_struck_exit(first, "predict")
    assert F.fingerprint(out, normalise=normalise).items() <= reference.items()
    report("predict (at its first output)", [first])
    storm("predict", cmd, out, "predict", first.delay, normalise=normalise, rounds=ROUNDS - 1,
          whole=lambda rel, digest: reference.get(rel) == digest,
          complete=lambda: F.fingerprint(out, normalise=normalise) == reference,
          reset=lambda: shutil.rmtree(out, ignore_errors=True))
    final = F.run_stage(cmd)
    assert final.returncode == 0, final.stderr[-3000:]
    assert final.stdout.strip() == " ".join(label for label, _ in SIGNS)
    assert F.temps(out) == []
    assert F.fingerprint(out, normalise=normalise) == reference


# --------------------------------------------------------------------------- two runs at once

LOCKED = "run is using this folder; wait for it to finish or stop it, then run again"


def check_refused(proc, stage: str, folder: Path, holder: str) -> None:
    assert proc.returncode == 1, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert lines[-1] == f"signwrite {stage}: error: {folder}: another '{holder}' {LOCKED}", proc.stderr
    assert sum("error" in line for line in lines) == 1 and "Traceback" not in proc.stderr


def test_two_fetch_runs_on_one_folder_one_is_refused_and_shards_share_it(tmp_path, footage):
    sources = {v: str(footage / f"{v}.mp4") for v in HEIGHTS}
    args = write_inputs(tmp_path / "in", sources, CLIPS)
    reference, _ = reference_run(F.stage_cmd("fetch", *args, "--data-dir", tmp_path / "ref", "--jobs", 1),
                                 tmp_path / "ref", fetch_normalise)
    data = tmp_path / "data"
    cmd = F.stage_cmd("fetch", *args, "--data-dir", data, "--jobs", 1)
    with F.running(cmd) as first:
        F.wait_until(lambda: any(data.glob("clips/*/*/*")), first, "it began cutting")
        with F.paused(first):  # holds the folder for as long as the second run takes
            before = F.fingerprint(data)
            second = F.run_stage(cmd)
            check_refused(second, "fetch", data, "fetch")
            assert F.fingerprint(data) == before  # the refused run wrote nothing
        assert first.wait(timeout=300) == 0
    assert F.temps(data) == [] and F.fingerprint(data, normalise=fetch_normalise) == reference

    shared = tmp_path / "shared"
    shard_cmds = [F.stage_cmd("fetch", *args, "--data-dir", shared, "--jobs", 1, "--shard", f"{i}/2") for i in (0, 1)]
    with F.running(shard_cmds[0]) as a, F.running(shard_cmds[1]) as b:
        assert a.wait(timeout=300) == 0 and b.wait(timeout=300) == 0
    assert F.run_stage(F.stage_cmd("fetch", *args, "--data-dir", shared, "--jobs", 1)).returncode == 0
    assert F.temps(shared) == [] and F.fingerprint(shared, normalise=fetch_normalise) == reference


def test_two_extract_frames_runs_on_one_folder_one_is_refused_and_shards_share_it(tmp_path, clips_data):
    shutil.copytree(clips_data, tmp_path / "ref")
    reference, _ = reference_run(extract_cmd(tmp_path / "ref"), tmp_path / "ref")
    data = tmp_path / "data"
    shutil.copytree(clips_data, data)
    with F.running(extract_cmd(data)) as first:
        F.wait_until(lambda: any((data / "frames").glob("*/*/*")), first, "it began extracting")
        with F.paused(first):
            before = F.fingerprint(data)
            second = F.run_stage(extract_cmd(data))
            check_refused(second, "extract-frames", data / "frames", "extract_frames")
            assert F.fingerprint(data) == before
        assert first.wait(timeout=300) == 0
    assert F.temps(data) == [] and F.fingerprint(data) == reference

    shared = tmp_path / "shared"
    shutil.copytree(clips_data, shared)
    with F.running(extract_cmd(shared, "--shard", "0/2")) as a, F.running(extract_cmd(shared, "--shard", "1/2")) as b:
        assert a.wait(timeout=300) == 0 and b.wait(timeout=300) == 0
    assert F.run_stage(extract_cmd(shared)).returncode == 0
    assert F.temps(shared) == [] and F.fingerprint(shared) == reference


# --------------------------------------------------------------------------- a full disk

PAGE = 4096


@pytest.fixture(params=["tmpfs", "rename"])
def disk(request, tmp_path):
    """(kind, folder): a real small disk (a tmpfs, when this process may mount one), or a plain
    folder in which renames will be made to fail with ENOSPC (the stage's processes patched)."""
    if request.param == "tmpfs":
        if not F.can_mount_tmpfs():
            pytest.skip("mounting a tmpfs needs root here; the 'rename' variant covers the stage")
        with F.small_disk(tmp_path / "disk", 48 << 20) as folder:
            yield "tmpfs", folder
    else:
        (tmp_path / "disk").mkdir()
        yield "rename", tmp_path / "disk"


def fill_fractions(name: str, kind: str) -> list[float]:
    """Where the disk fills, seeded: a fraction of what the run needs, so it must fail."""
    return sorted(rng_for(f"{name}-{kind}").uniform(0, 1, max(1, ROUNDS // 4)))


def fill_point(kind: str, fraction: float, folder: Path, earlier: dict, reference: dict, unit=lambda rel: rel) -> int:
    """Free bytes to leave (tmpfs, whole pages) or renames to allow (rename) for ``fraction``
    of what turning ``earlier`` into ``reference`` takes (``unit`` maps a file to what is
    renamed into place with it, e.g. a frame to its clip's folder)."""
    if kind == "tmpfs":  # files replaced by new versions free their old pages: count new files only
        return int(fraction * sum(-(-(folder / rel).stat().st_size // PAGE) for rel in reference
                                  if rel not in earlier)) * PAGE
    return int(fraction * len({unit(rel) for rel in reference if earlier.get(rel) != reference[rel]}))


def disk_env(kind: str, folder: Path, point: int, workdir: Path) -> dict:
    if kind == "tmpfs":
        F.leave_free(folder, point)
        return F.quiet_env()
    return F.enospc_env(workdir, folder, point)


def replaced_whole(earlier, after, reference, index_files) -> list[str]:
    """Earlier files that changed, other than index files rewritten whole to their final form."""
    return [rel for rel in F.unchanged(earlier, after)
            if not (rel in index_files and after.get(rel) == reference.get(rel))]


def test_fetch_on_a_full_disk_stops_with_one_line_and_keeps_what_it_finished(tmp_path, footage, disk):
    kind, root = disk
    sources = {v: str(footage / f"{v}.mp4") for v in HEIGHTS}
    everything = write_inputs(tmp_path / "all", sources, CLIPS)
    some = write_inputs(tmp_path / "some", {v: sources[v] for v in ("v1", "v2")}, [c for c in CLIPS if c[1] != "v3"][:12])
    reference, _ = reference_run(F.stage_cmd("fetch", *everything, "--data-dir", tmp_path / "ref", "--jobs", 1),
                                 tmp_path / "ref", fetch_normalise)
    data = root / "data"
    index = ("clips/clips.csv", "clips/fetch_config.json")
    for fraction in fill_fractions("fetch", kind):
        shutil.rmtree(data, ignore_errors=True)
        (root / "ballast").unlink(missing_ok=True)
        assert F.run_stage(F.stage_cmd("fetch", *some, "--data-dir", data)).returncode == 0
        earlier = F.fingerprint(data, normalise=fetch_normalise)
        point = fill_point(kind, fraction, tmp_path / "ref", earlier, reference)
        cmd = F.stage_cmd("fetch", *everything, "--data-dir", data, "--jobs", 1)
        failed = F.run_stage(cmd, env=disk_env(kind, root, point, tmp_path))
        F.check_disk_full_exit(failed, "fetch", data)
        after = F.fingerprint(data, normalise=fetch_normalise)
        assert replaced_whole(earlier, after, reference, index) == [], point
        assert [rel for rel in after if rel not in earlier and after[rel] != reference.get(rel)] == [], point
        assert F.temps(data) == []
        (root / "ballast").unlink(missing_ok=True)
        assert F.run_stage(cmd).returncode == 0  # space again: it finishes the job
        assert F.fingerprint(data, normalise=fetch_normalise) == reference and F.temps(data) == []


def test_extract_frames_on_a_full_disk_stops_with_one_line_and_keeps_what_it_finished(tmp_path, clips_data, disk):
    kind, root = disk
    shutil.copytree(clips_data, tmp_path / "ref")
    reference, _ = reference_run(extract_cmd(tmp_path / "ref"), tmp_path / "ref")
    data = root / "data"
    index = ("frames/frames.csv", "frames/contact_sheets/.sheets.json")
    for fraction in fill_fractions("extract", kind):
        shutil.rmtree(data, ignore_errors=True)
        (root / "ballast").unlink(missing_ok=True)
        shutil.copytree(clips_data, data)
        assert F.run_stage(extract_cmd(data, "--shard", "0/2")).returncode == 0
        earlier = F.fingerprint(data)
        point = fill_point(kind, fraction, tmp_path / "ref", earlier, reference,
                           unit=lambda rel: str(Path(rel).parent) if rel.endswith(".jpg") else rel)
        failed = F.run_stage(extract_cmd(data), env=disk_env(kind, root, point, tmp_path))
        F.check_disk_full_exit(failed, "extract-frames", data)
        after = F.fingerprint(data)
        assert replaced_whole(earlier, after, reference, index) == [], point
        assert [rel for rel in after if rel not in earlier and after[rel] != reference.get(rel)] == [], point
        assert F.temps(data) == []
        (root / "ballast").unlink(missing_ok=True)
        assert F.run_stage(extract_cmd(data)).returncode == 0
        assert F.fingerprint(data) == reference and F.temps(data) == []


def in_process(main, argv, capsys):
    """Run a stage's main here (TensorFlow is loaded once for the session); rc and stderr."""
    from types import SimpleNamespace

    capsys.readouterr()
    rc = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return SimpleNamespace(returncode=rc, stderr=captured.err, stdout=captured.out)


def disk_filled(kind: str, folder: Path, point: int):
    """Context: the disk of ``folder`` full after ``point`` (bytes free, or renames allowed here)."""
    import contextlib

    if kind == "tmpfs":
        F.leave_free(folder, point)
        return contextlib.nullcontext()
    return F.failing_renames(folder, point)


@pytest.mark.slow  # trains a model: run by CI, skipped by -m "not slow"
def test_train_on_a_full_disk_stops_with_one_line_and_keeps_what_it_finished(tmp_path, tiny_run, disk, capsys):
    from signwrite.train import main

    kind, root = disk
    shutil.copytree(tiny_run.data, root / "data")
    shutil.copytree(tiny_run.logdir, root / "logs")
    earlier = F.fingerprint(root)
    # Another run next to the first, at another size: new cached features, a new model.
    argv = ["--data-dir", root / "data", "--logdir", root / "logs", *TINY_TRAIN, "--run", "second", "--image-size", 40]
    need = sum(-(-p.stat().st_size // PAGE) for p in tiny_run.root.rglob("*") if p.is_file() and "frames" not in p.parts)
    for fraction in fill_fractions("train", kind):
        shutil.rmtree(root / "logs" / "second", ignore_errors=True)
        shutil.rmtree(root / "data" / "features" / "mobilenet_v2_none-seed0_40px", ignore_errors=True)
        point = int(fraction * need) * PAGE if kind == "tmpfs" else int(fraction * tiny_run.renames)
        with disk_filled(kind, root, point):
            failed = in_process(main, argv, capsys)
        (root / "ballast").unlink(missing_ok=True)
        F.check_disk_full_exit(failed, "train", root)
        assert F.unchanged(earlier, F.fingerprint(root)) == [], point
        assert F.temps(root / "data") == []
        assert in_process(main, argv, capsys).returncode == 0
        check_finished_run(root / "logs" / "second")
        assert F.temps(root) == [] and F.unchanged(earlier, F.fingerprint(root)) == []


def test_predict_on_a_full_disk_stops_with_one_line_and_keeps_what_it_finished(tmp_path, small_run, signs_video,
                                                                                transcript, disk, capsys):
    from signwrite import predict

    kind, root = disk
    folder, reference, normalise_from = transcript
    out = root / "out"
    shutil.copytree(folder, out)  # an earlier transcript
    earlier = F.fingerprint(out)
    again = out / "again"  # the same video again, into a folder of its own
    for fraction in fill_fractions("predict", kind):
        shutil.rmtree(again, ignore_errors=True)
        point = int(fraction * len(reference)) * (PAGE if kind == "tmpfs" else 1)
        with disk_filled(kind, root, point):
            failed = in_process(predict.main, transcribe_args(small_run, signs_video, again), capsys)
        (root / "ballast").unlink(missing_ok=True)
        F.check_disk_full_exit(failed, "predict", again)
        assert F.unchanged(earlier, F.fingerprint(out)) == []  # the earlier transcript is untouched
        written = F.fingerprint(again, normalise=normalise_from(again))
        assert written.items() <= reference.items() and len(written) < len(reference)  # whole files or none
        assert F.temps(root) == []
        assert in_process(predict.main, transcribe_args(small_run, signs_video, again), capsys).returncode == 0
        assert F.fingerprint(again, normalise=normalise_from(again)) == reference


# --------------------------------------------------------------------------- broken videos

@pytest.fixture(scope="module")
def bad_videos(tmp_path_factory):
    """Broken videos, each named for what is wrong with it, and a good one to compare."""
    from signwrite.video import ffmpeg_exe, probe, read_frames, write_video
    from videotools import numbered_frame

    folder = tmp_path_factory.mktemp("bad")
    good = make_numbered_video(folder / "good.mp4", 4, FPS, gop=20)
    noise = np.random.default_rng(0)

    def noisy(i):  # incompressible, so the file's bytes spread evenly over its 6 s
        frame = numbered_frame(i, FPS, 160, 120)
        frame[20:] = noise.integers(0, 255, frame[20:].shape, dtype=np.uint8)
        return frame

    write_video(folder / "long.mp4", (noisy(i) for i in range(60)), FPS, gop=10)
    # The index (moov) at the end, as most encoders write it: cut in half, nothing plays.
    whole = (folder / "long.mp4").read_bytes()
    (folder / "cut_index_last.mp4").write_bytes(whole[:len(whole) // 2])
    # The index first, as on the web: cut in half, it plays to about 3 s of its 6, then stops.
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-i", folder / "long.mp4", "-c", "copy", "-movflags",
                    "+faststart", folder / "faststart.mp4"], check=True)
    whole = (folder / "faststart.mp4").read_bytes()
    (folder / "cut_index_first.mp4").write_bytes(whole[:len(whole) // 2])
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "text.mp4").write_text("this is a web page, not a video\n" * 100)
    playable = len(read_frames(folder / "cut_index_first.mp4")[0])
    assert probe(folder / "cut_index_first.mp4").n_frames == 60 and 10 <= playable < 40  # the premise
    return folder, good


BAD = {"cut_index_last": "not a readable video (truncated or not a video file)",
       "empty": "the file is empty (0 bytes)",
       "text": "not a readable video (truncated or not a video file)"}


def test_broken_local_videos_through_fetch_each_fail_alone_with_their_name_and_leave_nothing(tmp_path, bad_videos):
    folder, good = bad_videos
    names = ["good", *BAD, "cut_index_first"]
    sources = {name: str(folder / f"{name}.mp4") for name in names}
    clips = [("A", name, 1, 2) for name in names] + [("B", "good", 2, 3), ("B", "cut_index_first", 4, 5)]
    args = write_inputs(tmp_path / "in", sources, clips)
    data = tmp_path / "data"
    proc = F.run_stage(F.stage_cmd("fetch", *args, "--data-dir", data))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not [line for line in proc.stderr.splitlines() if line.startswith("[")]  # no FFmpeg chatter
    for row, name in enumerate(names, start=2):
        if name in BAD:
            assert f"    video {name}: {folder / name}.mp4 (sources.csv line {row}): {BAD[name]}" in proc.stdout
    # A clip after the point where a truncated video stops: refused, named, nothing written.
    assert f"    clip cut_index_first_B_4000-5000: {data / 'videos' / 'cut_index_first.mp4'}: no frame between 4 " \
           "and 5 s can be decoded" in proc.stdout
    assert sorted(p.name for p in (data / "videos").iterdir()) == ["cut_index_first.mp4", "good.mp4"]
    cut = sorted(p.name for p in data.glob("clips/*/*/*.mp4"))
    assert cut == ["cut_index_first_A_1000-2000.mp4", "good_A_1000-2000.mp4", "good_B_2000-3000.mp4"]
    assert (data / "clips" / "clips.csv").read_text().count("\n") == 4 and F.temps(data) == []

    # Once the files are put right (and the cut-short copy deleted, as its message says),
    # the same command finishes: nothing bad was kept to stand in for them.
    fixed = tmp_path / "fixed"
    fixed.mkdir()
    for name in [*BAD, "cut_index_first"]:
        shutil.copy(folder / "faststart.mp4", fixed / f"{name}.mp4")
    args = write_inputs(tmp_path / "in", {**sources, **{n: str(fixed / f"{n}.mp4") for n in [*BAD, "cut_index_first"]}},
                        clips)
    (data / "videos" / "cut_index_first.mp4").unlink()
    proc = F.run_stage(F.stage_cmd("fetch", *args, "--data-dir", data))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(list(data.glob("clips/*/*/*.mp4"))) == len(clips)


def test_a_download_that_is_not_a_video_is_not_kept_so_the_next_run_gets_it_again(tmp_path, bad_videos):
    from signwrite.fetch import main

    folder, good = bad_videos
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(folder / "text.mp4", site / "v1.mp4")  # a web page where the video should be
    with F.serve(site) as url:
        args = write_inputs(tmp_path / "in", {"v1": f"{url}/v1.mp4"}, [("A", "v1", 1, 2)])
        data = tmp_path / "data"
        assert main([str(a) for a in [*args, "--data-dir", data]]) == 1
        assert list((data / "videos").glob("v1*")) == []
        assert (data / "videos" / "download-archive.txt").read_text() == ""
        shutil.copy(good, site / "v1.mp4")  # the site is fixed
        assert main([str(a) for a in [*args, "--data-dir", data]]) == 0
    assert (data / "videos" / "v1.mp4").read_bytes() == good.read_bytes()
    assert (data / "videos" / "download-archive.txt").read_text() == "generic v1\n"


def test_broken_videos_through_predict_each_fail_alone_with_their_name(tmp_path, bad_videos, small_run,
                                                                      signs_video, capsys):
    from signwrite import predict

    folder, _ = bad_videos
    videos = [folder / f"{name}.mp4" for name in BAD] + [signs_video, folder / "cut_index_first.mp4"]
    result = in_process(predict.main, ["--run", small_run, *videos, "--json"], capsys)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    for name, why in BAD.items():
        assert f"signwrite predict: error: {folder / name}.mp4: {why}" in result.stderr
    answers = {Path(v["video"]).stem: v for v in json.loads(result.stdout)["videos"]}
    assert {name: answers[name]["error"].split(": ", 1)[1] for name in BAD} == {
        name: f"{why}; download or copy it again" for name, why in BAD.items()}
    assert answers["signs"]["top_k"] and "error" not in answers["signs"]  # the others still run
    # a video cut short is classified from the frames that decode, and says so
    assert answers["cut_index_first"]["frames"] < 6 and "only" in result.stderr

    # no frame in the asked-for span of a video cut short
    late = in_process(predict.main, ["--run", small_run, folder / "cut_index_first.mp4", "--start", 4, "--end", 5],
                      capsys)
    assert late.returncode == 1
    assert f"signwrite predict: error: {folder / 'cut_index_first.mp4'}: no frame could be decoded" in late.stderr

    # transcribing: one line, and no output for a video that cannot be read
    for name, why in BAD.items():
        out = tmp_path / name
        done = in_process(predict.main, transcribe_args(small_run, folder / f"{name}.mp4", out), capsys)
        assert done.returncode == 1
        assert done.stderr.strip().splitlines()[-1].startswith(f"signwrite predict: error: {folder / name}.mp4: {why}")
        assert not out.exists()


# --------------------------------------------------------------------------- run folders

def lambda_model(path: Path, marker: Path, n_classes: int) -> Path:
    """A model "from elsewhere": a Lambda layer whose code, if it ever ran, writes ``marker``."""
    import keras

    code = f"lambda t: (__import__('pathlib').Path({str(marker)!r}).write_text('ran'), t)[1]"
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Lambda(eval(code))(inputs)  # building the model runs it once, here
    outputs = keras.layers.Dense(n_classes, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    keras.Model(inputs, outputs).save(path)
    marker.unlink()
    return path


def foreign_function_model(run: Path, path: Path, marker: Path) -> Path:
    """The run's own model.keras with a function from another module slipped into its config."""
    import zipfile

    with zipfile.ZipFile(run / "model.keras") as z:
        files = {name: z.read(name) for name in z.namelist()}
    config = json.loads(files["config.json"])

    def layers(node):  # the classifier nests the backbone and the head: walk it all
        if isinstance(node, dict):
            if node.get("class_name") == "Dense":
                yield node
            for value in node.values():
                yield from layers(value)
        elif isinstance(node, list):
            for value in node:
                yield from layers(value)

    dense = next(layers(config))
    dense["config"]["kernel_regularizer"] = {"module": "os", "class_name": "system", "registered_name": None,
                                             "config": {"command": f"touch {marker}"}}
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def broken_runs(small_run: Path, root: Path, marker: Path) -> dict[str, tuple[Path, str]]:
    """name -> (a run folder with one thing wrong, what the error must say)."""
    runs = {}

    def copy(name):
        runs[name] = root / name
        shutil.copytree(small_run, root / name, ignore=shutil.ignore_patterns("train", "validation", "test", "*.png"))
        return root / name

    (copy("no_model") / "model.keras").unlink()
    (copy("no_labels") / "labels.json").unlink()
    (copy("wrong_labels") / "labels.json").write_text(json.dumps(["red_disk", "green_bar"]))
    (copy("not_a_model") / "model.keras").write_text("not a zip at all")
    lambda_model(copy("lambda") / "model.keras", marker, len(SMALL_LABELS))
    foreign_function_model(small_run, copy("foreign_function") / "model.keras", marker)
    why = {"no_model": "model.keras: missing (the model); the run has not finished",
           "no_labels": "labels.json: missing (the labels); the run has not finished",
           "wrong_labels": f": labels.json lists 2 labels but the model outputs {len(SMALL_LABELS)} classes; the "
                           "files come from different runs",
           "not_a_model": "model.keras: not a Keras model file (BadZipFile",
           "lambda": "model.keras: holds code that loading it would run (a Lambda layer, the Python code of a lambda)",
           "foreign_function": "model.keras: holds code that loading it would run (os.system)"}
    return {name: (runs[name], why[name]) for name in runs}


@pytest.mark.parametrize("stage", ["predict", "evaluate"])
def test_broken_or_foreign_run_folders_are_refused_with_one_line_and_no_code_runs(tmp_path, small_run, signs_video,
                                                                                 stage, capsys):
    from signwrite import evaluate, predict

    marker = tmp_path / "code-from-the-model-ran"
    for name, (run, why) in broken_runs(small_run, tmp_path / "runs", marker).items():
        before = F.fingerprint(run)
        if stage == "predict":
            result = in_process(predict.main, ["--run", run, signs_video], capsys)
        else:
            result = in_process(evaluate.main, ["--run", run, "--data-dir", tmp_path / "no-data"], capsys)
        assert result.returncode == 1, name
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"signwrite {stage}: error: {run}"), (name, lines)
        assert why in lines[0], (name, lines[0])
        assert not marker.exists(), name  # never ran
        assert F.fingerprint(run) == before  # and nothing was written into the folder

    # The marker is a fair witness: loading the Lambda model unsafely does run its code.
    import keras

    keras.saving.load_model(tmp_path / "runs" / "lambda" / "model.keras", safe_mode=False)
    assert marker.read_text() == "ran"


# --------------------------------------------------------------------------- the pieces

@pytest.mark.parametrize("stage,module,name", [
    ("fetch", "signwrite.clip_times", "fetch"), ("extract_frames", "signwrite.video", "extract-frames"),
    ("train", "signwrite.fsutil", "train"), ("predict", "signwrite.transcribe", "predict")])
def test_ctrl_c_while_a_command_is_starting_is_one_line_and_exit_130(tmp_path, stage, module, name):
    """A Ctrl-C before the stage begins (while it imports): no traceback, nothing written."""
    proc = F.run_stage(F.stage_cmd(stage, "--help"), env=F.interrupt_on_import_env(tmp_path, module))
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == F.EARLY + "\n" and proc.stdout == ""


def test_only_the_temps_of_dead_writers_are_taken_from_a_shared_folder(tmp_path):
    import os

    from signwrite import fsutil

    live = fsutil.temp_path_for(tmp_path / "a" / "signs.csv")  # this process: still writing
    dead = live.with_name(live.name.replace(f"-{os.getpid()}.", "-999999999."))
    elsewhere = live.with_name(live.name.replace(fsutil.writer_tag(), "0123abcd-1"))  # another machine
    other_output = fsutil.temp_path_for(tmp_path / "a" / "signs.v2.csv")
    dead_other = other_output.with_name(other_output.name.replace(f"-{os.getpid()}.", "-999999999."))
    for p in (dead, elsewhere, dead_other):
        p.write_text("left by a killed run")
    assert fsutil.remove_stale_temps_of(tmp_path / "a" / "signs.csv") == 1 and not dead.exists()
    assert dead_other.exists()  # another output's, though its name starts the same
    assert fsutil.remove_stale_temps(tmp_path, only_dead_writers=True) == 1 and not dead_other.exists()
    assert live.exists() and elsewhere.exists()
    assert fsutil.remove_stale_temps(tmp_path) == 3  # a run holding the folder alone takes all


def test_a_full_disk_is_recognised_whoever_met_it(tmp_path):
    import errno

    from signwrite.errors import DiskFullError
    from signwrite.fsutil import atomic_path, full_disk_path, is_disk_full

    class ResourceExhaustedError(Exception):  # TensorFlow's, which is no OSError
        pass

    tf = ResourceExhaustedError("{{function_node __wrapped__CreateSummaryFileWriter_device_/job:localhost}} "
                                "/logs/r/train/events.out.tfevents.1; No space left on device")
    h5 = OSError(errno.ENOSPC, "Unable to synchronously create file (unable to open file: name = "
                               "'/logs/r/ckpt.h5', errno = 28)")
    wrapped = RuntimeError("saving failed")
    wrapped.__cause__ = OSError(errno.ENOSPC, "No space left on device", "/logs/r/model.keras")
    assert [is_disk_full(e) for e in (tf, h5, wrapped, OSError(errno.EACCES, "denied"))] == [True, True, True, False]
    assert [full_disk_path(e) for e in (tf, h5, wrapped)] == [
        "/logs/r/train/events.out.tfevents.1", "/logs/r/ckpt.h5", "/logs/r/model.keras"]
    with pytest.raises(DiskFullError, match=f"^{tmp_path / 'out.bin'}: the disk is full"):
        with atomic_path(tmp_path / "out.bin"):
            raise wrapped
    assert list(tmp_path.iterdir()) == []


def test_a_ctrl_c_during_a_held_call_lands_right_after_it():
    """What keeps a Ctrl-C out of TensorFlow's model call (where it became a SystemError)."""
    import os

    from signwrite.process import interrupts_held

    done = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_held():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)  # the signal is handled meanwhile, and held
            done.append("the call finished")
    assert done == ["the call finished"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
