"""sources.csv and video_clip_times.csv: both layouts, every kind of bad row, and the split."""

from __future__ import annotations

import pytest

from signwrite import clip_times, splits
from signwrite.clip_times import Clip, parse_time, read_clip_times, read_sources
from signwrite.splits import assign_splits
from signwrite.errors import InputError, SignwriteError

SOURCES_CSV = "video,url\nv1,videos/v1.mp4\nv2,videos/v2.mp4\nv3,https://example.invalid/v3.mp4\n"

LONG = """label,video,start,end
A,v1,1,2.5
A,v3,0:01:05.25,1:07
B,v1,3,4
B,v2,0.5,1.5
"""
# The same clips in the original wide layout: two rows per sign, columns v1,v2,v3.
WIDE = """A, 1, , 1:05.25
A, 2.5, , 67
B, 3, 0.5
B, 4, 1.5
"""
EXPECTED = {("A", "v1", 1.0, 2.5), ("A", "v3", 65.25, 67.0), ("B", "v1", 3.0, 4.0), ("B", "v2", 0.5, 1.5)}


@pytest.fixture
def sources(tmp_path):
    path = tmp_path / "sources.csv"
    path.write_text(SOURCES_CSV)
    return read_sources(path)


def write(tmp_path, text, name="video_clip_times.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def spans(clips):
    return {(c.label, c.video, c.start, c.end) for c in clips}


def refused(path, sources=None, reader=None):
    """The error read_* raises for ``path``; it must name the file."""
    with pytest.raises(SignwriteError) as info:
        reader(path) if reader else read_clip_times(path, sources)
    assert str(path) in str(info.value)
    return info.value


# --------------------------------------------------------------------------- layouts


def test_both_layouts_parse_to_the_same_clips(tmp_path, sources):
    long = read_clip_times(write(tmp_path, LONG, "long.csv"), sources)
    wide = read_clip_times(write(tmp_path, WIDE, "wide.csv"), sources)
    assert spans(long) == spans(wide) == EXPECTED
    assert {c.clip_id for c in long} == {c.clip_id for c in wide}
    assert "v3_A_65250-67000" in {c.clip_id for c in long}


def test_wide_columns_follow_sources_order(tmp_path):
    (tmp_path / "sources.csv").write_text("video,url\nzeta,z.mp4\nalpha,a.mp4\n")
    sources = read_sources(tmp_path / "sources.csv")
    clips = read_clip_times(write(tmp_path, "A,1,5\nA,2,6\n"), sources)
    assert spans(clips) == {("A", "zeta", 1, 2), ("A", "alpha", 5, 6)}


def test_long_layout_tolerates_case_trailing_commas_and_a_missing_split_cell(tmp_path, sources):
    text = "Label,Video,Start,End,Split,,\nA,v1,1,2,,\nB,v1,3,4,test\nC,v2,1,2\n"
    clips = read_clip_times(write(tmp_path, text), sources)
    assert [(c.label, c.split) for c in clips] == [("A", ""), ("B", "test"), ("C", "")]
    assert [c.row for c in clips] == [2, 3, 4]


def test_a_sign_named_like_a_column_is_still_a_wide_row(tmp_path, sources):
    clips = read_clip_times(write(tmp_path, "end,1,2\nend,1.5,3\n"), sources)
    assert spans(clips) == {("end", "v1", 1, 1.5), ("end", "v2", 2, 3)}


@pytest.mark.parametrize("text,seconds", [
    ("20", 20), ("20.5", 20.5), (".5", 0.5), ("1:05", 65), ("0:01:05.25", 65.25),
    ("1:00:00", 3600), (" 7 ", 7), ("01:02", 62),
])
def test_clock_times_parse(text, seconds):
    assert parse_time(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "1e3", "nan", "inf", "1:75", "1:2:3:4", "::", "1.2.3", "-1", "1,5"])
def test_bad_times_do_not_parse(text):
    with pytest.raises(ValueError):
        parse_time(text)


# --------------------------------------------------------------------------- bad rows

