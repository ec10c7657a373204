"""The whole pipeline, offline, on a dataset it generates itself (or on a folder you give it).

    signwrite demo [--workdir signwrite-demo] [--size default|small] [--from DIR]

1. generate tutorial-style videos of made-up signs by several "signers" (signwrite.demo.synth),
   with a sources.csv and a video_clip_times.csv in the original wide layout;
2. serve them on 127.0.0.1 and call the real fetch (yt-dlp downloads them), then
   extract_frames and train (from scratch: no pretrained weights are needed);
3. transcribe a held-out video of a signer the model never saw;
4. print clip-level top-1/3/10 and the transcription, and say where the pictures are.

Every step is the stage commands' own code, and skips what an earlier demo finished, so
starting the demo again is quick and stopping it loses nothing.

    python -m signwrite.demo ...          the same as signwrite demo (signwrite/demo/__main__.py)
    python -m signwrite.demo.synth ...    only the dataset (signwrite/demo/synth.py)
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import threading
from dataclasses import asdict, dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

from signwrite.errors import SignwriteError

log = logging.getLogger(__name__)

# Sizes tuned on 2 CPU cores: "default" takes a few minutes, "small" about a minute. Many
# signers, because telling signs apart on signers never seen needs many seen ones; a small
# CNN from scratch, because MobileNetV2 from scratch stays near chance on this little data;
# no --colour, which scored lower here (all measured in benchmarks/bench_demo.py).
PROFILES = {
    "default": dict(classes=6, signers=24, frame_size=96, frames_per_clip=16, backbone="small_cnn",
                    image_size=64, epochs=20, patience=20, colour=False),
    "small": dict(classes=3, signers=12, frame_size=64, frames_per_clip=8, backbone="small_cnn",
                  image_size=64, epochs=24, patience=24, colour=False),
}


@dataclass
class DemoSettings:
    workdir: Path = Path("signwrite-demo")
    size: str = "default"  # a key of PROFILES
    source: Path | None = None  # --from: a folder with videos, sources.csv, video_clip_times.csv
    test_videos: str | None = None  # passed to fetch; default: fetch's split by whole videos
    epochs: int | None = None  # override the profile's
    seed: int = 0
    input: str = "frames"  # frames | landmarks | hands: what the model sees (train --input)


@dataclass
class Inputs:
    folder: Path  # served over HTTP
    sources: Path
    clip_times: Path
    transcribe_video: Path | None
    expected: str | None  # the true sign sequence of transcribe_video, when known


# ----------------------------------------------------------------------------- steps


def generate(s: DemoSettings, profile: dict) -> Inputs:
    from signwrite.demo import synth

    info = synth.make_dataset(s.workdir / "dataset", n_classes=profile["classes"], n_signers=profile["signers"],
                              takes_per_sign=1, seed=s.seed)
    expected = " ".join(p.label for p in info.transcription)
    return Inputs(info.root, info.sources_csv, info.clip_times_csv, info.transcribe_video, expected)


def from_folder(folder: Path) -> Inputs:
    folder = Path(folder)
    for name in ("sources.csv", "video_clip_times.csv"):
        if not (folder / name).is_file():
            raise SignwriteError(f"--from {folder}: no {name} there; the folder needs videos, sources.csv "
                                 "and video_clip_times.csv")
    return Inputs(folder, folder / "sources.csv", folder / "video_clip_times.csv", None, None)


@contextlib.contextmanager
def serve(folder: Path):
    """Serve ``folder`` read-only on 127.0.0.1 (a free port) for the lifetime of the block."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep the demo's output readable
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            # yt-dlp probes a URL and drops the connection; that is not an error worth a traceback
            import sys

            if not isinstance(sys.exc_info()[1], ConnectionError):
                super().handle_error(request, client_address)

    server = Server(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def served_sources(inputs: Inputs, base_url: str, out: Path) -> Path:
    """sources.csv with every local video inside the served folder replaced by its URL."""
    import pandas as pd

    from signwrite import fsutil
    from signwrite.clip_times import read_sources

    root = inputs.folder.resolve()
    rows = []
    for video, src in read_sources(inputs.sources).items():
        url = src.url
        if src.kind == "local" and Path(src.location).is_relative_to(root):
            url = f"{base_url}/{quote(Path(src.location).relative_to(root).as_posix())}"
        rows.append({"video": video, "url": url})
    fsutil.write_csv(out, pd.DataFrame(rows, columns=["video", "url"]))
    return out


def stage(name: str, main, argv: list[str]) -> None:
    log.info("\n==> signwrite %s %s", name, " ".join(argv))
    code = main(argv)
    if code:
        raise SignwriteError(f"the {name} stage failed (exit status {code}); see the messages above, fix, "
                             "and run the demo again: finished work is kept")


def held_out_video(data: Path) -> Path | None:
    """The first test video fetch wrote, for --from folders that name no transcription video."""
    import pandas as pd

    clips = data / "clips" / "clips.csv"
    if not clips.is_file():
        return None
    test = pd.read_csv(clips, dtype=str)
    test = test[test["split"] == "test"]
    if test.empty:
        return None
    found = sorted((data / "videos").glob(f"{test['video'].iloc[0]}.*"))
    return found[0] if found else None


def train_command(profile: dict, data: Path, logs: Path, run_name: str, seed: int, input: str = "frames"
                  ) -> list[str]:
    """The demo's ``signwrite train`` arguments for a profile (benchmarks/bench_demo.py varies them)."""
    if input == "landmarks":  # no backbone: the landmark model's own defaults
        return ["--data-dir", str(data), "--logdir", str(logs), "--run", run_name, "--input", "landmarks",
                "--seed", str(seed), "--deterministic"]
    return ["--input", input, "--data-dir", str(data), "--logdir", str(logs), "--run", run_name, "--weights", "none",
            "--backbone", profile["backbone"], "--image-size", str(profile["image_size"]),
            "--epochs", str(profile["epochs"]), "--patience", str(profile["patience"]), "--seed", str(seed),
            "--deterministic",  # the same demo gives the same model on the same machine (free on a CPU)
            # The checkpoint is picked on validation clip top-1 (ties: frame accuracy, then loss):
            # on 3-4 validation signers, val_loss can favour the untrained first epoch
            *(["--colour"] if profile["colour"] else []), "--monitor", "val_clip_top1"]


def demo(s: DemoSettings) -> int:
    from signwrite import extract_frames, fetch, predict, train

    if s.size not in PROFILES:
        raise SignwriteError(f"--size must be one of {', '.join(PROFILES)}; received {s.size!r}")
    profile = dict(PROFILES[s.size])
    if s.epochs:
        profile["epochs"] = s.epochs
    work = Path(s.workdir)
    work.mkdir(parents=True, exist_ok=True)
    data, logs = work / "data", work / "logs"
    run_name = f"demo-{s.size}" + ("" if s.input == "frames" else f"-{s.input}")

    inputs = None if s.source is None else from_folder(s.source)  # refuse a bad folder first
    log.info("==> dataset: %s", "generating" if s.source is None else s.source)
    inputs = inputs or generate(s, profile)

    with serve(inputs.folder) as url:
        log.info("serving %s on %s", inputs.folder, url)
        sources = served_sources(inputs, url, work / "sources.csv")
        split = ["--test-videos", s.test_videos] if s.test_videos else []
        stage("fetch", fetch.main, ["--sources", str(sources), "--clip-times", str(inputs.clip_times),
                                    "--data-dir", str(data), *split])
    stage("extract-frames", extract_frames.main,
          ["--data-dir", str(data), "--frames-per-clip", str(profile["frames_per_clip"]),
           "--size", str(profile["frame_size"]), *(["--hands"] if s.input != "frames" else [])])
    stage("train", train.main, train_command(profile, data, logs, run_name, s.seed, s.input))
    run_dir = logs / run_name

    video = inputs.transcribe_video or held_out_video(data)
    transcript = None
    if video is not None:
        csv_out, srt_out = work / "transcript.csv", work / "transcript.srt"
        log.info("\n==> signwrite predict --run %s %s --transcribe", run_dir, video)
        code = predict.predict(predict.PredictSettings(run=run_dir, videos=[Path(video)], transcribe=True,
                                                       out=csv_out, srt=srt_out, expect=inputs.expected))
        if code:
            raise SignwriteError(f"transcribing {video} failed (exit status {code})")
        transcript = {"video": str(video), "csv": str(csv_out), "srt": str(srt_out), "expected": inputs.expected}

    summary(run_dir, transcript, s, profile)
    return 0


def summary(run_dir: Path, transcript: dict | None, s: DemoSettings, profile: dict) -> None:
    import pandas as pd

    from signwrite import fsutil

    metrics = json.loads((run_dir / "metrics.json").read_text())
    lines = ["", "=" * 72, "signwrite demo: done", "",
             f"clip-level accuracy on {metrics['n_test_clips']} test clips of videos the model never saw "
             f"({metrics['n_classes']} classes, chance {metrics['chance_top1']:.2f}):"]
    for k in (1, 3, 10):
        value = metrics.get(f"clip_top{k}")
        shown = (f"{value:.3f}" if isinstance(value, (int, float))
                 else f"n/a (k >= {metrics['n_classes']} classes: every clip is trivially right)")
        lines.append(f"  top-{k:<2d} {shown}")
    if transcript:
        segments = pd.read_csv(transcript["csv"])
        said = " ".join(segments["label"].astype(str)) if len(segments) else "(nothing confident)"
        lines += ["", f"transcription of {transcript['video']}:", f"  heard:    {said}"]
        if transcript["expected"]:
            lines.append(f"  truth:    {transcript['expected']}")
        lines.append(f"  segments: {transcript['csv']}  (subtitles: {transcript['srt']})")
    lines += ["", "pictures:",
              f"  {run_dir / 'confusion_matrix.png'}",
              f"  {run_dir / 'test_predictions.png'}",
              f"  {Path(s.workdir) / 'data' / 'frames' / 'contact_sheets'}/<label>.jpg",
              "curves, images and settings in TensorBoard:",
              f"  tensorboard --logdir {run_dir.parent}",
              "=" * 72]
    text = "\n".join(lines)
    print(text)
    fsutil.write_json(Path(s.workdir) / "demo_summary.json",
                      {"settings": {k: str(v) for k, v in asdict(s).items()}, "profile": profile,
                       "metrics": {k: metrics.get(k) for k in ("clip_top1", "clip_top3", "clip_top10",
                                                                "frame_top1", "n_test_clips", "n_classes",
                                                                "chance_top1")},
                       "run": str(run_dir), "transcript": transcript})


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="signwrite demo", description=__doc__.split("\n\n")[0] + " Safe to run again.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  signwrite demo\n  signwrite demo --size small --workdir /tmp/sw\n"
               "  signwrite demo --from ../shared/data/asl-letters-junaid/tutorial --test-videos junaid_abc2")
    p.add_argument("--workdir", type=Path, default=DemoSettings.workdir,
                   help="where the dataset, data/ and logs/ go (default: %(default)s)")
    p.add_argument("--size", choices=sorted(PROFILES), default="default",
                   help="default: a few minutes on 2 cores; small: under a minute, for a smoke test")
    p.add_argument("--from", dest="source", type=Path, metavar="DIR",
                   help="use a folder holding videos, sources.csv and video_clip_times.csv instead of "
                        "generating one")
    p.add_argument("--test-videos", metavar="ID,ID", help="videos to hold out for testing (default: a "
                                                          "deterministic ~25%% of the videos)")
    p.add_argument("--epochs", type=int, help="override the profile's number of epochs")
    p.add_argument("--input", choices=["frames", "landmarks", "hands"], default="frames",
                   help="what the model sees (train --input; default frames). landmarks and hands need real "
                        "hands: use them with --from on real footage (the generated signers have none)")
    p.add_argument("--seed", type=int, default=0, help="seed for the dataset and training (default: 0)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every step")
    return p


def main(argv: list[str] | None = None) -> int:
    from signwrite.process import run_stage, setup_logging

    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    s = DemoSettings(workdir=args.workdir, size=args.size, source=args.source, test_videos=args.test_videos,
                     epochs=args.epochs, seed=args.seed, input=args.input)
    return run_stage("demo", demo, s)
