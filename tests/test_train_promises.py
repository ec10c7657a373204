"""train's promises with a behaviour to show: end-to-end runs stopped and resumed, early stopping
and --monitor, --aggregate end to end, a test split that never picks the checkpoint, and the
default backbone (InceptionV3) with a local weights file through the pretrained path.

Every run here goes through the command line (``signwrite.train.main``) in this process, with
--deterministic: op determinism is process-wide once on, and each comparison below needs it.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from frames_tools import make_frames_dataset
from signwrite.tables import read_frames_csv

INTERRUPTED = "signwrite train: interrupted; run the same command again to finish (finished work is kept)"
SMALL = ["--backbone", "small_cnn", "--weights", "none", "--image-size", "32", "--batch-size", "4",
         "--backup-seconds", "0", "--seed", "0", "--deterministic"]


def small_data(folder: Path) -> Path:
    return make_frames_dataset(folder, labels=("red_disk", "green_bar"),
                               videos={"train": ["va", "vb", "vc"], "test": ["vd"]})


class EpochsLogged(logging.Handler):
    """The epochs a run logs as it trains them ("epoch 3/5 ..."), 1-based."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.epochs: list[int] = []

    def emit(self, record):
        m = re.match(r"epoch (\d+)/\d+ ", record.getMessage())
        if m:
            self.epochs.append(int(m.group(1)))


def train(data_dir: Path, logdir: Path, run: str, *args) -> tuple[int, str, list[int]]:
    """``signwrite train`` here: exit code, what it printed on stderr, the epochs it trained."""
    from signwrite.train import main

    epochs, err = EpochsLogged(), io.StringIO()
    root = logging.getLogger()
    root.addHandler(epochs)
    try:
        with contextlib.redirect_stderr(err):
            rc = main(["--data-dir", str(data_dir), "--logdir", str(logdir), "--run", run, *map(str, args)])
    finally:
        root.removeHandler(epochs)
    return rc, err.getvalue(), epochs.epochs


@contextlib.contextmanager
def ctrl_c_when(condition, settle=lambda: 0.0, again_every: float | None = None):
    """Within the block, press Ctrl-C (SIGINT to this process) once ``condition()`` holds and
    ``settle()`` more seconds have passed; with ``again_every``, press again every so many
    seconds until the block ends (as a user would). Yields the list of the moments sent."""
    sent, stop = [], threading.Event()

    def watch():
        while not stop.is_set():
            if condition():
                time.sleep(settle())
                while not stop.is_set():
                    sent.append(time.monotonic())
                    os.kill(os.getpid(), signal.SIGINT)
                    if again_every is None or stop.wait(again_every):
                        return
                return
            time.sleep(0.002)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield sent
    finally:
        stop.set()
        thread.join()