BAD_CLIP_TIMES = [
    # (file text, line that must be named, words the reason must hold)
    ("label,video,begin,end\nA,v1,1,2\n", "line 1", "missing column(s) start"),
    ("label,video,start\nA,v1,1\n", "line 1", "missing column(s) end"),
    ("label,video,start,end,start\nA,v1,1,2,3\n", "line 1", "repeated column(s) start"),
    ("label,video,start,end,notes\nA,v1,1,2,x\n", "line 1", "unknown column(s) 'notes'"),
    ("label,video,start,end\nA,v1,1,2\nB,v1,3,4,5,6\n", "line 3", "expected 4 cells, found 6"),
    ("label,video,start,end\nA,v1,1\n", "line 2", "expected 4 cells, found 3"),
    ("A,1\nA,2\nB,3\n", "line 3", "sign 'B' has one row"),
    ("A,1\nB,2\n", "line 1", "next row (line 2) is labelled 'B'"),
    ("label,video,start,end\nA,v1,abc,2\n", "line 2", "'abc' is not a time"),
    ("A,1,x\nA,2,3\n", "lines 1-2, column 3 (video 'v2')", "'x' is not a time"),
    ("A,1,\nA,2,3\n", "lines 1-2, column 3 (video 'v2')", "a start without an end"),
    ("A,1,2,3,4\nA,2,3,4,5\n", "lines 1-2", "4 time columns but sources.csv lists 3"),
    ("label,video,start,end\nA,v1,3,2\n", "line 2", "end 2 is not after start 3"),
    ("label,video,start,end\nA,v1,2,2\n", "line 2", "end 2 is not after start 2"),
    ("A,1,3\nA,2,1:02\nB,5,6\nB,6,5.5\n", "lines 3-4, column 3 (video 'v2')", "end 5.5 is not after start 6"),
    ("label,video,start,end\nA,v1,-1,2\n", "line 2", "negative time '-1'"),
    ("label,video,start,end\nA,v1,1,3\nA,v1,2,4\n", "lines 2 and 3", "duplicate clips"),
    ("label,video,start,end\nA,v1,1,3\nB,v1,1,3\n", "lines 2 and 3", "duplicate clips"),
    ("label,video,start,end\nA,nope,1,2\n", "line 2", "unknown video 'nope'"),
    ("label,video,start,end\n,v1,1,2\n", "line 2", "the label is empty"),
    ("label,video,start,end\n..,v1,1,2\n", "line 2", "would escape its folder"),
    ("label,video,start,end\na/b,v1,1,2\n", "line 2", "path separator"),
    ("label,video,start,end\na\\b,v1,1,2\n", "line 2", "path separator"),
    ("label,video,start,end\n\"a\x01b\",v1,1,2\n", "line 2", "control character"),
    ("label,video,start,end\n.hidden,v1,1,2\n", "line 2", "starts with a dot"),
    ("label,video,start,end,split\nA,v1,1,2,val\n", "line 2", "split 'val' is not train or test"),
    ("label,video,start,end,split\nA,v1,1,2,train\nB,v1,3,4,test\n", "video 'v1'", "both train and test"),
    ("label;video;start;end\nA;v1;1;2\n", "line 1", "separated by semicolons"),
    (",v1,v2\nA,1,2\nA,2,3\n", "line 1", "looks like a header naming the videos"),
]


@pytest.mark.parametrize("text,where,why", BAD_CLIP_TIMES)
def test_each_bad_clip_time_row_is_refused_with_file_line_and_reason(tmp_path, sources, text, where, why):
    error = refused(write(tmp_path, text), sources)
    assert isinstance(error, InputError)
    assert any(where in p and why in p for p in error.problems), error.problems
    assert "fix:" in str(error)


def test_every_bad_row_is_reported_at_once(tmp_path, sources):
    text = "label,video,start,end\nA,v1,1,2\nB,nope,1,2\n..,v1,3,4\nC,v2,5,x\nD,v2,9,8\n"
    error = refused(write(tmp_path, text), sources)
    assert sorted(p.split(":")[0] for p in error.problems) == ["line 3", "line 4", "line 5", "line 6"]


def test_clip_ids_that_run_together_are_refused(tmp_path):
    (tmp_path / "sources.csv").write_text("video,url\na,a.mp4\na_b,b.mp4\n")
    sources = read_sources(tmp_path / "sources.csv")
    error = refused(write(tmp_path, "label,video,start,end\nb_c,a,1,2\nc,a_b,1,2\n"), sources)
    assert any("lines 2 and 3" in p and "a_b_c_1000-2000" in p for p in error.problems)


