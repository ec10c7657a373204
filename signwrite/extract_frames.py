"""Stage 2: sample JPEG frames from every clip (data/clips -> data/frames).

    python -m signwrite.extract_frames [--data-dir data] [--frames-per-clip N | --fps F |
                                        --all-frames] [--size PX] [--hands] [--jobs N] [--shard I/N]

Reads data/clips/clips.csv (written by fetch). Writes one folder of JPEGs per clip,
data/frames/<split>/<label>/<clip_id>/<clip_id>-NNNN.jpg (NNNN: the frame's 0-based index
in the clip), then data/frames/frames.csv, data/frames/extract_config.json and a contact
sheet per label (data/frames/contact_sheets/<label>.jpg). docs/CONTRACTS.md pins the formats.

A clip folder is filled under a temp name and renamed into place, so it is whole or
absent; a re-run only does the clips whose folder is missing. ``--hands`` also finds the
hands in the same sampled frames (signwrite.extract_hands: landmarks and hand crops under
data/hands/, listed in frames.csv); on frames already extracted it adds only the hands.

Here: the settings, the stage (what to do, in which order) and its command line. Elsewhere:
one clip's work (signwrite.extract_clip), the worker processes that do it
(signwrite.workers), the tables read and written (signwrite.tables), the contact sheets
(signwrite.reports).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from signwrite import extract_hands, reports
from signwrite.errors import SignwriteError
from signwrite.extract_clip import ClipResult, ClipTask, run_task
from signwrite.fsutil import remove_stale_temps, stage_lock, write_text_if_changed
from signwrite.process import run_stage, setup_logging
from signwrite.splits import parse_shard, shard_filter
from signwrite.tables import SPLITS, ClipRow, list_frames, read_clips_csv, read_frame_rates, write_frames_csv
from signwrite.workers import pool_map, start_fork_server, worker_pool

log = logging.getLogger(__name__)

SAMPLING_KEYS = ("frames_per_clip", "fps", "all_frames", "size", "jpeg_quality")


@dataclass
class ExtractSettings:
    data_dir: Path = Path("data")
    frames_per_clip: int | None = 16  # N frames spread uniformly over each clip, or
    fps: float | None = None  # a fixed rate (frames per second of video), or
    all_frames: bool = False  # every frame
    size: int = 299  # short side in pixels after resizing (InceptionV3's input size)
    jpeg_quality: int = 95
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    shard: tuple[int, int] | None = None  # (i, n): only clips whose id hashes to shard i of n
    hands: bool = False  # also MediaPipe hand landmarks and a square hand crop (``size`` px) per frame
    hand_model: Path | None = None  # hand_landmarker.task; default: the one in the user cache

    def __post_init__(self):
        self.data_dir = Path(self.data_dir)
        self.hand_model = Path(self.hand_model) if self.hand_model else None
        if isinstance(self.shard, str):
            self.shard = parse_shard(self.shard)
        if self.fps is not None and self.all_frames:
            raise SignwriteError(f"choose one of fps and all_frames; received fps={self.fps}, all_frames=True")
        if self.fps is not None or self.all_frames:
            self.frames_per_clip = None  # the rate or all frames decide; N is not used
        if self.frames_per_clip is not None and not (isinstance(self.frames_per_clip, int)
                                                     and self.frames_per_clip >= 1):
            raise SignwriteError(f"frames_per_clip must be a whole number >= 1; received {self.frames_per_clip!r}")
        if self.fps is not None:
            if not (isinstance(self.fps, (int, float)) and 0 < self.fps < 1000):
                raise SignwriteError(f"fps must be a number of frames per second in (0, 1000); received {self.fps!r}")
            self.fps = float(self.fps)
        if not (isinstance(self.size, int) and 8 <= self.size <= 4096):
            raise SignwriteError(f"size must be a whole number of pixels in [8, 4096]; received {self.size!r}")
        if not (isinstance(self.jpeg_quality, int) and 1 <= self.jpeg_quality <= 100):
            raise SignwriteError(f"jpeg_quality must be in [1, 100]; received {self.jpeg_quality!r}")
        if not (isinstance(self.jobs, int) and self.jobs >= 1):
            raise SignwriteError(f"jobs must be a whole number >= 1; received {self.jobs!r}")

    def sampling(self) -> dict:
        """What decides the frames on disk: saved as extract_config.json, compared on re-runs."""
        return {"frames_per_clip": self.frames_per_clip, "fps": self.fps, "all_frames": self.all_frames,
                "size": self.size, "jpeg_quality": self.jpeg_quality}


@dataclass
class ExtractReport:
    frames_dir: Path
    shard: tuple[int, int] | None = None
    clips: int = 0  # clips this run was responsible for
    extracted: int = 0
    already_done: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (clip_id, why)
    listed: int = 0  # clips in frames.csv
    n_frames: int = 0
    labels: int = 0
    sheets_written: int = 0
    hands_found: int = 0  # clips whose hands this run found
    hands: extract_hands.HandsSummary | None = None

    def summary(self) -> str:
        head = f"shard {self.shard[0]}/{self.shard[1]}: " if self.shard else ""
        hands = f", hands found in {self.hands_found}" if self.hands_found else ""
        lines = [f"extract_frames: {head}{self.clips} clips: {self.extracted} extracted{hands}, "
                 f"{self.already_done} already done, {len(self.failed)} failed"]
        if self.shard:
            lines.append(f"frames are in {self.frames_dir}; run again without --shard, once every "
                         "shard is done, to write frames.csv and the contact sheets")
        else:
            lines.append(f"{self.frames_dir / 'frames.csv'}: {self.listed} clips, {self.n_frames} frames, "
                         f"{self.labels} labels; contact sheets: {self.sheets_written} redrawn "
                         f"(in {self.frames_dir / 'contact_sheets'})")
            lines += self.hands.lines() if self.hands else []
        if self.failed:
            lines.append(f"failed ({len(self.failed)}; fix or re-cut them, then run again):")
            lines += [f"  {clip}: {why}" for clip, why in self.failed]
        return "\n".join(lines)


# --------------------------------------------------------------------------- the stage


def extract_frames(settings: ExtractSettings) -> ExtractReport:
    """Extract every clip listed in clips.csv (or one shard of them); see the module docstring."""
    frames_dir, hands_dir = settings.data_dir / "frames", extract_hands.hands_dir(settings.data_dir)
    if (settings.data_dir / "clips" / "clips.csv").is_file():
        start_fork_server()  # its imports then overlap with reading clips.csv
    all_rows = read_clips_csv(settings.data_dir)
    hand_model = None
    if settings.hands:  # before anything is written: no model, one line naming the ways to get one
        from signwrite.hand_model import hand_model_path

        hand_model = hand_model_path(settings.hand_model)
    rows = [r for r in all_rows if shard_filter(r.clip_id, settings.shard)]
    known_fps = read_frame_rates(settings.data_dir)
    n_work = sum(not r.folder(frames_dir).is_dir() or not (settings.shard or r.clip_id in known_fps)
                 or (settings.hands and extract_hands.finished(r.folder(hands_dir), r.clip_id) is None)
                 for r in rows)
    # The pool closes before the lock is released, so no worker writes after this run ends.
    with stage_lock(frames_dir, "extract_frames", settings.shard), worker_pool(min(settings.jobs, n_work)) as pool:
        try:
            return _extract_locked(settings, all_rows, rows, known_fps, pool, hand_model)
        except BaseException:  # Ctrl-C or an error: stop the workers, then tidy what they left
            if pool is not None:
                pool.stop(now=True)
            for folder in (frames_dir, hands_dir):
                remove_stale_temps(folder, only_dead_writers=bool(settings.shard))
            raise


def _extract_locked(settings: ExtractSettings, all_rows: list[ClipRow], rows: list[ClipRow],
                    known_fps: dict[str, float], pool, hand_model: Path | None) -> ExtractReport:
    """The stage proper, under the lock: check settings, extract, write the index and sheets."""
    frames_dir, hands_dir = settings.data_dir / "frames", extract_hands.hands_dir(settings.data_dir)
    report = ExtractReport(frames_dir, settings.shard, clips=len(rows))
    _prepare(settings, all_rows, hand_model)
    results, tasks = _plan(settings, rows, known_fps, hand_model, report)
    _run(tasks, pool, settings.jobs, results, report, hand_model is not None)
    for r in rows:  # a probed clip's hands were already there
        res = results[r.clip_id]
        if res.crops is None and not res.error:
            res.crops = extract_hands.finished(r.folder(hands_dir), r.clip_id)
    report.failed = sorted((c, res.error) for c, res in results.items() if res.error)
    _warn_strays(frames_dir, {r.folder(frames_dir) for r in all_rows})
    if settings.shard:
        return report

    table = write_frames_csv(settings.data_dir, [_frames_record(r, results[r.clip_id]) for r in rows
                                                 if not results[r.clip_id].error])
    report.listed, report.n_frames = len(table), int(table["n_frames"].sum())
    report.labels = table["label"].nunique()
    report.hands = extract_hands.HandsSummary.of(table)
    report.sheets_written = reports.update_contact_sheets(frames_dir, table, pool)
    return report


def _prepare(settings: ExtractSettings, all_rows: list[ClipRow], hand_model: Path | None) -> None:
    """Clear what an interrupted run left, refuse settings other than the folder's, save them."""
    frames_dir, hands_dir = settings.data_dir / "frames", extract_hands.hands_dir(settings.data_dir)
    sampling = settings.sampling()
    # A shard shares the folder: it leaves alone the temps of other shards still running.
    stale = sum(remove_stale_temps(folder, only_dead_writers=bool(settings.shard))
                for folder in (frames_dir, hands_dir) if folder.is_dir())
    if stale:
        log.info("removed %d unfinished temp file(s)/folder(s) from an interrupted run", stale)
    _check_config(frames_dir, sampling, all_rows)
    if hand_model is not None:
        hand_config = extract_hands.hand_settings(settings.size, hand_model)
        done = any(extract_hands.finished(r.folder(hands_dir), r.clip_id) is not None for r in all_rows)
        extract_hands.check_hand_settings(hands_dir, hand_config, done)
    write_text_if_changed(frames_dir / "extract_config.json", json.dumps(sampling, indent=2) + "\n")
    if hand_model is not None:
        write_text_if_changed(hands_dir / "hands_config.json", json.dumps(hand_config, indent=2) + "\n")


