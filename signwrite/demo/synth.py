"""The built-in offline demo dataset: generated "sign" videos whose clip times are exact.

A sign is a hand-like shape with its own motion ("hello" is an open hand waving left and
right). Each signer (one tutorial-style video) has their own background, colours, body,
framing and hand size; each take of a sign varies in timing, phase, pose and noise. A
model therefore has to learn shapes and motions, not a colour, and a split by whole
videos is a real generalisation test.

    python -m signwrite.demo.synth OUT_DIR [--classes N --signers N --takes N --seed S]

writes videos/<signer>.mp4, sources.csv, video_clip_times.csv (wide layout, first take of
each sign), video_clip_times_long.csv (every take), transcribe.mp4 + transcribe_truth.csv
(an unseen signer performing a known sequence) and README.txt. Everything follows from
the seed; generating again with the same settings reuses what is there. How the videos
look (the signs' shapes and motions, a signer's picture) is in ``signwrite.demo.draw``.
"""

from __future__ import annotations

import argparse
import colorsys
import json
import logging
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from signwrite.demo.draw import BACKGROUNDS, CLASSES, Performance, SignerStyle, background, signer_frames
from signwrite.errors import SignwriteError
from signwrite.fsutil import write_json, write_text

log = logging.getLogger(__name__)

SETTINGS_FILE = "synth.json"
TRANSCRIBE_ID = "transcribe"


@dataclass(frozen=True)
class SynthConfig:
    n_classes: int = 6
    n_signers: int = 4
    takes_per_sign: int = 2
    fps: int = 15
    size: tuple[int, int] = (160, 120)  # width, height
    seed: int = 0
    transcribe_signs: int = 8  # length of the sign sequence in transcribe.mp4


@dataclass(frozen=True)
class DatasetInfo:
    root: Path
    config: SynthConfig
    labels: tuple[str, ...]
    videos: tuple[str, ...]  # in sources.csv order
    sources_csv: Path
    clip_times_csv: Path  # wide layout, first take per (label, video)
    clip_times_long_csv: Path  # long layout, every take
    transcribe_video: Path
    transcribe_truth_csv: Path
    readme: Path
    clips: tuple[Performance, ...]  # every take, by video then time
    transcription: tuple[Performance, ...]  # the truth for transcribe.mp4
    signers: dict[str, SignerStyle]  # also holds the held-out TRANSCRIBE_ID signer

    @property
    def n_clips(self) -> int:
        return len(self.clips)

    @property
    def n_wide_clips(self) -> int:
        return sum(1 for c in self.clips if c.take == 1)

    def video_path(self, video: str) -> Path:
        return self.transcribe_video if video == TRANSCRIBE_ID else self.root / "videos" / f"{video}.mp4"


# --------------------------------------------------------------------------- planning


def _bgr(h: float, s: float, v: float) -> np.ndarray:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return np.array([b, g, r]) * 255


def _pick_style(video: str, rng: np.random.Generator, size: tuple[int, int]) -> SignerStyle:
    w, h = size
    dark = rng.random() < 0.5
    hue = rng.random()
    bg = _bgr(hue, rng.uniform(0.05, 0.35), rng.uniform(0.12, 0.3) if dark else rng.uniform(0.68, 0.9))
    bg2 = _bgr(hue + rng.uniform(-0.08, 0.08), rng.uniform(0.05, 0.4),
               (rng.uniform(0.25, 0.42) if dark else rng.uniform(0.52, 0.7)))
    body = _bgr(rng.random(), rng.uniform(0.15, 0.5), rng.uniform(0.3, 0.6))
    ints = lambda c: tuple(int(x) for x in c)  # noqa: E731
    partial = SignerStyle(
        video, background=BACKGROUNDS[rng.integers(len(BACKGROUNDS))], bg_bgr=ints(bg), bg2_bgr=ints(bg2),
        texture_period=rng.uniform(8, 22), texture_angle=rng.uniform(0, np.pi),
        texture_seed=int(rng.integers(2**31)), body_bgr=ints(body), body_x=w * (0.5 + rng.uniform(-0.12, 0.12)),
        hand_bgr=(0, 0, 0), hand_xy=(w * (0.5 + rng.uniform(-0.09, 0.09)), h * (0.45 + rng.uniform(-0.07, 0.07))),
        hand_radius=min(w, h) * 0.17 * rng.uniform(0.8, 1.2), noise=rng.uniform(2.0, 6.0))
    # The hand must stand out from every background pixel and from the body, including
    # the blends an encoder makes at their edges, or its pixels are ambiguous.
    bg_px = background(partial, size)[::4, ::4].reshape(-1, 3)
    t = np.linspace(0, 1, 5)[:, None, None]
    seen = (bg_px[None] * (1 - t) + body[None, None] * t).reshape(-1, 3)
    for _ in range(1000):
        hand = _bgr(rng.random(), rng.uniform(0.6, 1.0), rng.uniform(0.75, 1.0) if dark else rng.uniform(0.35, 1.0))
        if np.sqrt(((seen - hand) ** 2).sum(1)).min() >= 110:
            break
    else:  # pragma: no cover - the colour ranges above make this practically impossible
        raise RuntimeError(f"no hand colour contrasts with the background of {video}")
    return replace(partial, hand_bgr=ints(hand))


