"""Training-stage benchmarks: is the input pipeline fast enough, and is caching worth it?

    python benchmarks/bench_train.py [--frames 256] [--image-size 299] [--quick]

1. Feature extraction: our cached-feature pipeline (JPEG files -> tf.data -> backbone ->
   .npz per clip) against a bare forward pass of the same extractor on in-memory batches,
   in the same process. Target: at least 0.9x.
2. A head trained on the cached features against one end-to-end epoch on the same frames.
3. Peak memory of feature extraction (fresh processes) at two dataset sizes: it must not
   grow with the number of frames.

Frames are generated (JPEGs of the size extract_frames writes: short side 299); weights are
random (``none``): throughput does not depend on them and the machine is offline. Prints a
table and writes benchmarks/results/train.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def make_frames(data_dir: Path, n_frames: int, frames_per_clip: int = 16, seed: int = 0) -> Path:
    """data/frames with n_frames JPEGs (399x299, smooth colour blobs so JPEGs have a real size)."""
    import cv2
    import pandas as pd

    rng = np.random.default_rng(seed)
    frames_dir = data_dir / "frames"
    rows = []
    for c in range(-(-n_frames // frames_per_clip)):
        label = f"L{c % 8}"
        clip_id = f"bench_{label}_{c * 1000}-{c * 1000 + 900}"
        rel = []
        for i in range(min(frames_per_clip, n_frames - c * frames_per_clip)):
            small = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
            img = cv2.resize(small, (399, 299), interpolation=cv2.INTER_CUBIC)
            img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
            p = Path("train") / label / clip_id / f"{clip_id}-{i:04d}.jpg"
            (frames_dir / p).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(frames_dir / p), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
            rel.append(p.as_posix())
        rows.append(dict(split="train", label=label, clip_id=clip_id, video=f"v{c % 3}", start=c, end=c + 0.9,
                         fps=25.0, n_frames=len(rel), frames=";".join(rel)))
    pd.DataFrame(rows).to_csv(frames_dir / "frames.csv", index=False)
    (frames_dir / "extract_config.json").write_text(json.dumps(
        {"frames_per_clip": frames_per_clip, "fps": None, "all_frames": False, "size": 299, "jpeg_quality": 95}))
    return data_dir


def train_frames(data_dir: Path):
    from signwrite import data, tables

    frames = data.explode_frames(tables.read_frames_csv(data_dir), data_dir)
    return frames[frames.split == "train"]


def bench_extraction(data_dir: Path, backbone: str, size: int, batch: int, repeats: int = 5) -> dict:
    """Frames per second: our pipeline (from JPEG files, into the cache) vs a bare forward pass."""
    import shutil

    import tensorflow as tf

    from signwrite import backbones, features

    frames = train_frames(data_dir)
    extractor = backbones.build_feature_extractor(backbone, "none", size)
    resize = extractor.get_layer("resize")
    forward = features.compiled_forward(extractor)  # the very function the pipeline calls
    in_memory = [tf.constant(np.random.default_rng(i).uniform(0, 255, (batch, size, size, 3)).astype("float32"))
                 for i in range(-(-len(frames) // batch))]
    forward(in_memory[0])  # trace once, outside the clocks
    cache = data_dir / "features" / "bench"
    features.extract_features(frames.head(batch), extractor, resize, cache, batch)  # warm-up its trace too
    pipeline, bare, cpu_ratios = [], [], []
    for _ in range(repeats):  # back to back pairs: a noisy neighbour (the CPU is shared) hurts both alike
        shutil.rmtree(cache, ignore_errors=True)
        t, c = time.perf_counter(), time.process_time()
        features.extract_features(frames, extractor, resize, cache, batch)
        pipeline.append(len(frames) / (time.perf_counter() - t))
        pipeline_cpu = time.process_time() - c
        t, c = time.perf_counter(), time.process_time()
        for x in in_memory:
            forward(x).numpy()
        bare.append(len(frames) / (time.perf_counter() - t))
        # CPU seconds this process spent: what the pipeline costs, whatever the neighbours do
        cpu_ratios.append((time.process_time() - c) / pipeline_cpu)
    ratios = [p / b for p, b in zip(pipeline, bare)]
    return {"backbone": backbone, "image_size": size, "frames": len(frames), "batch_size": batch,
            "pipeline_fps": float(np.median(pipeline)), "bare_forward_fps": float(np.median(bare)),
            "ratio": float(np.median(ratios)), "cpu_ratio": float(np.median(cpu_ratios)),
            "runs_ratio": ratios, "runs_cpu_ratio": cpu_ratios,
            "runs_pipeline_fps": pipeline, "runs_bare_fps": bare}


def bench_head_vs_end_to_end(data_dir: Path, backbone: str, size: int, batch: int, head_epochs: int) -> dict:
    import keras

    from signwrite import backbones, data, features

    frames = train_frames(data_dir)
    labels = sorted(frames.label.unique())
    y = frames.label.map({lab: i for i, lab in enumerate(labels)}).to_numpy()
    extractor = backbones.build_feature_extractor(backbone, "none", size)
    resize = extractor.get_layer("resize")
    cache = data_dir / "features" / "bench-head"
    features.extract_features(frames, extractor, resize, cache, batch)
    x = features.load_features(frames, cache)

    head = backbones.build_head(x.shape[1], len(labels))
    head.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    t = time.perf_counter()
    head.fit(x, y, batch_size=batch, epochs=head_epochs, verbose=0)
    head_s = time.perf_counter() - t

    model = backbones.build_classifier(extractor, backbones.build_head(x.shape[1], len(labels)))
    backbones.set_trainable(extractor, backbone, "all")
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    ds = data.frame_dataset(list(frames.path), y, resize, batch, shuffle=True, augment=data.sign_augmentation(0))
    model.fit(ds.take(1), epochs=1, verbose=0)  # trace the train step outside the clock
    t = time.perf_counter()
    model.fit(ds, epochs=1, verbose=0)
    e2e_s = time.perf_counter() - t
    return {"backbone": backbone, "image_size": size, "frames": len(frames), "head_epochs": head_epochs,
            "head_total_s": head_s, "head_s_per_epoch": head_s / head_epochs, "end_to_end_epoch_s": e2e_s,
            "end_to_end_epoch_over_head_epoch": e2e_s / (head_s / head_epochs)}


def peak_memory_child(data_dir: str, backbone: str, size: int, batch: int) -> None:
    """In a fresh process: extract features of every frame, print peak RSS in MB."""
    from signwrite import backbones, features

    frames = train_frames(Path(data_dir))
    extractor = backbones.build_feature_extractor(backbone, "none", size)
    n = features.extract_features(frames, extractor, extractor.get_layer("resize"),
                                  Path(data_dir) / "features" / "mem", batch)
    print(json.dumps({"frames": n, "peak_rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not getrusage's ru_maxrss: Linux carries
    ru_maxrss over from the parent through fork and exec (the parent holds a model too)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # pragma: no cover - not Linux


def bench_memory(root: Path, sizes: list[int], backbone: str, image_size: int, batch: int) -> list[dict]:
    out = []
    for n in sizes:
        d = make_frames(root / f"mem{n}" / "data", n)
        proc = subprocess.run([sys.executable, __file__, "--memory-child", str(d), backbone, str(image_size),
                               str(batch)], capture_output=True, text=True, check=True)
        out.append({"backbone": backbone, "image_size": image_size, **json.loads(proc.stdout.strip().splitlines()[-1])})
    return out


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--memory-child":
        peak_memory_child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=160)
    p.add_argument("--backbone", default="inception_v3")
    p.add_argument("--image-size", type=int, default=299)
    p.add_argument("--small-size", type=int, default=96, help="a second, CPU-sized input to compare")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--head-epochs", type=int, default=50)
    p.add_argument("--memory-frames", default="256,2048")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "train.json")
    a = p.parse_args()

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        root = Path(tmp)
        d = make_frames(root / "data", a.frames)
        extraction = [bench_extraction(d, a.backbone, s, a.batch_size) for s in (a.image_size, a.small_size)]
        head = bench_head_vs_end_to_end(d, a.backbone, a.small_size, a.batch_size, a.head_epochs)
        memory = bench_memory(root, [int(n) for n in a.memory_frames.split(",")], a.backbone, a.small_size,
                              a.batch_size)
    result = {"extraction": extraction, "head_vs_end_to_end": head, "memory": memory,
              "machine": {"cpus": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": os.getloadavg()}}

    print(f"\nfeature extraction ({a.backbone}, {a.frames} frames, batch {a.batch_size})")
    print(f"{'size':>6} {'pipeline f/s':>13} {'bare f/s':>9} {'ratio':>6} {'cpu ratio':>10}   "
          "(medians of back-to-back pairs; cpu ratio: bare CPU s / pipeline CPU s)")
    for e in extraction:
        pairs = " ".join(f"{r:.2f}" for r in e["runs_ratio"])
        print(f"{e['image_size']:>6} {e['pipeline_fps']:>13.1f} {e['bare_forward_fps']:>9.1f} {e['ratio']:>6.2f} "
              f"{e['cpu_ratio']:>10.2f}   wall ratios [{pairs}]")
    print(f"\nhead on cached features vs end-to-end ({head['image_size']} px, {head['frames']} frames)")
    print(f"  head: {head['head_epochs']} epochs in {head['head_total_s']:.2f} s ({head['head_s_per_epoch'] * 1000:.1f} ms/epoch)")
    print(f"  end-to-end: one epoch {head['end_to_end_epoch_s']:.1f} s "
          f"({head['end_to_end_epoch_over_head_epoch']:.0f}x a head epoch)")
    print(f"\npeak memory of feature extraction ({a.backbone}, {a.small_size} px)")
    for m in memory:
        print(f"  {m['frames']:>6} frames: {m['peak_rss_mb']:.0f} MB")
    print(f"\nload average before/after: {load_before[0]:.1f} / {result['machine']['loadavg_after'][0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    from signwrite.fsutil import write_json

    write_json(a.out, result)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