@pytest.mark.parametrize("content,why", [
    (b"", "empty"),
    (b"  \n\n", "empty"),
    (b"\n,,,\n , \n", "no rows"),
    (b"label,video,start,end\nA,v1,1,2\n\xe9t\xe9,v1,3,4\n", "line 3 is not UTF-8"),
    (b"label,video,start,end\n", "no clips"),
])
def test_unreadable_or_empty_files_are_refused(tmp_path, sources, content, why):
    error = refused(write(tmp_path, content), sources)
    assert why in str(error)


def test_a_missing_file_is_named(tmp_path, sources):
    assert "file not found" in str(refused(tmp_path / "nope.csv", sources))


# --------------------------------------------------------------------------- sources


@pytest.mark.parametrize("text,where,why", [
    ("video,url\nv1,a.mp4\nv1,b.mp4\n", "line 3", "'v1' already used on line 2"),
    ("video,url\nv1,a.mp4\nV1,b.mp4\n", "line 3", "ignore case"),
    ("video,url\n../x,a.mp4\n", "line 2", "not a safe file name"),
    ("video,url\na b,a.mp4\n", "line 2", "not a safe file name"),
    ("video,url\n.hidden,a.mp4\n", "line 2", "not a safe file name"),
    ("video,url\nv1,\n", "line 2", "video 'v1' has an empty url"),
    ("video,url\nv1,a.mp4,b\n", "line 2", "expected 2 cells (video,url), found 3"),
    ("video,url\nv1,\"  \"\n", "line 2", "video 'v1' has an empty url"),
    ("video,url\nv1,file:///etc/passwd\n", "line 2", "uses file://"),
    ("video,url\nv1,ftp://host/v.mp4\n", "line 2", "uses ftp://"),
    ("video,url\nv1,javascript://x\n", "line 2", "only http(s) URLs"),
    ("video,url\nv1,\"a\x00b.mp4\"\n", "line 2", "holds a control character"),
    ("url,video\nhttps://h/v.mp4,v1\n", "line 1", "expected 'video,url'"),
    ("video,url,notes\nv1,a.mp4,x\n", "line 1", "expected 'video,url'"),
])
def test_bad_source_rows_are_refused(tmp_path, text, where, why):
    path = write(tmp_path, text, "sources.csv")
    error = refused(path, reader=read_sources)
    assert isinstance(error, InputError)
    assert any(where in p and why in p for p in error.problems), error.problems


def test_source_kinds(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "AAAAAAAAAAA").write_bytes(b"x")  # an 11-character local file wins
    text = ("video,url\n"
            "yt,dQw4w9WgXcQ\n"
            "web,HTTPS://example.invalid/v.mp4\n"
            "rel,clips/v.mp4\n"
            "eleven,sub/AAAAAAAAAAA\n")
    (tmp_path / "in").mkdir()
    sources = read_sources(write(tmp_path / "in", text.replace("sub/", "../sub/"), "sources.csv"))
    assert sources["yt"].kind == "youtube"
    assert sources["yt"].location == "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
    assert sources["web"].kind == "url"
    assert (sources["rel"].kind, sources["rel"].location) == ("local", str(tmp_path / "in" / "clips" / "v.mp4"))
    assert sources["eleven"].kind == "local"
    assert list(sources) == ["yt", "web", "rel", "eleven"]  # file order: the wide layout relies on it


# --------------------------------------------------------------------------- splits


def many_clips(n_videos=9, per_video=3):
    return [Clip(f"L{j}", f"vid{i}", j, j + 0.5) for i in range(n_videos) for j in range(per_video)]


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.9])
def test_the_split_never_puts_one_video_on_both_sides(fraction):
    split = assign_splits(many_clips(), test_fraction=fraction)
    sides = {}
    for c in split:
        sides.setdefault(c.video, set()).add(c.split)
    assert all(len(s) == 1 for s in sides.values())
    test_videos = {v for v, s in sides.items() if s == {"test"}}
    assert 1 <= len(test_videos) <= 8
    assert len(test_videos) == min(max(round(9 * fraction), 1), 8)


def test_the_split_is_deterministic_and_ignores_row_order():
    clips = many_clips()
    a = {c.clip_id: c.split for c in assign_splits(clips)}
    b = {c.clip_id: c.split for c in assign_splits(list(reversed(clips)))}
    assert a == b


def test_two_videos_give_one_test_video_and_one_video_stays_train():
    assert {c.split for c in assign_splits(many_clips(2))} == {"train", "test"}
    assert {c.split for c in assign_splits(many_clips(1))} == {"train"}
    assert {c.split for c in assign_splits(many_clips(3), test_fraction=0)} == {"train"}


