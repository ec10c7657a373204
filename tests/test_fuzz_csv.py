"""Property-based fuzzing of the CSV readers and the split logic.

Any input either parses into clips that satisfy every invariant, or is refused with a
SignwriteError: never another exception. Run with --hypothesis-show-statistics to see
how many cases ran.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signwrite.clip_times import (
    Source,
    label_problem,
    read_clip_times,
    read_sources,
)
from signwrite.splits import assign_splits
from signwrite.errors import SignwriteError

EXAMPLES = int(os.environ.get("SIGNWRITE_FUZZ_EXAMPLES", "1000"))
fuzz = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VIDEOS = ["v1", "v2", "v3"]
SOURCES = {v: Source(v, f"{v}.mp4", "local", f"/nowhere/{v}.mp4", i + 2) for i, v in enumerate(VIDEOS)}

# Cells that are sometimes valid, sometimes subtly wrong.
time_cell = st.one_of(
    st.floats(min_value=-5, max_value=200, allow_nan=False).map(lambda x: f"{x:.3f}"),
    st.integers(min_value=0, max_value=200).map(str),
    st.sampled_from(["", "1:05", "0:01:05.25", "abc", "1e3", "nan", "inf", "-0", "1:75", "::", "1.2.3", " 7 "]),
)
label_cell = st.one_of(
    st.sampled_from(["A", "B", "hello", "", ".", "..", "a/b", "a\\b", "tab\there", "ü", "x" * 120, ".hidden"]),
    st.text(min_size=0, max_size=6),
)
video_cell = st.sampled_from(VIDEOS + ["", "nope", "V1"])
split_cell = st.sampled_from(["", "train", "test", "TEST", "val"])


def _csv_line(cells):
    def quote(c):
        return '"' + c.replace('"', '""') + '"' if any(ch in c for ch in ',"\n\r') else c
    return ",".join(quote(c) for c in cells)


long_rows = st.lists(st.tuples(label_cell, video_cell, time_cell, time_cell, split_cell), max_size=12)
wide_rows = st.lists(st.lists(st.one_of(time_cell, label_cell), min_size=1, max_size=5), max_size=10)


def _write(text: str | bytes) -> Path:
    fd, name = tempfile.mkstemp(suffix=".csv")
    with os.fdopen(fd, "wb") as f:
        f.write(text.encode("utf-8") if isinstance(text, str) else text)
    return Path(name)


def _check_invariants(clips):
    for c in clips:
        assert c.start < c.end
        assert c.start >= 0
        assert c.video in SOURCES
        assert label_problem(c.label) is None
    ids = [c.clip_id for c in clips]
    assert len(ids) == len(set(ids))
    for fraction in (0.0, 0.25, 0.5):
        split = assign_splits(clips, test_fraction=fraction)
        assert len(split) == len(clips)
        sides = {}
        for c in split:
            assert c.split in ("train", "test")
            sides.setdefault(c.video, set()).add(c.split)
        assert all(len(s) == 1 for s in sides.values()), sides
        assert split == assign_splits(clips, test_fraction=fraction)  # deterministic


def _parse(path: Path):
    try:
        clips = read_clip_times(path, SOURCES)
    except SignwriteError as exc:
        assert str(path) in str(exc)  # the message names the file
        return None
    finally:
        path.unlink()
    _check_invariants(clips)
    return clips


@fuzz
@given(rows=long_rows, header=st.sampled_from(["label,video,start,end", "label,video,start,end,split",
                                                "video,label,end,start", "label,video,start", "label,video,start,end,x"]))
def test_long_layout_parses_or_refuses(rows, header):
    ncols = header.count(",") + 1
    body = [_csv_line(list(r)[:ncols]) for r in rows]
    _parse(_write("\n".join([header] + body) + "\n"))


@fuzz
@given(rows=wide_rows)
def test_wide_layout_parses_or_refuses(rows):
    _parse(_write("\n".join(_csv_line(r) for r in rows) + "\n"))


@fuzz
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_parse_or_refuse(data):
    _parse(_write(data))


@fuzz
@given(data=st.text(max_size=300))
def test_arbitrary_text_parse_or_refuse(data):
    _parse(_write(data))


ids = st.one_of(st.sampled_from(["v1", "a.b", "-x", "", "..", "a b", "ok_1", "x" * 101]), st.text(max_size=8))
urls = st.one_of(st.sampled_from(["", "https://example.invalid/x.mp4", "file:///etc/passwd", "ftp://h/x",
                                  "dQw4w9WgXcQ", "clips/x.mp4", "javascript://x", "HTTP://h/v.mp4"]),
                 st.text(max_size=10))


@fuzz
@given(rows=st.lists(st.tuples(ids, urls), max_size=8),
       header=st.sampled_from(["video,url", "url,video", "video", "video,url,extra"]))
def test_sources_parse_or_refuse(rows, header):
    path = _write("\n".join([header] + [_csv_line(list(r)) for r in rows]) + "\n")
    try:
        sources = read_sources(path)
    except SignwriteError as exc:
        assert str(path) in str(exc)
        return
    finally:
        path.unlink()
    assert sources
    for vid, s in sources.items():
        assert vid == s.video and vid not in (".", "..") and "/" not in vid and vid.strip() == vid
        assert s.kind in ("local", "youtube", "url")
        if s.kind == "url":
            assert s.location.lower().startswith(("http://", "https://"))


@fuzz
@given(n_videos=st.integers(1, 12), fraction=st.floats(0, 0.95), pick=st.data())
def test_test_videos_flag_never_leaks(n_videos, fraction, pick):
    from signwrite.clip_times import Clip

    clips = [Clip(f"L{j}", f"v{i}", j, j + 0.5) for i in range(n_videos) for j in range(3)]
    chosen = pick.draw(st.lists(st.sampled_from([f"v{i}" for i in range(n_videos)]), unique=True))
    split = assign_splits(clips, test_videos=chosen or None, test_fraction=fraction)
    for c in split:
        if chosen:
            assert c.split == ("test" if c.video in chosen else "train")
    sides = {}
    for c in split:
        sides.setdefault(c.video, set()).add(c.split)
    assert all(len(s) == 1 for s in sides.values())
    if n_videos > 1 and not chosen:
        assert {c.split for c in split} <= {"train", "test"}
        assert any(c.split == "train" for c in split)
