"""fetch: sources.csv + video_clip_times.csv -> data/videos, data/clips/<split>/<label>/<clip_id>.mp4.

    python -m signwrite.fetch --help

Everything the user typed is checked before anything is written. Then, under a lock on the
data folder: videos are downloaded or copied, clip times are checked against the videos'
lengths, clips are cut frame-accurately in parallel, and data/clips/clips.csv lists them.
Every output is written through a temp file and a rename, so a run can be stopped at any
point; the next run removes the leftovers and does only what is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from signwrite import __version__, clip_times, splits, tables
from signwrite.clip_times import Clip
from signwrite.download import VideoResult, fetch_video, find_video
from signwrite.errors import DiskFullError, SignwriteError, VideoError
from signwrite.fsutil import remove_stale_temps, stage_lock, write_text_if_changed

log = logging.getLogger(__name__)

# The encoder is most of a cut's cost. At CRF 18, ultrafast cuts 2-3x faster than
# veryfast, stays closer to the source (more bits: ~55 vs ~53 dB PSNR) and decodes ~1.6x
# faster for extract_frames; the price is clips ~7x larger (benchmarks/bench_cut.py).
CUT_SETTINGS = {"codec": "libx264", "preset": "ultrafast", "crf": 18}


@dataclass
class FetchSettings:
    clip_times: Path = Path("video_clip_times.csv")
    sources: Path = Path("data/sources.csv")
    data_dir: Path = Path("data")
    test_videos: list[str] | None = None  # else a split by whole videos of about test_fraction
    test_fraction: float = 0.25
    no_download: bool = False  # use what is in data/videos (local files are still copied)
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)  # clips cut at once
    shard: tuple[int, int] | None = None  # (i, n): only this share of the videos, no index


@dataclass(frozen=True)
class ClipResult:
    clip: Clip
    status: str  # "cut", "present", "moved" or "failed"
    reason: str = ""


def clip_path(data_dir: Path, clip: Clip, split: str | None = None) -> Path:
    return Path(data_dir) / "clips" / (split or clip.split) / clip.label / f"{clip.clip_id}.mp4"


# --------------------------------------------------------------------------- the stage


def fetch(settings: FetchSettings) -> int:
    """Run the fetch stage; prints the split and a summary, returns 0, or 1 if anything failed."""
    s = settings
    if s.jobs < 1:
        raise SignwriteError(f"--jobs must be at least 1; received {s.jobs}")
    sources = clip_times.read_sources(s.sources)
    clips = clip_times.read_clip_times(s.clip_times, sources)
    clips = splits.assign_splits(clips, s.test_videos, s.test_fraction)
    log.info("%s: %d clips of %d labels in %d videos", s.clip_times, len(clips),
             len({c.label for c in clips}), len({c.video for c in clips}))
    videos = [v for v in sources if splits.shard_filter(v, s.shard)]
    mine = [c for c in clips if splits.shard_filter(c.video, s.shard)]
    if s.shard:
        log.info("shard %d/%d: %d of %d videos, %d clips", *s.shard, len(videos), len(sources), len(mine))

    data = Path(s.data_dir)
    with stage_lock(data, "fetch", s.shard):
        # A shard shares the folder: it leaves alone the temps of other shards still running.
        only_dead = s.shard is not None
        n = (remove_stale_temps(data / "videos", only_dead_writers=only_dead)
             + remove_stale_temps(data / "clips", only_dead_writers=only_dead))
        if n:
            log.info("removed %d unfinished file(s) left by an interrupted run", n)
        clip_results, todo = _place_existing_clips(data, mine)
        video_results = _fetch_videos(data, [sources[v] for v in videos], clips, todo, s.no_download)
        durations, video_results = _probe_videos(video_results, {c.video for c in todo})
        clip_times.check_durations(todo, durations, s.clip_times)
        print(splits.split_summary(clips), flush=True)
        available = {r.video: r.path for r in video_results if r.status != "failed" and r.path}
        clip_results += _cut_clips(data, todo, available, {r.video: r for r in video_results}, s.jobs)
        if s.shard is None:
            clip_results = _write_index(data, clips, clip_results, s)
        else:
            log.info("shard %d/%d done; run once more without --shard to write the index", *s.shard)
    report = _summary(video_results, clip_results)
    print(report, flush=True)
    failed = any(r.status == "failed" for r in video_results) or any(r.status == "failed" for r in clip_results)
    return 1 if failed else 0


def _place_existing_clips(data: Path, clips: list[Clip]) -> tuple[list[ClipResult], list[Clip]]:
    """Clips already cut are kept; one cut under the other split (the split changed) is moved."""
    done, todo = [], []
    for c in clips:
        dst = clip_path(data, c)
        if dst.is_file():
            done.append(ClipResult(c, "present"))
            continue
        elsewhere = [p for p in (clip_path(data, c, s) for s in tables.SPLITS) if p != dst and p.is_file()]
        if elsewhere:
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(elsewhere[0], dst)
            with contextlib.suppress(OSError):
                elsewhere[0].parent.rmdir()  # only if now empty
            log.info("moved %s to %s (its split changed)", elsewhere[0], dst)
            done.append(ClipResult(c, "moved"))
        else:
            todo.append(c)
    return done, todo


def _fetch_videos(data: Path, sources, clips: list[Clip], todo: list[Clip], no_download: bool) -> list[VideoResult]:
    """Get every video that has clips still to cut, or no clips yet (so it can be annotated)."""
    needed, with_clips = {c.video for c in todo}, {c.video for c in clips}
    videos_dir = data / "videos"
    results = []
    for source in sources:
        if source.video in with_clips and source.video not in needed and find_video(videos_dir, source.video) is None:
            results.append(VideoResult(source.video, "skipped", None, "all its clips are already cut"))
            continue
        results.append(fetch_video(source, videos_dir, allow_download=not no_download))
    return results


def _probe_videos(results: list[VideoResult], needed: set[str]) -> tuple[dict[str, float], list[VideoResult]]:
    """Durations of the videos we cut from; an unreadable one becomes a failed video."""
    from signwrite.video import probe

    durations, out = {}, []
    for r in results:
        if r.video in needed and r.path is not None and r.status != "failed":
            try:
                durations[r.video] = probe(r.path).duration
            except VideoError as exc:
                # Copies and downloads are checked before they land, so this one was put
                # there by hand (or by an older signwrite): fetch will not replace it by itself.
                hint = f"; delete {r.path} and run again to get it anew" if r.status == "present" else ""
                r = replace(r, status="failed", reason=f"{exc}{hint}")
        out.append(r)
    return durations, out


def _cut_clips(data: Path, todo: list[Clip], available: dict[str, Path],
               videos: dict[str, VideoResult], jobs: int) -> list[ClipResult]:
    from tqdm import tqdm

    results = [ClipResult(c, "failed", f"video {c.video} is not available: {videos[c.video].reason}")
               for c in todo if c.video not in available]
    todo = sorted((c for c in todo if c.video in available), key=lambda c: (c.video, c.start, c.end))
    if not todo:
        return results
    log.info("cutting %d clips with %d job(s)", len(todo), jobs)
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        with tqdm(total=len(todo), desc="cutting clips", unit="clip", disable=None) as bar:
            futures = [pool.submit(_cut_one, data, c, available[c.video]) for c in todo]
            for future in as_completed(futures):
                results.append(future.result())
                bar.update()
    finally:
        # On Ctrl-C, running cuts finish (or are removed by their own temp file handling),
        # queued ones are dropped: the next run picks them up.
        pool.shutdown(wait=True, cancel_futures=True)
    return results


def _cut_one(data: Path, clip: Clip, src: Path) -> ClipResult:
    from signwrite.video import cut_clip

    try:
        cut_clip(src, clip_path(data, clip), clip.start, clip.end,
                 preset=CUT_SETTINGS["preset"], crf=CUT_SETTINGS["crf"])
    except DiskFullError:
        raise  # stops the stage: every later clip would fail the same way
    except (SignwriteError, subprocess.TimeoutExpired) as exc:
        log.error("clip %s failed: %s", clip.clip_id, exc)
        return ClipResult(clip, "failed", str(exc))
    log.debug("cut %s", clip.clip_id)
    return ClipResult(clip, "cut")


# --------------------------------------------------------------------------- outputs


def _write_index(data: Path, clips: list[Clip], results: list[ClipResult], s: FetchSettings) -> list[ClipResult]:
    """Write clips.csv (clips on disk only) and fetch_config.json, each only if it changed."""
    on_disk = [c for c in clips if clip_path(data, c).is_file()]
    rows = [{"clip_id": c.clip_id, "label": c.label, "video": c.video, "start": round(c.start, 3),
             "end": round(c.end, 3), "split": c.split, "path": clip_path(data, c).relative_to(data).as_posix()}
            for c in on_disk]
    tables.write_clips_csv(data, rows)

    config = {k: (str(Path(v).resolve()) if isinstance(v, Path) else v) for k, v in asdict(s).items()}
    config["videos"] = {side: sorted({c.video for c in clips if c.split == side}) for side in tables.SPLITS}
    config["cut"] = CUT_SETTINGS
    config["signwrite_version"] = __version__
    write_text_if_changed(data / "clips" / "fetch_config.json", json.dumps(config, indent=2, sort_keys=True) + "\n")
    _warn_orphans(data, clips)
    return results


def _warn_orphans(data: Path, clips: list[Clip]) -> None:
    expected = {clip_path(data, c) for c in clips}
    orphans = sorted(p for p in (data / "clips").glob("*/*/*.mp4") if p not in expected and not p.name.startswith("."))
    if orphans:
        log.warning("%d clip file(s) under %s are not in the clip-times file and are not listed in "
                    "clips.csv (left alone; delete them if unwanted), e.g. %s",
                    len(orphans), data / "clips", ", ".join(str(p) for p in orphans[:3]))


def _summary(videos: list[VideoResult], clips: list[ClipResult]) -> str:
    def count(results, status):
        return sum(1 for r in results if r.status == status)

    lines = ["fetch summary",
             f"  videos: {count(videos, 'downloaded')} downloaded, {count(videos, 'copied')} copied, "
             f"{count(videos, 'present')} already present, {count(videos, 'skipped')} skipped, "
             f"{count(videos, 'failed')} failed",
             f"  clips:  {count(clips, 'cut')} cut, {count(clips, 'present')} already cut, "
             f"{count(clips, 'moved')} moved to their new split, {count(clips, 'failed')} failed"]
    skipped = [f"    video {r.video}: {r.reason}" for r in videos if r.status == "skipped"]
    failed = [f"    video {r.video}: {r.reason}" for r in videos if r.status == "failed"]
    lost: dict[str, int] = {}
    for r in clips:
        if r.status == "failed" and r.reason.startswith(f"video {r.clip.video} is not available"):
            lost[r.clip.video] = lost.get(r.clip.video, 0) + 1
        elif r.status == "failed":
            failed.append(f"    clip {r.clip.clip_id}: {r.reason}")
    failed += [f"    {n} clip(s) of video {v}: not cut, the video is not available" for v, n in sorted(lost.items())]
    if skipped:
        lines += ["  skipped:"] + skipped
    if failed:
        lines += ["  failed:"] + failed
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="signwrite fetch",
        description="Download the videos in sources.csv, cut the clips in video_clip_times.csv\n"
                    "frame-accurately and sort them into DATA_DIR/clips/<split>/<label>/, listed in\n"
                    "DATA_DIR/clips/clips.csv. Re-running does only what is missing; a run can be\n"
                    "stopped at any point. (Also: python -m signwrite.fetch)",
        epilog="examples:\n"
               "  python -m signwrite.fetch\n"
               "  python -m signwrite.fetch --test-videos abc2 --jobs 4\n"
               "  python -m signwrite.fetch --shard 0/2   # on one machine; 1/2 on another,\n"
               "  python -m signwrite.fetch               # then once without --shard for clips.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clip-times", type=Path, default=Path("video_clip_times.csv"), metavar="CSV",
                   help="clip times, long (label,video,start,end[,split]) or wide layout "
                        "(default: %(default)s)")
    p.add_argument("--sources", type=Path, default=Path("data/sources.csv"), metavar="CSV",
                   help="video,url rows: a YouTube URL or id, any yt-dlp URL, or a local file "
                        "(default: %(default)s)")
    p.add_argument("--data-dir", type=Path, default=Path("data"), metavar="DIR",
                   help="where videos/ and clips/ go (default: %(default)s)")
    split = p.add_mutually_exclusive_group()
    split.add_argument("--test-videos", metavar="ID,ID",
                       help="put these whole videos in the test split, the rest in train "
                            "(a split column in the clip-times file wins)")
    split.add_argument("--test-fraction", type=float, default=0.25, metavar="F",
                       help="else: about this share of the videos go to test, chosen by a stable "
                            "hash of their ids (default: %(default)s)")
    p.add_argument("--no-download", action="store_true",
                   help="use only the videos already in DATA_DIR/videos (local files are still copied)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, metavar="N",
                   help="clips cut at once (default: the number of cores, %(default)s)")
    p.add_argument("--shard", metavar="I/N",
                   help="do only share I of N of the videos (0 <= I < N) and write no clips.csv; "
                        "run once without --shard afterwards")
    p.add_argument("-v", "--verbose", action="store_true", help="log every step, including yt-dlp's")
    return p


def main(argv: list[str] | None = None) -> int:
    from signwrite.process import run_stage, setup_logging

    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)

    def go() -> int:
        test_videos = [v.strip() for v in args.test_videos.split(",") if v.strip()] if args.test_videos else None
        settings = FetchSettings(clip_times=args.clip_times, sources=args.sources, data_dir=args.data_dir,
                                 test_videos=test_videos, test_fraction=args.test_fraction,
                                 no_download=args.no_download, jobs=args.jobs,
                                 shard=splits.parse_shard(args.shard))
        return fetch(settings)

    return run_stage("fetch", go)


if __name__ == "__main__":
    sys.exit(main())