def _plan(settings: ExtractSettings, rows: list[ClipRow], known_fps: dict[str, float], hand_model: Path | None,
          report: ExtractReport) -> tuple[dict[str, ClipResult], list[ClipTask]]:
    """The results known already (finished clips, folders in the way) and the tasks for the rest."""
    frames_dir, hands_dir = settings.data_dir / "frames", extract_hands.hands_dir(settings.data_dir)
    sampling = settings.sampling()
    results, tasks = {}, []
    for r in rows:
        folder = r.folder(frames_dir)
        names = _finished(folder, r.clip_id)
        crops = extract_hands.finished(r.folder(hands_dir), r.clip_id)
        hands_todo = {} if hand_model is None or crops is not None else dict(
            hands_dest=r.folder(hands_dir), crop_size=settings.size, hand_model=hand_model)
        if names is None and folder.exists():
            results[r.clip_id] = ClipResult(r.clip_id, error=f"{folder}: holds other files but no frames of "
                                            "this clip; delete the folder and run again")
        elif names is None:
            tasks.append(ClipTask(r, folder, sampling, **hands_todo))
        else:
            report.already_done += 1
            if (r.clip_id in known_fps or settings.shard) and not hands_todo:
                results[r.clip_id] = ClipResult(r.clip_id, known_fps.get(r.clip_id), names, crops=crops)
            else:
                tasks.append(ClipTask(r, folder, sampling, probe_only=True, **hands_todo))
    # Longest clips first, so no worker is left with a long clip at the end.
    tasks.sort(key=lambda t: -_size(t.row.src))
    return results, tasks