@contextlib.contextmanager
def ctrl_c_mid_epoch(epoch: int):
    """Within the block, press Ctrl-C (SIGINT to this process) once half of ``epoch``'s
    (1-based) batches are done: a moment inside the epoch's training, whatever this machine's
    speed. Yields the list of the batches it was pressed at."""
    import keras

    from signwrite import callbacks as C

    sent = []

    class Press(keras.callbacks.Callback):
        def on_epoch_begin(self, e, logs=None):
            self.epoch = e + 1

        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == epoch and batch + 1 == max(1, self.params["steps"] // 2) and not sent:
                sent.append((self.epoch, batch + 1))
                os.kill(os.getpid(), signal.SIGINT)

    with pytest.MonkeyPatch.context() as mp:
        real = C.make_callbacks
        mp.setattr(C, "make_callbacks", lambda *a, **k: [Press(), *real(*a, **k)])
        yield sent


def history_rows(run_dir: Path) -> list[str]:
    path = run_dir / "history.csv"
    return path.read_text().splitlines()[1:] if path.is_file() else []


def model_weights(run_dir: Path) -> list[np.ndarray]:
    import keras

    return keras.saving.load_model(run_dir / "model.keras", compile=False).get_weights()


def same_weights(a, b) -> bool:
    return len(a) == len(b) > 0 and all(np.array_equal(x, y) for x, y in zip(a, b))


# -- end-to-end: stopped mid-epoch, resumed ----------------------------------------------------------

E2E_EPOCHS = 4


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    """small_cnn from scratch, end-to-end (one phase): an uninterrupted run, and the same command
    stopped by Ctrl-C half-way through epoch 3's batches, then run again."""
    root = tmp_path_factory.mktemp("e2e-resume")
    data, logs = small_data(root / "data"), root / "logs"
    args = [*SMALL, "--epochs", E2E_EPOCHS, "--patience", E2E_EPOCHS]
    assert train(data, logs, "whole", *args)[0] == 0
    cut = logs / "cut"
    with ctrl_c_mid_epoch(3) as sent:
        stopped = train(data, logs, "cut", *args)
    assert sent, "the run ended before epoch 3 was half done"
    rows_when_stopped = history_rows(cut)
    stopped_files = sorted(p.relative_to(cut).as_posix() for p in cut.rglob("*") if p.is_file())
    resumed = train(data, logs, "cut", *args)
    return logs, stopped, rows_when_stopped, stopped_files, resumed


@pytest.mark.slow  # three runs: ~27 s
def test_an_end_to_end_run_stopped_mid_epoch_resumes_and_redoes_no_epoch(e2e):
    logs, (rc, err, trained_first), rows_when_stopped, stopped_files, (rc2, err2, trained_again) = e2e
    assert rc == 130 and err.strip().splitlines()[-1] == INTERRUPTED and "Traceback" not in err
    assert trained_first == [1, 2] and len(rows_when_stopped) == 2  # stopped inside epoch 3
    assert "model.keras" not in stopped_files and any(f.startswith("checkpoints/") for f in stopped_files)
    assert rc2 == 0, err2
    assert trained_again == [3, 4]  # picked up at epoch 3: epochs 1 and 2 not trained again
    rows = history_rows(logs / "cut")
    assert [int(r.split(",")[0]) for r in rows] == list(range(E2E_EPOCHS))
    assert rows[:2] == rows_when_stopped  # the epochs done before the stop are kept as they were
    # and they are the uninterrupted run's epochs, to the last digit (the same start, deterministic)
    assert history_rows(logs / "whole")[:2] == rows_when_stopped
    assert not (logs / "cut" / "checkpoints").exists()


@pytest.mark.slow  # three runs: ~27 s
def test_a_resumed_end_to_end_run_equals_the_uninterrupted_one(e2e):
    """Each epoch's shuffle, augmentation and dropout come from (seed, epoch) alone
    (data.EpochRandomness), so epochs 3 and 4 trained in a new process are the uninterrupted run's."""
    logs = e2e[0]
    assert history_rows(logs / "cut") == history_rows(logs / "whole")
    assert same_weights(model_weights(logs / "cut"), model_weights(logs / "whole"))


def a_phase_done(run_dir: Path) -> bool:
    """Whether a phase of the run is marked done in its sidecar (checkpoints/<phase>/state.json)."""
    for path in run_dir.glob("checkpoints/*/state.json"):
        with contextlib.suppress(OSError, ValueError):  # written atomically; gone once the model is saved
            if json.loads(path.read_text()).get("done"):
                return True
    return False


@pytest.fixture(scope="module")
def two_phase(tmp_path_factory):
    """Pretrained weights end-to-end: a head warm-up on cached features, then the top blocks.
    An uninterrupted run, and the same command stopped by Ctrl-C once the warm-up is done
    (its phase marked done), then run again."""
    from signwrite import backbones

    root = tmp_path_factory.mktemp("two-phase")
    data, logs = small_data(root / "data"), root / "logs"
    weights = root / "small.weights.h5"
    backbones.build_backbone("small_cnn", "none", 32).save_weights(weights)
    args = [*SMALL, "--weights", weights, "--mode", "end-to-end", "--warmup-epochs", 1, "--epochs", 1,
            "--patience", 9]
    assert train(data, logs, "whole", *args)[0] == 0
    cut = logs / "cut"
    # Ctrl-C again every 1.5 s until it stops, as a user would if one press were lost (see
    # test_one_ctrl_c_at_the_phase_change_stops_the_run): train holds a press over the short
    # steps of the phase change (under a second) and delivers it after, and the second phase's
    # epoch takes seconds
    with ctrl_c_when(lambda: a_phase_done(cut), again_every=1.5) as sent:
        stopped = train(data, logs, "cut", *args)
    assert sent, "the run ended before its warm-up was done"
    cache = {p: p.stat().st_mtime_ns for p in (data / "features").rglob("*.npz")}
    resumed = train(data, logs, "cut", *args)
    return logs, stopped, cache, resumed, len(sent)


@pytest.mark.slow  # trains a model: run by CI, skipped by -m "not slow"
def test_a_two_phase_run_stopped_between_its_phases_resumes_at_the_second(two_phase):
    logs, (rc, err, trained_first), cache, (rc2, err2, trained_again), _ = two_phase
    assert rc == 130 and err.strip().splitlines()[-1] == INTERRUPTED, err[-2000:]
    assert trained_first == [1]  # stopped at the phase change: the second phase's epoch takes seconds
    assert cache
    assert rc2 == 0, err2
    assert trained_again == [2]  # the warm-up's epoch is not trained again
    assert [int(r.split(",")[0]) for r in history_rows(logs / "cut")] == [0, 1]
    assert history_rows(logs / "cut")[:1] == history_rows(logs / "whole")[:1]
    assert {p: p.stat().st_mtime_ns for p in cache} == cache  # the warm-up's features were not recomputed


@pytest.mark.slow  # trains a model: run by CI, skipped by -m "not slow"
def test_one_ctrl_c_at_the_phase_change_stops_the_run(two_phase):
    """A Ctrl-C landing while train builds the classifier for its second phase (Keras' functional
    construction, inside optree's C extension, which swallows a KeyboardInterrupt) used to be lost
    in about 3 of 5 strikes: the run went on and exited 0. train holds it over that step."""
    assert two_phase[-1] == 1, f"{two_phase[-1]} presses of Ctrl-C were needed"


def test_ctrl_c_is_held_while_train_builds_compiles_and_copies_its_models(tmp_path, monkeypatch):
    """The deterministic side of the test above: every Keras step that builds a model (the
    extractor, the head, the classifier, set_trainable, compile, the inference copy) runs with
    Ctrl-C held, and a Ctrl-C pressed inside one of them stops the run once the step is done."""
    import keras

    from signwrite import backbones

    unheld, pressed, called = [], [], set()

    def watched(owner, name, press=False):
        original = getattr(owner, name)

        def call(*args, **kwargs):
            called.add(name)
            if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                unheld.append(name)
            if press and not pressed:
                pressed.append(name)
                os.kill(os.getpid(), signal.SIGINT)  # delivered now unless held
                time.sleep(0.05)
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, call)

    for name in ("build_feature_extractor", "build_head", "set_trainable"):
        watched(backbones, name)
    watched(keras.Model, "compile")
    watched(keras.Model, "from_config")
    data = small_data(tmp_path / "data")
    weights = tmp_path / "small.weights.h5"
    backbones.build_backbone("small_cnn", "none", 32).save_weights(weights)
    args = [*SMALL, "--weights", weights, "--mode", "end-to-end", "--warmup-epochs", 1, "--epochs", 1]
    assert train(data, tmp_path / "logs", "run", *args)[0] == 0
    assert not unheld, f"Ctrl-C not held in {sorted(set(unheld))}"
    assert called >= {"build_feature_extractor", "build_head", "set_trainable", "compile", "from_config"}
    watched(backbones, "build_classifier", press=True)
    rc, err, trained = train(data, tmp_path / "logs", "stopped", *args)
    assert pressed == ["build_classifier"] and not unheld, unheld
    assert rc == 130 and err.strip().splitlines()[-1] == INTERRUPTED and "Traceback" not in err, err[-2000:]
    assert trained == [1]  # stopped at the phase change, once the classifier was built


