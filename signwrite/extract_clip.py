"""One clip's work, done in an extract-frames worker: its sampled frames as JPEGs and,
with ``--hands``, its hands (signwrite.extract_hands). A bad clip becomes a recorded
failure (ClipResult.error), not a crash; a full disk stops the stage.
"""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from signwrite import extract_hands, video
from signwrite.errors import DiskFullError, VideoError
from signwrite.fsutil import disk_full_message, filled_folder, is_disk_full, write_file
from signwrite.tables import ClipRow, frame_index, frame_name, list_frames

log = logging.getLogger(__name__)


@dataclass
class ClipTask:
    row: ClipRow
    dest: Path
    sampling: dict
    probe_only: bool = False  # the folder is done; only its fps is needed for frames.csv
    hands_dest: Path | None = None  # find the clip's hands into this folder (with crops of crop_size)
    crop_size: int = 0
    hand_model: Path | None = None

    @property
    def work(self) -> bool:
        """Decoding to do (not only a probe of a finished clip)."""
        return not self.probe_only or self.hands_dest is not None


@dataclass
class ClipResult:
    clip_id: str
    fps: float | None = None
    names: list[str] = field(default_factory=list)  # JPEG file names, in time order
    error: str = ""
    extracted: bool = False
    crops: list[str] | None = None  # hand crop names, in time order; None: hands not found (yet)
    hands_found: bool = False  # this run found the clip's hands


def run_task(task: ClipTask) -> ClipResult:
    """One clip, in a worker: a bad clip becomes a recorded failure, not a crash."""
    import cv2

    cid = task.row.clip_id
    # Test hook (tests/test_extract_workers.py): the worker dies on this clip, as a native crash
    # in the hand tracker kills it. Read in the worker, whose environment is the one the run began with.
    if os.environ.get("SIGNWRITE_TEST_DIE_ON_CLIP") == cid:
        os.kill(os.getpid(), signal.SIGKILL)
    try:
        if task.probe_only:  # a hands pass reads the clip's fps itself: no probe for it
            fps = video.probe(task.row.src).fps if task.hands_dest is None else None
            res = ClipResult(cid, fps, list_frames(task.dest, cid))
        else:
            fps, names = extract_clip(task.row.src, task.dest, cid, task.sampling)
            res = ClipResult(cid, fps, names, extracted=True)
        if task.hands_dest is not None:
            indices = [frame_index(n, cid) for n in res.names]
            fps, res.crops = extract_hands.extract_clip_hands(task.row.src, task.hands_dest, cid, indices,
                                                              task.crop_size, task.hand_model)
            res.fps = res.fps or fps
            res.hands_found = True
        return res
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFullError(disk_full_message(task.dest)) from None
        return ClipResult(cid, error=f"{task.row.src}: {exc.strerror or exc}")
    except VideoError as exc:
        return ClipResult(cid, error=str(exc))
    except cv2.error as exc:
        return ClipResult(cid, error=f"{task.row.src}: OpenCV cannot decode it ({str(exc).strip().splitlines()[-1]})")


def extract_clip(src: Path, dest: Path, clip_id: str, sampling: dict, *, threads: int | None = 1
                 ) -> tuple[float, list[str]]:
    """Decode the clip's sampled frames, resize them and write them as JPEGs into ``dest``.

    The JPEGs go to a temp folder next to ``dest`` that is renamed into place when full,
    so ``dest`` is whole or absent whatever happens. Returns (fps, file names).
    """
    import cv2

    def choose(info: video.VideoInfo) -> list[int]:
        return video.sample_indices(info.n_frames, info.fps, frames_per_clip=sampling["frames_per_clip"],
                                    rate=sampling["fps"], all_frames=sampling["all_frames"])

    def encode(frame: np.ndarray) -> np.ndarray:
        frame = video.resize_short_side(frame, sampling["size"])
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, sampling["jpeg_quality"]])
        if not ok:
            raise VideoError(f"{src}: a frame could not be encoded as JPEG")
        return buf

    info, indices, jpegs = video.read_sampled(src, choose, threads=threads, transform=encode)
    wanted = choose(info)
    if len(indices) < len(wanted):
        log.warning("%s: the container promises %d frames but fewer decode; kept %d of the %d sampled frames",
                    src, info.n_frames, len(indices), len(wanted))
    names = [frame_name(clip_id, i) for i in indices]
    with filled_folder(dest) as tmp:
        for name, buf in zip(names, jpegs):
            write_file(tmp / name, buf)
    return info.fps, names
