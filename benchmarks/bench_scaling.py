"""Scaling curve: wall time and peak memory of each stage at 1x, 2x and 4x the demo's data.

    python benchmarks/bench_scaling.py [--base 24] [--stages fetch,extract,train] [--repeats 1]

Generates demo-like datasets (signwrite.demo.synth.make_dataset, 6 classes, one take per sign)
with BASE, 2*BASE and 4*BASE signers, and runs the real stages on each, every stage in a
fresh Python process so its peak memory is its own:

    fetch           python -m signwrite.fetch --sources DS/sources.csv --clip-times DS/video_clip_times.csv
                        --data-dir WORK/data                       (local video files: no server)
    extract         python -m signwrite.extract_frames --data-dir WORK/data --size 96 --frames-per-clip 16
    train           python -m signwrite.train --data-dir WORK/data --logdir WORK/logs --run r
                        --weights none --backbone small_cnn --image-size 64 --epochs 2 --patience 99

(the default demo's settings, read from signwrite.demo.PROFILES; 1x is its 24 signers)

Training runs a fixed number of epochs so the cost per epoch is comparable across sizes.

Each stage is wrapped in ``python -c`` which imports the module (and, for train, TensorFlow)
first, then runs it with runpy as ``__main__`` and records, per stage:

* ``wall_s``   the whole subprocess as the parent sees it (interpreter start and imports too);
* ``work_s``   the run alone, without the imports: the part that should grow with the data
               (a fixed start-up cost would otherwise hide a super-linear run);
* ``peak_rss_mb``  ru_maxrss of the stage's own process; ``children_peak_rss_mb`` the largest
               of its child processes (ffmpeg, worker pools), reported separately.

Growth exponent between the smallest and largest size: log(x4/x1) / log(4). Linear is 1.0,
better than linear is below; the aim is <= 1.0 plus a noise allowance (``--tolerance``).
With ``--repeats N`` the sizes are run interleaved N times and the median is used.

Prints a table and writes benchmarks/results/scaling.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "scaling.json"
from signwrite.demo import PROFILES  # noqa: E402  (after the sys.path line above)

DEMO = PROFILES["default"]  # 1x is the default demo's data, trained with the demo's backbone
STAGES = ("fetch", "extract", "train")
MODULES = {"fetch": "signwrite.fetch", "extract": "signwrite.extract_frames", "train": "signwrite.train"}
# Imported before the clock starts for work_s: a fixed cost that does not depend on the data.
PREIMPORT = {"fetch": [], "extract": ["cv2", "numpy", "pandas"], "train": ["numpy", "pandas", "tensorflow"]}

WRAPPER = r"""
import importlib, json, resource, runpy, sys, time
mod, out, pre = sys.argv[1], sys.argv[2], [m for m in sys.argv[3].split(",") if m]
t0 = time.perf_counter()
for m in pre:
    importlib.import_module(m)
importlib.import_module(mod)
t1 = time.perf_counter()
sys.argv = [mod] + sys.argv[4:]
code = 0
try:
    runpy.run_module(mod, run_name="__main__", alter_sys=True)
except SystemExit as e:
    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
t2 = time.perf_counter()
self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
with open(out, "w") as f:
    json.dump({"import_s": t1 - t0, "work_s": t2 - t1, "exit_code": code,
               "self_maxrss_kb": self_kb, "children_maxrss_kb": child_kb}, f)
