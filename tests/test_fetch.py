"""The fetch stage end to end, offline: local files, yt-dlp from a server on 127.0.0.1,
exact clip frames and clips.csv, failures, re-runs, interrupted runs and shards."""

from __future__ import annotations

import dataclasses
import http.server
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from signwrite import video
from signwrite.clip_times import read_clip_times, read_sources
from signwrite.splits import shard_filter
from signwrite.errors import InputError
from signwrite.fetch import FetchSettings, fetch, main
from faultlib import serving
from videotools import frame_number, make_numbered_video

FPS = 10
HEIGHTS = {"v1": 64, "v2": 48, "v3": 32}  # tells a clip's source video apart by its size
CLIPS = [("A", "v1", 1.0, 2.0), ("B", "v1", 2.5, 3.2), ("A", "v2", 0.5, 1.5), ("B", "v2", 3.0, 4.3)]
CLIPS_CSV = """clip_id,label,video,start,end,split,path
v2_A_500-1500,A,v2,0.5,1.5,test,clips/test/A/v2_A_500-1500.mp4
v2_B_3000-4300,B,v2,3.0,4.3,test,clips/test/B/v2_B_3000-4300.mp4
v1_A_1000-2000,A,v1,1.0,2.0,train,clips/train/A/v1_A_1000-2000.mp4
v1_B_2500-3200,B,v1,2.5,3.2,train,clips/train/B/v1_B_2500-3200.mp4
"""


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    """Three 6-second numbered videos with a keyframe every 2 s, made once for the module."""
    folder = tmp_path_factory.mktemp("footage")
    for name, height in HEIGHTS.items():
        make_numbered_video(folder / f"{name}.mp4", 6, FPS, gop=20, height=height)
    (folder / "two.html").write_text('<html><body><video src="v1.mp4"></video><video src="v2.mp4"></video></body></html>')
    return folder


@pytest.fixture
def server(footage):
    """An HTTP server on 127.0.0.1 serving the footage folder; records every GET path."""
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(footage), **kwargs)

        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

    with serving(Handler) as url:
        yield SimpleNamespace(url=url, requests=requests)


def setup_inputs(folder: Path, sources: dict[str, str], clips, data="data", **kw) -> FetchSettings:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sources.csv").write_text("video,url\n" + "".join(f"{v},{u}\n" for v, u in sources.items()))
    (folder / "clip_times.csv").write_text(
        "label,video,start,end\n" + "".join(f"{label},{v},{s},{e}\n" for label, v, s, e in clips))
    kw.setdefault("jobs", 2)
    return FetchSettings(clip_times=folder / "clip_times.csv", sources=folder / "sources.csv",
                         data_dir=folder / data, **kw)


def cli_args(s: FetchSettings) -> list[str]:
    return ["--clip-times", str(s.clip_times), "--sources", str(s.sources), "--data-dir", str(s.data_dir),
            "--jobs", str(s.jobs)] + (["--test-videos", ",".join(s.test_videos)] if s.test_videos else [])


def files(data: Path) -> dict[str, bytes]:
    """Every file under ``data`` (lock files aside), with fetch_config's data_dir taken out."""
    out = {}
    for p in sorted(data.rglob("*")):
        if p.is_file() and not p.name.endswith(".lock"):
            content = p.read_bytes()
            if p.name == "fetch_config.json":
                config = json.loads(content)
                assert Path(config.pop("data_dir")) == data.resolve()
                content = json.dumps(config, sort_keys=True).encode()
            out[p.relative_to(data).as_posix()] = content
    return out


def backdate(folder: Path, seconds: int = 3600) -> None:
    """Move every mtime under ``folder`` an hour back, so that any rewrite shows in the mtimes
    (instead of sleeping past the file system's timestamp granularity)."""
    for p in [folder, *folder.rglob("*")]:
        st = p.stat()
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns - seconds * 10**9))


def mtimes(data: Path) -> dict[str, int]:
    return {p.relative_to(data).as_posix(): p.stat().st_mtime_ns for p in data.rglob("*") if p.is_file()}


