"""The offline demo, end to end: generated videos -> HTTP -> fetch -> frames -> train -> transcribe."""

import json

import pytest

from signwrite import demo


def _check_outputs(work, capsys_out):
    data, run_dir = work / "data", next((work / "logs").iterdir())
    assert (data / "clips" / "clips.csv").is_file()
    assert (data / "frames" / "frames.csv").is_file()
    assert list((data / "frames" / "contact_sheets").glob("*.jpg"))
    for name in ("model.keras", "labels.json", "config.json", "history.csv", "metrics.json",
                 "classification_report.txt", "confusion_matrix.png", "test_predictions.png", "predictions.csv"):
        assert (run_dir / name).is_file(), name
    assert list(run_dir.rglob("events.out.tfevents.*"))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("clip_top1", "clip_top3", "clip_top10", "frame_top1", "n_test_clips", "n_classes", "chance_top1"):
        assert key in metrics
    summary = json.loads((work / "demo_summary.json").read_text())
    assert summary["metrics"]["clip_top1"] == metrics["clip_top1"]
    assert (work / "transcript.csv").is_file() and (work / "transcript.srt").is_file()
    assert "signwrite demo: done" in capsys_out and "tensorboard --logdir" in capsys_out
    return metrics


def test_demo_small(tmp_path, capsys):
    work = tmp_path / "demo"
    assert demo.main(["--size", "small", "--workdir", str(work)]) == 0
    metrics = _check_outputs(work, capsys.readouterr().out)
    assert metrics["n_classes"] == 3 and metrics["n_test_clips"] == 9  # 3 signers never seen in training
    # above chance (3 of 9): at least 5 of 9 right. Nine clips are a noisy measure (with --colour,
    # 7 runs of this profile scored 0.56 to 1.0; as now, 1.0 and 0.78 in two runs);
    # the default demo below, with 36 test clips, is the test of accuracy
    assert metrics["clip_top1"] >= 5 / 9 - 1e-9, metrics
    # Safe to run again: nothing is redone, the same numbers come back.
    assert demo.main(["--size", "small", "--workdir", str(work)]) == 0
    again = json.loads((work / "demo_summary.json").read_text())
    assert again["metrics"]["clip_top1"] == metrics["clip_top1"]


@pytest.mark.slow
def test_demo_default(tmp_path, capsys):
    work = tmp_path / "demo"
    assert demo.main(["--workdir", str(work)]) == 0
    metrics = _check_outputs(work, capsys.readouterr().out)
    assert metrics["n_classes"] == 6 and metrics["n_test_clips"] == 36  # 6 signers never seen in training
    # clearly above chance (1/6): at least half the clips right (benchmarks/bench_demo.py: 0.944-1.0 over 3 seeds)
    assert metrics["clip_top1"] >= 0.5, metrics
    transcript = json.loads((work / "demo_summary.json").read_text())["transcript"]
    assert transcript["expected"] and len(transcript["expected"].split()) == 8


def test_demo_refuses_a_folder_without_inputs(tmp_path, capsys):
    assert demo.main(["--from", str(tmp_path), "--workdir", str(tmp_path / "w")]) == 1
    err = capsys.readouterr().err
    assert "sources.csv" in err and err.count("\n") == 1