@pytest.mark.slow  # trains a model: run by CI, skipped by -m "not slow"
def test_a_two_phase_run_resumed_at_its_second_phase_equals_the_uninterrupted_one(two_phase):
    """The skipped warm-up consumed no random numbers the second phase depends on."""
    logs = two_phase[0]
    assert history_rows(logs / "cut") == history_rows(logs / "whole")
    assert same_weights(model_weights(logs / "cut"), model_weights(logs / "whole"))


# -- early stopping, --monitor, and a test split that never picks the checkpoint ----------------------

def validation_frames(data_dir: Path):
    """The validation frames train carves out of the training split (its own public rule)."""
    from signwrite import data

    frames = data.explode_frames(read_frames_csv(data_dir), data_dir)
    return data.carve_validation(frames[frames.split == "train"], 0.2, seed=0).val


def swap_label_pictures(data_dir: Path, video: str) -> None:
    """In ``video``, the red disks' clips show the green bars' frames and the other way round."""
    frames = data_dir / "frames"
    table = pd.read_csv(frames / "frames.csv")
    clips = table[table.video == video].set_index("label").frames.str.split(";")
    for a, b in zip(clips["red_disk"], clips["green_bar"]):
        pa, pb = frames / a, frames / b
        da, db = pa.read_bytes(), pb.read_bytes()
        pa.write_bytes(db)
        pb.write_bytes(da)


