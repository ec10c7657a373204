"""Bring each source video into data/videos/<video>.<ext>: yt-dlp for URLs, a copy for local files.

yt-dlp is driven through its Python API with one options dict (``ytdlp_options``). Its
errors are raised, caught here and turned into a per-video record, so one bad URL never
stops the others. A download archive keeps finished videos from being fetched again.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from signwrite.clip_times import Source
from signwrite.errors import DiskFullError, SignwriteError
from signwrite.fsutil import TMP_MARK, atomic_path, disk_full_message, is_disk_full, write_text

log = logging.getLogger(__name__)

ARCHIVE_NAME = "download-archive.txt"
# Single-file formats only (video-only or muxed), so nothing has to be merged with ffmpeg.
FORMAT = "bv*[height<=720]/b[height<=720]/bv*/b"
# Among those, 720p or less and H.264 first: every OpenCV build decodes it, and quickly.
FORMAT_SORT = ["res:720", "vcodec:h264"]
# What yt-dlp and our own atomic writes leave next to a video while it is unfinished.
UNFINISHED_SUFFIXES = (".part", ".ytdl", ".temp", ".tmp")


@dataclass(frozen=True)
class VideoResult:
    video: str
    status: str  # "downloaded", "copied", "present", "skipped" or "failed"
    path: Path | None = None
    reason: str = ""


def find_video(videos_dir: Path, video: str) -> Path | None:
    """The finished file data/videos/<video>.<ext>, or None (partial downloads do not count)."""
    videos_dir = Path(videos_dir)
    if not videos_dir.is_dir():
        return None
    found = sorted(p for p in videos_dir.iterdir()
                   if p.stem == video and p.suffix and p.is_file() and p.name != ARCHIVE_NAME
                   and TMP_MARK not in p.name and not p.suffix.lower().startswith(UNFINISHED_SUFFIXES))
    if len(found) > 1:
        log.warning("%s: several files for video %r (%s); using %s", videos_dir, video,
                    ", ".join(p.name for p in found), found[0].name)
    return found[0] if found else None


def copy_local(source: Source, videos_dir: Path) -> Path:
    """Copy a local file to data/videos/<video><ext> through a temp file and a rename.

    The copy is checked to be a readable video before it is renamed into place: a bad file
    is refused with its own name, and nothing lands in data/videos to be taken for a good
    one on the next run.
    """
    from signwrite.video import probe

    src = Path(source.location)
    try:
        found = src.is_file()
    except OSError:  # e.g. a name too long for the file system
        found = False
    if not found:
        looks_like_a_host = "/" in source.url and "." in source.url.split("/")[0]  # www.youtube.com/...
        hint = "; if it is a web address, start it with https://" if looks_like_a_host else ""
        raise SignwriteError(f"local file {src} not found (sources.csv line {source.row}){hint}")
    dst = Path(videos_dir) / f"{source.video}{src.suffix.lower() or '.mp4'}"
    try:
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)
            probe(tmp, name=f"{src} (sources.csv line {source.row})")
    except OSError as exc:
        raise SignwriteError(f"copying {src} to {dst} failed: {exc.strerror or exc}") from None
    return dst


def _archive_key(info: dict) -> str:
    """A video's line in yt-dlp's download archive: "<extractor> <id>"."""
    return f"{info.get('extractor_key', '').lower()} {info['id']}"


def _check_download(path: Path, videos_dir: Path, info: dict | None, source: Source) -> None:
    """A download that is not a readable video (a web page, a cut-off file) is removed, and so
    is its archive line, so the next run fetches it afresh instead of taking it as done."""
    from signwrite.errors import VideoError
    from signwrite.video import probe

    try:
        probe(path, name=f"{source.url} (sources.csv line {source.row})")
    except VideoError as exc:
        path.unlink(missing_ok=True)
        archive = Path(videos_dir) / ARCHIVE_NAME
        if info and info.get("id") and archive.is_file():
            key = _archive_key(info)
            lines = archive.read_text(encoding="utf-8").splitlines(keepends=True)
            kept = [line for line in lines if line.strip() != key]
            if kept != lines:
                write_text(archive, "".join(kept))
        raise VideoError(f"{exc}; nothing was kept, so the next run downloads it again") from None


class _YtdlpLogger:
    """Route yt-dlp's messages to logging. Its errors come back to us raised, so they are
    logged at debug only (the failure record carries them)."""

    def __init__(self):
        self.archived = False

    def debug(self, msg: str) -> None:
        if "has already been recorded in the archive" in msg:
            self.archived = True
        log.debug("yt-dlp: %s", msg)

    info = debug

    def warning(self, msg: str) -> None:
        log.warning("yt-dlp: %s", msg)

    def error(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)


class _ProgressBar:
    """A tqdm bar fed by yt-dlp's progress hook (bytes downloaded)."""

    def __init__(self, video: str):
        self.video = video
        self.bar = None

    def __call__(self, d: dict) -> None:
        from tqdm import tqdm

        if d.get("status") == "downloading":
            total = d.get("total_bytes") or d.get("total_bytes_estimate")
            if self.bar is None:
                self.bar = tqdm(total=total, desc=self.video, unit="B", unit_scale=True,
                                unit_divisor=1024, leave=False, disable=None)
            if total and self.bar.total != total:
                self.bar.total = total
            self.bar.update((d.get("downloaded_bytes") or 0) - self.bar.n)
        elif d.get("status") in ("finished", "error"):
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _refuse_playlists(info: dict, *, incomplete: bool = False) -> str | None:
    # noplaylist covers watch?v=...&list=... URLs; a bare playlist URL would otherwise
    # download every entry onto the same file name.
    if info.get("playlist_id") is not None or info.get("_type") == "playlist":
        return "it is a playlist, not one video; list each video on its own row of sources.csv"
    return None


