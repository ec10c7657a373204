"""Propose the clip times of a video's signs, given the order it shows them in.

    signwrite annotate VIDEO_OR_ID [...] --signs A,B,C [--sources data/sources.csv]
                       [--by motion | --by model --run logs/NAME] [--out proposed_clip_times.csv]

--by motion needs no model: the hand's landmarks over time (MediaPipe, about 12 samples a
second) give how still the hand is; where no hand is found, the picture's own change
(frame differencing) stands in. The video is then cut into exactly as many held spans as
the list has signs (signwrite.align), each grown over the hand coming into and leaving it.
--by model aligns a trained run's window probabilities to the known order (a forced,
Viterbi-style alignment), so a model trained on one annotated video annotates the rest.

Writes OUT (label,video,start,end: the long layout fetch reads), OUT's .confidence.csv (the
same rows with a confidence and a doubtful flag), OUT's .annotate.json (the settings, and
the checksum that marks OUT as ours), and per video, in OUT's .review/ folder, an SRT to
watch the proposal with the video and a review sheet (one frame of each span, captioned;
doubtful ones framed in red). The tracked hands are kept per video under
DATA/annotate/tracks/ (signwrite.annotate_track), so annotating a video again (another list,
the other method) is quick.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from signwrite import align, clip_times
from signwrite.annotate_track import Track, load_or_track, model_window, sample_probabilities, sha256, track_step
from signwrite.errors import SignwriteError
from signwrite.fsutil import remove_stale_temps_of, write_bytes, write_csv, write_json, write_text

log = logging.getLogger(__name__)

MAX_EXTEND = 1.0  # seconds a span may grow past its hold on each side (the hand arriving, leaving)


@dataclass
class AnnotateSettings:
    videos: list[str]  # paths, or video ids in sources.csv
    signs: list[str] | None = None  # the same list for every video; None: the signs column of sources.csv
    sources: Path = Path("data/sources.csv")
    data_dir: Path = Path("data")  # tracks are cached in DATA/annotate/tracks
    by: str = "motion"  # "motion" or "model"
    run: Path | None = None  # --by model: a run folder
    out: Path = Path("proposed_clip_times.csv")
    force: bool = False  # replace an OUT annotate did not write
    min_sign: float = 0.3  # seconds: no sign is proposed shorter
    margin: float = 0.0  # seconds taken off both ends of every span
    hands: bool = True  # False: frame differencing only (videos without visible hands; faster)
    hand_model: Path | None = None


@dataclass
class Proposal:
    track: Track
    labels: list[str]
    spans: list[tuple[float, float]]  # seconds
    confidence: list[float]
    middles: list[int]  # the track sample shown on the review sheet, per span
    method: str  # what it was found from ("hand landmarks", "frame differencing", "run NAME")
    seconds: float = 0.0  # the time annotate took on it, the tracker's pass aside

    @property
    def video(self) -> str:
        return self.track.video


# --------------------------------------------------------------------------- inputs

def parse_signs(text: str, where: str) -> list[str]:
    """``A,B,C`` or ``A B C`` -> the list; an empty item or an unusable label is refused."""
    items = [t.strip() for t in (text.split(",") if "," in text else text.split())]
    if not text.strip() or not items:
        raise SignwriteError(f"{where}: the list of signs is empty; give them in order, e.g. --signs A,B,C")
    for i, item in enumerate(items, 1):
        why = "it is empty" if not item else clip_times.label_problem(item)
        if why:
            raise SignwriteError(f"{where}: sign {i} of {len(items)} ({item!r}): {why}; fix the list")
    return items


def read_sources(path: Path) -> tuple[dict[str, clip_times.Source], dict[str, list[str]]]:
    """sources.csv as fetch reads it, plus an optional ``signs`` column (one list per video)."""
    rows = clip_times.read_rows(path)
    header = [c.lower() for c in rows[0][1]]
    if "signs" not in header:
        return clip_times.read_sources(path), {}
    if header != ["video", "url", "signs"]:
        raise SignwriteError(f"{path}: line {rows[0][0]}: header {','.join(rows[0][1])!r}; with a signs "
                             "column it must be video,url,signs")
    sources, signs = {}, {}
    for line, cells in rows[1:]:
        video, url, listed = (cells + ["", "", ""])[:3]
        if len(cells) > 3 or not clip_times.SAFE_ID.match(video) or not url:
            raise SignwriteError(f"{path}: line {line}: expected video,url,signs with a safe video id and a url "
                                 '(a list with commas goes in quotes: "A,B,C")')
        kind, location, why = clip_times.resolve_url(url, Path(path).parent)
        if why:
            raise SignwriteError(f"{path}: line {line}: {why}")
        sources[video] = clip_times.Source(video, url, kind, location, line)
        if listed:
            signs[video] = parse_signs(listed, f"{path}: line {line}")
    return sources, signs


def resolve_videos(s: AnnotateSettings) -> list[tuple[str, Path, list[str]]]:
    """(video id, file, signs) for every VIDEO_OR_ID, before any work is done."""
    from signwrite.download import find_video

    sources, listed = read_sources(s.sources) if Path(s.sources).is_file() else ({}, {})
    by_location = {Path(src.location): v for v, src in sources.items() if src.kind == "local"}
    out = []
    for arg in s.videos:
        path = Path(arg)
        if path.is_file():
            video = by_location.get(path.resolve(), path.stem)
            if video not in sources:
                if not clip_times.SAFE_ID.match(video):
                    raise SignwriteError(f"{arg}: {video!r} is not a safe video id; rename the file (letters, "
                                         "digits, '.', '_' and '-')")
                if sources:
                    log.warning("%s is not in %s; fetch will need a row %s,%s", arg, s.sources, video, path)
        elif arg in sources:
            video, src = arg, sources[arg]
            path = Path(src.location) if src.kind == "local" else find_video(Path(s.data_dir) / "videos", arg)
            if path is None or not path.is_file():
                raise SignwriteError(f"video {arg!r} ({src.url}) is not downloaded yet; run `signwrite fetch` "
                                     f"first, or give the video's file")
        else:
            known = f"a video id in {s.sources}" if sources else f"listed in a sources file ({s.sources} not found)"
            raise SignwriteError(f"{arg}: no such video file, and not {known}")
        if any(video == v for v, _, _ in out):
            raise SignwriteError(f"video {video!r} is given twice ({arg}); give each video once")
        signs = s.signs if s.signs is not None else listed.get(video)
        if not signs:
            raise SignwriteError(f"video {video!r}: no list of signs; pass --signs A,B,C or fill the signs "
                                 f"column of {s.sources}")
        out.append((video, path, signs))
    return out


def check_out(s: AnnotateSettings, inputs: list[Path]) -> None:
    """Never replace clip times a person wrote: OUT must be new, or ours and unedited."""
    out = Path(s.out)
    if out.suffix.lower() != ".csv":
        raise SignwriteError(f"--out {out}: give a .csv file name (it is a clip-times file for fetch)")
    for p in inputs:
        if out.resolve() == Path(p).resolve():
            raise SignwriteError(f"--out {out}: that is one of the inputs; choose another file")
    if not out.exists() or s.force:
        return
    mark = sidecar(out, ".annotate.json")
    try:
        ours = json.loads(mark.read_text())["csv_sha256"] == sha256(out)
    except (OSError, ValueError, KeyError, TypeError):
        ours = False
    if not ours:
        raise SignwriteError(f"--out {out}: exists and was not written by signwrite annotate (or was edited "
                             "since); annotate never replaces clip times you wrote: choose another --out, "
                             "or pass --force")


def sidecar(out: Path, suffix: str) -> Path:
    return Path(out).with_name(Path(out).stem + suffix)


# --------------------------------------------------------------------------- the stage

def annotate(s: AnnotateSettings) -> int:
    """Propose the clip times of every video, then write them: on an error no proposal file is
    written (the tracks of the videos done so far stay cached, so the next run is quick)."""
    from signwrite.video import probe

    if s.by not in ("motion", "model"):
        raise SignwriteError(f"--by must be motion or model; received {s.by!r}")
    if (s.by == "model") != (s.run is not None):
        raise SignwriteError("--by model needs --run logs/NAME (a trained run)" if s.run is None
                             else "--run is for --by model; leave it out with --by motion")
    if s.min_sign <= 0 or s.margin < 0:
        raise SignwriteError(f"--min-sign must be positive and --margin not negative; received "
                             f"{s.min_sign:g} and {s.margin:g}")
    jobs = resolve_videos(s)
    check_out(s, [p for _, p, _ in jobs] + [Path(s.sources)])
    infos = {}
    for video, path, signs in jobs:
        infos[video] = info = probe(path)
        step = track_step(info.fps)
        n_samples, per = len(range(0, info.n_frames, step)), min_samples(s.min_sign, info.fps / step)
        if len(signs) * per > n_samples:
            raise SignwriteError(f"{path}: {len(signs)} signs do not fit in its {info.duration:.1f} s (at least "
                                 f"{s.min_sign:g} s each: {n_samples // per} at most); check the list of signs, "
                                 "or lower --min-sign")
    run = None
    if s.by == "model":
        run = open_run(s.run, {sign for _, _, signs in jobs for sign in signs})
        if run.input == "landmarks" and not s.hands:
            raise SignwriteError(f"--no-hands: the run {s.run} classifies hand landmarks, so annotate must find "
                                 "the hands; leave --no-hands out")
    model_path = None
    if s.hands:
        from signwrite.hand_model import hand_model_path

        model_path = hand_model_path(s.hand_model)
    proposals = []
    for video, path, signs in jobs:
        track = load_or_track(path, infos[video], Path(s.data_dir), video, model_path)
        t0 = time.perf_counter()
        if run is None:
            proposal = propose_by_motion(track, signs, s)
        else:
            proposal = propose_by_model(run, track, signs, [run.labels.index(sign) for sign in signs], s)
        proposal.seconds = time.perf_counter() - t0
        proposals.append(proposal)
    write_outputs(s, proposals)
    return 0


def min_samples(seconds: float, rate: float) -> int:
    return max(1, int(round(seconds * rate)))


def open_run(path: Path, signs: set[str]):
    from signwrite.run import open_run as load

    run = load(path)  # Keras' stray prints kept off stdout
    unknown = sorted(signs - set(run.labels))
    if unknown:
        raise SignwriteError(f"--run {path}: sign(s) {', '.join(unknown)} are not among the run's "
                             f"{len(run.labels)} labels ({', '.join(run.labels[:12])}...); a run can only "
                             "find signs it was trained on: use --by motion, or a run that knows them")
    return run


def propose_by_motion(track, signs: list[str], s: AnnotateSettings) -> Proposal:
    """The n spans where the hand is held, in order, each grown over its hand's coming and going."""
    x, present, change, method = track.signals()
    if track.tracked_hands and not method.startswith("hand"):
        log.info("no hand found in %s (%.0f%% of its frames): proposing from %s, the picture's own motion",
                 track.video, 100 * track.hands.found.mean(), method)
    holds = align.find_holds(x, len(signs), min_samples(s.min_sign, track.rate), change)
    spans = align.sign_spans(holds.cores, present, change, min_samples(MAX_EXTEND, track.rate))
    confidence = align.hold_confidence(holds, x, change)
    middles = [(a + b) // 2 for a, b in holds.cores]
    return Proposal(track, list(signs), track.times(spans, s.margin), confidence, middles, method)


def propose_by_model(run, track, signs: list[str], columns: list[int], s: AnnotateSettings) -> Proposal:
    """The run's class probabilities per sample, aligned to the known order."""
    window = model_window(run, track, len(signs))
    probs = sample_probabilities(run, track, window)
    _, present, _, _ = track.signals()
    spans = align.forced_alignment(probs, columns, min_samples(s.min_sign, track.rate), present)
    confidence = align.span_probability(probs, spans, columns)
    middles = [(a + b) // 2 for a, b in spans]
    return Proposal(track, list(signs), track.times(spans, s.margin), confidence, middles,
                    f"run {Path(s.run).name} ({run.input}, windows of {window:.2f} s)")


# --------------------------------------------------------------------------- the review sheet

def review_sheet(p: Proposal) -> bytes:
    """A JPEG: one frame from the middle of each span, captioned with the sign, its times and
    confidence; doubtful ones framed in red."""
    import cv2

    tiles = []
    for k, (label, (a, b), c, mid) in enumerate(zip(p.labels, p.spans, p.confidence, p.middles), 1):
        thumb = cv2.imdecode(np.frombuffer(p.track.thumbs[min(mid, len(p.track.thumbs) - 1)], np.uint8),
                             cv2.IMREAD_COLOR)
        doubtful = c < align.DOUBTFUL
        band = np.full((46, thumb.shape[1], 3), 255, np.uint8)
        colour = (0, 0, 220) if doubtful else (0, 0, 0)
        for row, text in enumerate([f"{k}. {label}" + ("   CHECK" if doubtful else ""),
                                    f"{a:.2f}-{b:.2f} s  conf {c:.2f}"]):
            cv2.putText(band, text, (4, 17 + 21 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
        tile = np.vstack([thumb, band])
        edge = (0, 0, 220) if doubtful else (255, 255, 255)
        tiles.append(cv2.copyMakeBorder(tile, 4, 4, 4, 4, cv2.BORDER_CONSTANT, value=edge))
    cols = min(6, len(tiles))
    rows = -(-len(tiles) // cols)
    blank = np.full_like(tiles[0], 255)
    grid = np.vstack([np.hstack((tiles + [blank] * (rows * cols - len(tiles)))[r * cols:(r + 1) * cols])
                      for r in range(rows)])
    n_doubtful = sum(c < align.DOUBTFUL for c in p.confidence)
    title = np.full((30, grid.shape[1], 3), 255, np.uint8)
    cv2.putText(title, f"{p.video}: {len(p.labels)} signs by {p.method}; {n_doubtful} to check (red)",
                (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    ok, jpeg = cv2.imencode(".jpg", np.vstack([title, grid]), [cv2.IMWRITE_JPEG_QUALITY, 88])
    return jpeg.tobytes()


# --------------------------------------------------------------------------- outputs

def write_outputs(s: AnnotateSettings, proposals: list[Proposal]) -> None:
    import pandas as pd

    out = Path(s.out)
    conf_csv, mark, review = sidecar(out, ".confidence.csv"), sidecar(out, ".annotate.json"), sidecar(out, ".review")
    rows = [{"label": label, "video": p.video, "start": round(a, 3), "end": round(b, 3),
             "confidence": round(c, 3), "doubtful": c < align.DOUBTFUL}
            for p in proposals for label, (a, b), c in zip(p.labels, p.spans, p.confidence)]
    table = pd.DataFrame(rows, columns=["label", "video", "start", "end", "confidence", "doubtful"])
    for path in (out, conf_csv, mark, *(review / f"{p.video}{ext}" for p in proposals for ext in (".srt", ".jpg"))):
        remove_stale_temps_of(path)
    for p in proposals:
        write_text(review / f"{p.video}.srt", to_srt(p))
        write_bytes(review / f"{p.video}.jpg", review_sheet(p))
    write_csv(conf_csv, table)
    write_csv(out, table[["label", "video", "start", "end"]])
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(s).items()}
    write_json(mark, {"written_by": "signwrite annotate", "csv_sha256": sha256(out), "settings": settings,
                      "videos": {p.video: {"file": str(p.track.path), "method": p.method, "signs": len(p.labels),
                                           "doubtful": int(sum(c < align.DOUBTFUL for c in p.confidence)),
                                           "seconds": round(p.seconds, 3)} for p in proposals}})
    for p in proposals:
        doubtful = [f"{label} ({a:.2f}-{b:.2f} s, {c:.2f})" for label, (a, b), c in zip(p.labels, p.spans, p.confidence)
                    if c < align.DOUBTFUL]
        log.info("%s: %d signs proposed from %s in %.2f s%s", p.video, len(p.labels), p.method, p.seconds,
                 f"; check {len(doubtful)}: {', '.join(doubtful)}" if doubtful else "")
    log.info("clip times -> %s (confidence: %s; subtitles and review sheets: %s/)", out, conf_csv, review)


def to_srt(p: Proposal) -> str:
    from signwrite.transcribe import srt_time

    cues = []
    for n, (label, (a, b), c) in enumerate(zip(p.labels, p.spans, p.confidence), 1):
        flag = "  CHECK" if c < align.DOUBTFUL else ""
        cues.append(f"{n}\n{srt_time(a)} --> {srt_time(b)}\n{label}  ({c:.2f}){flag}\n")
    return "\n".join(cues)


# --------------------------------------------------------------------------- command line

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="signwrite annotate", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[2],
        epilog="examples:\n"
               "  signwrite annotate data/videos/abc1.mp4 --signs A,B,C,D,E --out abc1_times.csv\n"
               "  signwrite annotate abc2 abc3 --by model --run logs/abc1 --signs A,B,C,D,E\n"
               "  signwrite fetch --clip-times abc1_times.csv     # once the proposal is checked")
    p.add_argument("videos", nargs="+", metavar="VIDEO_OR_ID", help="a video file, or a video id of sources.csv")
    p.add_argument("--signs", metavar="A,B,C", help="the signs the video(s) show, in order (commas or spaces); "
                   "default: the signs column of sources.csv (video,url,signs), one list per video")
    p.add_argument("--sources", type=Path, default=AnnotateSettings.sources, metavar="CSV",
                   help="where video ids are looked up (default: %(default)s)")
    p.add_argument("--data-dir", type=Path, default=AnnotateSettings.data_dir, metavar="DIR",
                   help="downloaded videos, and the tracks annotate keeps (default: %(default)s)")
    p.add_argument("--by", choices=["motion", "model"], default="motion",
                   help="motion: where the hand holds still (no model needed; the default); model: a trained "
                        "run's probabilities aligned to the order")
    p.add_argument("--run", type=Path, metavar="DIR", help="with --by model: a run folder written by train")
    p.add_argument("--out", type=Path, default=AnnotateSettings.out, metavar="CSV",
                   help="the proposed clip times, label,video,start,end (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="replace --out even if annotate did not write it")
    p.add_argument("--min-sign", type=float, default=AnnotateSettings.min_sign, metavar="SEC",
                   help="the shortest sign proposed (default: %(default)s s)")
    p.add_argument("--margin", type=float, default=AnnotateSettings.margin, metavar="SEC",
                   help="seconds taken off both ends of every span (default: %(default)s)")
    p.add_argument("--no-hands", action="store_true",
                   help="--by motion from the picture's motion alone, without looking for hands (faster; for "
                        "videos where no hand can be seen)")
    p.add_argument("--hand-model", type=Path, metavar="PATH",
                   help="the hand_landmarker.task to use (default: the one in the user cache)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    from signwrite.process import run_stage, setup_logging

    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)

    def go() -> int:
        signs = None if args.signs is None else parse_signs(args.signs, "--signs")
        return annotate(AnnotateSettings(videos=args.videos, signs=signs, sources=args.sources,
                                         data_dir=args.data_dir, by=args.by, run=args.run, out=args.out,
                                         force=args.force, min_sign=args.min_sign, margin=args.margin,
                                         hands=not args.no_hands, hand_model=args.hand_model))

    return run_stage("annotate", go)


if __name__ == "__main__":
    sys.exit(main())