def scores_of_kept_model(run_dir: Path, frames_table) -> tuple[float, float]:
    """(frame loss, frame accuracy) of the run's saved model on the given frames, through the
    same decoding and resizing as training's pipeline."""
    import keras

    from signwrite import backbones, data

    config = json.loads((run_dir / "config.json").read_text())
    labels = json.loads((run_dir / "labels.json").read_text())
    resize = backbones.frame_preprocessing(config["backbone"], config["image_size"])[0]
    x = np.stack([np.asarray(data.load_frame(str(p), resize)) for p in frames_table.path])
    probs = keras.saving.load_model(run_dir / "model.keras", compile=False).predict(x, verbose=0)
    y = frames_table.label.map({label: i for i, label in enumerate(labels)}).to_numpy()
    return float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-7, 1)).mean()), float((probs.argmax(1) == y).mean())


@pytest.fixture(scope="module")
def misleading_validation(tmp_path_factory):
    """A run whose validation video has its two labels' pictures swapped: the better the model
    learns the training videos, the worse its validation loss, so early stopping must stop it
    and keep an early epoch. The same command again on a copy whose *test* video is swapped too."""
    root = tmp_path_factory.mktemp("misleading")
    data = small_data(root / "data")
    val_video = validation_frames(data).video.unique()
    assert list(val_video) == ["vc"]
    swap_label_pictures(data, "vc")
    args = [*SMALL, "--epochs", 8, "--patience", 2, "--learning-rate", 0.003]
    first = train(data, root / "logs", "run", *args)
    other = root / "other-test"
    shutil.copytree(data, other / "data", ignore=shutil.ignore_patterns("features"))
    swap_label_pictures(other / "data", "vd")
    second = train(other / "data", other / "logs", "run", *args)
    return root / "logs" / "run", data, first, other / "logs" / "run", second


