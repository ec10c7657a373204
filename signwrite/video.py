"""Small video primitives: probe, frame-accurate cut, frame sampling and decoding, and
the frame sources live classifies (a camera, or a video file played as one).

OpenCV decodes, always through ``FrameReader``, the one sequential decoder; the ffmpeg
that ships inside the imageio-ffmpeg wheel (a moviepy dependency) encodes cuts, so no
system ffmpeg is needed.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from signwrite.errors import SignwriteError, VideoError
from signwrite.fsutil import atomic_path, mentions_full_disk

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    fps: float
    n_frames: int
    width: int
    height: int

    @property
    def duration(self) -> float:
        return self.n_frames / self.fps


def ffmpeg_exe() -> str:
    try:
        import imageio_ffmpeg
    except ImportError:  # pragma: no cover - a dependency of moviepy
        raise SignwriteError("imageio-ffmpeg is missing; reinstall signwrite (pip install -e .)") from None
    return imageio_ffmpeg.get_ffmpeg_exe()


def _open(path: Path, threads: int | None = None, name=None):
    """An opened cv2.VideoCapture; errors name ``name`` (default: ``path``)."""
    import cv2

    path = Path(path)
    name = path if name is None else name
    if not path.is_file():
        raise VideoError(f"{name}: no such video file")
    if path.stat().st_size == 0:
        raise VideoError(f"{name}: the file is empty (0 bytes); download or copy it again")
    if threads is None:
        cap = cv2.VideoCapture(str(path))
    else:
        cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, int(threads)])
    if not cap.isOpened():
        cap.release()
        raise VideoError(f"{name}: not a readable video (truncated or not a video file); "
                         "download or copy it again")
    return cap


def probe(path: Path, name=None) -> VideoInfo:
    """Frame rate, frame count and size; a VideoError if the file holds no readable frame.

    ``name`` is what errors call the file (a temp copy is named after its source).
    """
    import cv2

    name = path if name is None else name
    cap = _open(path, name=name)
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        ok, _ = cap.read()
    finally:
        cap.release()
    if not ok or n <= 0 or not (0 < fps < 1000):
        raise VideoError(f"{name}: holds no readable frames (fps={fps:g}, frames={n}); "
                         "the file may be truncated; download or copy it again")
    return VideoInfo(Path(path), float(fps), n, w, h)


def cut_clip(src: Path, dst: Path, start: float, end: float, *, crf: int = 18,
             preset: str = "veryfast", timeout: float = 600) -> None:
    """Re-encode the frames of [start, end) of ``src`` into ``dst`` (H.264, no audio).

    Input-side seeking (-ss before -i) with re-encoding is frame-accurate: ffmpeg decodes
    from the keyframe before ``start`` and drops frames until ``start``. A stream copy
    would instead snap to keyframes, seconds away on typical web video.
    """
    with atomic_path(dst) as tmp:
        cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
               "-ss", f"{start:.6f}", "-i", str(src), "-t", f"{end - start:.6f}",
               "-map", "0:v:0", "-an", "-sn", "-dn",
               "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
               # odd sizes are not allowed by yuv420p
               "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-movflags", "+faststart",
               "-threads", "1", "-f", "mp4", str(tmp)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            msg = (proc.stderr or "").strip().splitlines()
            if mentions_full_disk(proc.stderr or ""):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))  # atomic_path says it plainly
            raise VideoError(f"{src}: cutting {start:g}-{end:g} s failed: {msg[-1] if msg else 'ffmpeg error'}")
        # ffmpeg writes a valid but empty MP4 when no frame of the span decodes (a video
        # truncated before it): that must not land as a finished clip.
        try:
            if tmp.stat().st_size == 0:
                raise VideoError("empty output")
            probe(tmp)
        except VideoError:
            raise VideoError(f"{src}: no frame between {start:g} and {end:g} s can be decoded; check the "
                             "clip times, and if the video is cut short (truncated), delete it and run "
                             "again to get it anew") from None


def sample_indices(n_frames: int, fps: float, *, frames_per_clip: int | None = 16,
                   rate: float | None = None, all_frames: bool = False) -> list[int]:
    """Which frames to keep: N spread uniformly (segment centres), a fixed rate, or all.

    With fewer frames than asked for, every frame is kept once (no duplicates).
    """
    if n_frames <= 0:
        return []
    if all_frames:
        return list(range(n_frames))
    if rate:
        step = fps / rate
        return sorted({min(int(i * step + step / 2), n_frames - 1) for i in range(max(1, int(n_frames / step)))})
    n = frames_per_clip or 16
    if n >= n_frames:
        return list(range(n_frames))
    return [int((i + 0.5) * n_frames / n) for i in range(n)]


class FrameReader:
    """A video decoded front to back. Frames skipped over are grabbed, not converted, which
    is exact for every codec (seeking by frame index is not) and cheap."""

    def __init__(self, path: Path, threads: int | None = None):
        self.cap = _open(path, threads)
        self.next = 0  # index of the frame read() returns

    def skip_to(self, index: int) -> bool:
        """Grab frames until the next one is ``index``; False if the video ends first."""
        while self.next < index:
            if not self.cap.grab():
                return False
            self.next += 1
        return True

    def read(self) -> np.ndarray | None:
        """The next frame (BGR), or None at the end of the video."""
        ok, frame = self.cap.read()
        if not ok:
            return None
        self.next += 1
        return frame

    def frames(self, indices=None):
        """Yield (index, frame) for ``indices`` (all if None) in order, until the video ends."""
        for i in itertools.count() if indices is None else sorted(set(indices)):
            frame = self.read() if self.skip_to(i) else None
            if frame is None:
                return
            yield i, frame

    def close(self) -> None:
        self.cap.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def iter_frames(path: Path, wanted: list[int] | None = None):
    """Yield (index, BGR frame) for the wanted indices (all if None), decoding the video once, in order."""
    with FrameReader(path) as reader:
        yield from reader.frames(wanted)


def read_frames(path: Path, indices: list[int] | None = None) -> tuple[list[int], list[np.ndarray]]:
    """Decode the frames at ``indices`` (all if None) in one sequential pass, as BGR arrays.

    Returns the indices actually read: a container can promise more frames than it holds.
    """
    got = list(iter_frames(path, indices))
    return [i for i, _ in got], [f for _, f in got]


def read_sampled(path: Path, choose, *, threads: int | None = None, transform=None
                 ) -> tuple[VideoInfo, list[int], list]:
    """probe() then read_frames() in one open: ``choose(info)`` returns the indices to keep.

    One open instead of two saves a container parse and a decoded frame per clip (about a
    tenth of extracting 16 frames from a 2 s clip). ``threads`` caps FFmpeg's decoder
    threads: 1 in a process pool, where the pool is the parallelism. ``transform`` is
    applied to each kept frame as it is decoded (e.g. resize and JPEG-encode), so memory
    stays bounded however many frames are kept.
    """
    import cv2

    with FrameReader(path, threads) as reader:
        cap = reader.cap
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if n <= 0 or not (0 < fps < 1000):
            raise VideoError(f"{path}: holds no readable frames (fps={fps:g}, frames={n}); "
                             "the file may be truncated; download or copy it again")
        info = VideoInfo(Path(path), float(fps), n, w, h)
        wanted = list(choose(info))
        got = [(i, f if transform is None else transform(f)) for i, f in reader.frames(wanted)] if wanted else []
    got_idx, frames = [i for i, _ in got], [f for _, f in got]
    if wanted and not got_idx:
        raise VideoError(f"{path}: no frame could be decoded; the file may be truncated; "
                         "download or copy it again")
    return info, got_idx, frames


def resize_short_side(frame: np.ndarray, size: int) -> np.ndarray:
    """Resize so the short side is ``size`` pixels, keeping the aspect ratio."""
    import cv2

    h, w = frame.shape[:2]
    if min(h, w) == size:
        return frame
    scale = size / min(h, w)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(frame, new, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def write_video(path: Path, frames, fps: float, *, crf: int = 18, gop: int | None = None) -> int:
    """Encode BGR uint8 frames (an iterable of equal-size arrays) as H.264 MP4, atomically.

    Returns the number of frames written. ``gop`` sets the keyframe interval.
    """
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise VideoError(f"{path}: no frames to write")
    h, w = first.shape[:2]
    with atomic_path(path) as tmp:
        cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
               "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{w}x{h}", "-r", f"{fps:g}", "-i", "-",
               "-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-pix_fmt", "yuv420p",
               "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"]
        if gop:
            cmd += ["-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0"]
        cmd += ["-threads", "1", "-f", "mp4", str(tmp)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        n = 0
        try:
            for frame in itertools.chain([first], frames):
                proc.stdin.write(np.ascontiguousarray(frame, dtype=np.uint8).tobytes())
                n += 1
            proc.stdin.close()
        except BrokenPipeError:
            pass
        err = proc.stderr.read().decode(errors="replace")
        if proc.wait() != 0:
            raise VideoError(f"{path}: writing the video failed: {err.strip()[-300:]}")
    return n


# --------------------------------------------------------------------------- what live classifies

class VideoSource:
    """A video file as a camera: in real time it skips ahead to the frame the wall clock is at."""

    def __init__(self, path: Path, realtime: bool = True):
        self.info = probe(path)
        self.name = str(path)
        self.fps = self.info.fps
        self.realtime = realtime
        self.reader = FrameReader(path)
        self.dropped = 0
        self.t0 = None

    def read(self):
        """(frame, seconds into the stream), or None at the end of the video."""
        reader = self.reader
        if self.realtime:
            if self.t0 is None:
                self.t0 = time.monotonic()
            before = reader.next  # the model fell behind: skip the frames whose time has passed
            caught_up = reader.skip_to(int((time.monotonic() - self.t0) * self.fps))
            self.dropped += reader.next - before
            if not caught_up:
                return None
            wait = reader.next / self.fps - (time.monotonic() - self.t0)
            if wait > 0:
                time.sleep(wait)
        frame = reader.read()
        if frame is None:
            return None
        return frame, (reader.next - 1) / self.fps

    def close(self):
        self.reader.close()


class CameraSource:
    """A camera read by a thread that keeps only the newest frame, so a slow model never lags."""

    def __init__(self, index: int, timeout: float = 10.0):
        import cv2

        self.name = f"camera:{index}"
        self.cap = cv2.VideoCapture(index)
        if not self.cap.isOpened():
            self.cap.release()
            raise VideoError(f"camera {index} cannot be opened; check that it is connected and not used by "
                             "another program, try another --camera number, or play a file with --video")
        self.fps = self.cap.get(cv2.CAP_PROP_FPS) or 30.0
        self.timeout = timeout
        self.dropped = 0
        self.cond = threading.Condition()
        self.latest = None  # (frame, stream time, count)
        self.count = self.seen = 0
        self.stopped = False
        self.t0 = time.monotonic()
        self.thread = threading.Thread(target=self._reader, daemon=True)
        self.thread.start()

    def _reader(self):
        while not self.stopped:
            ok, frame = self.cap.read()
            with self.cond:
                if not ok:
                    self.stopped = True
                else:
                    self.count += 1
                    self.latest = (frame, time.monotonic() - self.t0, self.count)
                self.cond.notify_all()

    def read(self):
        with self.cond:
            if not self.cond.wait_for(lambda: self.count > self.seen or self.stopped, self.timeout):
                raise VideoError(f"{self.name}: no frame for {self.timeout:g} s; is the camera still connected?")
            if self.count <= self.seen:
                return None
            frame, t, count = self.latest
        self.dropped += count - self.seen - 1
        self.seen = count
        return frame, t

    def close(self):
        self.stopped = True
        self.thread.join(timeout=2)
        self.cap.release()
