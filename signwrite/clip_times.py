"""Read and check sources.csv and video_clip_times.csv (both layouts); signwrite.splits
then gives each clip its side of the split.

Everything is validated before any stage writes a byte, and every bad row is reported at
once: a user fixes a hand-typed CSV in one pass, not one error per run.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from signwrite.errors import InputError, SignwriteError
from signwrite.tables import SPLITS

log = logging.getLogger(__name__)

LONG_COLUMNS = ("label", "video", "start", "end")
OPTIONAL_COLUMNS = ("split",)
YOUTUBE_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# Characters that break a folder name on some system people share datasets with.
UNSAFE_LABEL_CHARS = set('/\\<>:"|?*')


@dataclass(frozen=True)
class Source:
    video: str
    url: str  # as written in the file
    kind: str  # "local", "youtube" or "url"
    location: str  # resolved: an absolute path for local files, a URL otherwise
    row: int


@dataclass(frozen=True)
class Clip:
    label: str
    video: str
    start: float
    end: float
    split: str = ""  # "", "train" or "test"
    row: int = 0  # line in the clip-times file, for error messages

    @property
    def clip_id(self) -> str:
        return clip_id(self.video, self.label, self.start, self.end)


def clip_id(video: str, label: str, start: float, end: float) -> str:
    return f"{video}_{label}_{round(start * 1000)}-{round(end * 1000)}"


# --------------------------------------------------------------------------- reading


def _read_text(path: Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise SignwriteError(f"{path}: file not found; pass the right path (see --help)")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SignwriteError(
            f"{path}: line {line} is not UTF-8 (byte 0x{raw[exc.start]:02x}); "
            "save the file as UTF-8 (CSV UTF-8 in spreadsheet programs)") from None
    if not text.strip():
        raise SignwriteError(f"{path}: the file is empty; see README.md for its format")
    return text


def read_rows(path: Path) -> list[tuple[int, list[str]]]:
    """The non-blank rows of a CSV file, or one clear error for an unreadable or empty file."""
    text = _read_text(path)
    try:
        rows = list(_rows(text))
    except csv.Error as exc:
        raise SignwriteError(f"{path}: not a readable CSV file ({exc}); save it as CSV") from None
    if not rows:
        raise SignwriteError(f"{path}: the file holds no rows; see README.md for its format")
    line, first = rows[0]
    for sep, name in ((";", "semicolons"), ("\t", "tabs")):
        if len(first) == 1 and sep in first[0]:
            raise InputError(path, [f"line {line}: cells are separated by {name}, not commas"],
                             fix="save the file as comma-separated CSV (CSV UTF-8 in spreadsheet programs)")
    return rows


def _rows(text: str):
    """Yield (line number, cells) for every non-blank CSV row, cells stripped.

    Trailing empty cells are dropped: spreadsheets add them, and they mean nothing here.
    """
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    line = 1
    for cells in reader:
        start_line, line = line, reader.line_num + 1
        cells = [c.strip() for c in cells]
        while cells and not cells[-1]:
            cells.pop()
        if cells:
            yield start_line, cells


def parse_time(text: str) -> float:
    """Seconds from ``20``, ``20.5``, ``1:05`` or ``0:01:05.25``. Raises ValueError."""
    text = text.strip()
    parts = text.split(":")
    if not text or len(parts) > 3:
        raise ValueError(text)
    value = 0.0
    for i, part in enumerate(parts):
        if not re.fullmatch(r"\d+(\.\d*)?|\.\d+" if i == len(parts) - 1 else r"\d+", part or "x"):
            raise ValueError(text)
        value = value * 60 + float(part)
    if len(parts) > 1 and any(float(p) >= 60 for p in parts[1:]):
        raise ValueError(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _time_problem(cell: str) -> str | None:
    if cell.startswith("-"):
        return f"negative time {cell!r}"
    try:
        parse_time(cell)
    except ValueError:
        return f"{cell!r} is not a time (use seconds like 20.5 or clock form like 1:05.25)"
    return None


def label_problem(label: str) -> str | None:
    """Why ``label`` cannot be a folder name, or None if it can."""
    if not label:
        return "the label is empty"
    if label in (".", ".."):
        return f"label {label!r} would escape its folder"
    if any(c in UNSAFE_LABEL_CHARS for c in label):
        return f"label {label!r} holds a path separator or a character folders cannot hold ({''.join(sorted(UNSAFE_LABEL_CHARS))})"
    if any(unicodedata.category(c).startswith("C") for c in label):
        return f"label {label!r} holds a control character"
    if label.startswith("."):
        return f"label {label!r} starts with a dot (a hidden folder)"
    if len(label.encode()) > 100:
        return f"label {label[:20]!r}... is longer than 100 bytes"
    return None


# --------------------------------------------------------------------------- sources


def read_sources(path: Path) -> dict[str, Source]:
    """Read sources.csv (``video,url``) into {video id: Source}, checking every row."""
    path = Path(path)
    rows = read_rows(path)
    header = [c.lower() for c in rows[0][1]]
    if header[:2] != ["video", "url"] or header[2:] not in ([], ["signs"]):
        raise InputError(path, [f"line {rows[0][0]}: header is {','.join(rows[0][1])!r}, expected 'video,url' "
                                "(or 'video,url,signs', the signs annotate reads)"],
                         fix="make the first line exactly: video,url")
    width = len(header)  # a signs column is annotate's; fetch ignores it
    problems, sources = [], {}
    for line, cells in rows[1:]:
        if len(cells) > width:
            problems.append(f"line {line}: expected {width} cells ({','.join(header)}), found {len(cells)}")
            continue
        video, url = (cells + [""] * 2)[:2]
        if not SAFE_ID.match(video):
            problems.append(f"line {line}: video id {video!r} is not a safe file name "
                            "(letters, digits, '.', '_' and '-', starting with a letter or digit)")
            continue
        same = [s for s in sources.values() if s.video.lower() == video.lower()]
        if same:
            twin = "" if same[0].video == video else f" as {same[0].video!r} (file names ignore case on Windows and macOS)"
            problems.append(f"line {line}: video id {video!r} already used on line {same[0].row}{twin}")
            continue
        if not url:
            problems.append(f"line {line}: video {video!r} has an empty url")
            continue
        kind, location, why = resolve_url(url, path.parent)
        if why:
            problems.append(f"line {line}: {why}")
            continue
        sources[video] = Source(video, url, kind, location, line)
    if problems:
        raise InputError(path, problems, fix="correct the rows above; see README.md, 'sources.csv'")
    if not sources:
        raise SignwriteError(f"{path}: no videos listed; add one 'video,url' row per video")
    return sources


def resolve_url(url: str, base: Path) -> tuple[str, str, str]:
    """(kind, location, problem). A plain path is a local file; only http(s) URLs download."""
    if any(unicodedata.category(c) == "Cc" for c in url):
        return "", "", f"url {url!r} holds a control character"
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", url)
    if scheme:
        if scheme.group(1).lower() not in ("http", "https"):
            return "", "", (f"url {url!r} uses {scheme.group(1)}://; only http(s) URLs are downloaded "
                            "(give a local file as a plain path)")
        return "url", url, ""
    local = Path(url).expanduser()
    if not local.is_absolute():
        local = base / local
    if YOUTUBE_ID.match(url) and not local.exists():
        return "youtube", f"https://www.youtube.com/watch?v={url}", ""
    return "local", str(local.resolve()), ""


# --------------------------------------------------------------------------- clip times


def read_clip_times(path: Path, sources: dict[str, Source]) -> list[Clip]:
    """Read video_clip_times.csv in either layout and check every row against ``sources``."""
    path = Path(path)
    rows = read_rows(path)
    first = {c.lower() for c in rows[0][1]}
    # A header names at least two columns; a wide row holds one label and times. (One
    # name is not enough: "end" or "video" may well be a sign.)
    if len(first & set(LONG_COLUMNS + OPTIONAL_COLUMNS)) >= 2:
        clips, problems = _parse_long(rows)
    else:
        clips, problems = _parse_wide(rows, list(sources))
    problems += _check_clips(clips, sources)
    if problems:
        raise InputError(path, problems, fix="correct the rows above; see README.md, 'video_clip_times.csv'")
    if not clips:
        raise SignwriteError(f"{path}: no clips listed; add one row per clip (see README.md)")
    return clips


def _parse_long(rows) -> tuple[list[Clip], list[str]]:
    header_line, header = rows[0]
    names = [c.lower() for c in header]
    problems = []
    missing = [c for c in LONG_COLUMNS if c not in names]
    unknown = [c for c in names if c not in LONG_COLUMNS + OPTIONAL_COLUMNS]
    dupes = sorted({c for c in names if names.count(c) > 1})
    if missing or unknown or dupes:
        why = "; ".join(filter(None, [
            missing and f"missing column(s) {', '.join(missing)}",
            unknown and f"unknown column(s) {', '.join(repr(c) for c in unknown)}",
            dupes and f"repeated column(s) {', '.join(dupes)}"]))
        return [], [f"line {header_line}: {why}; the header must be label,video,start,end[,split]"]
    col = {name: i for i, name in enumerate(names)}
    clips = []
    last_required = max(col[name] for name in LONG_COLUMNS)
    for line, cells in rows[1:]:
        if len(cells) > len(names) or len(cells) <= last_required:
            problems.append(f"line {line}: expected {len(names)} cells, found {len(cells)}")
            continue
        cells = cells + [""] * (len(names) - len(cells))  # an empty split cell at the end
        get = lambda name: cells[col[name]] if name in col else ""  # noqa: E731
        bad = [p for p in (_time_problem(get("start")), _time_problem(get("end"))) if p]
        split = get("split").lower()
        if split and split not in SPLITS:
            bad.append(f"split {get('split')!r} is not train or test (or empty)")
        if bad:
            problems += [f"line {line}: {p}" for p in bad]
            continue
        clips.append(Clip(get("label"), get("video"), parse_time(get("start")), parse_time(get("end")), split, line))
    return clips, problems


def _parse_wide(rows, videos: list[str]) -> tuple[list[Clip], list[str]]:
    """Two rows per sign (starts, then ends), one column per video in sources.csv order."""
    problems, clips = [], []
    line, first = rows[0]
    if len(first) > 1 and all(c in videos and _time_problem(c) for c in first[1:] if c):
        problems.append(f"line {line}: looks like a header naming the videos; the wide layout has no "
                        "header (its columns follow sources.csv order): delete this line, or use the "
                        "long layout with the header label,video,start,end")
        rows = rows[1:]
    i = 0
    while i < len(rows):
        l1, starts = rows[i]
        if i + 1 == len(rows) or rows[i + 1][1][0] != starts[0]:
            after = (f"; the next row (line {rows[i + 1][0]}) is labelled {rows[i + 1][1][0]!r}"
                     if i + 1 < len(rows) else "; it is the last row")
            problems.append(f"line {l1}: sign {starts[0]!r} has one row, but the wide layout needs two "
                            f"rows per sign with the same label (start times, then end times){after}")
            i += 1
            continue
        (l2, ends), i = rows[i + 1], i + 2
        width = max(len(starts), len(ends)) - 1
        if width > len(videos):
            problems.append(f"lines {l1}-{l2}: {width} time columns but sources.csv lists "
                            f"{len(videos)} video(s); columns follow sources.csv order")
            continue
        for j in range(width):
            s = starts[j + 1] if j + 1 < len(starts) else ""
            e = ends[j + 1] if j + 1 < len(ends) else ""
            if not s and not e:
                continue  # the sign is not in this video
            where = f"lines {l1}-{l2}, column {j + 2} (video {videos[j]!r})"
            if not s or not e:
                problems.append(f"{where}: a start without an end (or the reverse)")
                continue
            bad = [p for p in (_time_problem(s), _time_problem(e)) if p]
            if not bad and parse_time(e) <= parse_time(s):
                bad = [f"end {e} is not after start {s}"]
            if bad:
                problems += [f"{where}: {p}" for p in bad]
                continue
            clips.append(Clip(starts[0], videos[j], parse_time(s), parse_time(e), "", l1))
    return clips, problems


def _check_clips(clips: list[Clip], sources: dict[str, Source]) -> list[str]:
    problems = []
    for c in clips:
        where = f"line {c.row}"
        why = label_problem(c.label)
        if why:
            problems.append(f"{where}: {why}")
        if c.video not in sources:
            known = ", ".join(list(sources)[:8])
            problems.append(f"{where}: unknown video {c.video!r}; add it to sources.csv (known: {known})")
        if c.end <= c.start:
            problems.append(f"{where}: end {c.end:g} is not after start {c.start:g}")
    problems += _overlaps(clips)
    ids: dict[str, Clip] = {}
    for c in clips:
        other = ids.setdefault(c.clip_id, c)
        if other is not c and (other.video, other.label) != (c.video, c.label):
            problems.append(f"lines {other.row} and {c.row}: both clips get the id {c.clip_id!r} "
                            "(video and label ids with '_' run together); rename a video or a label")
    sides: dict[str, set[str]] = {}
    for c in clips:
        if c.split:
            sides.setdefault(c.video, set()).add(c.split)
    for video, s in sorted(sides.items()):
        if len(s) > 1:
            problems.append(f"video {video!r} has clips marked both train and test; a video must sit "
                            "on one side of the split, or frames leak between them")
    return problems


def _overlaps(clips: list[Clip]) -> list[str]:
    """Identical spans in a video, or overlapping spans with the same label, are duplicates."""
    problems = []
    by_video: dict[str, list[Clip]] = {}
    for c in clips:
        by_video.setdefault(c.video, []).append(c)
    for group in by_video.values():
        group.sort(key=lambda c: (c.start, c.end))
        for i, a in enumerate(group):
            for b in group[i + 1:]:
                if b.start >= a.end:
                    break
                if (a.start, a.end) == (b.start, b.end) or a.label == b.label:
                    problems.append(f"lines {a.row} and {b.row}: duplicate clips of {a.label!r}/{b.label!r} "
                                    f"in video {a.video!r} ({a.start:g}-{a.end:g} overlaps {b.start:g}-{b.end:g}); "
                                    "keep one")
                else:
                    log.warning("lines %d and %d: %r and %r overlap in video %r", a.row, b.row, a.label, b.label, a.video)
    return problems


def check_durations(clips: list[Clip], durations: dict[str, float], path: Path | str) -> None:
    """Refuse clips that end past their video's end (known once the video is on disk)."""
    slack = 0.05  # container durations round; allow a couple of frames
    problems = [f"line {c.row}: clip {c.clip_id} ends at {c.end:g} s but video {c.video!r} is "
                f"{durations[c.video]:.2f} s long"
                for c in clips if c.video in durations and c.end > durations[c.video] + slack]
    if problems:
        raise InputError(path, problems, fix="correct the end times (or the video in sources.csv)")
