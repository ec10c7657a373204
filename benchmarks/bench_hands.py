"""Hand landmarks: `extract-frames --hands` against a bare MediaPipe loop, and how often it finds a hand.

    python benchmarks/bench_hands.py [--repeats 3] [--workdir DIR]

1. Speed, on the 52 clips of ../shared/data/asl-letters-junaid (16 sampled frames each),
   cut with `signwrite fetch` and extracted with `signwrite extract-frames --size 160`
   first, so the timed runs do only the hands:
   - baseline: a plain loop in this process that decodes each clip's sampled frames
     (signwrite.video.read_sampled, the indices frames.csv lists, one decoder thread) and
     runs a bare HandLandmarker over them (VIDEO mode, one per clip, default options,
     num_hands=2);
   - the stage: extract_frames(ExtractSettings(hands=True, jobs=1 or 2, size=160)) with
     data/hands deleted before each run. Besides the landmarks it starts its worker pool
     (whose worker imports MediaPipe), probes each clip, writes the landmarks (.npz) and
     a JPEG crop per frame with a hand, gives every frame where no hand is found a second
     look with a black border (hands.RETRY_PAD), and rebuilds frames.csv.
   Rounds are interleaved (each round runs every contender once, in a rotating order) and
   ratios are taken within a round, because the machine is shared and its load drifts.
   The bare loop must find a hand in exactly the frames the stage's first look does.
2. Hands found: the share of sampled frames with a hand and of clips with a hand in any
   frame, from the frames.csv (and the .npz files it lists) that `--hands` wrote, on
   asl-letters-junaid and on each person of asl-letters-massey; and the same without
   the second look (a HandTracker(retry_pad=0) loop over the same frames).

Prints a table and writes benchmarks/results/hands.json. Takes 4-10 minutes on a shared
2-core machine, depending on its load. The stage's pool workers re-run this module (as
multiprocessing does), so its module-level imports stay light: MediaPipe and pandas are
imported inside functions.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchlib import code_state, stop_fork_server, timed, version  # noqa: E402
from signwrite import hands, video  # noqa: E402
from signwrite.extract_frames import ExtractSettings, extract_frames  # noqa: E402
from signwrite.fsutil import write_json  # noqa: E402

DATA = REPO.parent / "shared" / "data"
JUNAID = DATA / "asl-letters-junaid" / "tutorial"
MASSEY = DATA / "asl-letters-massey"
RESULTS = REPO / "benchmarks" / "results" / "hands.json"
SIZE = 160  # frames and crops: small, so the JPEGs cost little next to the landmarks
AIM_THROUGHPUT = 0.9  # stage fps / bare-loop fps


# --------------------------------------------------------------------------- data


def prepare(src: Path, work: Path, test_videos: str) -> None:
    """Cut the clips with signwrite's own fetch, then extract frames (no hands)."""
    for cmd in (["fetch", "--sources", str(src / "sources.csv"), "--clip-times", str(src / "video_clip_times.csv"),
                 "--data-dir", str(work), "--test-videos", test_videos],
                ["extract-frames", "--data-dir", str(work), "--size", str(SIZE)]):
        done = subprocess.run([sys.executable, "-m", "signwrite", *cmd], cwd=REPO, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"signwrite {' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")


def sampled(data_dir: Path) -> list[tuple[str, str, Path, list[int]]]:
    """(clip_id, video, clip file, the frame indices frames.csv lists) per clip."""
    import pandas as pd

    clips = pd.read_csv(data_dir / "clips" / "clips.csv", dtype=str, keep_default_na=False)
    frames = pd.read_csv(data_dir / "frames" / "frames.csv", dtype=str, keep_default_na=False)
    path = dict(zip(clips["clip_id"], clips["path"]))
    out = []
    for r in frames.itertuples():
        indices = [int(f.rsplit("-", 1)[1][:-4]) for f in r.frames.split(";")]
        out.append((r.clip_id, r.video, data_dir / path[r.clip_id], indices))
    return out


# --------------------------------------------------------------------------- contenders


def bare_loop(clips, model: Path) -> int:
    """Decode, then a bare HandLandmarker per clip; returns the frames with a hand."""
    import cv2
    import mediapipe as mp
    from mediapipe.tasks.python.core.base_options import BaseOptions

    vision = hands.import_vision()
    options = vision.HandLandmarkerOptions(base_options=BaseOptions(model_asset_path=str(model)),
                                           running_mode=vision.RunningMode.VIDEO, num_hands=2)
    found = 0
    for _, _, src, indices in clips:
        info, got, frames = video.read_sampled(src, lambda info: indices, threads=1)
        with vision.HandLandmarker.create_from_options(options) as landmarker:
            for index, frame in zip(got, frames):
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                result = landmarker.detect_for_video(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb),
                                                     int(round(index * 1000 / info.fps)))
                found += bool(result.hand_landmarks)
    return found