def clip_files(data: Path) -> list[str]:
    """Finished clips (a temp file being written starts with a dot)."""
    return sorted(p.relative_to(data).as_posix() for p in data.glob("clips/*/*/*.mp4") if not p.name.startswith("."))


def leftovers(data: Path) -> list[str]:
    return [p.name for p in data.rglob("*") if "signwrite-tmp" in p.name or p.suffix in (".part", ".ytdl")]


# --------------------------------------------------------------------------- the happy path


def test_fetch_from_a_local_path_and_through_ytdlp_over_http(tmp_path, footage, server, capsys):
    s = setup_inputs(tmp_path, {"v1": str(footage / "v1.mp4"), "v2": f"{server.url}/v2.mp4"}, CLIPS,
                     test_videos=["v2"])
    assert fetch(s) == 0
    out = capsys.readouterr().out
    assert "videos: 1 downloaded, 1 copied, 0 already present, 0 skipped, 0 failed" in out
    assert "clips:  4 cut, 0 already cut" in out
    assert "train: 2 clips, 2 labels, 1 videos: v1" in out and "test : 2 clips, 2 labels, 1 videos: v2" in out

    data = s.data_dir
    assert sorted(p.name for p in (data / "videos").iterdir()) == ["download-archive.txt", "v1.mp4", "v2.mp4"]
    assert (data / "videos" / "v2.mp4").read_bytes() == (footage / "v2.mp4").read_bytes()
    assert (data / "videos" / "download-archive.txt").read_text() == "generic v2\n"
    assert "/v2.mp4" in server.requests

    assert (data / "clips" / "clips.csv").read_text() == CLIPS_CSV
    for label, vid, start, end in CLIPS:
        split = "test" if vid == "v2" else "train"
        path = data / "clips" / split / label / f"{vid}_{label}_{round(start * 1000)}-{round(end * 1000)}.mp4"
        _, frames = video.read_frames(path)
        got = [frame_number(f) for f in frames]
        assert got == list(range(round(start * FPS), round(end * FPS))), (path.name, got)
        assert frames[0].shape[0] == HEIGHTS[vid]  # cut from the right video
        assert video.probe(path).n_frames == len(got)

    config = json.loads((data / "clips" / "fetch_config.json").read_text())
    assert config["test_videos"] == ["v2"] and config["videos"] == {"test": ["v2"], "train": ["v1"]}
    assert config["clip_times"] == str(s.clip_times.resolve()) and config["shard"] is None
    assert leftovers(data) == []


def test_rerun_is_a_no_op(tmp_path, footage, server, capsys):
    s = setup_inputs(tmp_path, {"v1": str(footage / "v1.mp4"), "v2": f"{server.url}/v2.mp4"}, CLIPS)
    assert fetch(s) == 0
    backdate(s.data_dir)
    before, requests = mtimes(s.data_dir), len(server.requests)
    capsys.readouterr()
    assert fetch(s) == 0
    assert mtimes(s.data_dir) == before
    assert len(server.requests) == requests  # nothing asked of the network
    out = capsys.readouterr().out
    assert "videos: 0 downloaded, 0 copied, 2 already present" in out and "clips:  0 cut, 4 already cut" in out


def test_a_deleted_video_whose_clips_are_all_cut_is_not_fetched_again(tmp_path, footage, server, capsys):
    s = setup_inputs(tmp_path, {"v1": str(footage / "v1.mp4"), "v2": f"{server.url}/v2.mp4"}, CLIPS)
    assert fetch(s) == 0
    (s.data_dir / "videos" / "v2.mp4").unlink()
    requests = len(server.requests)
    assert fetch(s) == 0
    assert len(server.requests) == requests
    assert "video v2: all its clips are already cut" in capsys.readouterr().out