@pytest.mark.slow  # trains a model: run by CI, skipped by -m "not slow"
def test_early_stopping_stops_patience_epochs_after_the_best_and_keeps_the_best_epoch(misleading_validation):
    run_dir, data, (rc, err, trained), _, _ = misleading_validation
    assert rc == 0, err
    h = pd.read_csv(run_dir / "history.csv")
    best = int(h.val_loss.idxmin())
    print(f"\nstopped after {len(h)} of 8 epochs, best {best + 1}")
    assert len(h) == best + 2 + 1 < 8 and trained == list(range(1, len(h) + 1))  # stopped early, by the rule
    assert h.val_loss.iloc[-1] > h.val_loss.iloc[best] + 0.01
    loss, _ = scores_of_kept_model(run_dir, validation_frames(data))
    assert loss == pytest.approx(h.val_loss.iloc[best], rel=1e-4)  # the saved model is the best epoch's


@pytest.mark.slow  # trains a model: run by CI, skipped by -m "not slow"
def test_the_test_split_never_picks_the_kept_checkpoint(misleading_validation):
    """Swapping the test video's pictures changes the test scores, never the model kept."""
    run_dir, _, _, other_dir, (rc, err, _) = misleading_validation
    assert rc == 0, err
    assert history_rows(other_dir) == history_rows(run_dir)
    assert same_weights(model_weights(other_dir), model_weights(run_dir))
    ours, theirs = (pd.read_csv(d / "predictions.csv") for d in (run_dir, other_dir))
    assert list(ours.top_k) != list(theirs.top_k)  # the test clips did change


@pytest.mark.slow  # trains a model: run by CI, skipped by -m "not slow"
def test_monitor_val_accuracy_keeps_the_first_epoch_at_the_best_accuracy_not_the_lowest_loss(tmp_path):
    """Validation accuracy reaches its best some epochs before validation loss stops falling
    (the model grows more confident in answers already right): --monitor val_accuracy keeps
    the first epoch at the best accuracy, where val_loss would keep a later one."""
    data = make_frames_dataset(tmp_path / "data", labels=("red_disk", "green_bar"),
                               videos={"train": ["va", "vb", "vc"], "test": ["vd"]}, clips_per_video=2)
    rc, err, trained = train(data, tmp_path / "logs", "acc", *SMALL, "--epochs", 5, "--patience", 5,
                             "--monitor", "val_accuracy")
    assert rc == 0, err
    run_dir = tmp_path / "logs" / "acc"
    assert json.loads((run_dir / "config.json").read_text())["monitor"] == "val_accuracy"
    h = pd.read_csv(run_dir / "history.csv")
    assert trained == [1, 2, 3, 4, 5]
    by_accuracy, by_loss = int(h.val_accuracy.idxmax()), int(h.val_loss.idxmin())
    assert by_accuracy < by_loss, ("the data no longer tells the two monitors apart", h.to_dict("list"))
    loss, accuracy = scores_of_kept_model(run_dir, validation_frames(data))
    assert accuracy == h.val_accuracy.iloc[by_accuracy]
    assert loss == pytest.approx(h.val_loss.iloc[by_accuracy], rel=1e-4)  # that epoch's weights, not the last's
    assert loss != pytest.approx(h.val_loss.iloc[by_loss], rel=1e-3)


# -- --aggregate, end to end -----------------------------------------------------------------------

def clip_rule(method: str, probs: np.ndarray) -> np.ndarray:
    """The README's aggregations, written out: clip probabilities from a clip's frame probabilities."""
    if method == "vote":
        share = np.array([(probs.argmax(1) == c).mean() for c in range(probs.shape[1])])
        share = share + 1e-6 * probs.mean(0)  # a tie goes to the higher mean probability
        return share / share.sum()
    if method == "logmean":
        g = np.exp(np.log(np.clip(probs, 1e-12, 1)).mean(0))
        return g / g.sum()
    return probs.mean(0)