def run_stage(data_dir: Path, jobs: int, n_clips: int):
    shutil.rmtree(data_dir / "hands", ignore_errors=True)
    report = extract_frames(ExtractSettings(data_dir=data_dir, hands=True, jobs=jobs, size=SIZE))
    assert report.hands_found == n_clips and not report.failed, report.summary()
    return report


# --------------------------------------------------------------------------- hands found


def _no_retry_clip(job) -> tuple[str, int, int, int]:
    """One clip without the second look: (clip_id, frames, frames with a hand, with the signing hand)."""
    import cv2

    cv2.setNumThreads(1)
    clip_id, src, indices, model = job
    info, got, frames = video.read_sampled(src, lambda info: indices, threads=1)
    with hands._native_quiet(True):
        found = hands.track_frames(frames, got, info.fps, model, retry_pad=0)
    slot = found.signing_slot()
    return clip_id, len(got), int(found.found.sum()), int((found.handedness[:, slot] != hands.ABSENT).sum())


def found_rates(data_dir: Path, model: Path, pool, group_by: str | None) -> dict:
    """Rates with the second look (the stage's frames.csv and .npz) and without (a fresh pass)."""
    import pandas as pd

    table = pd.read_csv(data_dir / "frames" / "frames.csv", keep_default_na=False)
    table["any_frames"] = [int(hands.HandFrames.load(data_dir / "hands" / p).found.sum()) for p in table["landmarks"]]
    clips = {c: (src, idx) for c, _, src, idx in sampled(data_dir)}
    jobs = [(c, clips[c][0], clips[c][1], model) for c in table["clip_id"]]
    bare = {c: rest for c, *rest in pool.map(_no_retry_clip, jobs)}
    table["n_bare"] = [bare[c][0] for c in table["clip_id"]]
    table["any_bare"] = [bare[c][1] for c in table["clip_id"]]
    table["signing_bare"] = [bare[c][2] for c in table["clip_id"]]
    assert (table["n_bare"] == table["n_frames"]).all()

    def rates(t):
        n, clips_n = int(t["n_frames"].sum()), len(t)
        return {"clips": clips_n, "frames": n,
                "with_second_look": {
                    "frames_with_a_hand": round(t["any_frames"].sum() / n, 4),
                    "frames_with_the_signing_hand": round(t["hand_frames"].sum() / n, 4),
                    "clips_with_a_hand": round((t["any_frames"] > 0).sum() / clips_n, 4)},
                "without_second_look": {
                    "frames_with_a_hand": round(t["any_bare"].sum() / n, 4),
                    "frames_with_the_signing_hand": round(t["signing_bare"].sum() / n, 4),
                    "clips_with_a_hand": round((t["any_bare"] > 0).sum() / clips_n, 4)},
                "second_look_ran_on": round((n - t["any_bare"].sum()) / n, 4),
                "first_look_frames_with_a_hand": int(t["any_bare"].sum())}

    out = {"all": rates(table)}
    if group_by:
        out.update({k: rates(g) for k, g in table.groupby(group_by, sort=True)})
    return out


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds (default: 3)")
    ap.add_argument("--workdir", type=Path, help="keep the cut clips and outputs here (default: a temp folder)")
    args = ap.parse_args()
    if not (JUNAID / "sources.csv").is_file():
        print(f"skipped: no real footage at {JUNAID} (see ../shared/data/README.md); nothing written")
        return 0
    import cv2

    from signwrite.process import native_stderr_filtered
    from signwrite.hand_model import hand_model_path

    logging.disable(logging.INFO)  # keep the table readable; warnings still show
    model = hand_model_path()
    hands.import_vision()  # the bare loop's MediaPipe import, outside its clock
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_hands."))
    load_start = os.getloadavg()
    code = code_state()
    t_start = time.time()
    try:
        junaid = work / "junaid"
        print("preparing junaid clips and frames (signwrite fetch, extract-frames)...", flush=True)
        prepare(JUNAID, junaid, "junaid_abc2")
        clips = sampled(junaid)
        n_clips, n_frames = len(clips), sum(len(c[3]) for c in clips)
        run_stage(junaid, 2, n_clips)  # warm-up: draws the sheets' skeletons once, as a first --hands run does
        stop_fork_server()

        bare_found = []
        default_threads = cv2.getNumThreads()

        def bare():
            cv2.setNumThreads(1)  # what each stage worker uses
            try:
                with native_stderr_filtered(hands.NATIVE_NOISE):
                    bare_found.append(bare_loop(clips, model))
            finally:
                cv2.setNumThreads(default_threads)

        contenders = {"bare HandLandmarker loop": bare,
                      "stage --jobs 1": lambda: run_stage(junaid, 1, n_clips),
                      "stage --jobs 2": lambda: run_stage(junaid, 2, n_clips)}
        jobs_of = {"bare HandLandmarker loop": 1, "stage --jobs 1": 1, "stage --jobs 2": 2}
        names = list(contenders)
        wall = {k: [] for k in names}
        cpu = {k: [] for k in names}
        load = []
        for r in range(args.repeats):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                w, c = timed(contenders[name])
                wall[name].append(w)
                cpu[name].append(c)
            load.append(round(os.getloadavg()[0], 2))
            print(f"round {r + 1}/{args.repeats} (load {load[-1]:.1f}): "
                  + ", ".join(f"{k} {wall[k][-1]:.2f}s" for k in names), flush=True)

        bare_k, one, two = names

        def paired(a, b):  # median over rounds of wall[a] / wall[b]: robust to slow drifts in load
            return statistics.median(x / y for x, y in zip(wall[a], wall[b]))

        def best(a, b):  # ratio of the fastest runs: the least disturbed by other processes
            return min(wall[a]) / min(wall[b])

        ratios = {"throughput_jobs1_vs_bare": {"paired_median": paired(bare_k, one), "best_of": best(bare_k, one),
                                               "cpu": statistics.median(cpu[bare_k]) / statistics.median(cpu[one])},
                  "speedup_jobs1_to_jobs2": {"paired_median": paired(one, two), "best_of": best(one, two)}}
        rows = []
        for k in names:
            med, j = statistics.median(wall[k]), jobs_of[k]
            rows.append({"contender": k, "jobs": j, "median_s": round(med, 3), "best_s": round(min(wall[k]), 3),
                         "fps_median": round(n_frames / med, 2), "fps_best": round(n_frames / min(wall[k]), 2),
                         "fps_per_core_median": round(n_frames / med / j, 2),
                         "fps_per_core_best": round(n_frames / min(wall[k]) / j, 2),
                         "frames_per_cpu_s": round(n_frames / statistics.median(cpu[k]), 2),
                         "cpu_s_median": round(statistics.median(cpu[k]), 3),
                         "runs_s": [round(x, 3) for x in wall[k]]})

        # ---- hands found
        print("hands found: junaid and massey, with and without the second look...", flush=True)
        import multiprocessing

        found = {}
        with ProcessPoolExecutor(os.cpu_count() or 1, mp_context=multiprocessing.get_context("spawn")) as pool:
            found["asl-letters-junaid"] = found_rates(junaid, model, pool, "video")
            first_look = found["asl-letters-junaid"]["all"]["first_look_frames_with_a_hand"]
            massey_note = None
            if (MASSEY / "sources.csv").is_file():
                massey = work / "massey"
                prepare(MASSEY, massey, "massey_hand3,massey_hand4")
                n_massey = len(sampled(massey))
                massey_s, _ = timed(lambda: run_stage(massey, 2, n_massey))
                found["asl-letters-massey"] = found_rates(massey, model, pool, "video")
                massey_note = {"stage_jobs2_s": round(massey_s, 2),
                               "fps": round(found["asl-letters-massey"]["all"]["frames"] / massey_s, 2)}
            else:
                print(f"(no {MASSEY}: massey skipped)")
        same_work = bare_found and all(f == first_look for f in bare_found)

        # ---- report
        la = os.getloadavg()
        print(f"\nspeed: {n_clips} junaid clips, {n_frames} frames (640x480, 16 per clip); {args.repeats} interleaved "
              f"rounds; {os.cpu_count()} CPUs, load average {', '.join(f'{x:.1f}' for x in la)}")
        print(f"{'contender':26s} {'median s':>9s} {'best s':>7s} {'fps':>6s} {'fps/core':>9s} {'best':>6s} "
              f"{'fr/CPU s':>9s}")
        for row in rows:
            print(f"{row['contender']:26s} {row['median_s']:9.2f} {row['best_s']:7.2f} {row['fps_median']:6.1f} "
                  f"{row['fps_per_core_median']:9.1f} {row['fps_per_core_best']:6.1f} {row['frames_per_cpu_s']:9.1f}")
        t, s = ratios["throughput_jobs1_vs_bare"], ratios["speedup_jobs1_to_jobs2"]
        print(f"\nthroughput, stage --jobs 1 / bare loop (aim >= {AIM_THROUGHPUT}x): {t['paired_median']:.2f}x paired "
              f"median, {t['best_of']:.2f}x best of {args.repeats}, {t['cpu']:.2f}x in CPU time")
        print(f"speed-up, stage --jobs 1 -> --jobs 2: {s['paired_median']:.2f}x paired median, "
              f"{s['best_of']:.2f}x best of {args.repeats}")
        j = found["asl-letters-junaid"]["all"]
        print(f"the stage does more than the bare loop: it also writes a crop per frame with a hand and the .npz, "
              f"starts a worker that imports MediaPipe, and gives the {j['second_look_ran_on']:.1%} of frames with "
              f"no hand at first a second, padded look")
        print(f"frames with a hand, bare loop vs the stage's first look: {bare_found[0] if bare_found else '?'} vs "
              f"{first_look}{'' if same_work else ' (MISMATCH)'}")

        print(f"\n{'hands found':26s} {'clips':>5s} {'frames':>6s} | {'with the second look':^26s} | "
              f"{'without':^26s} | {'2nd look':>8s}")
        print(f"{'':26s} {'':5s} {'':6s} | {'frames':>8s} {'signing':>8s} {'clips':>8s} | {'frames':>8s} "
              f"{'signing':>8s} {'clips':>8s} | {'ran on':>8s}")
        for ds, groups in found.items():
            for g, r in groups.items():
                w, wo = r["with_second_look"], r["without_second_look"]
                print(f"{(ds.replace('asl-letters-', '') + ' ' + g):26s} {r['clips']:5d} {r['frames']:6d} | "
                      f"{w['frames_with_a_hand']:8.1%} {w['frames_with_the_signing_hand']:8.1%} "
                      f"{w['clips_with_a_hand']:8.1%} | {wo['frames_with_a_hand']:8.1%} "
                      f"{wo['frames_with_the_signing_hand']:8.1%} {wo['clips_with_a_hand']:8.1%} | "
                      f"{r['second_look_ran_on']:8.1%}")
        if max(load) > 1.5:
            print(f"\nnote: the 1-minute load average was {min(load):.1f}-{max(load):.1f} on {os.cpu_count()} CPUs: "
                  "wall times then depend on how the kernel shares the cores (one process may get half a core, "
                  "a pool of two may get no more than one), so the wall ratios are noisy and --jobs 2 cannot show "
                  "its speed-up. The CPU-time ratio (frames per CPU second) is the steadier comparison of work done.")
        if massey_note:
            print(f"(massey, {n_massey} clips of 320x320 photos: the stage with --jobs 2 took "
                  f"{massey_note['stage_jobs2_s']:.1f} s, {massey_note['fps']:.1f} fps)")

        write_json(RESULTS, {
            "command": "python benchmarks/bench_hands.py" + (f" --repeats {args.repeats}" if args.repeats != 3 else ""),
            "clips": f"real: {n_clips} clips cut from {JUNAID} by signwrite fetch (640x480, 50 fps), "
                     f"frames by extract-frames --size {SIZE}",
            "n_clips": n_clips, "frames_per_run": n_frames, "rounds": args.repeats,
            "machine": {"cpus": os.cpu_count(), "loadavg_at_start": [round(x, 2) for x in load_start],
                        "loadavg_1min_per_round": load, "loadavg_at_end": [round(x, 2) for x in la],
                        "python": platform.python_version(), "opencv": cv2.__version__,
                        "mediapipe": version("mediapipe"), "total_s": round(time.time() - t_start, 1)},
            "code": code,
            "contenders": rows,
            "ratios": {k: {m: round(v, 4) for m, v in d.items()} for k, d in ratios.items()},
            "aims": {"throughput_at_least": AIM_THROUGHPUT},
            "stage_extras": "writes a JPEG crop per frame with a hand and one .npz per clip, starts its worker "
                            "pool (the worker imports MediaPipe), probes each clip, and gives frames without a "
                            "hand a second look with a black border (hands.RETRY_PAD); the bare loop does none",
            "bare_loop_frames_with_a_hand": bare_found[:1], "stage_first_look_frames_with_a_hand": first_look,
            "same_first_look": bool(same_work),
            "retry_pad": hands.RETRY_PAD,
            "found": found, "massey_stage": massey_note,
        })
        print(f"wrote {RESULTS.relative_to(REPO)}")
        return 0 if same_work else 1
    finally:
        stop_fork_server()
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
