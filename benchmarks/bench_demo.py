"""Demo accuracy: why the demo trains small_cnn without --colour, and how steady its score is.

    python benchmarks/bench_demo.py [--seeds 3] [--profiles default,small] [--variants ...]

For each demo profile (signwrite.demo.PROFILES) it builds the profile's dataset once (the
demo's own generate -> fetch -> extract-frames steps, from local files), then trains the
variants below side by side on that same data, with training seeds 0..SEEDS-1 (the seed
also picks the validation videos), each in a fresh process:

    demo          the demo's settings (signwrite.demo.PROFILES): small_cnn from scratch
    colour        the same with --colour (hue, saturation, grey, channel swaps, inversion)
    mobilenet_v2  the same with MobileNetV2 from scratch (the demo's backbone before)

and reports clip-level top-1 on the held-out signers (mean, min, max over seeds), chance,
and train wall time. The ratio of interest is each variant's accuracy against the demo's,
measured on the same data in the same script. Variants other than "demo" run seed 0 only
unless --all-seeds.

Writes benchmarks/results/demo.json.
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
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "demo.json"
VARIANTS = {
    "demo": [],
    "colour": ["--colour"],
    "mobilenet_v2": ["--backbone", "mobilenet_v2"],
}


def prepare(profile_name: str, work: Path) -> Path:
    """The profile's data folder, made by the demo's own steps (no HTTP: local files)."""
    from signwrite import demo, extract_frames, fetch

    profile = demo.PROFILES[profile_name]
    inputs = demo.generate(demo.DemoSettings(workdir=work, size=profile_name), profile)
    data = work / "data"
    demo.stage("fetch", fetch.main, ["--sources", str(inputs.sources), "--clip-times", str(inputs.clip_times),
                                     "--data-dir", str(data)])
    demo.stage("extract-frames", extract_frames.main,
               ["--data-dir", str(data), "--frames-per-clip", str(profile["frames_per_clip"]),
                "--size", str(profile["frame_size"])])
    return data


def train_args(profile: dict, data: Path, logs: Path, run: str, seed: int, extra: list[str]) -> list[str]:
    """The demo's train command (signwrite.demo.train_command) with one change: ``extra``."""
    from signwrite import demo

    args = demo.train_command(profile, data, logs, run, seed)
    if "--backbone" in extra:
        args[args.index("--backbone") + 1] = extra[extra.index("--backbone") + 1]
    elif "--colour" in extra and "--colour" not in args:
        args.append("--colour")
    return args


def run_train(args: list[str]) -> tuple[dict, float]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "signwrite.train", *args], capture_output=True, text=True,
                          cwd=ROOT)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"train failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    run_dir = Path(args[args.index("--logdir") + 1]) / args[args.index("--run") + 1]
    return json.loads((run_dir / "metrics.json").read_text()), wall


def main(argv=None) -> int:
    from signwrite import demo

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--profiles", default="default,small")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--all-seeds", action="store_true", help="run every variant with every seed")
    p.add_argument("--workdir", type=Path, help="keep the data and runs here (default: a temp folder)")
    a = p.parse_args(argv)
    work = a.workdir or Path(tempfile.mkdtemp(prefix="bench_demo_"))
    results = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
               "command": "python benchmarks/bench_demo.py " + " ".join(argv or sys.argv[1:]), "profiles": {}}
    for name in a.profiles.split(","):
        profile = demo.PROFILES[name]
        data = prepare(name, work / name)
        out = {"profile": profile, "variants": {}}
        for variant in a.variants.split(","):
            seeds = range(a.seeds) if variant == "demo" or a.all_seeds else range(1)
            runs = []
            for seed in seeds:
                args = train_args(profile, data, work / name / "logs", f"{variant}-seed{seed}", seed,
                                  VARIANTS[variant])
                metrics, wall = run_train(args)
                runs.append({"seed": seed, "clip_top1": metrics["clip_top1"], "frame_top1": metrics["frame_top1"],
                             "train_wall_s": round(wall, 1)})
                print(f"{name:8s} {variant:13s} seed {seed}: clip top-1 {metrics['clip_top1']:.3f} "
                      f"({metrics['n_test_clips']} clips, chance {metrics['chance_top1']:.3f}), {wall:.0f} s",
                      flush=True)
            top1 = [r["clip_top1"] for r in runs]
            out["variants"][variant] = {"runs": runs, "clip_top1_mean": statistics.mean(top1),
                                        "clip_top1_min": min(top1), "clip_top1_max": max(top1),
                                        "n_test_clips": metrics["n_test_clips"],
                                        "chance_top1": metrics["chance_top1"]}
        base = out["variants"].get("demo")
        if base:
            for variant, v in out["variants"].items():
                v["top1_ratio_vs_demo"] = round(v["clip_top1_mean"] / base["clip_top1_mean"], 3)
        results["profiles"][name] = out
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{'profile':8s} {'variant':13s} {'top-1 mean':>10s} {'min':>6s} {'max':>6s} {'chance':>6s} "
          f"{'vs demo':>7s}")
    for name, out in results["profiles"].items():
        for variant, v in out["variants"].items():
            print(f"{name:8s} {variant:13s} {v['clip_top1_mean']:10.3f} {v['clip_top1_min']:6.3f} "
                  f"{v['clip_top1_max']:6.3f} {v['chance_top1']:6.3f} {v.get('top1_ratio_vs_demo', 0):7.2f}x")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