def ytdlp_options(videos_dir: Path, video: str, logger, progress_hook) -> dict:
    from signwrite.video import ffmpeg_exe

    videos_dir = Path(videos_dir)
    return {
        # '%' would start a template field; the folder name is not one.
        "outtmpl": {"default": str(videos_dir / video).replace("%", "%%") + ".%(ext)s"},
        "format": FORMAT,
        "format_sort": FORMAT_SORT,
        "ffmpeg_location": ffmpeg_exe(),  # only a fix-up post-processor would need it
        "noplaylist": True,
        "match_filter": _refuse_playlists,
        "retries": 5,
        "fragment_retries": 5,
        "extractor_retries": 3,
        "socket_timeout": 30,
        "download_archive": str(videos_dir / ARCHIVE_NAME),
        "enable_file_urls": False,  # local files are copied by us, never read through yt-dlp
        "overwrites": False,
        "continuedl": True,  # a killed run's .part file is resumed
        "logger": logger,
        "progress_hooks": [progress_hook],
        "quiet": True,
        "noprogress": True,
        "color": "no_color",
    }


# yt-dlp retries a transfer that fails (its "retries"), but most extractors, the generic one
# for direct links among them, give up when the first request for the URL is answered 5xx
# (a busy server): that request is retried here, after 0.5, 1, 2 s.
LOOKUP_RETRIES = 3


def _server_busy(exc: BaseException) -> bool:
    """Whether a yt-dlp error comes from a 5xx answer (worth asking again, unlike a 404)."""
    from yt_dlp.networking.exceptions import HTTPError

    seen, err = set(), exc
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, HTTPError):
            return 500 <= err.status < 600
        exc_info = getattr(err, "exc_info", None)
        err = getattr(err, "cause", None) or (exc_info[1] if exc_info else None) or err.__cause__
    return False


def download(source: Source, videos_dir: Path) -> Path:
    """Download one URL to data/videos/<video>.<ext> with yt-dlp; a SignwriteError if it fails."""
    import yt_dlp

    logger, bar = _YtdlpLogger(), _ProgressBar(source.video)
    opts = ytdlp_options(videos_dir, source.video, logger, bar)
    refused = []

    def match_filter(info, *, incomplete=False):
        why = _refuse_playlists(info)
        if why:
            refused.append(why)
        return why

    opts["match_filter"] = match_filter
    try:
        for attempt in range(LOOKUP_RETRIES + 1):
            try:
                with yt_dlp.YoutubeDL(opts) as ydl:
                    info = ydl.extract_info(source.location, download=True)
                break
            except yt_dlp.utils.YoutubeDLError as exc:
                if attempt == LOOKUP_RETRIES or not _server_busy(exc):
                    raise
                log.warning("%s: the server is busy (%s); asking again in %.1f s", source.video,
                            str(exc).removeprefix("ERROR: ").strip(), 0.5 * 2 ** attempt)
                time.sleep(0.5 * 2 ** attempt)
    except yt_dlp.utils.YoutubeDLError as exc:
        if is_disk_full(exc):
            raise DiskFullError(disk_full_message(Path(videos_dir) / source.video)) from None
        reason = str(exc).removeprefix("ERROR: ").strip() or type(exc).__name__
        raise SignwriteError(f"{source.url}: {reason}") from None
    finally:
        bar.close()
    path = find_video(videos_dir, source.video)
    if path is not None:
        _check_download(path, videos_dir, info, source)
        return path
    if logger.archived:
        key = _archive_key(info) if info and info.get("id") else "its line"
        raise SignwriteError(
            f"{source.url}: {Path(videos_dir) / ARCHIVE_NAME} lists it as downloaded ({key!r}) but "
            f"{Path(videos_dir) / source.video}.* is gone (deleted, or another row of sources.csv is "
            "the same video); remove that line from the archive to download it again")
    why = refused[0] if refused else "yt-dlp found no video to download there"
    raise SignwriteError(f"{source.url}: {why}")


def fetch_video(source: Source, videos_dir: Path, *, allow_download: bool = True) -> VideoResult:
    """Make sure one source video is on disk; a user's problem becomes a failed record.

    A full disk is raised (DiskFullError): every later video would fail the same way.
    """
    existing = find_video(videos_dir, source.video)
    if existing is not None:
        return VideoResult(source.video, "present", existing)
    if source.kind != "local" and not allow_download:
        return VideoResult(source.video, "skipped", None,
                           f"not in {videos_dir} and --no-download was given")
    try:
        if source.kind == "local":
            log.info("copying %s -> %s", source.location, videos_dir)
            return VideoResult(source.video, "copied", copy_local(source, videos_dir))
        log.info("downloading %s (%s)", source.video, source.url)
        return VideoResult(source.video, "downloaded", download(source, videos_dir))
    except DiskFullError:
        raise
    except SignwriteError as exc:
        log.error("video %s failed: %s", source.video, exc)
        return VideoResult(source.video, "failed", None, str(exc))
