"""The tables one stage writes and the next reads, and the names of the files they list.

    data/clips/clips.csv    fetch -> extract_frames       clip_id,label,video,start,end,split,path
    data/frames/frames.csv  extract_frames -> train, ...  split,label,clip_id,video,start,end,fps,n_frames,
                                                          frames,landmarks,hand_frames,crops
    <clip_id>-NNNN.jpg      a sampled frame (data/frames) or its hand crop (data/hands); NNNN is
                            the frame's 0-based index in its clip

docs/CONTRACTS.md pins the formats. signwrite writes both tables itself, so reading one
checks its schema (the columns, and what each cell of them must hold), naming every bad
row at once. The files people type (sources.csv, video_clip_times.csv) are checked by
signwrite.clip_times.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from signwrite.errors import InputError, SignwriteError
from signwrite.fsutil import write_text_if_changed

SPLITS = ("train", "test")
CLIPS_COLUMNS = ["clip_id", "label", "video", "start", "end", "split", "path"]  # older fetches added frames: ignored
HANDS_COLUMNS = ["landmarks", "hand_frames", "crops"]  # empty until extract-frames --hands found the clip's hands
FRAMES_COLUMNS = ["split", "label", "clip_id", "video", "start", "end", "fps", "n_frames", "frames",
                  *HANDS_COLUMNS]
FETCH_FIX = "run `signwrite fetch` again to rewrite clips.csv"
EXTRACT_FIX = "run `python -m signwrite.extract_frames` again to rebuild data/frames"


def clips_csv(data_dir: Path) -> Path:
    return Path(data_dir) / "clips" / "clips.csv"


def frames_csv(data_dir: Path) -> Path:
    return Path(data_dir) / "frames" / "frames.csv"


# --------------------------------------------------------------------------- frame files


def frame_name(clip_id: str, index: int) -> str:
    return f"{clip_id}-{index:04d}.jpg"


def frame_index(name: str, clip_id: str | None = None) -> int | None:
    """NNNN in a path ending <clip_id>-NNNN.jpg: the frame's index in its clip; None if the
    name is not a frame's (or, given ``clip_id``, not one of that clip's frames)."""
    stem, _, ext = Path(name).name.rpartition(".")
    head, dash, digits = stem.rpartition("-")
    if ext != "jpg" or not dash or not digits.isdigit() or clip_id not in (None, head):
        return None
    return int(digits)


def list_frames(folder: Path, clip_id: str) -> list[str]:
    """A finished clip folder's JPEG names in time order (numeric: 10000 comes after 9999)."""
    found = [(frame_index(n, clip_id), n) for n in os.listdir(folder)]
    return [n for i, n in sorted(f for f in found if f[0] is not None)]


# --------------------------------------------------------------------------- clips.csv


@dataclass
class ClipRow:
    """One clips.csv row; ``start``/``end`` keep their text so frames.csv copies them exactly."""
    clip_id: str
    label: str
    video: str
    start: str
    end: str
    split: str
    src: Path  # the clip file

    def folder(self, frames_dir: Path) -> Path:
        """The clip's folder under data/frames (or data/hands)."""
        return frames_dir / self.split / self.label / self.clip_id


def write_clips_csv(data_dir: Path, rows: list[dict]) -> bool:
    """clips.csv from one dict per clip, sorted by split, label, clip_id; written only if it changed."""
    import pandas as pd

    rows = sorted(rows, key=lambda r: (r["split"], r["label"], r["clip_id"]))
    table = pd.DataFrame(rows, columns=CLIPS_COLUMNS)
    return write_text_if_changed(clips_csv(data_dir), table.to_csv(index=False, lineterminator="\n"))


def read_clips_csv(data_dir: Path) -> list[ClipRow]:
    """The clips fetch wrote (every bad row reported at once); the ``frames`` column an older
    fetch wrote is ignored."""
    from signwrite.clip_times import label_problem

    path = clips_csv(data_dir)
    df = _read_table(path, CLIPS_COLUMNS, FETCH_FIX, dtype=str,
                     absent="run `signwrite fetch` first (or pass --data-dir the folder fetch wrote to)")
    rows, problems, seen = [], [], {}
    for line, r in enumerate(df[CLIPS_COLUMNS].itertuples(index=False), start=2):
        r = r._replace(**{k: v.strip() for k, v in r._asdict().items()})
        why = [w for w in (label_problem(r.label), _id_problem(r.clip_id), _split_problem(r.split)) if w]
        why += [f"{name} {getattr(r, name)!r} is not a number of seconds"
                for name in ("start", "end") if not _is_number(getattr(r, name))]
        rel = Path(r.path)
        if not r.path or rel.is_absolute() or ".." in rel.parts:
            why.append(f"path {r.path!r} is not a path inside {data_dir}")
        if r.clip_id in seen:
            why.append(f"clip {r.clip_id!r} already listed on line {seen[r.clip_id]}")
        seen.setdefault(r.clip_id, line)
        if why:
            problems += [f"line {line}: {w}" for w in why]
        else:
            rows.append(ClipRow(r.clip_id, r.label, r.video, r.start, r.end, r.split, Path(data_dir) / rel))
    if problems:
        raise InputError(path, problems, fix=FETCH_FIX)
    if not rows:
        raise SignwriteError(f"{path}: lists no clips; run `signwrite fetch` first")
    return rows


