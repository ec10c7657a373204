"""train --distribute: MirroredStrategy over the CPU split in two, MultiWorkerMirroredStrategy
over two worker processes on 127.0.0.1, each against a one-device run on the same data."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from frames_tools import make_frames_dataset

EPOCHS = 6
SETTINGS = ["--backbone", "small_cnn", "--weights", "none", "--image-size", "32", "--epochs", str(EPOCHS),
            "--batch-size", "16", "--patience", "99", "--seed", "0"]


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    root = tmp_path_factory.mktemp("distribute")
    data_dir = make_frames_dataset(root / "data", videos={"train": ["va", "vb", "vc"], "test": ["vd"]},
                                   clips_per_video=2)
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


@pytest.fixture(scope="module")
def single(frames):
    root, data_dir = frames
    finish(train(data_dir, root / "logs", "single"))
    run_dir = root / "logs" / "single"
    return run_dir, json.loads((run_dir / "metrics.json").read_text())


def report(name, metrics, run_dir, single_metrics, single_dir):
    """The comparison, for `pytest -s tests/test_distribute.py` (the figures in the closing note)."""
    ours, theirs = history(run_dir), history(single_dir)
    print(f"\n{name}: clip top-1 {metrics['clip_top1']:.3f} vs {single_metrics['clip_top1']:.3f} one device; "
          f"frame top-1 {metrics['frame_top1']:.3f} vs {single_metrics['frame_top1']:.3f}; final train loss "
          f"{ours.loss.iloc[-1]:.4f} vs {theirs.loss.iloc[-1]:.4f} (first epoch {ours.loss.iloc[0]:.4f} vs "
          f"{theirs.loss.iloc[0]:.4f})")


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_mirrored_over_two_cpu_replicas_matches_one_device(frames, single):
    root, data_dir = frames
    single_dir, single_metrics = single
    _, err = finish(train(data_dir, root / "logs", "mirrored", "--distribute", "mirrored",
                          env={"SIGNWRITE_CPU_REPLICAS": "2"}))
    assert "MirroredStrategy over 2 replica(s)" in err
    run_dir = root / "logs" / "mirrored"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["distribute"] == "mirrored" and config["replicas"] == 2
    metrics = json.loads((run_dir / "metrics.json").read_text())
    report("mirrored, 2 CPU replicas", metrics, run_dir, single_metrics, single_dir)
    # the same global batch, split over two replicas: the same learning, to within noise
    assert metrics["clip_top1"] >= 0.75 and single_metrics["clip_top1"] >= 0.75
    assert abs(metrics["frame_top1"] - single_metrics["frame_top1"]) <= 0.2
    ours, theirs = history(run_dir), history(single_dir)
    assert len(ours) == len(theirs) == EPOCHS
    assert ours.loss.iloc[-1] < ours.loss.iloc[0] / 2  # it learned
    assert abs(ours.loss.iloc[-1] - theirs.loss.iloc[-1]) < 0.5 * max(theirs.loss.iloc[0], 1e-6)


def test_multiworker_two_workers_on_localhost_match_one_worker(frames, single):
    root, data_dir = frames
    single_dir, single_metrics = single
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
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert json.loads((run_dir / "config.json").read_text())["replicas"] == 2
    report("multiworker, 2 workers", metrics, run_dir, single_metrics, single_dir)
    assert metrics["clip_top1"] >= 0.75 and abs(metrics["frame_top1"] - single_metrics["frame_top1"]) <= 0.2
    ours, theirs = history(run_dir), history(single_dir)
    assert len(ours) == EPOCHS and ours.loss.iloc[-1] < ours.loss.iloc[0] / 2
    assert abs(ours.loss.iloc[-1] - theirs.loss.iloc[-1]) < 0.5 * max(theirs.loss.iloc[0], 1e-6)
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
