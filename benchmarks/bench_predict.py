"""Using a model: predict seconds per clip, and live fps against the bare forward pass.

    python benchmarks/bench_predict.py [--repeats 5] [--live-frames 60] [--backbones inception_v3,mobilenet_v2]

For each backbone at its own input size (InceptionV3 299 px, MobileNetV2 224 px) a run
folder is written with an untrained model (weights none: speed does not depend on the
weights) and loaded with signwrite.run.load_run, as predict and live load it. The run's
sampling is extract_frames' default: 16 frames per clip, short side 299, JPEG q95.

predict: signwrite.predict.classify_video on a 2 s clip, after one warm-up call (graph
tracing). Its time is split into decode (open the file, decode up to the last sampled
frame), prepare (resize and JPEG round trip, as extract_frames stored training frames)
and model (run.predict_frames + aggregate). Also: a 2 s span near the end of the long
source video (predict --start/--end), which must decode everything before it.

live: signwrite.live on a video without real-time pacing (every frame classified, as fast
as possible), end to end (decode, prepare, model, rolling window, SQLite, printing
suppressed), against, on the same frames in the same process, run.predict_frames one frame
at a time and the bare forward pass (the run's Keras model in a tf.function on one
already-prepared frame). Then live in real time on a 50 fps source: the fps it achieves
and the share of frames it drops to keep up. Rounds alternate the contenders because the
machine is shared; medians are reported.

Footage: ../shared/data/asl-letters-junaid/tutorial/junaid_abc2.mp4 (640x480, 50 fps)
when present, else a generated 640x480 video. Prints a table and writes
benchmarks/results/predict.json.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from signwrite import live, predict, video  # noqa: E402
from signwrite.fsutil import write_json  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "predict.json"
REAL = REPO.parent / "shared" / "data" / "asl-letters-junaid" / "tutorial" / "junaid_abc2.mp4"
SAMPLING = {"frames_per_clip": 16, "fps": None, "all_frames": False, "size": 299, "jpeg_quality": 95}


def source_video(tmp: Path) -> tuple[Path, str]:
    if REAL.is_file():
        return REAL, f"real: {REAL.name} (640x480, 50 fps, {video.probe(REAL).duration:.1f} s)"
    rng = np.random.default_rng(0)
    frames = (np.clip(128 + rng.normal(0, 40, (480, 640, 3)), 0, 255).astype(np.uint8) for _ in range(50 * 30))
    path = tmp / "generated.mp4"
    video.write_video(path, frames, 50, gop=50)
    return path, "generated: 640x480 noise, 50 fps, 30 s"


def make_run(folder: Path, backbone: str):
    """A run folder holding an untrained classifier, loaded the way predict loads it."""
    from signwrite import backbones
    from signwrite.run import load_run

    size = backbones.get_spec(backbone).default_size
    extractor = backbones.build_feature_extractor(backbone, "none", size)
    model = backbones.build_classifier(extractor, backbones.build_head(extractor.output_shape[-1], 26))
    folder.mkdir(parents=True)
    model.save(folder / "model.keras")
    (folder / "labels.json").write_text(json.dumps([chr(65 + i) for i in range(26)]))
    (folder / "config.json").write_text(json.dumps({
        "backbone": backbone, "weights": "none", "image_size": size, "aggregate": "mean",
        "extract_config": SAMPLING, "data": {"median_clip_seconds": 2.0}}))
    return load_run(folder), size


def timed(func) -> float:
    t0 = time.perf_counter()
    func()
    return time.perf_counter() - t0


def bench_predict(run, clip: Path, long_video: Path, repeats: int) -> dict:
    kw = predict.sampling_kwargs(run)
    predict.classify_video(run, clip)  # warm-up: traces the model's graph
    parts = {"decode": [], "prepare": [], "model": [], "total": [], "span_total": []}
    for _ in range(repeats):
        parts["total"].append(timed(lambda: predict.classify_video(run, clip)))
        info = video.probe(clip)
        idx = video.sample_indices(info.n_frames, info.fps, **kw)
        holder = {}
        parts["decode"].append(timed(lambda: holder.update(frames=video.read_frames(clip, idx)[1])))
        parts["prepare"].append(timed(lambda: holder.update(
            ready=[run.as_extracted(f) for f in holder["frames"]])))
        parts["model"].append(timed(lambda: run.aggregate(run.predict_frames(holder["ready"]))))
        end = video.probe(long_video).duration - 1.0
        parts["span_total"].append(timed(lambda: predict.classify_video(run, long_video, end - 2.0, end)))
    med = {k: statistics.median(v) for k, v in parts.items()}
    split = med["decode"] + med["prepare"] + med["model"]
    return {"seconds_per_clip": round(med["total"], 3),
            "decode_s": round(med["decode"], 3), "prepare_s": round(med["prepare"], 3),
            "model_s": round(med["model"], 3),
            "share_decode": round(med["decode"] / split, 3), "share_prepare": round(med["prepare"] / split, 3),
            "share_model": round(med["model"] / split, 3),
            "span_near_end_seconds_per_clip": round(med["span_total"], 3),
            "runs_s": {k: [round(x, 3) for x in v] for k, v in parts.items()}}


def bench_live(run, source: Path, n_frames: int, rounds: int, tmp: Path) -> dict:
    import tensorflow as tf

    from signwrite.video import resize_short_side

    _, frames = video.read_frames(source, list(range(n_frames)))
    ready = [run.as_extracted(f) for f in frames]
    size = run.sampling["size"]
    tensors = [tf.constant(np.asarray(resize_short_side(f, size)[None, ..., ::-1], np.float32)) for f in ready]
    forward = tf.function(lambda x: run.model(x, training=False), reduce_retracing=True)
    forward(tensors[0])
    run.predict_frames(ready[:1])

    def live_run(realtime: bool, max_frames: int | None = n_frames) -> dict:
        s = live.LiveSettings(run=tmp / "run", video=source if not realtime else clip6, db=tmp / "live.sqlite",
                              show=False, realtime=realtime, max_frames=max_frames, threshold=0.0)
        with contextlib.redirect_stdout(io.StringIO()):
            return live.live(s, run=run)

    clip6 = tmp / "live6s.mp4"
    if not clip6.exists():
        video.cut_clip(source, clip6, 10.0, 16.0)

    def contender(name):
        if name == "live_end_to_end":
            return lambda: live_run(False)
        if name == "predict_frames_one_at_a_time":
            return lambda: [run.predict_frames([f]) for f in ready]
        return lambda: [forward(t).numpy() for t in tensors]

    names = ["live_end_to_end", "predict_frames_one_at_a_time", "bare_forward"]
    wall = {k: [] for k in names}
    cpu = {k: [] for k in names}
    for r in range(rounds):
        for name in names[r % 3:] + names[:r % 3]:  # rotate the order: load drifts on a shared machine
            c0, w0 = time.process_time(), time.perf_counter()
            contender(name)()
            cpu[name].append((time.process_time() - c0) / n_frames)
            wall[name].append((time.perf_counter() - w0) / n_frames)
    med_fps = {k: 1 / statistics.median(v) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    paired = statistics.median(b / a for a, b in zip(wall["live_end_to_end"], wall["bare_forward"]))
    rt = live_run(True, None)
    return {"frames": n_frames, **{f"{k}_fps": round(v, 2) for k, v in med_fps.items()},
            **{f"{k}_cpu_ms_per_frame": round(1000 * v, 1) for k, v in med_cpu.items()},
            "live_fps_share_of_bare_paired": round(paired, 3),
            "live_cpu_share_of_bare": round(med_cpu["bare_forward"] / med_cpu["live_end_to_end"], 3),
            "realtime_50fps_source": {"fps": round(rt["fps"], 2), "frames": rt["frames"], "dropped": rt["dropped"],
                                      "dropped_share": round(rt["dropped"] / (rt["frames"] + rt["dropped"]), 3),
                                      "seconds": round(rt["seconds"], 2)},
            "runs_wall_s_per_frame": {k: [round(x, 4) for x in v] for k, v in wall.items()}}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="predict runs per backbone (median reported)")
    p.add_argument("--live-frames", type=int, default=60, help="frames per live / forward-pass round")
    p.add_argument("--rounds", type=int, default=3, help="live rounds per backbone (median reported)")
    p.add_argument("--backbones", default="inception_v3,mobilenet_v2")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import keras
    import tensorflow as tf

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        source, footage = source_video(tmp)
        clip = tmp / "clip2s.mp4"
        video.cut_clip(source, clip, 20.0, 22.0)
        for backbone in args.backbones.split(","):
            t0 = time.perf_counter()
            run, size = make_run(tmp / backbone / "run", backbone)
            load_s = time.perf_counter() - t0
            print(f"{backbone}: measuring predict ...", file=sys.stderr)
            pred = bench_predict(run, clip, source, args.repeats)
            print(f"{backbone}: measuring live ...", file=sys.stderr)
            lv = bench_live(run, source, args.live_frames, args.rounds, tmp / backbone)
            results[backbone] = {"image_size": size, "build_and_load_run_s": round(load_s, 2),
                                 "predict": pred, "live": lv}

    print(f"\nfootage: {footage}; run sampling {SAMPLING['frames_per_clip']} frames/clip, short side "
          f"{SAMPLING['size']}; {os.cpu_count()} CPUs, load {', '.join(f'{x:.1f}' for x in os.getloadavg())}\n")
    print(f"{'backbone':<14}{'px':>5}{'s/clip':>9}{'decode':>9}{'prepare':>9}{'model':>8}{'span@end':>10}"
          f"{'live fps':>10}{'p_f fps':>9}{'bare fps':>10}{'live/bare':>11}{'cpu l/b':>9}{'RT fps':>8}{'RT drop':>9}")
    for name, r in results.items():
        pr, lv = r["predict"], r["live"]
        print(f"{name:<14}{r['image_size']:>5}{pr['seconds_per_clip']:>9.3f}{pr['share_decode']:>9.0%}"
              f"{pr['share_prepare']:>9.0%}{pr['share_model']:>8.0%}{pr['span_near_end_seconds_per_clip']:>10.3f}"
              f"{lv['live_end_to_end_fps']:>10.2f}{lv['predict_frames_one_at_a_time_fps']:>9.2f}"
              f"{lv['bare_forward_fps']:>10.2f}{lv['live_fps_share_of_bare_paired']:>11.0%}"
              f"{lv['live_cpu_share_of_bare']:>9.0%}"
              f"{lv['realtime_50fps_source']['fps']:>8.2f}{lv['realtime_50fps_source']['dropped_share']:>9.0%}")
    print("\ns/clip: predict on a 2 s clip (median); decode/prepare/model: shares of it; span@end: a 2 s "
          "--start/--end span near the end of the source.\nlive: --no-realtime end to end; p_f: "
          "run.predict_frames one frame at a time; bare: the model's forward pass alone; live/bare: live fps "
          "as a share of bare fps (median of paired rounds); cpu l/b: the same with CPU time per frame\n"
          "(less sensitive to other programs' load); RT: real time on the 50 fps source (fps achieved, "
          "share of frames dropped).")
    write_json(RESULTS, {
        "command": "python benchmarks/bench_predict.py " + " ".join(sys.argv[1:]),
        "footage": footage, "sampling": SAMPLING, "results": results,
        "machine": {"cpus": os.cpu_count(), "loadavg": [round(x, 2) for x in os.getloadavg()],
                    "python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__}})
    print(f"wrote {RESULTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