def _run(tasks: list[ClipTask], pool, jobs: int, results: dict[str, ClipResult], report: ExtractReport,
         hands: bool) -> None:
    """Do the tasks in the workers, adding their results (a dead worker's clip: failed)."""
    from tqdm import tqdm

    todo = sum(t.work for t in tasks)
    if todo:
        what = "extracting (frames, hands)" if hands else "extracting"
        log.info("%s %d clip(s) with %d job(s) into %s", what, todo, min(jobs, todo), report.frames_dir)
    deaths = []

    def died(task: ClipTask, how: str) -> ClipResult:
        deaths.append(task.row.clip_id)
        return ClipResult(task.row.clip_id, error=f"{task.row.src}: the worker extracting it died ({how}); "
                                                  "run again to retry it")

    with tqdm(total=len(tasks), unit="clip", desc="extract_frames", disable=None if tasks else True) as bar:
        for res in pool_map(pool, run_task, tasks, died):
            results[res.clip_id] = res
            if res.error:
                log.warning("%s: skipped: %s", res.clip_id, res.error)
            report.extracted += res.extracted
            report.hands_found += res.hands_found
            bar.update()
    if deaths:  # a dead worker leaves its temp folder behind; no one else clears it this run
        for folder in (report.frames_dir, extract_hands.hands_dir(report.frames_dir.parent)):
            remove_stale_temps(folder, only_dead_writers=True)


