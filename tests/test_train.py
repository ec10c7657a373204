"""train / evaluate / run on tiny generated frames: a model that learns, and every output it owes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from frames_tools import make_frames_dataset
from model_fixture import small_run, small_run_settings  # noqa: F401  (the session's small run)
from signwrite import data, tables
from signwrite.errors import InputError, RunError, SignwriteError

RUN_FILES = ["model.keras", "labels.json", "config.json", "history.csv", "metrics.json",
             "classification_report.txt", "confusion_matrix.png", "test_predictions.png", "predictions.csv"]


def run_train(settings):
    from signwrite.train import train

    return train(settings)


@pytest.fixture(scope="module")
def trained(small_run):
    """The session's small run (tests/model_fixture.py): small_cnn at 32 px, from scratch,
    end-to-end, on four visibly different classes; (run folder, data folder, its metrics)."""
    return small_run, small_run.parents[1] / "data", json.loads((small_run / "metrics.json").read_text())


# -- validation carving (no TensorFlow) ------------------------------------------------------

def frames_table(spec):
    """spec: [(video, label, n_clips, n_frames)] -> a per-frame train table."""
    rows = []
    for video, label, n_clips, n_frames in spec:
        for c in range(n_clips):
            for p in range(n_frames):
                rows.append(("train", label, f"{video}_{label}_{c}", video, f"/x/{video}{label}{c}-{p}.jpg", p, p))
    return pd.DataFrame(rows, columns=["split", "label", "clip_id", "video", "path", "index", "position"])


def test_validation_holds_out_whole_videos_and_keeps_every_label():
    t = frames_table([(v, lab, 1, 4) for v in ("v1", "v2", "v3", "v4", "v5") for lab in "AB"] + [("v1", "C", 1, 4)])
    val = data.carve_validation(t, 0.2, seed=0)
    assert val.strategy == "videos"
    held = set(val.val.video)
    assert held and "v1" not in held  # v1 holds the only C clip
    assert not held & set(val.train.video)  # a video is on one side only
    assert set(val.train.label) == {"A", "B", "C"}
    assert len(val.train) + len(val.val) == len(t)


def test_single_video_falls_back_to_whole_clips_never_a_labels_only_clip():
    t = frames_table([("v1", "A", 5, 3), ("v1", "B", 1, 3), ("v1", "C", 2, 3)])
    val = data.carve_validation(t, 0.2, seed=0)
    assert val.strategy == "clips" and "single video" in val.note
    assert set(val.train.label) == {"A", "B", "C"}
    assert "B" not in set(val.val.label)  # B's only clip stays in training
    assert not set(val.val.clip_id) & set(val.train.clip_id)  # whole clips
    assert val.val.clip_id.nunique() == 2  # round(0.2 * 5) of A, and one of C's two


def test_one_clip_per_label_holds_out_the_time_tail_of_each_clip():
    t = frames_table([("v1", lab, 1, 10) for lab in "ABC"])
    val = data.carve_validation(t, 0.2, seed=0)
    assert val.strategy == "time-tail" and "last 20%" in val.note
    assert len(val.val) == 6 and set(val.val.position) == {8, 9}
    assert val.train.groupby("clip_id").position.max().eq(7).all()


def test_validation_fallback_is_logged(tmp_path, caplog):
    import logging

    from signwrite.train import TrainSettings, load_data

    make_frames_dataset(tmp_path / "data", labels=("red_disk", "green_bar"), videos={"train": ["va"], "test": ["vb"]})
    with caplog.at_level(logging.INFO):
        load_data(TrainSettings(data_dir=tmp_path / "data").resolved())
    assert "time" in caplog.text and "single clip" in caplog.text


def test_bad_frames_csv_names_every_bad_row(tmp_path):
    d = make_frames_dataset(tmp_path / "data", labels=("red_disk", "green_bar"), videos={"train": ["va"]})
    csv = d / "frames" / "frames.csv"
    t = pd.read_csv(csv)
    t.loc[0, "split"] = "dev"
    t.loc[1, "n_frames"] = 99
    t.to_csv(csv, index=False)
    Path(d / "frames" / t.frames[1].split(";")[0]).unlink()
    with pytest.raises(InputError) as info:
        tables.read_frames_csv(d)
    msg = str(info.value)
    assert "row 2" in msg and "'dev'" in msg and "row 3" in msg and "n_frames is 99" in msg
    assert "missing" in msg and "extract_frames" in msg


# -- a whole run ------------------------------------------------------------------------------

def test_run_learns_clearly_above_chance(trained):
    run_dir, _, metrics = trained
    assert metrics["n_classes"] == 4 and metrics["chance_top1"] == 0.25
    assert metrics["clip_top1"] >= 0.75, metrics  # chance is 0.25
    assert metrics["frame_top1"] >= 0.6


def test_run_folder_holds_every_file_with_sane_contents(trained):
    run_dir, data_dir, metrics = trained
    for name in RUN_FILES:
        assert (run_dir / name).is_file() and (run_dir / name).stat().st_size > 0, name
    saved = json.loads((run_dir / "metrics.json").read_text())
    for key in ("clip_top1", "clip_top3", "clip_top10", "frame_top1", "n_test_clips", "n_classes", "chance_top1"):
        assert key in saved
    assert saved["n_test_clips"] == 8 and saved["n_test_frames"] == 48
    assert saved["clip_top10"] is None and "clip_top10" in saved["topk_notes"]  # k=10 >= 4 classes
    assert set(saved["per_class"]) == {"blue_box", "green_bar", "red_disk", "yellow_cross"}
    assert {"precision", "recall", "f1-score", "support"} <= set(saved["per_class"]["red_disk"])

    assert json.loads((run_dir / "labels.json").read_text()) == ["blue_box", "green_bar", "red_disk", "yellow_cross"]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["backbone"] == "small_cnn" and config["image_size"] == 32 and config["mode"] == "end-to-end"
    assert config["extract_config"]["frames_per_clip"] == 6 and config["data"]["validation"] == "videos"

    history = pd.read_csv(run_dir / "history.csv")
    assert {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "val_clip_top1"} <= set(history.columns)
    epochs = small_run_settings(run_dir.parents[1]).epochs
    assert config["epochs"] == config["patience"] == epochs
    assert list(history.epoch) == list(range(epochs))  # every epoch once: patience = epochs never stops early
    n_val = config["data"]["n_val_clips"]
    assert n_val == 8 and np.allclose(history.val_clip_top1 * n_val, (history.val_clip_top1 * n_val).round())

    # clip top-1 and top-3 are the counts of right clips in predictions.csv over the clip count
    preds = pd.read_csv(run_dir / "predictions.csv")
    assert len(preds) == 8 and set(preds.label) == set(saved["per_class"]) and preds.clip_id.is_unique
    ranked = preds.top_k.str.split(";").map(lambda items: [item.split(":")[0] for item in items])
    assert ranked.map(len).eq(4).all()  # top-k lists min(10, 4) classes, best first
    assert (ranked.str[0] == preds.predicted_label).all()
    assert (preds.correct == (preds.predicted_label == preds.label)).all()
    top1 = int(preds.correct.sum())
    top3 = sum(label in r[:3] for label, r in zip(preds.label, ranked))
    assert saved["clip_top1_correct"] == top1 and saved["clip_top1"] == top1 / 8
    assert saved["clip_top3"] == top3 / 8
    scores = preds.top_k.str.split(";").map(lambda items: [float(item.split(":")[1]) for item in items])
    assert scores.map(lambda p: p == sorted(p, reverse=True) and abs(sum(p) - 1) < 2e-3).all()

    report = (run_dir / "classification_report.txt").read_text()
    assert "precision" in report and "yellow_cross" in report
    # the pictures decode whole, at the size of the images TensorBoard holds for them
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "test"), size_guidance={"tensors": 0})
    events.Reload()
    for png in ("confusion_matrix", "test_predictions"):
        import cv2

        picture = cv2.imdecode(np.frombuffer((run_dir / f"{png}.png").read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED)
        assert picture is not None and picture.ndim == 3 and picture.shape[2] in (3, 4), png
        width, height = (int(v) for v in events.Tensors(png)[0].tensor_proto.string_val[:2])
        assert picture.shape[:2] == (height, width) and min(height, width) >= 200, (png, picture.shape)
        assert picture[..., :3].std() > 10  # a drawing, not a blank page
    for sub in ("train", "validation", "test"):
        assert list((run_dir / sub).glob("events.out.tfevents.*")), sub
    assert not (run_dir / "checkpoints").exists()  # cleaned once the model is saved


def test_tensorboard_holds_final_topk_images_and_hparams(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, _, metrics = trained
    acc = EventAccumulator(str(run_dir / "test"), size_guidance={"tensors": 0})
    acc.Reload()
    tags = set(acc.Tags()["tensors"])
    assert {"clip_top1", "clip_top3", "frame_top1", "confusion_matrix", "test_predictions"} <= tags
    from tensorboard.util import tensor_util

    value = float(tensor_util.make_ndarray(acc.Tensors("clip_top1")[0].tensor_proto))
    assert value == pytest.approx(metrics["clip_top1"])
    plugins = {m.plugin_data.plugin_name for m in acc.summary_metadata.values()}
    assert "images" in plugins
    root = EventAccumulator(str(run_dir), size_guidance={"tensors": 0})
    root.Reload()
    assert "hparams" in {m.plugin_data.plugin_name for m in root.summary_metadata.values()}
    val = EventAccumulator(str(run_dir / "validation"), size_guidance={"tensors": 0})
    val.Reload()
    assert {"epoch_loss", "epoch_accuracy", "epoch_clip_top1"} <= set(val.Tags()["tensors"])


def test_evaluate_reproduces_metrics_json(trained, capsys):
    from signwrite.evaluate import main

    run_dir, data_dir, metrics = trained
    assert main(["--run", str(run_dir), "--data-dir", str(data_dir)]) == 0
    again = json.loads((run_dir / "metrics.json").read_text())
    for key in ("clip_top1", "clip_top3", "clip_top10", "frame_top1", "n_test_clips", "clip_top1_correct"):
        assert again[key] == metrics[key], key
    out = capsys.readouterr().out
    assert "top-1" in out and str(run_dir) in out


def test_predict_frames_agrees_with_saved_predictions(trained):
    import cv2

    from signwrite.run import load_run

    run_dir, data_dir, _ = trained
    run = load_run(run_dir)
    assert run.labels == json.loads((run_dir / "labels.json").read_text())
    assert run.sampling["frames_per_clip"] == 6
    table = pd.read_csv(data_dir / "frames" / "frames.csv")
    preds = pd.read_csv(run_dir / "predictions.csv").set_index("clip_id")
    for clip in table[table.split == "test"].itertuples():
        frames = [cv2.imread(str(data_dir / "frames" / f)) for f in clip.frames.split(";")]
        probs = run.predict_frames(frames)
        assert probs.shape == (6, 4) and np.allclose(probs.sum(1), 1, atol=1e-4)
        clip_probs = run.aggregate(probs)
        saved = preds.loc[clip.clip_id]
        assert run.labels[int(clip_probs.argmax())] == saved.predicted_label
        assert clip_probs.max() == pytest.approx(saved.p_predicted, abs=2e-3)
    # training frames: the model knows them
    train = table[table.split == "train"]
    hits = [run.labels[int(run.aggregate(run.predict_frames(
        [cv2.imread(str(data_dir / "frames" / f)) for f in c.frames.split(";")])).argmax())] == c.label
        for c in train.itertuples()]
    assert np.mean(hits) >= 0.75


def test_predict_frames_takes_raw_frames_of_any_size(trained):
    import cv2

    from signwrite.run import load_run

    run_dir, data_dir, _ = trained
    run = load_run(run_dir)
    table = pd.read_csv(data_dir / "frames" / "frames.csv")
    first = table[table.split == "test"].iloc[0]
    frame = cv2.imread(str(data_dir / "frames" / first.frames.split(";")[0]))
    # A 4x nearest-neighbour copy: the run's area resize brings it back to exactly the stored
    # pixels, so the prediction must match to float precision, however the model trained.
    big = cv2.resize(frame, (frame.shape[1] * 4, frame.shape[0] * 4), interpolation=cv2.INTER_NEAREST)
    p_small, p_big = run.predict_frames([frame]), run.predict_frames([big])
    assert p_small.argmax() == p_big.argmax()
    assert np.abs(p_small - p_big).max() < 1e-4
    assert run.predict_frames([]).shape == (0, 4)


def test_load_run_names_what_is_missing_or_mismatched(trained, tmp_path):
    from signwrite.run import load_run

    run_dir, _, _ = trained
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken, ignore=shutil.ignore_patterns("train", "validation", "test"))
    (broken / "labels.json").write_text(json.dumps(["a", "b", "c"]))
    with pytest.raises(RunError, match="3 labels but the model outputs 4"):
        load_run(broken)
    (broken / "labels.json").unlink()
    with pytest.raises(RunError, match="labels.json: missing"):
        load_run(broken)
    (broken / "model.keras").unlink()
    with pytest.raises(RunError, match="model.keras: missing"):
        load_run(broken)
    with pytest.raises(RunError, match="no such run folder"):
        load_run(tmp_path / "nothing")


def test_a_finished_run_is_not_trained_again(trained, capsys, caplog):
    import logging

    from signwrite.train import TrainSettings

    run_dir, data_dir, metrics = trained
    outputs = ("model.keras", "history.csv", "metrics.json", "predictions.csv", "confusion_matrix.png")
    stamps = {name: (run_dir / name).stat().st_mtime_ns for name in outputs}
    history = (run_dir / "history.csv").read_bytes()
    s = small_run_settings(run_dir.parents[1])  # the command that trained it
    assert (s.logdir / s.run, s.data_dir) == (run_dir, data_dir)
    with caplog.at_level(logging.INFO):
        assert run_train(s)["clip_top1"] == metrics["clip_top1"]
    # nothing trained, scored or written again: no epoch logged, every output untouched
    assert not [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert {name: (run_dir / name).stat().st_mtime_ns for name in outputs} == stamps
    assert (run_dir / "history.csv").read_bytes() == history
    assert "top-1" in capsys.readouterr().out
    with pytest.raises(SignwriteError, match="other settings.*epochs"):
        run_train(TrainSettings(**{**s.__dict__, "epochs": s.epochs + 1}))


# -- frozen mode: cached features, resuming -----------------------------------------------------

def test_frozen_run_resumes_after_a_stop_and_reuses_cached_features(tmp_path, monkeypatch):
    import keras

    from signwrite import callbacks as T
    from signwrite.train import TrainSettings

    d = make_frames_dataset(tmp_path / "data", videos={"train": ["va", "vb", "vc"], "test": ["vd"]})
    s = TrainSettings(data_dir=d, logdir=tmp_path / "logs", run="frozen", backbone="mobilenet_v2",
                      weights="none", image_size=32, mode="frozen", epochs=6, patience=6, batch_size=8,
                      backup_seconds=0)

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    real = T.make_callbacks
    monkeypatch.setattr(T, "make_callbacks", lambda *a, **k: real(*a, **k) + [Stop()])
    with pytest.raises(KeyboardInterrupt):
        run_train(s)
    run_dir = tmp_path / "logs" / "frozen"
    assert not (run_dir / "model.keras").exists()
    assert (run_dir / "checkpoints" / "head" / "backup").is_dir()
    assert list(pd.read_csv(run_dir / "history.csv").epoch) == [0, 1, 2]
    cache = list((d / "features").rglob("*.npz"))
    assert len(cache) == 12  # one file per training clip: 3 videos x 4 labels
    stamps = {p: p.stat().st_mtime_ns for p in cache}

    # what a run killed mid-write leaves: a cache temp of a writer that is gone, which the next
    # run clears, and one of a writer still going (another run filling the shared cache), kept
    from signwrite.fsutil import TMP_MARK, _machine, writer_tag

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    folder = cache[0].parent
    dead_temp = folder / f".{cache[0].stem}.{_machine()}-{gone}.x1{TMP_MARK}.npz"
    live_temp = folder / f".{cache[0].stem}.{writer_tag()}.x2{TMP_MARK}.npz"
    dead_temp.write_bytes(b"half")
    live_temp.write_bytes(b"half")
    monkeypatch.setattr(T, "make_callbacks", real)
    metrics = run_train(s)
    assert not dead_temp.exists() and live_temp.exists()
    live_temp.unlink()
    assert not [p.name for p in run_dir.rglob(f"*{TMP_MARK}*")]
    history = pd.read_csv(run_dir / "history.csv")
    assert list(history.epoch) == list(range(6))  # picked up at epoch 3, no epoch twice
    assert metrics["n_test_clips"] == 4 and (run_dir / "model.keras").is_file()
    assert {p: p.stat().st_mtime_ns for p in cache} == stamps  # features were not recomputed

    from signwrite import features

    frames = data.explode_frames(tables.read_frames_csv(d), d)
    assert features.extract_features(frames[frames.split == "train"], None, None,
                                     next(p for p in (d / "features").iterdir())) == 0


def test_the_phase_sidecar_holds_the_resume_state_and_history_keeps_each_epoch_once(tmp_path):
    """state.json (written at each epoch's end) carries the best score and the wait; the epochs
    a resumed phase trains again leave history.csv first; an old phase folder gets one line."""
    from signwrite import callbacks as C

    phase_dir = tmp_path / "checkpoints" / "head"
    phase_dir.mkdir(parents=True)
    fresh = C.read_state(phase_dir)
    assert fresh["best"] is None and fresh["wait"] == 0 and not fresh["done"]
    writer = C.PhaseState(phase_dir, "val_loss", fresh)
    for epoch, loss in enumerate([0.9, 0.5, 0.7, 0.6]):
        writer.on_epoch_end(epoch, {"val_loss": loss})
    state = C.read_state(phase_dir)
    assert (state["epoch"], state["best"], state["best_epoch"], state["wait"]) == (4, 0.5, 1, 2)
    C.mark_done(phase_dir, 4)
    assert C.read_state(phase_dir)["done"] and C.read_state(phase_dir)["epoch"] == 4

    history = tmp_path / "history.csv"
    history.write_text("epoch,loss,val_loss\r\n0,1,0.9\r\n1,1,0.5\r\n2,1,0.7\r\n3,1,0.6\r\n")
    logger = C.ResumedCSVLogger(str(history), append=True)
    logger.on_train_begin()
    logger.on_epoch_begin(2)  # the backup held epochs 0 and 1
    logger.on_epoch_end(2, {"loss": 0.4, "val_loss": 0.8})
    logger.on_train_end()
    assert list(pd.read_csv(history).epoch) == [0, 1, 2] and pd.read_csv(history).val_loss[2] == 0.8

    old = tmp_path / "old" / "checkpoints" / "head"
    (old / "backup").mkdir(parents=True)
    with pytest.raises(SignwriteError, match="older signwrite.*delete .*checkpoints"):
        C.read_state(old)


def test_a_run_stopped_at_any_moment_of_its_backup_resumes_from_one_whole_epoch(tmp_path, monkeypatch):
    """The backup a re-run resumes from is always one whole epoch: weights, optimizer and the
    phase's state as they were at that epoch's end. A re-run started at any moment of a backup
    being written (what a kill there leaves) finds the previous backup, whole, and loads it;
    a backup skipped for time leaves the last one, with that epoch's state, not the sidecar's."""
    import keras

    from signwrite import callbacks as C
    from signwrite.fsutil import TMP_MARK

    def model():
        m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        m.compile(keras.optimizers.Adam(0.1), "mse")
        return m

    x, y = np.random.default_rng(0).normal(size=(8, 3)), np.ones((8, 2))
    m = model()
    phase_dir = tmp_path / "checkpoints" / "head"
    sidecar = C.PhaseState(phase_dir, "val_loss", C.fresh_state(phase_dir))
    clock = [1000.0]
    monkeypatch.setattr(C.time, "time", lambda: clock[0])
    backup = C.TimedBackup(phase_dir, 60, sidecar.state)
    backup.set_model(m)
    backup.on_train_begin()
    assert C.read_backup(phase_dir) is None  # nothing to resume from: the phase starts again

    def rerun_now():
        """What a re-run started at this moment resumes from: (epoch, loaded weights)."""
        epoch, weights, state = C.read_backup(phase_dir)
        fresh = model()
        fresh.optimizer.build(fresh.trainable_variables)
        fresh.load_weights(weights)  # a torn or half-written file raises here
        assert state["epoch"] == epoch
        return epoch, [w.copy() for w in fresh.get_weights()], [v.numpy().copy() for v in fresh.optimizer.variables]

    saved = {}
    for epoch, loss in enumerate([0.9, 0.5, 0.7]):
        m.fit(x, y, epochs=1, verbose=0)
        sidecar.on_epoch_end(epoch, {"val_loss": loss})
        clock[0] += 61
        if epoch < 2:
            backup.on_epoch_end(epoch)
            saved[epoch + 1] = rerun_now()
            continue
        # epoch 3's backup, stopped at every step of it: as the weights are written, once
        # they are renamed into place, and as backup.json is written
        seen, real_save, real_json = [], m.save_weights, C.write_json

        def save_weights(path):
            Path(path).write_bytes(b"\x89HDF\r\n")  # a kill now leaves this much of the file
            seen.append(("writing weights", rerun_now()[0]))
            real_save(path)
            seen.append(("weights written, not renamed", rerun_now()[0]))

        def write_json(path, obj):
            seen.append(("weights renamed into place", rerun_now()[0]))
            real_json(path, obj)

        monkeypatch.setattr(m, "save_weights", save_weights)
        monkeypatch.setattr(C, "write_json", write_json)
        backup.on_epoch_end(epoch)
        assert seen == [("writing weights", 2), ("weights written, not renamed", 2),
                        ("weights renamed into place", 2)]
        assert rerun_now()[0] == 3
    # each backup loads as it was saved, weights and optimizer (Adam's step count) of its epoch
    assert saved[1][0] == 1 and saved[2][0] == 2
    assert not all(np.array_equal(a, b) for a, b in zip(saved[1][1], saved[2][1]))
    assert [v for v in saved[1][2] if v.shape == ()] != [v for v in saved[2][2] if v.shape == ()]
    assert sorted(p.name for p in (phase_dir / "backup").iterdir()) == ["backup.json", "epoch-0003.weights.h5"]
    assert not list(phase_dir.rglob(f"*{TMP_MARK}*"))

    # a backup due only every 60 s: epoch 4 ends 10 s later, so the last backup stays epoch 3's,
    # with epoch 3's state (best 0.5, waited 1), while the sidecar has gone on to epoch 4
    monkeypatch.setattr(C, "write_json", real_json)
    clock[0] += 10
    sidecar.on_epoch_end(3, {"val_loss": 0.8})
    backup.on_epoch_end(3)
    epoch, _, state = C.read_backup(phase_dir)
    assert (epoch, state["best"], state["best_epoch"], state["wait"]) == (3, 0.5, 1, 1)
    assert (C.read_state(phase_dir)["epoch"], C.read_state(phase_dir)["wait"]) == (4, 2)
    backup.on_train_end()  # the phase is over: no backup to resume from
    assert C.read_backup(phase_dir) is None and not (phase_dir / "backup").exists()


# -- command line ------------------------------------------------------------------------------

def test_help_is_fast_because_tensorflow_is_not_imported():
    code = ("import sys\nfrom signwrite import train, evaluate\n"
            "try:\n    train.parse_args(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\nprint('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "--image-size" in out.stdout and "--weights" in out.stdout and out.stdout.endswith("ok\n")


def test_cli_refuses_an_image_size_below_the_minimum(tmp_path, capsys):
    from signwrite.train import main

    make_frames_dataset(tmp_path / "data", labels=("red_disk", "green_bar"), videos={"train": ["va"]})
    code = main(["--data-dir", str(tmp_path / "data"), "--logdir", str(tmp_path / "logs"), "--image-size", "60"])
    err = capsys.readouterr().err
    assert code == 1 and "at least 75 px" in err and "image_size=60" in err
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize("size", [48, 32])
def test_pipeline_frames_are_what_the_models_own_resizing_makes(tmp_path, size):
    """tf.data skips resizing a crop that already has the model's size; it must not matter."""
    import cv2

    from signwrite.backbones import frame_preprocessing
    from frames_tools import class_frame

    img = class_frame("yellow_cross", np.random.default_rng(0), 64, 48)
    cv2.imwrite(str(tmp_path / "f.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    resize = frame_preprocessing("mobilenet_v2", size)[0]
    ours = np.asarray(data.load_frame(str(tmp_path / "f.jpg"), resize))
    rgb = cv2.cvtColor(cv2.imread(str(tmp_path / "f.jpg")), cv2.COLOR_BGR2RGB).astype("float32")
    theirs = np.asarray(resize(rgb[None]))[0]
    assert ours.shape == (size, size, 3)
    np.testing.assert_allclose(ours, theirs, atol=1e-3)


def test_clip_top1_monitor_breaks_ties_by_frame_accuracy_then_loss(tmp_path):
    """Two epochs with the same clip top-1: the one whose frames are more often right wins,
    and the tie-break never outranks one more clip right."""
    from signwrite.callbacks import CLIP_SELECTION, make_callbacks, monitor_key
    from signwrite.train import TrainSettings

    frames = frames_table([("v1", "A", 1, 4), ("v1", "B", 1, 4)])
    labels = ["A", "B"]
    s = TrainSettings(monitor="val_clip_top1")
    assert monitor_key(s, frames) == CLIP_SELECTION and monitor_key(s, frames.iloc[:0]) == "loss"
    assert monitor_key(TrainSettings(), frames) == "val_loss"

    class Stub:
        def __init__(self, probs):
            self.probs = np.asarray(probs, "float32")

        def predict(self, *_args, **_kw):
            return self.probs

    def score(probs):
        cb = make_callbacks(s, tmp_path, tmp_path / "phase", None, frames, labels,
                            {"best": None, "wait": 0})[0]
        cb.set_model(Stub(probs))
        logs = {}
        cb.on_epoch_end(0, logs)
        return logs

    a_right, b_right = [0.9, 0.1], [0.1, 0.9]
    # both clips right; the second epoch has every frame right, the first only 6 of 8
    weak = score([a_right] * 3 + [[0.4, 0.6]] + [b_right] * 3 + [[0.6, 0.4]])
    strong = score([a_right] * 4 + [b_right] * 4)
    assert weak["val_clip_top1"] == strong["val_clip_top1"] == 1.0
    assert strong[CLIP_SELECTION] > weak[CLIP_SELECTION]
    # one clip wrong is worse than any tie-break
    half = score([a_right] * 4 + [a_right] * 4)
    assert half["val_clip_top1"] == 0.5 and half[CLIP_SELECTION] < weak[CLIP_SELECTION]
    assert half[CLIP_SELECTION] - 0.5 < 0.25  # under half of one clip's worth (1/2 here)


@pytest.mark.slow  # two processes of their own, each importing TensorFlow: ~30 s
def test_deterministic_runs_give_the_same_model_bit_for_bit(tmp_path):
    """--deterministic: the same command on the same data trains the same weights. Each run is
    its own process (two at once), so the flag alone decides: in this pytest process op
    determinism may already be on (an in-process run turns it on for good). Without the flag,
    two such runs differ (measured: by up to 0.03 in a weight)."""
    import keras

    data_dir = make_frames_dataset(tmp_path / "data", labels=("red_disk", "green_bar"),
                                   videos={"train": ["va", "vb"], "test": ["vc"]})
    logs = tmp_path / "logs"

    def run(name):
        return subprocess.Popen([sys.executable, "-m", "signwrite.train", "--data-dir", str(data_dir), "--logdir",
                                 str(logs), "--run", name, "--backbone", "small_cnn", "--weights", "none",
                                 "--image-size", "32", "--epochs", "2", "--batch-size", "8", "--deterministic"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    procs = [run("a"), run("b")]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    weights = []
    for name in ("a", "b"):
        assert json.loads((logs / name / "config.json").read_text())["deterministic"] is True
        weights.append(keras.saving.load_model(logs / name / "model.keras", compile=False).get_weights())
    assert len(weights[0]) == len(weights[1]) > 0
    assert all(np.array_equal(a, b) for a, b in zip(*weights))
    assert (logs / "a" / "history.csv").read_bytes() == (logs / "b" / "history.csv").read_bytes()
    assert (logs / "a" / "predictions.csv").read_bytes() == (logs / "b" / "predictions.csv").read_bytes()
