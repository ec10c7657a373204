"""README.md's "Worked example", exactly as written, through the installed ``signwrite`` script.

The commands are read from the README, so the test breaks when the README changes and its
commands stop working. They run in a copy of the repository's example files (data/sources.csv,
data/examples/, video_clip_times.csv), with that copy as the working folder, as a user
who has just cloned the repository would run them.
"""

from __future__ import annotations

import configparser
import importlib
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LABELS = ["hello", "please", "thanks", "yes"]  # the example's four signs (video_clip_times.csv)


def worked_example_commands() -> list[tuple[list[str], str]]:
    """(argv, comment) of each line of the README's "Worked example" bash block."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Worked example\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    commands = []
    for line in block.splitlines():
        command, _, comment = line.partition("#")
        if command.strip():
            commands.append((shlex.split(command), comment.strip()))
    return commands


def console_script() -> str:
    """The installed ``signwrite`` script: next to this Python first (the venv's bin), else on PATH."""
    here = Path(sys.executable).parent / "signwrite"
    found = str(here) if here.is_file() else shutil.which("signwrite")
    assert found, "the signwrite console script is not installed (pip install -e .)"
    return found


def run_script(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    # this checkout's code, whichever checkout the venv was installed from
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([console_script(), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def read_csv(path: Path):
    import pandas as pd

    return pd.read_csv(path, dtype={"clip_id": str, "video": str, "label": str, "split": str})


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Path:
    """A copy of the repository's example inputs, laid out as in the repository."""
    work = tmp_path_factory.mktemp("worked-example")
    shutil.copy2(REPO / "video_clip_times.csv", work / "video_clip_times.csv")
    (work / "data").mkdir()
    shutil.copy2(REPO / "data" / "sources.csv", work / "data" / "sources.csv")
    shutil.copytree(REPO / "data" / "examples", work / "data" / "examples")
    return work


def test_the_readme_lists_the_three_stages():
    commands = worked_example_commands()
    assert [argv[:2] for argv, _ in commands] == [["signwrite", "fetch"], ["signwrite", "extract-frames"],
                                                 ["signwrite", "train"]]


def test_the_console_script_is_the_cli(tmp_path, capsys):
    from signwrite import __version__
    from signwrite.cli import STAGES

    # setup.cfg's entry point names a callable that is the CLI
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    scripts = dict(map(str.strip, line.split("=", 1))
                   for line in cfg["options.entry_points"]["console_scripts"].splitlines() if line.strip())
    module, _, func = scripts["signwrite"].partition(":")
    assert getattr(importlib.import_module(module), func)(["--version"]) == 0
    assert capsys.readouterr().out == f"signwrite {__version__}\n"
    # the installed script is that entry point (not one left from an older setup.cfg)
    installed = importlib.metadata.entry_points(group="console_scripts", name="signwrite")
    assert [ep.value for ep in installed] == [scripts["signwrite"]]

    version = run_script(["--version"], tmp_path)
    assert (version.returncode, version.stdout) == (0, f"signwrite {__version__}\n"), version.stderr
    assert __version__ == cfg["metadata"]["version"]
    help_ = run_script(["--help"], tmp_path)
    assert help_.returncode == 0, help_.stderr
    listed = [line.split()[0] for line in help_.stdout.splitlines() if line.startswith("  ")]
    assert listed == list(STAGES)
    unknown = run_script(["nope"], tmp_path)
    assert unknown.returncode == 2 and "unknown stage 'nope'" in unknown.stderr
    stage_help = run_script(["fetch", "--help"], tmp_path)
    assert stage_help.returncode == 0 and "--clip-times" in stage_help.stdout


def test_worked_example_fetch_and_extract_frames(example):
    (fetch, fetch_note), (extract, extract_note), _ = worked_example_commands()

    done = run_script(fetch[1:], example)
    assert done.returncode == 0, done.stdout + done.stderr
    # what the README's comment promises: "copies the 3 videos, cuts 12 clips, 2 videos train / 1 test"
    n_videos, n_clips, n_train, n_test = map(int, re.fullmatch(
        r"copies the (\d+) videos, cuts (\d+) clips, (\d+) videos train / (\d+) test", fetch_note).groups())
    assert sorted(p.name for p in (example / "data" / "videos").iterdir()) == \
        [f"signer{i}.mp4" for i in range(1, n_videos + 1)]
    for i in range(1, n_videos + 1):  # copied byte for byte
        assert (example / "data" / "videos" / f"signer{i}.mp4").read_bytes() == \
            (REPO / "data" / "examples" / f"signer{i}.mp4").read_bytes()
    clips = read_csv(example / "data" / "clips" / "clips.csv")
    assert len(clips) == n_clips == 12
    videos = clips.groupby("split")["video"].unique().map(sorted).to_dict()
    assert len(videos["train"]) == n_train and len(videos["test"]) == n_test
    assert not set(videos["train"]) & set(videos["test"])  # split by whole videos
    assert sorted(clips["label"].unique()) == LABELS
    assert (clips.groupby("video")["label"].apply(sorted) == [LABELS] * n_videos).all()  # one clip per sign
    for row in clips.itertuples():
        assert row.clip_id == f"{row.video}_{row.label}_{round(row.start * 1000)}-{round(row.end * 1000)}"
        assert row.path == f"clips/{row.split}/{row.label}/{row.clip_id}.mp4"
        assert (example / "data" / row.path).is_file()
    assert sorted(p.relative_to(example / "data").as_posix()
                  for p in (example / "data" / "clips").glob("*/*/*.mp4")) == sorted(clips["path"])

    done = run_script(extract[1:], example)
    assert done.returncode == 0, done.stdout + done.stderr
    per_clip = int(re.match(r"(\d+) frames per clip", extract_note).group(1))
    frames = read_csv(example / "data" / "frames" / "frames.csv")
    assert sorted(frames["clip_id"]) == sorted(clips["clip_id"])
    from signwrite.video import probe

    cut = {row.clip_id: probe(example / "data" / row.path).n_frames for row in clips.itertuples()}
    for row in frames.itertuples():
        listed = row.frames.split(";")
        # N frames spread over the clip; a clip shorter than that gives each of its frames once
        assert row.n_frames == len(listed) == len(set(listed)) == min(per_clip, cut[row.clip_id])
        assert all(p.startswith(f"{row.split}/{row.label}/{row.clip_id}/{row.clip_id}-") for p in listed)
        assert all((example / "data" / "frames" / p).is_file() for p in listed)
    assert sorted(p.stem for p in (example / "data" / "frames" / "contact_sheets").glob("*.jpg")) == LABELS


@pytest.mark.slow
def test_worked_example_train(example):
    # run alone, the earlier stages first (each is a no-op when already done)
    (fetch, _), (extract, _), (train, _) = worked_example_commands()
    for argv in (fetch, extract):
        assert run_script(argv[1:], example).returncode == 0

    done = run_script(train[1:], example)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = [p for p in (example / "logs").iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    run = runs[0]
    for name in ("model.keras", "labels.json", "config.json", "history.csv", "metrics.json",
                 "classification_report.txt", "confusion_matrix.png", "predictions.csv"):
        assert (run / name).is_file(), name
    assert list(run.rglob("events.out.tfevents.*"))

    config = json.loads((run / "config.json").read_text())
    asked = dict(zip(train[2::2], train[3::2]))  # --weights none --backbone small_cnn --epochs 30
    assert config["weights"] == asked["--weights"] and config["backbone"] == asked["--backbone"]
    assert config["epochs"] == int(asked["--epochs"]) and config["mode"] == "end-to-end"  # auto: from scratch
    assert json.loads((run / "labels.json").read_text()) == LABELS

    history = read_csv(run / "history.csv")
    # every epoch asked for, or early stopping ended it patience epochs after the best one
    best = int(history[config["monitor"]].idxmin() if config["monitor"].endswith("loss")
               else history[config["monitor"]].idxmax())
    assert len(history) in (config["epochs"], best + 1 + config["patience"]), (len(history), best)
    assert list(history["epoch"]) == list(range(len(history)))

    clips = read_csv(example / "data" / "clips" / "clips.csv")
    test = clips[clips["split"] == "test"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["n_test_clips"], metrics["n_classes"]) == (len(test), len(LABELS)) == (4, 4)
    assert metrics["chance_top1"] == pytest.approx(1 / 4)
    predictions = read_csv(run / "predictions.csv")
    assert sorted(predictions["clip_id"]) == sorted(test["clip_id"])
    # the figures agree with the clip-by-clip predictions
    assert metrics["clip_top1_correct"] == int(predictions["correct"].sum())
    assert metrics["clip_top3_correct"] == int((predictions["rank_true"] <= 3).sum())
    assert metrics["clip_top1"] == pytest.approx(metrics["clip_top1_correct"] / len(test))
    assert f"({metrics['clip_top1_correct']} of {len(test)} clips right)" in done.stdout
