"""annotate: how close the proposed clip times come to the true ones, how fast, and what
training on them instead of the true times costs.

    python benchmarks/bench_annotate.py [--datasets junaid,massey,synth] [--no-train] [--workdir DIR]

Every video whose true times are known, through the real `signwrite annotate` command:

    junaid   junaid_abc1, junaid_abc2 (../shared/data; truth sits 0.1 s inside each letter)
             --by motion on both; --by model on abc2 with a landmark run trained on abc1
    massey   massey_hand1..5 (still photos, 4 frames each: motion cannot see a new letter)
             --by model on hand3, hand4 with a landmark run trained on hand1, hand2, hand5;
             --by motion on all five, for the record
    synth    the demo's generated dataset (signwrite.demo.synth, demo's default profile, seed 0):
             --by motion (--no-hands) on its 24 signers and transcribe.mp4, and with the hand
             tracker on two of them (no hand is found: the fallback); --by model on fetch's
             test signers and transcribe.mp4 with the demo's own run (small_cnn on frames)

Per method and dataset: the share of signs whose proposed span overlaps the true one with
IoU >= 0.5, the median start and end errors, how many were marked doubtful (and how many
of the misses were). Time: the command run twice, first with no tracks (the tracker's
pass), then once tracks exist (three runs, the median): wall and CPU seconds of the whole
process, and as a share of the videos' duration. The alignment alone is in the sidecar.

Train-on-proposed (unless --no-train), each against the same split trained on true times:
    junaid   abc1 by motion -> train --input landmarks, test on abc2 (true times)
    massey   a run trained on hand1, hand2 annotates hand5 by model -> train on hand1, hand2
             (true) + hand5 (proposed), test on hand3, hand4; against hand1, 2, 5 all true
    synth    the training signers by motion -> the demo's training, test signers true
Writes benchmarks/results/annotate.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
JUNAID = SHARED / "asl-letters-junaid" / "tutorial"
MASSEY = SHARED / "asl-letters-massey"
RESULTS = ROOT / "benchmarks" / "results" / "annotate.json"
LETTERS = ",".join("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
HAND_SIZE = 160  # extract-frames --size for landmark runs, as bench_inputs


def signwrite(*args: str) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run a signwrite command; (process, wall seconds, CPU seconds of the process)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "signwrite", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"signwrite {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc, wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def duration(path: Path) -> float:
    from signwrite.video import probe

    return probe(path).duration


# --------------------------------------------------------------------------- annotate and score

def annotate(work: Path, name: str, videos: list[str], extra: list[str], seconds: float) -> dict:
    """Run annotate cold (no tracks) then warm three times; the proposal and the timings."""
    out = work / "proposals" / f"{name}.csv"
    data = work / "annotate-data"
    args = [*videos, "--data-dir", str(data), "--out", str(out), "--force", *extra]
    tracks = data / "annotate" / "tracks"
    for v in videos:  # the cold run tracks anew
        for f in tracks.glob(f"{Path(v).stem}*.npz") if tracks.is_dir() else []:
            f.unlink()
    _, cold, cold_cpu = signwrite("annotate", *args)
    warm = [signwrite("annotate", *args)[1:] for _ in range(3)]
    mark = json.loads(out.with_name(out.stem + ".annotate.json").read_text())
    align_s = sum(v["seconds"] for v in mark["videos"].values())
    wall = statistics.median(w for w, _ in warm)
    cpu = statistics.median(c for _, c in warm)
    return {"csv": str(out), "videos": len(videos), "video_seconds": round(seconds, 2),
            "cold_wall_s": round(cold, 2), "cold_cpu_s": round(cold_cpu, 2),
            "warm_wall_s": round(wall, 2), "warm_cpu_s": round(cpu, 2), "align_s": round(align_s, 3),
            "warm_wall_ratio": round(wall / seconds, 4), "warm_cpu_ratio": round(cpu / seconds, 4),
            "align_ratio": round(align_s / seconds, 5),
            "methods": sorted({v["method"] for v in mark["videos"].values()})}


def score(proposed: Path, truth: pd.DataFrame) -> dict:
    """IoU >= 0.5 share, median |start error| and |end error|, doubtful counts; per video too."""
    prop = pd.read_csv(proposed)
    conf = pd.read_csv(Path(proposed).with_name(Path(proposed).stem + ".confidence.csv"))
    rows = []
    for video, p in prop.groupby("video", sort=False):
        t = truth[truth.video == video].sort_values("start").reset_index(drop=True)
        c = conf[conf.video == video].reset_index(drop=True)
        p = p.reset_index(drop=True)
        assert list(p.label) == list(t.label), f"{video}: proposed labels differ from the truth's"
        for k in range(len(t)):
            s, e, ts, te = p.start[k], p.end[k], t.start[k], t.end[k]
            iou = max(0.0, min(e, te) - max(s, ts)) / (max(e, te) - min(s, ts))
            rows.append({"video": video, "label": t.label[k], "iou": iou, "start_err": abs(s - ts),
                         "end_err": abs(e - te), "doubtful": bool(c.doubtful[k])})
    df = pd.DataFrame(rows)

    def summary(d):
        hit = d.iou >= 0.5
        return {"signs": len(d), "iou_ge_0.5": round(float(hit.mean()), 4),
                "median_start_err_s": round(float(d.start_err.median()), 3),
                "median_end_err_s": round(float(d.end_err.median()), 3),
                "doubtful": int(d.doubtful.sum()), "misses": int((~hit).sum()),
                "misses_marked_doubtful": int((~hit & d.doubtful).sum())}

    out = summary(df)
    out["per_video"] = {v: summary(d) for v, d in df.groupby("video", sort=False)}
    out["missed"] = [f"{r.video} {r.label} (IoU {r.iou:.2f})" for r in df[df.iou < 0.5].itertuples()]
    return out


def report(dataset: str, method: str, s: dict, t: dict) -> None:
    print(f"{dataset:7s} {method:22s} IoU>=0.5 {s['iou_ge_0.5']:.3f} of {s['signs']:3d}  median err "
          f"start {s['median_start_err_s']:.3f} s end {s['median_end_err_s']:.3f} s  doubtful {s['doubtful']} "
          f"(misses {s['misses']}, marked {s['misses_marked_doubtful']})  warm {t['warm_wall_s']:.2f} s wall "
          f"{t['warm_cpu_s']:.2f} s CPU for {t['video_seconds']:.0f} s of video (ratio {t['warm_wall_ratio']:.3f} / "
          f"{t['warm_cpu_ratio']:.3f}); cold {t['cold_wall_s']:.1f} s", flush=True)


# --------------------------------------------------------------------------- training

def prepare(sources: Path, clip_times: Path, data: Path, test_videos: list[str] | None, extract: list[str]) -> Path:
    split = ["--test-videos", ",".join(test_videos)] if test_videos else []
    signwrite("fetch", "--sources", str(sources), "--clip-times", str(clip_times), "--data-dir", str(data), *split)
    signwrite("extract-frames", "--data-dir", str(data), *extract)
    return data


def train(data: Path, logs: Path, name: str, args: list[str], seed: int = 0) -> dict:
    """One training run (reused when it finished before); seed 0 is the run named ``name``."""
    run = name if seed == 0 else f"{name}-s{seed}"
    metrics = logs / run / "metrics.json"
    if not metrics.is_file():
        signwrite("train", "--data-dir", str(data), "--logdir", str(logs), "--run", run, *args, "--seed", str(seed))
    m = json.loads(metrics.read_text())
    return {"run": str(logs / run), "seed": seed, "clip_top1": m["clip_top1"], "correct": m["clip_top1_correct"],
            "n_test_clips": m["n_test_clips"]}


SEEDS = [0]  # set by --seeds: training seeds for the train-on-proposed comparisons


def long_csv(frames: list[pd.DataFrame], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.concat(frames)[["label", "video", "start", "end"]].to_csv(path, index=False)
    return path


def compare(name: str, true_data: Path, proposed_data: Path, logs: Path, base: str, args: list[str]) -> dict:
    """Train on the true and on the proposed times, the same split and settings, for every seed."""
    true = [train(true_data, logs, f"{base}-true", args, seed) for seed in SEEDS]
    prop = [train(proposed_data, logs, f"{base}-proposed", args, seed) for seed in SEEDS]
    a, b = (statistics.mean(r["clip_top1"] for r in runs) for runs in (true, prop))
    print(f"train-on-proposed {name}: top-1 {b:.3f} vs true times {a:.3f} ({b - a:+.3f}), mean of seeds "
          f"{SEEDS}; per seed proposed {[round(r['clip_top1'], 3) for r in prop]}, true "
          f"{[round(r['clip_top1'], 3) for r in true]}", flush=True)
    return {"seeds": SEEDS, "true_times": true, "proposed_times": prop, "true_mean_top1": round(a, 4),
            "proposed_mean_top1": round(b, 4), "difference": round(b - a, 4),
            "per_seed_difference": [round(p["clip_top1"] - t["clip_top1"], 4) for p, t in zip(prop, true)]}


LANDMARKS = ["--input", "landmarks", "--deterministic"]
HANDS_EXTRACT = ["--size", str(HAND_SIZE), "--hands"]


# --------------------------------------------------------------------------- datasets

def junaid(work: Path, do_train: bool) -> dict:
    truth = pd.read_csv(JUNAID / "video_clip_times_long.csv")
    videos = [str(JUNAID / f"junaid_abc{i}.mp4") for i in (1, 2)]
    seconds = sum(duration(Path(v)) for v in videos)
    src = ["--sources", str(JUNAID / "sources.csv"), "--signs", LETTERS]
    out: dict = {}
    t = annotate(work, "junaid-motion", videos, src, seconds)
    out["motion"] = {"score": score(Path(t["csv"]), truth), "time": t}
    report("junaid", "motion", out["motion"]["score"], t)

    logs = work / "logs"
    data = prepare(JUNAID / "sources.csv", JUNAID / "video_clip_times.csv", work / "junaid-true", ["junaid_abc2"],
                   HANDS_EXTRACT)
    true_run = train(data, logs, "junaid-true", LANDMARKS)
    t = annotate(work, "junaid-model", [videos[1]], src + ["--by", "model", "--run", true_run["run"]],
                 duration(Path(videos[1])))
    out["model"] = {"run": "landmarks trained on junaid_abc1", "score": score(Path(t["csv"]), truth), "time": t}
    report("junaid", "model (abc1 run)", out["model"]["score"], t)
    if do_train:
        prop = pd.read_csv(out["motion"]["time"]["csv"])
        times = long_csv([prop[prop.video == "junaid_abc1"], truth[truth.video == "junaid_abc2"]],
                         work / "clip-times" / "junaid-proposed.csv")
        data = prepare(JUNAID / "sources.csv", times, work / "junaid-proposed", ["junaid_abc2"], HANDS_EXTRACT)
        out["train"] = compare("junaid (abc1 by motion, test abc2)", work / "junaid-true", data, logs, "junaid",
                               LANDMARKS)
    return out


def massey(work: Path, do_train: bool) -> dict:
    truth = pd.read_csv(MASSEY / "video_clip_times_long.csv")
    people = [f"massey_hand{i}" for i in range(1, 6)]
    src = ["--sources", str(MASSEY / "sources.csv"), "--signs", LETTERS]
    logs = work / "logs"
    out: dict = {}
    seconds = {p: duration(MASSEY / f"{p}.mp4") for p in people}
    t = annotate(work, "massey-motion", people, src, sum(seconds.values()))
    out["motion"] = {"score": score(Path(t["csv"]), truth), "time": t}
    report("massey", "motion (for the record)", out["motion"]["score"], t)

    data = prepare(MASSEY / "sources.csv", MASSEY / "video_clip_times.csv", work / "massey-true",
                   ["massey_hand3", "massey_hand4"], HANDS_EXTRACT)
    true_run = train(data, logs, "massey-true", LANDMARKS)
    test = ["massey_hand3", "massey_hand4"]
    t = annotate(work, "massey-model", test, src + ["--by", "model", "--run", true_run["run"]],
                 seconds["massey_hand3"] + seconds["massey_hand4"])
    out["model"] = {"run": "landmarks trained on hand1, hand2, hand5", "score": score(Path(t["csv"]), truth),
                    "time": t}
    report("massey", "model (1,2,5 run)", out["model"]["score"], t)
    if do_train:
        # a run on hand1, hand2 alone annotates hand5; then hand1, 2 (true) + 5 (proposed) vs all true
        few = long_csv([truth[truth.video.isin(["massey_hand1", "massey_hand2", *test])]],
                       work / "clip-times" / "massey-12.csv")
        data12 = prepare(MASSEY / "sources.csv", few, work / "massey-12", test, HANDS_EXTRACT)
        run12 = train(data12, logs, "massey-12", LANDMARKS)
        t = annotate(work, "massey-model-hand5", ["massey_hand5"], src + ["--by", "model", "--run", run12["run"]],
                     seconds["massey_hand5"])
        out["model_hand5"] = {"run": "landmarks trained on hand1, hand2", "score": score(Path(t["csv"]), truth),
                              "time": t}
        report("massey", "model hand5 (1,2 run)", out["model_hand5"]["score"], t)
        prop = pd.read_csv(t["csv"])
        times = long_csv([truth[truth.video != "massey_hand5"], prop], work / "clip-times" / "massey-proposed.csv")
        data = prepare(MASSEY / "sources.csv", times, work / "massey-proposed", test, HANDS_EXTRACT)
        out["train"] = compare("massey (hand5 by a hand1,2 run, test hand3,4)", work / "massey-true", data, logs,
                               "massey", LANDMARKS)
    return out


def demo_args(profile: dict, data: Path, logs: Path) -> list[str]:
    """The demo's own train arguments, less the folders, run name and seed train() adds."""
    from signwrite import demo

    args = demo.train_command(profile, data, logs, "x", 0)
    for flag in ("--data-dir", "--logdir", "--run", "--seed"):
        i = args.index(flag)
        del args[i:i + 2]
    return args