def test_the_download_archive_keeps_a_finished_video_from_being_fetched_again(tmp_path, footage, server, capsys):
    s = setup_inputs(tmp_path, {"v2": f"{server.url}/v2.mp4"}, CLIPS[2:])
    assert fetch(s) == 0
    (s.data_dir / "videos" / "v2.mp4").unlink()
    next(s.data_dir.glob("clips/*/A/*.mp4")).unlink()
    capsys.readouterr()
    assert fetch(s) == 1
    out = capsys.readouterr().out
    assert "download-archive.txt lists it as downloaded ('generic v2')" in out
    assert "1 clip(s) of video v2: not cut" in out
    assert not (s.data_dir / "videos" / "v2.mp4").exists()


def test_a_clip_whose_split_changed_is_moved_not_recut(tmp_path, footage, capsys):
    sources = {v: str(footage / f"{v}.mp4") for v in ("v1", "v2")}
    s = setup_inputs(tmp_path, sources, CLIPS, test_videos=["v2"])
    assert fetch(s) == 0
    inode = (s.data_dir / "clips/train/A/v1_A_1000-2000.mp4").stat().st_ino
    assert fetch(dataclasses.replace(s, test_videos=["v1"])) == 0
    assert "0 cut, 0 already cut, 4 moved" in capsys.readouterr().out
    assert (s.data_dir / "clips/test/A/v1_A_1000-2000.mp4").stat().st_ino == inode
    assert clip_files(s.data_dir) == sorted(
        ["clips/test/A/v1_A_1000-2000.mp4", "clips/test/B/v1_B_2500-3200.mp4",
         "clips/train/A/v2_A_500-1500.mp4", "clips/train/B/v2_B_3000-4300.mp4"])
    table = (s.data_dir / "clips/clips.csv").read_text()
    assert "v1_A_1000-2000,A,v1,1.0,2.0,test,clips/test/A/v1_A_1000-2000.mp4\n" in table


# --------------------------------------------------------------------------- failures


def test_a_failing_url_is_recorded_and_the_rest_finish(tmp_path, footage, server, capsys):
    sources = {"v1": str(footage / "v1.mp4"), "v2": f"{server.url}/v2.mp4", "v3": f"{server.url}/missing.mp4"}
    s = setup_inputs(tmp_path, sources, CLIPS + [("A", "v3", 1, 2)], test_videos=["v2"])
    assert main(cli_args(s)) == 1
    out = capsys.readouterr().out
    assert "1 downloaded, 1 copied, 0 already present, 0 skipped, 1 failed" in out
    assert "video v3: " in out and "404" in out
    assert "1 clip(s) of video v3: not cut, the video is not available" in out
    assert (s.data_dir / "clips/clips.csv").read_text() == CLIPS_CSV
    assert sorted(p.name for p in (s.data_dir / "videos").iterdir()) == ["download-archive.txt", "v1.mp4", "v2.mp4"]


def test_a_missing_local_file_fails_alone_and_no_download_skips_urls(tmp_path, footage, capsys):
    sources = {"v1": str(footage / "v1.mp4"), "v2": "http://127.0.0.1:9/never-asked.mp4", "v3": "nowhere/v3.mp4"}
    s = setup_inputs(tmp_path, sources, CLIPS + [("A", "v3", 1, 2)], no_download=True)
    assert fetch(s) == 1
    out = capsys.readouterr().out
    assert "video v2: not in" in out and "--no-download was given" in out
    assert f"video v3: local file {tmp_path / 'nowhere' / 'v3.mp4'} not found (sources.csv line 4)" in out
    assert "2 clip(s) of video v2: not cut" in out
    assert [Path(p).name for p in clip_files(s.data_dir)] == ["v1_A_1000-2000.mp4", "v1_B_2500-3200.mp4"]


def test_a_page_holding_several_videos_is_refused_not_downloaded_onto_one_name(tmp_path, footage, server, capsys):
    s = setup_inputs(tmp_path, {"v1": str(footage / "v1.mp4"), "page": f"{server.url}/two.html"}, CLIPS[:2])
    assert fetch(s) == 1
    out = capsys.readouterr().out
    assert "video page: " in out and "it is a playlist, not one video" in out
    assert "/v1.mp4" not in server.requests and "/v2.mp4" not in server.requests
    assert sorted(p.name for p in (s.data_dir / "videos").iterdir()) == ["v1.mp4"]
    assert len(clip_files(s.data_dir)) == 2  # a source with no clips yet is fetched, and fails alone