def check_clip_scores(run_dir: Path, data: Path, method: str) -> None:
    """Every test clip's saved top-k is the hand-computed ``method`` aggregation of its frames'
    probabilities (recomputed from model.keras), and differs from the mean for some clip; the
    clip top-1 in metrics.json counts the clips it gets right."""
    import keras

    from signwrite import backbones, data as D

    labels = json.loads((run_dir / "labels.json").read_text())
    resize = backbones.frame_preprocessing("small_cnn", 32)[0]
    model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    frames = D.explode_frames(read_frames_csv(data), data)
    test = frames[frames.split == "test"]
    preds = pd.read_csv(run_dir / "predictions.csv").set_index("clip_id")
    right, differs = 0, 0
    for clip_id, clip in test.groupby("clip_id"):
        x = np.stack([np.asarray(D.load_frame(str(p), resize)) for p in clip.path])
        probs = model.predict(x, verbose=0).astype(np.float64)
        ours = clip_rule(method, probs)
        saved = dict(item.split(":") for item in preds.loc[clip_id].top_k.split(";"))
        np.testing.assert_allclose([float(saved[label]) for label in labels], ours, atol=2e-4)
        assert preds.loc[clip_id].predicted_label == labels[int(ours.argmax())]
        right += labels[int(ours.argmax())] == clip.label.iloc[0]
        differs += not np.allclose(ours, clip_rule("mean", probs), atol=5e-4)
    assert differs >= 1, method  # the rule made a difference to the saved scores
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["clip_top1_correct"] == right and metrics["clip_top1"] == right / test.clip_id.nunique()


@pytest.mark.slow  # trains a model: run by CI, skipped by -m "not slow"
def test_aggregate_vote_and_logmean_score_clips_as_the_readme_says(tmp_path, capsys):
    """--aggregate vote through train, then logmean through evaluate on a copy of the run
    (evaluate re-scores a run as its config.json says): a half-trained model, so frames
    disagree within clips, and each clip's scores are its rule's, not the mean's."""
    from signwrite.evaluate import main as evaluate

    data = make_frames_dataset(tmp_path / "data", labels=("red_disk", "green_bar", "blue_box"),
                               videos={"train": ["va", "vb", "vc"], "test": ["vd"]}, clips_per_video=2)
    rc, err, _ = train(data, tmp_path / "logs", "vote", *SMALL, "--epochs", 2, "--patience", 2,
                       "--aggregate", "vote")
    assert rc == 0, err
    run_dir = tmp_path / "logs" / "vote"
    assert json.loads((run_dir / "config.json").read_text())["aggregate"] == "vote"
    check_clip_scores(run_dir, data, "vote")

    logmean = tmp_path / "logs" / "logmean"
    shutil.copytree(run_dir, logmean)
    config = json.loads((logmean / "config.json").read_text())
    (logmean / "config.json").write_text(json.dumps({**config, "aggregate": "logmean"}))
    assert evaluate(["--run", str(logmean), "--data-dir", str(data)]) == 0
    assert "aggregation logmean" in capsys.readouterr().out
    check_clip_scores(logmean, data, "logmean")


# -- the default backbone, InceptionV3, with a local weights file ------------------------------------

@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory):
    """A weights file for InceptionV3 without its top (ImageNet's cannot be downloaded here):
    a freshly built network's, saved as --weights PATH takes them."""
    from signwrite import backbones

    path = tmp_path_factory.mktemp("inception") / "inception_v3_mine.weights.h5"
    net = backbones.build_backbone("inception_v3", "none", 75)
    net.save_weights(path)
    return path, weight_layers(net)


def weight_layers(net) -> list[tuple[str, bool, list[np.ndarray]]]:
    """(kind, above mixed8, weights) of each InceptionV3 layer holding weights, in order (Keras
    numbers the names of a network's conv and BatchNorm layers anew each time one is built)."""
    out, above = [], False
    for layer in net.layers:
        if layer.weights:
            out.append((layer.__class__.__name__, above, [np.array(w) for w in layer.get_weights()]))
        above = above or layer.name == "mixed8"
    return out