def _grid(fps: int) -> int:
    """Frames between times that are exact in hundredths of a second (3 at 15 fps)."""
    return fps // math.gcd(fps, 100)


def _lengths(fps: int, lo: float, hi: float) -> list[int]:
    """Frame counts on the grid lasting lo..hi seconds (the nearest one if none does)."""
    g = _grid(fps)
    fits = [k * g for k in range(1, int(hi * fps) // g + 1) if lo <= k * g / fps <= hi]
    return fits or [max(g, round((lo + hi) / 2 * fps / g) * g)]


def _plan(video: str, order: list[str], fps: int, rng: np.random.Generator,
          sign_s=(1.0, 1.5), rest_s=(0.3, 0.5), edge_s=(0.5, 0.8)) -> tuple[list[Performance], int]:
    """Lay the signs of ``order`` out in time, with rests between; returns them and the frame count."""
    signs, rests = _lengths(fps, *sign_s), _lengths(fps, *rest_s)
    frame = int(rng.choice(_lengths(fps, *edge_s)))
    takes: dict[str, int] = {}
    out = []
    for i, label in enumerate(order):
        n = int(rng.choice(signs))
        takes[label] = takes.get(label, 0) + 1
        out.append(Performance(
            label, video, takes[label], round(frame / fps, 2), round((frame + n) / fps, 2), frame, frame + n,
            phase=rng.uniform(-0.5, 0.5), cycles=rng.uniform(0.85, 1.2), angle=rng.uniform(-6, 6),
            scale=rng.uniform(0.96, 1.04), dx=rng.uniform(-2.5, 2.5), dy=rng.uniform(-2.5, 2.5),
            gain=rng.uniform(0.94, 1.06)))
        frame += n + (int(rng.choice(rests)) if i < len(order) - 1 else 0)
    return out, frame + int(rng.choice(_lengths(fps, *edge_s)))


def _transcribe_order(labels: list[str], n: int, rng: np.random.Generator) -> list[str]:
    """Every label once (while n allows) in a random order, then more, never twice in a row."""
    order: list[str] = []
    while len(order) < n:
        batch = [str(lab) for lab in rng.permutation(labels)]
        if order and len(batch) > 1 and batch[0] == order[-1]:
            batch.append(batch.pop(0))
        order += batch
    return order[:n]


def _streams(seed: int, index: int):
    """Independent generators per signer, so adding signers leaves the others unchanged."""
    return (np.random.default_rng([seed, index, k]) for k in range(3))  # style, plan, noise


# --------------------------------------------------------------------------- files


def _check(cfg: SynthConfig) -> None:
    def bad(name, value, want):
        raise SignwriteError(f"{name} must be {want}; received {name}={value!r}")

    if not 2 <= cfg.n_classes <= len(CLASSES):
        bad("n_classes", cfg.n_classes, f"between 2 and {len(CLASSES)}")
    if cfg.n_signers < 1:
        bad("n_signers", cfg.n_signers, "at least 1")
    if cfg.takes_per_sign < 1:
        bad("takes_per_sign", cfg.takes_per_sign, "at least 1")
    if cfg.transcribe_signs < 1:
        bad("transcribe_signs", cfg.transcribe_signs, "at least 1")
    if not isinstance(cfg.fps, int) or not 5 <= cfg.fps <= 60:
        bad("fps", cfg.fps, "a whole number from 5 to 60")
    if len(cfg.size) != 2 or not all(isinstance(s, int) and 48 <= s <= 1920 for s in cfg.size):
        bad("size", cfg.size, "(width, height), each a whole number from 48 to 1920")


def _fmt(t: float) -> str:
    return f"{t:.2f}"


def _readme(info: DatasetInfo) -> str:
    cfg = info.config
    rows = "\n".join(f"  {c.label:<8} {c.shape:<9} {c.motion}" for c in CLASSES[:cfg.n_classes])
    return f"""\
Generated sign videos (signwrite demo dataset)
==============================================

Nothing here was filmed: every frame was drawn by signwrite.demo.synth (numpy + OpenCV,
anti-aliased) and encoded as H.264. The same settings always give the same files.

Made with (and remade by):
  python -m signwrite.demo.synth OUT_DIR --classes {cfg.n_classes} --signers {cfg.n_signers} \
--takes {cfg.takes_per_sign} --seed {cfg.seed} --fps {cfg.fps} --size {cfg.size[0]}x{cfg.size[1]} \
--transcribe-signs {cfg.transcribe_signs}

A "sign" is a hand-like shape together with its motion:

  label    shape     motion
{rows}

Each video (videos/<signer>.mp4) is one signer performing every sign {cfg.takes_per_sign} time(s) in
a shuffled order, each take 1.0-1.5 s, with 0.3-0.5 s of rest (body only, no hand) between.
Signers differ in background (flat, gradient, stripes, checks or blotches, light or dark),
hand colour, body colour and place, where they sign and how big their hand is. Takes
differ in duration, motion phase and speed, a small rotation, offset and size, lighting
and sensor noise. So a model must learn shape and motion, and splitting by whole videos
tests it on signers it has never seen.

Files
  sources.csv                 video,url  (url = the video file, relative to this folder)
  video_clip_times.csv        wide layout: no header, per sign a row of start times then a
                              row of end times, one column per video in sources.csv order;
                              it holds the first take of each sign in each video (the layout
                              has room for one clip per sign and video)
  video_clip_times_long.csv   label,video,start,end: every take ({info.n_clips} clips)
  transcribe.mp4              a signer seen in no other video performing
                              {' '.join(p.label for p in info.transcription)}
  transcribe_truth.csv        label,start,end of those signs

Times are in seconds and exact: every boundary falls on a frame whose time has two
decimals, a clip [start, end) holds exactly the frames that show the sign.
"""


def make_dataset(out_dir: Path, *, n_classes: int = 6, n_signers: int = 4, takes_per_sign: int = 2,
                 fps: int = 15, size: tuple[int, int] = (160, 120), seed: int = 0,
                 transcribe_signs: int = 8, overwrite: bool = False) -> DatasetInfo:
    """Generate the demo dataset into ``out_dir`` (see the module docstring).

    With the same settings as the dataset already in ``out_dir``, nothing is rewritten
    unless ``overwrite``.
    """
    from signwrite.video import write_video

    cfg = SynthConfig(n_classes, n_signers, takes_per_sign, fps, tuple(size), seed, transcribe_signs)
    _check(cfg)
    root = Path(out_dir)
    labels = [c.label for c in CLASSES[:n_classes]]
    videos = [f"signer{k}" for k in range(1, n_signers + 1)]

    styles, plans = {}, {}
    for k, video in enumerate(videos, 1):
        style_rng, plan_rng, _ = _streams(seed, k)
        order = [str(lab) for lab in plan_rng.permutation([lab for lab in labels for _ in range(takes_per_sign)])]
        styles[video] = _pick_style(video, style_rng, cfg.size)
        plans[video] = _plan(video, order, fps, plan_rng)
    # An index no --signers value reaches: the held-out signer is never a training signer.
    style_rng, plan_rng, _ = _streams(seed, 1_000_000)
    styles[TRANSCRIBE_ID] = _pick_style(TRANSCRIBE_ID, style_rng, cfg.size)
    plans[TRANSCRIBE_ID] = _plan(TRANSCRIBE_ID, _transcribe_order(labels, transcribe_signs, plan_rng), fps,
                                 plan_rng, rest_s=(0.6, 1.0), edge_s=(0.8, 1.2))

    info = DatasetInfo(
        root, cfg, tuple(labels), tuple(videos), root / "sources.csv", root / "video_clip_times.csv",
        root / "video_clip_times_long.csv", root / "transcribe.mp4", root / "transcribe_truth.csv",
        root / "README.txt", tuple(p for v in videos for p in plans[v][0]),
        tuple(plans[TRANSCRIBE_ID][0]), styles)

    settings = root / SETTINGS_FILE
    wanted = {"synth_settings": asdict(cfg)}
    outputs = [info.video_path(v) for v in [*videos, TRANSCRIBE_ID]] + [
        info.sources_csv, info.clip_times_csv, info.clip_times_long_csv, info.transcribe_truth_csv, info.readme]
    if not overwrite and settings.is_file() and all(p.is_file() for p in outputs):
        if json.loads(settings.read_text()) == json.loads(json.dumps(wanted)):
            log.info("%s: demo dataset already generated with these settings; reusing it", root)
            return info
    # A stale settings file must never vouch for half-rewritten files if we are stopped.
    settings.unlink(missing_ok=True)

    for k, video in enumerate([*videos, TRANSCRIBE_ID], 1):
        takes, n_frames = plans[video]
        noise_rng = list(_streams(seed, k if video != TRANSCRIBE_ID else 1_000_000))[2]
        write_video(info.video_path(video), signer_frames(styles[video], takes, n_frames, fps, cfg.size, noise_rng),
                    fps, crf=20, gop=fps)
        log.info("wrote %s (%d signs, %.1f s)", info.video_path(video), len(takes), n_frames / fps)

    write_text(info.sources_csv, "video,url\n" + "".join(f"{v},videos/{v}.mp4\n" for v in videos))
    first = {(p.label, p.video): p for p in info.clips if p.take == 1}
    wide = "".join(f"{lab}," + ",".join(_fmt(getattr(first[lab, v], side)) for v in videos) + "\n"
                   for lab in labels for side in ("start", "end"))
    write_text(info.clip_times_csv, wide)
    write_text(info.clip_times_long_csv, "label,video,start,end\n" + "".join(
        f"{p.label},{p.video},{_fmt(p.start)},{_fmt(p.end)}\n" for p in info.clips))
    write_text(info.transcribe_truth_csv, "label,start,end\n" + "".join(
        f"{p.label},{_fmt(p.start)},{_fmt(p.end)}\n" for p in info.transcription))
    write_text(info.readme, _readme(info))
    write_json(settings, wanted)
    log.info("%s: %d classes, %d videos, %d clips (%d in the wide file), transcription of %d signs",
             root, n_classes, n_signers, info.n_clips, info.n_wide_clips, len(info.transcription))
    return info


def main(argv: list[str] | None = None) -> int:
    from signwrite.process import run_stage, setup_logging

    parser = argparse.ArgumentParser(
        prog="python -m signwrite.demo.synth",
        description="Generate the offline demo dataset: tutorial-style videos of shape 'signs' "
                    "by several signers, sources.csv, video_clip_times.csv (wide and long "
                    "layouts) and a held-out video to transcribe, with its true sign times.")
    parser.add_argument("out_dir", type=Path, help="folder to write (created if missing)")
    parser.add_argument("--classes", type=int, default=6, help=f"number of signs, 2-{len(CLASSES)} (default 6)")
    parser.add_argument("--signers", type=int, default=4, help="number of videos, one signer each (default 4)")
    parser.add_argument("--takes", type=int, default=2, help="takes of each sign per video (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="everything follows from it (default 0)")
    parser.add_argument("--fps", type=int, default=15, help="frame rate (default 15)")
    parser.add_argument("--size", default="160x120", help="frame size WIDTHxHEIGHT (default 160x120)")
    parser.add_argument("--transcribe-signs", type=int, default=8,
                        help="signs in the held-out transcribe.mp4 (default 8)")
    parser.add_argument("--overwrite", action="store_true", help="regenerate even if the settings match")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        size = tuple(int(s) for s in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size must look like 160x120; received {args.size!r}")
    return run_stage("synth", make_dataset, args.out_dir, n_classes=args.classes, n_signers=args.signers,
               takes_per_sign=args.takes, fps=args.fps, size=size, seed=args.seed,
               transcribe_signs=args.transcribe_signs, overwrite=args.overwrite)


if __name__ == "__main__":
    raise SystemExit(main())