def test_ytdlp_options(tmp_path):
    from signwrite.download import ytdlp_options

    opts = ytdlp_options(tmp_path / "100%" / "videos", "v1", logger=None, progress_hook=None)
    assert opts["outtmpl"]["default"] == str(tmp_path / "100%%" / "videos" / "v1") + ".%(ext)s"
    assert opts["enable_file_urls"] is False and opts["noplaylist"] is True
    assert opts["download_archive"] == str(tmp_path / "100%" / "videos" / "download-archive.txt")
    assert opts["ffmpeg_location"] == video.ffmpeg_exe()
    assert "+" not in opts["format"]  # nothing to merge, so no ffmpeg step after a download


# --------------------------------------------------------------------------- retries, format choice


@pytest.fixture
def scripted_server(footage):
    """A server on 127.0.0.1 for the footage folder whose answers to a path can be scripted:
    ``script[path] = [200, 503]`` serves the next GET of that path, answers the one after
    with 503, then serves every later one. ``log`` holds (path, status) of every GET."""
    script, log = {}, []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(footage), **kwargs)

        def do_GET(self):
            planned = script.get(self.path)
            status = planned.pop(0) if planned else 200
            log.append((self.path, status if (footage / self.path.lstrip("/")).is_file() else 404))
            if status == 200:
                return super().do_GET()
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    with serving(Handler) as url:
        yield SimpleNamespace(url=url, script=script, log=log)


@pytest.mark.parametrize("answers", [[200, 503, 503], [503], [503, 503]],
                         ids=["503-while-downloading", "503-at-first-request", "503-twice-at-first"])
def test_a_server_answering_503_is_retried_and_the_download_succeeds(tmp_path, footage, scripted_server, capsys,
                                                                      answers):
    # [200, 503, 503]: the first GET (yt-dlp's look at the URL) is answered, the next two
    # (the transfer) get 503; [503]: the very first request gets 503. Either way, retried.
    scripted_server.script["/v2.mp4"] = list(answers)
    planned = [a for a in answers if a != 200]
    s = setup_inputs(tmp_path, {"v2": f"{scripted_server.url}/v2.mp4"}, CLIPS[2:])
    assert fetch(s) == 0, capsys.readouterr()
    assert "videos: 1 downloaded, 0 copied, 0 already present, 0 skipped, 0 failed" in capsys.readouterr().out
    assert (s.data_dir / "videos" / "v2.mp4").read_bytes() == (footage / "v2.mp4").read_bytes()
    statuses = [status for path, status in scripted_server.log if path == "/v2.mp4"]
    assert statuses.count(503) == len(planned) and statuses[-1] == 200  # the retries happened, then it came
    assert len(clip_files(s.data_dir)) == 2


def test_a_server_that_stays_unavailable_fails_that_video_alone(tmp_path, footage, scripted_server, capsys):
    scripted_server.script["/v2.mp4"] = [503] * 50
    s = setup_inputs(tmp_path, {"v1": str(footage / "v1.mp4"), "v2": f"{scripted_server.url}/v2.mp4"}, CLIPS)
    assert fetch(s) == 1
    out = capsys.readouterr().out
    assert "1 failed" in out and "video v2: " in out and "503" in out
    assert 1 < [p for p, _ in scripted_server.log].count("/v2.mp4") < 50  # retried, but not for ever
    assert not (s.data_dir / "videos" / "v2.mp4").exists()