def backbone_layers(run_dir: Path):
    """weight_layers of the saved model's InceptionV3."""
    import keras

    def models_in(m):
        for layer in m.layers:
            if isinstance(layer, keras.Model):
                yield layer
                yield from models_in(layer)

    model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    nested = [m for m in models_in(model) if any(layer.name == "mixed8" for layer in m.layers)]
    assert len(nested) == 1, [m.name for m in models_in(model)]
    return weight_layers(nested[0])


@pytest.mark.slow
def test_inception_v3_from_a_weights_file_warms_up_its_head_then_tunes_only_the_top_blocks(
        tmp_path, inception_weights):
    """The default backbone (no --backbone) at its minimum size, 75 px, with --weights PATH and
    --mode end-to-end: a head warm-up on cached features, then the top two inception blocks
    (mixed9, mixed10) train and nothing below them moves."""
    path, source = inception_weights
    data = make_frames_dataset(tmp_path / "data", labels=("red_disk", "green_bar"),
                               videos={"train": ["va", "vb"], "test": ["vc"]}, frames_per_clip=4)
    rc, err, trained = train(data, tmp_path / "logs", "tuned", "--weights", path, "--image-size", 75,
                             "--batch-size", 8, "--seed", 0, "--deterministic", "--backup-seconds", 0,
                             "--mode", "end-to-end", "--warmup-epochs", 1, "--epochs", 1, "--patience", 2)
    assert rc == 0, err
    config = json.loads((tmp_path / "logs" / "tuned" / "config.json").read_text())
    assert config["backbone"] == "inception_v3" and config["weights"] == str(path)
    assert config["mode"] == "end-to-end" and config["image_size"] == 75
    assert trained == [1, 2]  # one warm-up epoch on features, one with the top blocks
    assert len(list((data / "features").rglob("*.npz"))) == 4  # the warm-up's: a file per training clip
    tuned = backbone_layers(tmp_path / "logs" / "tuned")
    assert [(kind, top) for kind, top, _ in tuned] == [(kind, top) for kind, top, _ in source]
    moved = [(kind, top) for (kind, top, a), (_, _, b) in zip(tuned, source) if not same_weights(a, b)]
    assert moved and all(top for _, top in moved), moved[:5]  # nothing below mixed9 moved
    n_top_convs = sum(kind == "Conv2D" and top for kind, top, _ in source)
    assert moved.count(("Conv2D", True)) == n_top_convs > 0  # every convolution of the top blocks trained


def test_mode_auto_with_a_weights_file_trains_a_head_on_the_frozen_backbone(tmp_path):
    """--mode auto picks frozen for pretrained weights (a local file): the saved model's
    backbone is the file's, weight for weight, and only head epochs are logged."""
    import keras

    from signwrite import backbones

    net = backbones.build_backbone("small_cnn", "none", 32)
    rng = np.random.default_rng(3)
    net.set_weights([rng.normal(0, 0.1, w.shape).astype("float32") for w in net.get_weights()])
    path = tmp_path / "mine.weights.h5"
    net.save_weights(path)
    data = small_data(tmp_path / "data")
    rc, err, trained = train(data, tmp_path / "logs", "auto", *SMALL, "--weights", path, "--epochs", 3,
                             "--patience", 3)
    assert rc == 0, err
    assert json.loads((tmp_path / "logs" / "auto" / "config.json").read_text())["mode"] == "frozen"
    assert trained == [1, 2, 3] and len(list((data / "features").rglob("*.npz"))) == 6  # a file per clip
    model = keras.saving.load_model(tmp_path / "logs" / "auto" / "model.keras", compile=False)
    saved = [m for m in model.layers if isinstance(m, keras.Model)][0]  # the feature extractor
    inner = saved.get_layer(backbones.backbone_name_of(saved))
    assert same_weights(inner.get_weights(), net.get_weights())
