"""Which input recognises a person the model never saw: frames, hand crops or landmarks.

    python benchmarks/bench_inputs.py [--datasets junaid,massey,massey-lopo] [--models ...] [--workdir DIR]

Real footage from ../shared/data (skipped when absent), each split by whole videos:

    junaid       train junaid_abc1, test junaid_abc2 (one signer: unseen moments, not people)
    massey       train hand1, hand2, hand5; test hand3, hand4 (people never seen)
    massey-lopo  leave one person out, for each of the five in turn (mean and worst)

Every dataset goes through signwrite's own stages (fetch from local files, extract-frames
--hands at 160 px), then each model trains side by side on the same data folder, each in
a fresh `signwrite train` process:

    landmarks        --input landmarks (pool and temporal models, the better on validation kept)
    frames_small_cnn --input frames --backbone small_cnn --weights none (the demo's model)
    frames_inception --input frames --backbone inception_v3 --weights none --image-size 96
    hands_inception  --input hands  --backbone inception_v3 --weights none --image-size 96

(--weights none: ImageNet weights cannot be downloaded on this machine.) Reports clip
top-1/3 on the test people, clips without a hand (counted wrong), and train wall time.
Validation is carved out of train by whole videos; the test split is read once, at the end.
Writes benchmarks/results/inputs.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results" / "inputs.json"
SIZE = 160
MASSEY_PEOPLE = [f"massey_hand{i}" for i in range(1, 6)]
MODELS = {
    "landmarks": ["--input", "landmarks"],
    "frames_small_cnn": ["--input", "frames", "--backbone", "small_cnn", "--weights", "none", "--epochs", "20",
                         "--monitor", "val_clip_top1"],
    "frames_inception": ["--input", "frames", "--backbone", "inception_v3", "--weights", "none", "--image-size",
                         "96", "--epochs", "15"],
    "hands_inception": ["--input", "hands", "--backbone", "inception_v3", "--weights", "none", "--image-size", "96",
                        "--epochs", "15"],
}
LOPO_MODELS = ("landmarks", "frames_small_cnn")  # the big networks take ~10 minutes a fold here


def signwrite(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-m", "signwrite", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    if proc.returncode:
        raise SystemExit(f"signwrite {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc


def prepare(folder: Path, test_videos: list[str], data: Path) -> Path:
    """fetch (local files) and extract-frames --hands into ``data``; reused when done."""
    signwrite("fetch", "--sources", str(folder / "sources.csv"), "--clip-times", str(folder / "video_clip_times.csv"),
              "--data-dir", str(data), "--test-videos", ",".join(test_videos))
    signwrite("extract-frames", "--data-dir", str(data), "--size", str(SIZE), "--hands")
    return data


def train(data: Path, logs: Path, name: str) -> dict:
    t0 = time.perf_counter()
    signwrite("train", "--data-dir", str(data), "--logdir", str(logs), "--run", name, "--deterministic",
              *MODELS[name])
    seconds = time.perf_counter() - t0
    m = json.loads((logs / name / "metrics.json").read_text())
    config = json.loads((logs / name / "config.json").read_text())
    out = {"clip_top1": m["clip_top1"], "clip_top3": m["clip_top3"], "correct": m["clip_top1_correct"],
           "n_test_clips": m["n_test_clips"], "chance": m["chance_top1"], "train_seconds": round(seconds, 1),
           "clips_without_hand": m.get("n_test_clips_without_hand", 0)}
    if "landmarks" in config:
        out["landmark_model"] = config["landmarks"]["kind"]
    return out


def datasets(names: list[str], work: Path):
    """(dataset name, fold name, data folder) for every split asked for."""
    junaid, massey = SHARED / "asl-letters-junaid" / "tutorial", SHARED / "asl-letters-massey"
    if "junaid" in names and junaid.is_dir():
        yield "junaid", "abc1->abc2", prepare(junaid, ["junaid_abc2"], work / "junaid")
    if "massey" in names and massey.is_dir():
        yield "massey", "125->34", prepare(massey, ["massey_hand3", "massey_hand4"], work / "massey")
    if "massey-lopo" in names and massey.is_dir():
        for person in MASSEY_PEOPLE:
            yield "massey-lopo", person, prepare(massey, [person], work / f"massey-lopo-{person}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="junaid,massey,massey-lopo")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--workdir", type=Path, default=None, help="keep the data and runs here (default: a temp folder)")
    a = p.parse_args(argv)
    if not SHARED.is_dir():
        print(f"skipped: {SHARED} (real footage) is not here")
        return 0
    models = [m for m in a.models.split(",") if m]
    work = a.workdir or Path(tempfile.mkdtemp(prefix="signwrite-bench-inputs-"))
    results: dict = {}
    for dataset, fold, data in datasets(a.datasets.split(","), work):
        for name in models:
            if dataset == "massey-lopo" and name not in LOPO_MODELS:
                continue
            r = train(data, work / "logs" / f"{dataset}-{fold}", name)
            results.setdefault(dataset, {}).setdefault(name, {})[fold] = r
            print(f"{dataset:12s} {fold:14s} {name:17s} top-1 {r['clip_top1']:.3f} ({r['correct']}/{r['n_test_clips']})"
                  f"  top-3 {r['clip_top3']:.3f}  no hand {r['clips_without_hand']}  {r['train_seconds']:.0f} s",
                  flush=True)
    if RESULTS.is_file():  # run in stages: keep what earlier runs measured for other datasets/models
        old = json.loads(RESULTS.read_text()).get("results", {})
        for dataset, by_model in old.items():
            for name, folds in by_model.items():
                results.setdefault(dataset, {}).setdefault(name, folds)
    summary = {}
    for dataset, by_model in results.items():
        for name, folds in by_model.items():
            top1 = [f["clip_top1"] for f in folds.values()]
            summary.setdefault(dataset, {})[name] = {"mean_top1": statistics.mean(top1), "worst_top1": min(top1),
                                                     "folds": len(top1)}
    out = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.platform(),
           "load_average": os.getloadavg(), "frame_size": SIZE, "models": MODELS, "results": results,
           "summary": summary, "command": "python benchmarks/bench_inputs.py " + " ".join(argv or sys.argv[1:])}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    for dataset, by_model in summary.items():
        for name, s in by_model.items():
            print(f"{dataset:12s} {name:17s} mean top-1 {s['mean_top1']:.3f}  worst {s['worst_top1']:.3f}  "
                  f"({s['folds']} fold(s))")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
