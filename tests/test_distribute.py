"""train --distribute: MirroredStrategy over the CPU split in two, MultiWorkerMirroredStrategy
over two worker processes on 127.0.0.1, each against a one-device run on the same batches.

What a correct implementation must match is the one-device run's arithmetic: the same global
batch split over two replicas gives the same loss and the same update. Two things would hide
it and are taken out: BatchNorm's statistics are per replica (so every frame is the same
image: every share of a batch has the statistics of the whole), and the order of frames in
a batch, which decides which replica gets which (so one batch is the whole training set:
one step per epoch). Dropout and augmentation are off, determinism on. The epoch losses must
then agree to float precision and the weights almost everywhere: a loss divided by the
replica's batch instead of the global one doubles the reported loss (and the gradient), a
replica's gradient left out or applied alone moves the weights elsewhere.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from frames_tools import make_frames_dataset

EPOCHS = 3
SETTINGS = ["--backbone", "small_cnn", "--weights", "none", "--image-size", "32", "--epochs", str(EPOCHS),
            "--batch-size", "96", "--patience", "99", "--seed", "0", "--no-augment", "--dropout", "0",
            "--deterministic"]


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    root = tmp_path_factory.mktemp("distribute")
    data_dir = make_frames_dataset(root / "data", videos={"train": ["va", "vb", "vc"], "test": ["vd"]},
                                   clips_per_video=2)
    jpgs = sorted((data_dir / "frames").rglob("*.jpg"))
    one = jpgs[0].read_bytes()
    for p in jpgs:  # one image, four labels: per-replica BatchNorm statistics equal the batch's
        p.write_bytes(one)
    return root, data_dir


def train(data_dir, logdir, run, *extra, env=None):
    return subprocess.Popen([sys.executable, "-m", "signwrite.train", "--data-dir", str(data_dir), "--logdir",
                             str(logdir), "--run", run, *SETTINGS, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def finish(proc, timeout=400):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out, err


def history(run_dir):
    import pandas as pd

    return pd.read_csv(run_dir / "history.csv")


def weights(run_dir):
    import keras

    model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    return np.concatenate([w.ravel() for w in model.get_weights()])


@pytest.fixture(scope="module")
def single(frames):
    root, data_dir = frames
    finish(train(data_dir, root / "logs", "single"))
    run_dir = root / "logs" / "single"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["data"]["n_fit_frames"] <= 96  # one step per epoch: the whole training set
    h = history(run_dir)
    assert len(h) == EPOCHS and np.ptp(h.loss) > 0.05  # it trains: the loss moves from epoch to epoch
    return run_dir


def assert_matches_one_device(run_dir, single_dir):
    ours, theirs = history(run_dir), history(single_dir)
    print(f"\n{run_dir.name}: losses {list(ours.loss.round(6))} vs {list(theirs.loss.round(6))} one device")
    assert list(ours.epoch) == list(theirs.epoch) == list(range(EPOCHS))
    for column in ("loss", "val_loss"):  # same batches, same arithmetic: float precision
        np.testing.assert_allclose(ours[column], theirs[column], rtol=1e-4, err_msg=column)
    diff = np.abs(weights(run_dir) - weights(single_dir))
    # Adam divides by the gradient's size, so a weight whose gradient is ~0 may take a step
    # either way from rounding alone: a few in 10^4 do (measured: 97 of 295,476)
    assert (diff > 1e-5).mean() < 1e-3 and diff.max() < 1e-3, (int((diff > 1e-5).sum()), float(diff.max()))


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow  # trains a model: run by CI, skipped by -m "not slow"
def test_mirrored_over_two_cpu_replicas_matches_one_device(frames, single):
    root, data_dir = frames
    _, err = finish(train(data_dir, root / "logs", "mirrored", "--distribute", "mirrored",
                          env={"SIGNWRITE_CPU_REPLICAS": "2"}))
    assert "MirroredStrategy over 2 replica(s)" in err
    run_dir = root / "logs" / "mirrored"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["distribute"] == "mirrored" and config["replicas"] == 2
    assert_matches_one_device(run_dir, single)


@pytest.mark.slow  # trains a model: run by CI, skipped by -m "not slow"
def test_multiworker_two_workers_on_localhost_match_one_worker(frames, single):
    root, data_dir = frames
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = [train(data_dir, root / "logs", "multi", "--distribute", "multiworker",
                   env={"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})})
             for i in range(2)]
    outs = [finish(p) for p in procs]
    assert "worker 0 of 2" in outs[0][1] and "worker 1 of 2" in outs[1][1]
    assert "2 replica(s) in all" in outs[0][1]
    assert "trained as a worker" in outs[1][0]
    # only the chief wrote a run; the worker left nothing in the log folder
    assert sorted(p.name for p in (root / "logs").iterdir() if p.name.startswith("multi")) == ["multi"]
    run_dir = root / "logs" / "multi"
    assert json.loads((run_dir / "config.json").read_text())["replicas"] == 2
    assert_matches_one_device(run_dir, single)
    for name in ("model.keras", "labels.json", "confusion_matrix.png", "predictions.csv"):
        assert (run_dir / name).is_file()


def test_multiworker_refuses_pretrained_runs_and_a_missing_tf_config(frames, capsys):
    from signwrite.train import main

    root, data_dir = frames
    args = ["--data-dir", str(data_dir), "--logdir", str(root / "refused"), "--distribute", "multiworker"]
    assert main([*args, "--backbone", "mobilenet_v2", "--weights", "none", "--mode", "frozen"]) == 1
    err = capsys.readouterr().err
    assert "end-to-end from scratch" in err and "mode='frozen'" in err and err.count("\n") == 1
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    proc = subprocess.run([sys.executable, "-m", "signwrite.train", *args, *SETTINGS], capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 1 and "needs TF_CONFIG" in proc.stderr and "Traceback" not in proc.stderr
    assert not (root / "refused").exists()