def test_a_page_with_several_formats_gives_the_720p_one(tmp_path, footage, scripted_server, capsys):
    """A page offering one video at several sizes: the best of at most 720 lines is
    downloaded, and nothing else; with none that small, the smallest above."""
    for key, name in {"1080": "v1.mp4", "720": "v2.mp4", "360": "v3.mp4"}.items():
        (footage / f"{key}.mp4").write_bytes((footage / name).read_bytes())

    def page(sizes):
        sources = "".join(f'<source src="{k}.mp4" type="video/mp4" res="{k}">' for k in sizes)
        return f"<html><body><video controls>{sources}</video></body></html>"

    (footage / "formats.html").write_text(page(["1080", "720", "360"]))
    (footage / "too-big.html").write_text(page(["1080"]))
    s = setup_inputs(tmp_path, {"v2": f"{scripted_server.url}/formats.html",
                                "v1": f"{scripted_server.url}/too-big.html"}, CLIPS)
    assert fetch(s) == 0, capsys.readouterr()
    assert (s.data_dir / "videos" / "v2.mp4").read_bytes() == (footage / "720.mp4").read_bytes()
    assert (s.data_dir / "videos" / "v1.mp4").read_bytes() == (footage / "1080.mp4").read_bytes()
    media = sorted({p for p, _ in scripted_server.log if p.endswith(".mp4")})
    assert media == ["/1080.mp4", "/720.mp4"]  # no other format fetched


def _format(fid, height, vcodec, acodec="none", ext="mp4"):
    return {"format_id": fid, "url": f"http://127.0.0.1:9/{fid}", "height": height, "width": height and height * 16 // 9,
            "vcodec": vcodec, "acodec": acodec, "ext": ext, "protocol": "https"}


FORMAT_CHOICES = {
    # what an extractor offers -> the format signwrite's options make yt-dlp pick
    "720p-h264-of-many": ([_format("1080-h264", 1080, "avc1.640028"), _format("720-vp9", 720, "vp9", ext="webm"),
                           _format("720-h264", 720, "avc1.4d401f"), _format("360-h264", 360, "avc1.42e01e", "mp4a.40.2"),
                           _format("audio", None, "none", "opus", "webm")], "720-h264"),
    "h264-before-av1": ([_format("720-av01", 720, "av01.0.05M.08"), _format("720-h264", 720, "avc1.4d401f"),
                         _format("480-h264", 480, "avc1.4d401f")], "720-h264"),
    "720p-before-h264": ([_format("480-h264", 480, "avc1.4d401f"), _format("720-vp9", 720, "vp9", ext="webm"),
                          _format("1080-h264", 1080, "avc1.640028")], "720-vp9"),
    "nothing-small-enough": ([_format("1440-vp9", 1440, "vp9", ext="webm"), _format("1080-h264", 1080, "avc1.640028"),
                              _format("2160-h264", 2160, "avc1.640028")], "1080-h264"),
    "a-muxed-file-is-one-file": ([_format("720-muxed", 720, "avc1.4d401f", "mp4a.40.2"),
                                  _format("480-video", 480, "avc1.4d401f")], "720-muxed"),
}


@pytest.mark.parametrize("name", FORMAT_CHOICES)
def test_the_format_chosen_is_720p_or_less_h264_first_in_one_file(tmp_path, name):
    """yt-dlp's own format selection, given signwrite's options (ytdlp_options): at most 720
    lines (else the smallest above), H.264 before other codecs at the same size, and always
    one file, never a video and an audio stream to merge."""
    import yt_dlp

    from signwrite.download import ytdlp_options

    formats, expected = FORMAT_CHOICES[name]
    opts = ytdlp_options(tmp_path / "videos", "v", logger=None, progress_hook=None)
    opts.update(logger=None, progress_hooks=[], match_filter=None, quiet=True)
    with yt_dlp.YoutubeDL(opts) as ydl:
        info = ydl.process_ie_result({"id": name, "title": name, "formats": formats, "extractor": "test",
                                      "extractor_key": "Test", "webpage_url": "http://127.0.0.1:9/"}, download=False)
    assert info["format_id"] == expected
    assert "requested_formats" not in info  # nothing to merge


BAD_INPUTS = [
    # (clip-times rows, sources, extra argv, words in the error)
    ([("A", "nope", 1, 2)], None, [], "line 2: unknown video 'nope'"),
    ([("A", "v1", 2, 1), ("..", "v1", 3, 4)], None, [], "2 problem(s)"),
    (CLIPS, {"v1": "file:///etc/passwd", "v2": "v2.mp4"}, [], "line 2: url 'file:///etc/passwd' uses file://"),
    (CLIPS, None, ["--test-videos", "nope"], "--test-videos: nope not in the clip-times file"),
    (CLIPS, None, ["--test-fraction", "1.5"], "--test-fraction must be in [0, 1)"),
    (CLIPS, None, ["--shard", "2/2"], "--shard must look like I/N"),
    (CLIPS, None, ["--jobs", "0"], "--jobs must be at least 1"),
]