def test_test_videos_put_whole_videos_in_test():
    split = assign_splits(many_clips(4), test_videos=["vid2", "vid0"])
    assert {c.video for c in split if c.split == "test"} == {"vid0", "vid2"}
    assert {c.video for c in split if c.split == "train"} == {"vid1", "vid3"}


def test_test_videos_must_exist():
    with pytest.raises(SignwriteError, match="--test-videos: nope not in the clip-times file"):
        assign_splits(many_clips(2), test_videos=["nope"])


def test_split_column_wins_and_counts_towards_the_fraction(tmp_path, sources):
    clips = [Clip("A", f"vid{i}", 1, 2, "test" if i == 0 else "") for i in range(4)]
    split = assign_splits(clips, test_fraction=0.25)
    assert {c.video for c in split if c.split == "test"} == {"vid0"}  # already a quarter
    split = assign_splits(clips, test_videos=["vid1"])
    assert {c.video for c in split if c.split == "test"} == {"vid0", "vid1"}
    clips[1] = Clip("A", "vid1", 1, 2, "train")
    split = assign_splits(clips, test_videos=["vid1"])
    assert {c.video: c.split for c in split}["vid1"] == "train"


def test_split_column_read_from_file(tmp_path, sources):
    text = "label,video,start,end,split\nA,v1,1,2,TEST\nA,v2,1,2,\nB,v1,3,4,test\n"
    split = assign_splits(read_clip_times(write(tmp_path, text), sources))
    assert {c.video: c.split for c in split} == {"v1": "test", "v2": "train"}


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 2])
def test_test_fraction_out_of_range_is_refused(fraction):
    with pytest.raises(SignwriteError, match=f"received {fraction}"):
        assign_splits(many_clips(2), test_fraction=fraction)


def test_split_summary_names_videos_and_labels_missing_from_a_side():
    clips = [Clip("A", "v1", 1, 2, "train"), Clip("B", "v1", 3, 4, "train"), Clip("A", "v2", 1, 2, "test")]
    text = splits.split_summary(clips)
    assert "train: 2 clips, 2 labels, 1 videos: v1" in text
    assert "test : 1 clips, 1 labels, 1 videos: v2" in text
    assert "labels with no test clip: B" in text


# --------------------------------------------------------------------------- durations, shards


def test_clips_past_the_end_of_their_video_are_refused(tmp_path):
    clips = [Clip("A", "v1", 1, 2, row=2), Clip("B", "v1", 9, 10.5, row=3), Clip("C", "v2", 1, 99, row=4)]
    with pytest.raises(InputError) as info:
        clip_times.check_durations(clips, {"v1": 10.0}, tmp_path / "t.csv")
    assert info.value.problems == ["line 3: clip v1_B_9000-10500 ends at 10.5 s but video 'v1' is 10.00 s long"]
    clip_times.check_durations(clips[:1] + [Clip("B", "v1", 9, 10.04, row=3)], {"v1": 10.0}, "t.csv")


def test_shards_partition_the_videos():
    videos = [f"video{i}" for i in range(40)]
    owners = [[i for i in range(3) if splits.shard_filter(v, (i, 3))] for v in videos]
    assert all(len(o) == 1 for o in owners)
    assert {o[0] for o in owners} == {0, 1, 2}
    assert all(splits.shard_filter(v, None) for v in videos)


@pytest.mark.parametrize("text,expected", [("0/2", (0, 2)), (" 3/4 ", (3, 4)), (None, None), ("", None)])
def test_parse_shard(text, expected):
    assert splits.parse_shard(text) == expected


@pytest.mark.parametrize("text", ["2/2", "1", "a/b", "-1/2", "1/0"])
def test_parse_shard_refuses_nonsense(text):
    with pytest.raises(SignwriteError, match="--shard must look like I/N"):
        splits.parse_shard(text)


def test_sources_may_carry_the_signs_column_annotate_reads(tmp_path):
    path = tmp_path / "sources.csv"
    path.write_text('video,url,signs\nabc1,abc1.mp4,"A,B,C"\nabc2,abc2.mp4\n')
    sources = read_sources(path)
    assert sorted(sources) == ["abc1", "abc2"] and sources["abc1"].url == "abc1.mp4"
    path.write_text("video,url,notes\nabc1,abc1.mp4,x\n")  # any other third column is still refused
    with pytest.raises(InputError, match="video,url,signs"):
        read_sources(path)