print(f"[bench_scaling] {mod}: work {t2 - t1:.2f}s, peak RSS {self_kb / 1024:.0f} MB", file=sys.stderr)
sys.exit(code)
"""


def stage_args(stage: str, ds: Path, work: Path) -> list[str]:
    data = str(work / "data")
    if stage == "fetch":
        return ["--sources", str(ds / "sources.csv"), "--clip-times", str(ds / "video_clip_times.csv"),
                "--data-dir", data]
    if stage == "extract":
        return ["--data-dir", data, "--size", str(DEMO["frame_size"]), "--frames-per-clip", str(DEMO["frames_per_clip"])]
    return ["--data-dir", data, "--logdir", str(work / "logs"), "--run", "r", "--weights", "none",
            "--backbone", DEMO["backbone"], "--image-size", str(DEMO["image_size"]), "--epochs", "2", "--patience", "99"]


def run_stage(stage: str, ds: Path, work: Path, log) -> dict:
    out = work / f"{stage}.rusage.json"
    cmd = [sys.executable, "-c", WRAPPER, MODULES[stage], str(out), ",".join(PREIMPORT[stage]),
           *stage_args(stage, ds, work)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"{stage} failed (exit {proc.returncode}); see {log.name}")
    r = json.loads(out.read_text())
    return {"wall_s": round(wall, 3), "work_s": round(r["work_s"], 3), "import_s": round(r["import_s"], 3),
            "peak_rss_mb": round(r["self_maxrss_kb"] / 1024, 1),
            "children_peak_rss_mb": round(r["children_maxrss_kb"] / 1024, 1)}


def count_outputs(work: Path) -> dict:
    data = work / "data"
    return {"clips": sum(1 for _ in (data / "clips").rglob("*.mp4")) if (data / "clips").exists() else 0,
            "frames": sum(1 for _ in (data / "frames").rglob("*.jpg")) if (data / "frames").exists() else 0}


def exponent(x1: float, x2: float, n1: float, n2: float) -> float | None:
    if not x1 or not x2 or x1 <= 0 or x2 <= 0:
        return None
    return round(math.log(x2 / x1) / math.log(n2 / n1), 3)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", type=int, default=DEMO["signers"],
                   help="signers at 1x (the demo's data: %(default)s); 2x and 4x follow")
    p.add_argument("--stages", default=",".join(STAGES),
                   help="comma-separated subset of fetch,extract,train to report (default: all). Earlier stages "
                        "a chosen one needs are still run, unmeasured.")
    p.add_argument("--repeats", type=int, default=1, help="interleaved rounds over the sizes; median reported")
    p.add_argument("--tolerance", type=float, default=0.15, help="noise allowance over 1.0 for the exponent")
    p.add_argument("--workdir", type=Path, default=None, help="keep datasets and runs here (default: a temp dir)")
    p.add_argument("--out", type=Path, default=RESULTS)
    a = p.parse_args(argv)

    chosen = [s.strip() for s in a.stages.split(",") if s.strip()]
    bad = [s for s in chosen if s not in STAGES]
    if bad or not chosen:
        p.error(f"unknown stage(s) {bad}; choose from {', '.join(STAGES)}")
    last = max(STAGES.index(s) for s in chosen)
    to_run = STAGES[:last + 1]
    factors = (1, 2, 4)
    signers = [a.base * f for f in factors]

    from signwrite.demo.synth import make_dataset

    tmp = None
    root = a.workdir
    if root is None:
        tmp = tempfile.TemporaryDirectory(prefix="signwrite-scaling-")
        root = Path(tmp.name)
    root.mkdir(parents=True, exist_ok=True)
    log_path = root / "stages.log"
    runs: dict[int, dict[str, list[dict]]] = {s: {st: [] for st in to_run} for s in signers}
    sizes: dict[int, dict] = {}
    t_start = time.time()
    try:
        with open(log_path, "w") as log:
            for rnd in range(a.repeats):
                for s in signers:
                    ds = root / f"ds_{s}"
                    make_dataset(ds, n_classes=6, n_signers=s, takes_per_sign=1, seed=0)
                    work = root / f"work_{s}"
                    shutil.rmtree(work, ignore_errors=True)
                    work.mkdir(parents=True)
                    for st in to_run:
                        r = run_stage(st, ds, work, log)
                        runs[s][st].append(r)
                        print(f"round {rnd + 1}/{a.repeats}  {s:>3} signers  {st:<8} wall {r['wall_s']:7.2f}s  "
                              f"work {r['work_s']:7.2f}s  peak {r['peak_rss_mb']:7.1f} MB", flush=True)
                    sizes[s] = count_outputs(work)
    finally:
        if tmp is not None:
            tmp.cleanup()

    keys = ("wall_s", "work_s", "peak_rss_mb", "children_peak_rss_mb")
    stages_out = {}
    aim = 1.0 + a.tolerance
    for st in chosen:
        per_size = {}
        for f, s in zip(factors, signers):
            rs = runs[s][st]
            per_size[f"{f}x"] = {"signers": s, **{k: round(statistics.median(r[k] for r in rs), 3) for k in keys},
                                 "runs": rs}
        first, lastf = per_size["1x"], per_size["4x"]
        exps = {}
        for k in keys:
            exps[k] = {"1x_4x": exponent(first[k], lastf[k], signers[0], signers[-1]),
                       "1x_2x": exponent(first[k], per_size["2x"][k], signers[0], signers[1]),
                       "2x_4x": exponent(per_size["2x"][k], lastf[k], signers[1], signers[2])}
        checked = [exps[k]["1x_4x"] for k in ("work_s", "wall_s", "peak_rss_mb")]
        met = all(e is not None and e <= aim for e in checked)
        stages_out[st] = {"sizes": per_size, "exponents": exps, "aim_exponent_at_most": aim, "met": met}

    result = {
        "command": "python benchmarks/bench_scaling.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "elapsed_s": round(time.time() - t_start, 1),
        "data": {"n_classes": 6, "takes_per_sign": 1, "seed": 0, "factors": list(factors), "signers": signers,
                 "outputs": {f"{f}x": sizes.get(s, {}) for f, s in zip(factors, signers)}},
        "repeats": a.repeats,
        "tolerance": a.tolerance,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]},
        "stages": stages_out,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")

    print()
    print(f"scaling at {', '.join(f'{f}x={s}' for f, s in zip(factors, signers))} signers "
          f"(exponent: log(x4/x1)/log 4; aim <= {aim:.2f})")
    hdr = f"{'stage':<8} {'measure':<16} {'1x':>9} {'2x':>9} {'4x':>9} {'exp 1-4x':>9}  {'met':<4}"
    print(hdr)
    print("-" * len(hdr))
    for st, d in stages_out.items():
        for k, unit in (("wall_s", "s"), ("work_s", "s"), ("peak_rss_mb", "MB"), ("children_peak_rss_mb", "MB")):
            vals = [d["sizes"][f"{f}x"][k] for f in factors]
            e = d["exponents"][k]["1x_4x"]
            ok = "" if k == "children_peak_rss_mb" else ("yes" if e is not None and e <= aim else "NO")
            print(f"{st:<8} {k + ' (' + unit + ')':<16} " + " ".join(f"{v:9.2f}" for v in vals)
                  + f" {('%.2f' % e) if e is not None else 'n/a':>9}  {ok}")
    print(f"\nwrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