@pytest.mark.parametrize("clips,sources,argv,why", BAD_INPUTS)
def test_bad_input_writes_nothing(tmp_path, footage, capsys, clips, sources, argv, why):
    sources = sources or {v: str(footage / f"{v}.mp4") for v in ("v1", "v2")}
    s = setup_inputs(tmp_path, sources, clips)
    assert main(cli_args(s) + argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("signwrite fetch: error: ") and why in err
    assert not s.data_dir.exists()


def test_main_prints_one_line_for_an_error(tmp_path, capsys):
    assert main(["--clip-times", str(tmp_path / "nope.csv"), "--sources", str(tmp_path / "nope.csv")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("signwrite fetch: error: ") and "nope.csv" in err


def test_times_past_a_videos_end_are_caught_once_it_is_on_disk(tmp_path, footage, capsys):
    s = setup_inputs(tmp_path, {"v1": str(footage / "v1.mp4")}, [("A", "v1", 1, 2), ("B", "v1", 5.5, 6.5)])
    with pytest.raises(InputError) as info:
        fetch(s)
    assert info.value.problems == ["line 3: clip v1_B_5500-6500 ends at 6.5 s but video 'v1' is 6.00 s long"]
    assert clip_files(s.data_dir) == []


def test_help_lists_every_flag(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--clip-times", "--sources", "--data-dir", "--test-videos", "--test-fraction", "--no-download",
                 "--jobs", "--shard", "--verbose", "default: video_clip_times.csv", "default: data/sources.csv"):
        assert flag in out


def test_fetch_never_imports_tensorflow(tmp_path, footage):
    s = setup_inputs(tmp_path, {"v1": str(footage / "v1.mp4")}, CLIPS[:1])
    code = ("import sys; from signwrite.fetch import main; rc = main(sys.argv[1:]); "
            "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, *cli_args(s)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert len(clip_files(s.data_dir)) == 1


# --------------------------------------------------------------------------- interrupted runs, shards

MANY_CLIPS = [(f"S{k:02d}", v, round(k * 0.45, 2), round(k * 0.45 + 0.4, 2)) for v in HEIGHTS for k in range(12)]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_a_run_killed_midway_and_rerun_gives_the_files_of_an_uninterrupted_run(tmp_path, footage, sig, capsys):
    sources = {v: str(footage / f"{v}.mp4") for v in HEIGHTS}
    reference = setup_inputs(tmp_path, sources, MANY_CLIPS, data="reference", jobs=1)
    assert fetch(reference) == 0
    killed = dataclasses.replace(reference, data_dir=tmp_path / "killed")

    # Its own process group, as a shell job: the signal reaches ffmpeg too, as Ctrl-C would.
    proc = subprocess.Popen([sys.executable, "-m", "signwrite.fetch", *cli_args(killed)], cwd=tmp_path,
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    # Strike once a clip is finished and the next one is half-written.
    while not (clip_files(killed.data_dir) and leftovers(killed.data_dir)) and proc.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.002)
    os.killpg(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 130), err
    if sig == signal.SIGINT:
        assert "interrupted; run the same command again" in err
    assert 0 < len(clip_files(killed.data_dir)) < len(MANY_CLIPS)

    capsys.readouterr()
    assert fetch(killed) == 0
    assert "clips:  0 cut" not in capsys.readouterr().out
    assert leftovers(killed.data_dir) == []
    done, expected = files(killed.data_dir), files(reference.data_dir)
    assert sorted(done) == sorted(expected)
    assert done == expected  # clips.csv and every clip byte for byte (x264 with one thread is deterministic)


def test_shards_then_a_final_pass_equal_one_unsharded_run(tmp_path, footage, capsys):
    assert {shard_filter(v, (0, 2)) for v in HEIGHTS} == {True, False}  # both shards get work
    sources = {v: str(footage / f"{v}.mp4") for v in HEIGHTS}
    clips = MANY_CLIPS[::4]
    whole = setup_inputs(tmp_path, sources, clips, data="whole")
    assert fetch(whole) == 0
    sharded = dataclasses.replace(whole, data_dir=tmp_path / "sharded")

    assert fetch(dataclasses.replace(sharded, shard=(0, 2))) == 0
    assert not (sharded.data_dir / "clips" / "clips.csv").exists()
    assert {Path(p).name.split("_")[0] for p in clip_files(sharded.data_dir)} == \
        {v for v in HEIGHTS if shard_filter(v, (0, 2))}
    assert fetch(dataclasses.replace(sharded, shard=(1, 2))) == 0
    assert not (sharded.data_dir / "clips" / "clips.csv").exists()
    assert clip_files(sharded.data_dir) == clip_files(whole.data_dir)

    capsys.readouterr()
    assert fetch(sharded) == 0
    assert f"clips:  0 cut, {len(clips)} already cut" in capsys.readouterr().out
    assert files(sharded.data_dir) == files(whole.data_dir)


def test_shards_may_run_side_by_side_but_never_next_to_a_full_run(tmp_path, footage, capsys):
    from signwrite.fsutil import folder_lock

    s = setup_inputs(tmp_path, {v: str(footage / f"{v}.mp4") for v in HEIGHTS}, MANY_CLIPS[::6])
    with folder_lock(s.data_dir, "fetch"):  # a full run is going on
        assert main(cli_args(s) + ["--shard", "0/2"]) == 1
        assert "another 'fetch' run is using this folder" in capsys.readouterr().err
    with folder_lock(s.data_dir, "fetch", shared=True):  # another shard is going on
        assert main(cli_args(s) + ["--shard", "1/2"]) == 0
        assert main(cli_args(s)) == 1
        assert "another 'fetch' run is using this folder" in capsys.readouterr().err


# --------------------------------------------------------------------------- real footage


@pytest.mark.realdata
@pytest.mark.slow
def test_real_footage_both_layouts(junaid_dir, tmp_path, capsys):
    import pandas as pd

    s = FetchSettings(clip_times=junaid_dir / "video_clip_times.csv", sources=junaid_dir / "sources.csv",
                      data_dir=tmp_path / "data", test_videos=["junaid_abc2"], jobs=2)
    assert fetch(s) == 0
    table = pd.read_csv(s.data_dir / "clips" / "clips.csv")
    assert len(table) == 52 and table["label"].nunique() == 26
    assert set(table.loc[table["video"] == "junaid_abc1", "split"]) == {"train"}
    assert set(table.loc[table["video"] == "junaid_abc2", "split"]) == {"test"}
    assert (table.groupby("label")["split"].apply(sorted) == pd.Series([["test", "train"]] * 26,
                                                                       index=sorted(table["label"].unique()))).all()
    from signwrite.video import probe

    frames = table["path"].map(lambda p: probe(s.data_dir / p).n_frames)
    assert ((frames - (table["end"] - table["start"]) * 50).abs() <= 1).all()  # 50 fps footage
    assert all((s.data_dir / p).is_file() for p in table["path"])
    index = (s.data_dir / "clips" / "clips.csv").read_bytes()

    sources = read_sources(junaid_dir / "sources.csv")
    long = read_clip_times(junaid_dir / "video_clip_times_long.csv", sources)
    wide = read_clip_times(junaid_dir / "video_clip_times.csv", sources)
    assert sorted(c.clip_id for c in long) == sorted(c.clip_id for c in wide) == sorted(table["clip_id"])
    capsys.readouterr()
    assert fetch(dataclasses.replace(s, clip_times=junaid_dir / "video_clip_times_long.csv")) == 0
    assert "clips:  0 cut, 52 already cut" in capsys.readouterr().out
    assert (s.data_dir / "clips" / "clips.csv").read_bytes() == index