def _id_problem(clip_id: str) -> str | None:
    from signwrite.clip_times import label_problem

    why = label_problem(clip_id)
    return why and why.replace("label", "clip id", 1)


# --------------------------------------------------------------------------- frames.csv


def write_frames_csv(data_dir: Path, records: list[dict]):
    """frames.csv from one dict per clip, sorted by split, label, clip_id; written only if it
    changed. Returns the table."""
    import pandas as pd

    table = pd.DataFrame(records, columns=FRAMES_COLUMNS)
    table = table.sort_values(["split", "label", "clip_id"], kind="stable").reset_index(drop=True)
    write_text_if_changed(frames_csv(data_dir), table.to_csv(index=False, lineterminator="\n"))
    return table


def read_frames_csv(data_dir: Path, check_files: bool = True):
    """frames.csv as a DataFrame (one row per clip); an InputError naming every bad row.
    Tables written before ``--hands`` existed lack the hands columns: that is fine."""
    path = frames_csv(data_dir)
    clips = _read_table(path, FRAMES_COLUMNS[:-len(HANDS_COLUMNS)], EXTRACT_FIX,  # all but the hands ones
                        dtype={"label": str, "clip_id": str, "video": str, "frames": str},
                        absent=f"run `python -m signwrite.extract_frames --data-dir {data_dir}` first")
    _check_types(path, clips)
    problems = []
    for row_number, row in enumerate(clips.itertuples(index=False), start=2):  # row 1 is the header
        where = f"row {row_number} ({row.clip_id or 'no clip_id'})"
        problems += [f"{where}: {why}" for why in (_split_problem(row.split),) if why]
        if not row.label:
            problems.append(f"{where}: empty label")
        frames = [f for f in row.frames.split(";") if f]
        if not frames:
            problems.append(f"{where}: lists no frames")
        elif len(frames) != row.n_frames:
            problems.append(f"{where}: n_frames is {row.n_frames} but {len(frames)} frames are listed")
        if check_files:
            absent = [f for f in frames if not (path.parent / f).is_file()]
            if absent:
                problems.append(f"{where}: {len(absent)} frame file(s) missing, e.g. {absent[0]}")
    if problems:
        raise InputError(path, problems, EXTRACT_FIX)
    if clips.clip_id.duplicated().any():
        dup = clips.clip_id[clips.clip_id.duplicated()].iloc[0]
        raise InputError(path, [f"clip {dup} is listed twice"], EXTRACT_FIX)
    return clips


def read_frame_rates(data_dir: Path) -> dict[str, float]:
    """{clip_id: fps} from frames.csv as an earlier run left it, so a re-run need not open
    finished clips; {} if there is none or it cannot be read."""
    import pandas as pd

    try:
        old = pd.read_csv(frames_csv(data_dir), usecols=["clip_id", "fps"], dtype={"clip_id": str},
                          keep_default_na=False)
        return {c: float(f) for c, f in zip(old["clip_id"], old["fps"]) if float(f) > 0}
    except (OSError, ValueError, KeyError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return {}


# --------------------------------------------------------------------------- the schema check


def _read_table(path: Path, columns: list[str], fix: str, *, dtype, absent: str):
    """A table signwrite wrote, with at least ``columns``; one clear error if it is missing,
    unreadable or lacks a column."""
    import pandas as pd

    if not path.is_file():
        raise SignwriteError(f"{path}: not found; {absent}")
    try:
        df = pd.read_csv(path, dtype=dtype, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SignwriteError(f"{path}: not a readable CSV ({exc}); {fix}") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(path, [f"missing column(s): {', '.join(missing)} (expected {','.join(columns)})"], fix)
    return df


def _split_problem(split: str) -> str | None:
    return None if split in SPLITS else f"split {split!r} is not train or test"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_types(path: Path, table) -> None:
    """The numeric columns of frames.csv hold a number in every row (pandas then reads them as such)."""
    from pandas.api.types import is_integer_dtype, is_numeric_dtype

    kinds = {"start": (is_numeric_dtype, "numbers"), "end": (is_numeric_dtype, "numbers"),
             "fps": (is_numeric_dtype, "numbers"), "n_frames": (is_integer_dtype, "whole numbers")}
    bad = [f"column {c}: not every cell holds {what}" for c, (holds, what) in kinds.items() if not holds(table[c])]
    if bad and len(table):  # an empty table (every clip failed) has no types to check
        raise InputError(path, bad, EXTRACT_FIX)