def synth(work: Path, do_train: bool) -> dict:
    from signwrite import demo
    from signwrite.demo import synth as sy

    profile = demo.PROFILES["default"]
    info = sy.make_dataset(work / "synth", n_classes=profile["classes"], n_signers=profile["signers"],
                           takes_per_sign=1, seed=0)
    truth = pd.read_csv(info.clip_times_long_csv)
    transcribe = pd.read_csv(info.transcribe_truth_csv).assign(video=sy.TRANSCRIBE_ID)
    truth = pd.concat([truth, transcribe[["label", "video", "start", "end"]]], ignore_index=True)
    rows = [{"video": v, "url": str(info.video_path(v)), "signs": ",".join(g.sort_values("start").label)}
            for v, g in truth.groupby("video", sort=False)]
    sources = work / "synth-signs.csv"
    pd.DataFrame(rows).to_csv(sources, index=False)
    videos = [r["video"] for r in rows]
    seconds = {v: duration(info.video_path(v)) for v in videos}
    out: dict = {}
    t = annotate(work, "synth-motion", videos, ["--sources", str(sources), "--no-hands"], sum(seconds.values()))
    out["motion"] = {"score": score(Path(t["csv"]), truth), "time": t}
    report("synth", "motion (--no-hands)", out["motion"]["score"], t)
    two = videos[:2]
    t = annotate(work, "synth-motion-hands", two, ["--sources", str(sources)], sum(seconds[v] for v in two))
    out["motion_tracker"] = {"score": score(Path(t["csv"]), truth), "time": t}
    report("synth", "motion (tracker, 2)", out["motion_tracker"]["score"], t)

    logs = work / "logs"
    extract = ["--frames-per-clip", str(profile["frames_per_clip"]), "--size", str(profile["frame_size"])]
    data = prepare(info.sources_csv, info.clip_times_csv, work / "synth-true", None, extract)
    split = json.loads((data / "clips" / "fetch_config.json").read_text())["videos"]
    true_run = train(data, logs, "synth-true", demo_args(profile, data, logs))
    test = split["test"] + [sy.TRANSCRIBE_ID]
    t = annotate(work, "synth-model", test, ["--sources", str(sources), "--by", "model", "--run", true_run["run"]],
                 sum(seconds[v] for v in test))
    out["model"] = {"run": "the demo's small_cnn on frames, trained on fetch's training signers",
                    "score": score(Path(t["csv"]), truth), "time": t}
    report("synth", "model (demo run)", out["model"]["score"], t)
    if do_train:
        prop = pd.read_csv(out["motion"]["time"]["csv"])
        times = long_csv([prop[prop.video.isin(split["train"])], truth[truth.video.isin(split["test"])]],
                         work / "clip-times" / "synth-proposed.csv")
        data = prepare(info.sources_csv, times, work / "synth-proposed", split["test"], extract)
        out["train"] = compare("synth (training signers by motion)", work / "synth-true", data, logs, "synth",
                               demo_args(profile, data, logs))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="junaid,massey,synth")
    p.add_argument("--no-train", action="store_true", help="skip the train-on-proposed comparisons")
    p.add_argument("--seeds", default="0,1,2", help="training seeds for those comparisons (default: %(default)s)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="keep data, tracks and runs here (default: a temp folder)")
    a = p.parse_args(argv)
    SEEDS[:] = [int(x) for x in a.seeds.split(",")]
    work = a.workdir or Path(tempfile.mkdtemp(prefix="signwrite-bench-annotate-"))
    work.mkdir(parents=True, exist_ok=True)
    results = json.loads(RESULTS.read_text()).get("results", {}) if RESULTS.is_file() else {}
    for name in a.datasets.split(","):
        if name in ("junaid", "massey") and not SHARED.is_dir():
            print(f"skipped {name}: {SHARED} (real footage) is not here")
            continue
        results[name] = {"junaid": junaid, "massey": massey, "synth": synth}[name](work, not a.no_train)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        command = "python benchmarks/bench_annotate.py " + " ".join(argv or sys.argv[1:])
        RESULTS.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.platform(),
                                       "cpus": os.cpu_count(), "load_average": os.getloadavg(), "results": results,
                                       "command": command}, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
