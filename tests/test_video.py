import time

import numpy as np
import pytest

from signwrite import video
from signwrite.errors import VideoError
from videotools import frame_number


def test_numbered_video_round_trips(numbered_video):
    path = numbered_video(seconds=3, fps=10)
    info = video.probe(path)
    assert (info.n_frames, info.fps) == (30, 10)
    idx, frames = video.read_frames(path)
    assert idx == list(range(30))
    assert [frame_number(f) for f in frames] == list(range(30))


def test_cut_is_frame_accurate_despite_sparse_keyframes(numbered_video, tmp_path):
    src = numbered_video(seconds=8, fps=10, gop=50)  # keyframes at 0 s and 5 s only
    out = tmp_path / "cut.mp4"
    video.cut_clip(src, out, 2.3, 3.6)
    _, frames = video.read_frames(out)
    got = [frame_number(f) for f in frames]
    assert got[0] in (22, 23, 24) and got[-1] in (35, 36, 37)
    assert got == list(range(got[0], got[-1] + 1))
    assert abs(len(got) - 13) <= 1
    assert not list(tmp_path.glob("*signwrite-tmp*"))


@pytest.mark.parametrize("n_frames,n,expected", [
    (100, 4, [12, 37, 62, 87]),
    (3, 16, [0, 1, 2]),
    (16, 16, list(range(16))),
])
def test_sample_indices_uniform(n_frames, n, expected):
    assert video.sample_indices(n_frames, 10, frames_per_clip=n) == expected


def test_sample_indices_rate_and_all():
    assert video.sample_indices(30, 10, rate=2) == [2, 7, 12, 17, 22, 27]
    assert video.sample_indices(5, 10, all_frames=True) == [0, 1, 2, 3, 4]


def test_read_selected_frames(numbered_video):
    path = numbered_video(seconds=2, fps=10)
    idx, frames = video.read_frames(path, [3, 11, 19, 25])
    assert idx == [3, 11, 19]
    assert [frame_number(f) for f in frames] == [3, 11, 19]


@pytest.mark.parametrize("content", [b"", b"this is not a video at all" * 100])
def test_probe_refuses_non_videos(tmp_path, content):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    with pytest.raises(VideoError, match="bad.mp4"):
        video.probe(bad)


def test_probe_refuses_truncated(numbered_video, tmp_path):
    src = numbered_video(seconds=3)
    data = src.read_bytes()
    cut = tmp_path / "trunc.mp4"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(VideoError, match="trunc.mp4"):
        video.probe(cut)


def test_camera_reader_keeps_only_the_newest_frame(monkeypatch):
    import cv2

    class FakeCamera:
        """A camera delivering numbered frames at about 200 fps, 60 of them."""

        def __init__(self, index):
            self.n = 0

        def isOpened(self):
            return True

        def get(self, prop):
            return 200.0

        def read(self):
            time.sleep(0.005)
            self.n += 1
            if self.n > 60:
                return False, None
            return True, np.full((4, 4, 3), self.n, np.uint8)

        def release(self):
            pass

    monkeypatch.setattr(cv2, "VideoCapture", FakeCamera)
    cam = video.CameraSource(0)
    seen = []
    while (got := cam.read()) is not None:
        seen.append(int(got[0][0, 0, 0]))
        time.sleep(0.02)  # a model slower than the camera
    cam.close()
    assert seen == sorted(set(seen)) and seen[-1] == 60  # newest first, never an old frame again
    assert cam.dropped == 60 - len(seen) > 0


def test_unopenable_camera_is_a_clear_error(monkeypatch):
    import cv2

    class NoCamera:
        def __init__(self, index):
            pass

        def isOpened(self):
            return False

        def release(self):
            pass

    monkeypatch.setattr(cv2, "VideoCapture", NoCamera)
    with pytest.raises(VideoError, match="camera 3 cannot be opened"):
        video.CameraSource(3)