def _check_config(frames_dir: Path, sampling: dict, rows: list[ClipRow]) -> None:
    """Refuse to mix frames sampled two different ways in one folder."""
    path = frames_dir / "extract_config.json"
    if not path.exists():
        done = [r.clip_id for r in rows if r.folder(frames_dir).is_dir()]
        if done:
            raise SignwriteError(f"{frames_dir}: holds frames of {len(done)} clip(s) (e.g. {done[0]}) but no "
                                 "extract_config.json, so how they were sampled is unknown; delete "
                                 f"{frames_dir} and run again")
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
        old = {k: old[k] for k in SAMPLING_KEYS}
    except (ValueError, KeyError, TypeError, OSError):
        raise SignwriteError(f"{path}: unreadable or incomplete; delete {frames_dir} and run again") from None
    if old != sampling:
        raise SignwriteError(
            f"{path}: the frames in {frames_dir} were extracted with {_describe(old)}, not "
            f"{_describe(sampling)}; frames sampled two ways must not mix. Either delete {frames_dir} "
            f"to extract everything again, or run with the same settings: {_flags(old)}")


def _describe(s: dict) -> str:
    how = ("all frames" if s["all_frames"] else f"{s['fps']:g} frames per second" if s["fps"]
           else f"{s['frames_per_clip']} frames per clip")
    return f"{how}, short side {s['size']} px, JPEG quality {s['jpeg_quality']}"


def _flags(s: dict) -> str:
    how = ("--all-frames" if s["all_frames"] else f"--fps {s['fps']:g}" if s["fps"]
           else f"--frames-per-clip {s['frames_per_clip']}")
    return f"{how} --size {s['size']}"


def _finished(folder: Path, clip_id: str) -> list[str] | None:
    """The frames of a finished clip folder, or None if the clip still has to be extracted."""
    if not folder.is_dir():
        return None
    names = list_frames(folder, clip_id)
    if not names:  # not made by us (ours are renamed in full); an empty one is safe to redo
        with contextlib.suppress(OSError):
            folder.rmdir()
        return None
    return names


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _warn_strays(frames_dir: Path, expected: set[Path]) -> None:
    strays = [clip for split in SPLITS if (frames_dir / split).is_dir()
              for label in (frames_dir / split).iterdir() if label.is_dir()
              for clip in label.iterdir() if clip.is_dir() and clip not in expected
              and not clip.name.startswith(".")]
    if strays:
        log.warning("%d clip folder(s) under %s are not in clips.csv (e.g. %s); they are left alone and "
                    "not listed in frames.csv; delete them if they are left over from old clip times",
                    len(strays), frames_dir, strays[0].relative_to(frames_dir))


def _frames_record(r: ClipRow, res: ClipResult) -> dict:
    """A clip's frames.csv row: its frames' paths relative to data/frames, its crops' to data/hands."""
    rel = f"{r.split}/{r.label}/{r.clip_id}"
    hands = {"landmarks": "", "hand_frames": "", "crops": ""}
    if res.crops is not None:
        hands = {"landmarks": f"{rel}/{r.clip_id}.npz", "hand_frames": len(res.crops),
                 "crops": ";".join(f"{rel}/{n}" for n in res.crops)}
    return {"split": r.split, "label": r.label, "clip_id": r.clip_id, "video": r.video, "start": r.start,
            "end": r.end, "fps": res.fps, "n_frames": len(res.names),
            "frames": ";".join(f"{rel}/{n}" for n in res.names), **hands}


# --------------------------------------------------------------------------- command line


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__} > 0; received {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__} > 0; received {text!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="signwrite extract-frames",
        description="Sample JPEG frames from every clip listed in DATA/clips/clips.csv (written by\n"
                    "`signwrite fetch`) into DATA/frames/<split>/<label>/<clip_id>/<clip_id>-NNNN.jpg,\n"
                    "NNNN being the frame's index in the clip; then write DATA/frames/frames.csv,\n"
                    "DATA/frames/extract_config.json and one contact sheet per label\n"
                    "(DATA/frames/contact_sheets/<label>.jpg) to check the clip times by eye.",
        epilog="Re-running does only the clips not done yet, and an interrupted run leaves no\n"
               "half-filled folder. To change the sampling, delete DATA/frames first.\n\n"
               "example:\n  python -m signwrite.extract_frames --data-dir data --frames-per-clip 16 --jobs 4",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=Path("data"), metavar="DATA",
                   help="the data folder fetch wrote to (default: data)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--frames-per-clip", type=_positive(int), metavar="N",
                     help="N frames spread uniformly over each clip (default: 16)")
    how.add_argument("--fps", type=_positive(float), metavar="F", help="F frames per second of video instead")
    how.add_argument("--all-frames", action="store_true", help="every frame of every clip instead")
    p.add_argument("--size", type=_positive(int), default=299, metavar="PX",
                   help="resize so the short side is PX pixels, aspect kept (default: 299)")
    p.add_argument("--hands", action="store_true",
                   help="also find the hands in every sampled frame (MediaPipe HandLandmarker): landmarks per "
                        "clip and a square crop of the signing hand (--size px) per frame, under DATA/hands/ "
                        "and listed in frames.csv; on frames already extracted, adds only the hands")
    p.add_argument("--hand-model", type=Path, metavar="PATH",
                   help="the hand_landmarker.task to use (default: the one in the user cache; see "
                        "`signwrite hand-model`)")
    p.add_argument("--jobs", type=_positive(int), default=os.cpu_count() or 1, metavar="N",
                   help="clips decoded in parallel (default: all %(default)s cores)")
    p.add_argument("--shard", metavar="I/N",
                   help="only the clips of shard I of N (e.g. 0/4), to split the work between machines; "
                        "a run without --shard then writes frames.csv")
    p.add_argument("-v", "--verbose", action="store_true", help="more detail in the log")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)

    def stage() -> int:
        given = {k: v for k, v in vars(args).items() if v is not None and k != "verbose"}
        report = extract_frames(ExtractSettings(**given))  # unset flags take the settings' defaults
        print(report.summary())
        return 1 if report.failed else 0

    return run_stage("extract-frames", stage)


if __name__ == "__main__":
    sys.exit(main())
