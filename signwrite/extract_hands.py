"""The hands part of extract-frames (``--hands``): landmarks and hand crops per clip.

For every clip whose frames are extracted, the same sampled frames are decoded again at
the clip's own resolution and MediaPipe's HandLandmarker (signwrite.hands) runs over them
in VIDEO mode. One folder per clip, filled under a temp name and renamed whole:

    data/hands/<split>/<label>/<clip_id>/<clip_id>.npz          landmarks (hands.HandFrames)
    data/hands/<split>/<label>/<clip_id>/<clip_id>-NNNN.jpg     a square crop of the signing
                                                                hand, where it was found

NNNN is the frame's index in the clip, as in data/frames. The settings that decide these
files are saved as data/hands/hands_config.json; a re-run with others is refused.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from signwrite import hands, video
from signwrite.errors import SignwriteError
from signwrite.fsutil import filled_folder, write_file
from signwrite.tables import frame_name, list_frames

log = logging.getLogger(__name__)

JPEG_QUALITY = 95


def hands_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "hands"


def hand_settings(crop_size: int, model_path: Path) -> dict:
    """What decides the files under data/hands: saved as hands_config.json, compared on re-runs."""
    import hashlib

    digest = hashlib.sha256(Path(model_path).read_bytes()).hexdigest()
    return {"crop_size": int(crop_size), "crop_margin": hands.CROP_MARGIN, "num_hands": hands.MAX_HANDS,
            "min_confidence": hands.MIN_CONFIDENCE, "model_sha256": digest}


def check_hand_settings(folder: Path, settings: dict, any_done: bool) -> None:
    """Refuse to mix hands found two different ways in one folder."""
    path = folder / "hands_config.json"
    if not path.is_file():
        if any_done:
            raise SignwriteError(f"{folder}: holds hands of some clips but no hands_config.json, so how they "
                                 f"were found is unknown; delete {folder} and run again")
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise SignwriteError(f"{path}: unreadable; delete {folder} and run again") from None
    changed = sorted(k for k in settings if old.get(k) != settings[k])
    if changed:
        what = "; ".join(f"{k}: {old.get(k)!r} -> {settings[k]!r}" for k in changed)
        raise SignwriteError(f"{path}: the hands in {folder} were found with other settings ({what}); hands "
                             f"found two ways must not mix: delete {folder} to find them all again, or run "
                             "with the settings they were made with (--size, --hand-model)")


def finished(folder: Path, clip_id: str) -> list[str] | None:
    """The crops of a finished hands folder in time order, or None if its hands are still to be found."""
    if not (folder / f"{clip_id}.npz").is_file():
        return None
    return list_frames(folder, clip_id)


def extract_clip_hands(src: Path, dest: Path, clip_id: str, indices: list[int], crop_size: int,
                       model_path: Path) -> tuple[float, list[str]]:
    """Find the hands in the clip's frames at ``indices``; write landmarks and crops into
    ``dest`` (whole or absent). Returns the clip's fps and the crop file names."""
    import cv2

    info, got, frames = video.read_sampled(src, lambda info: indices, threads=1)
    found = hands.track_frames(frames, got, info.fps, model_path)
    slot = found.signing_slot()
    names = []
    with filled_folder(dest) as tmp:
        for t, (index, frame) in enumerate(zip(got, frames)):
            if found.handedness[t, slot] == hands.ABSENT:
                continue
            crop = hands.crop_hand(frame, found.image[t, slot], crop_size)
            ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if not ok:
                raise SignwriteError(f"{src}: a hand crop could not be encoded as JPEG")
            names.append(frame_name(clip_id, index))
            write_file(tmp / names[-1], buf)
        found.save(tmp / f"{clip_id}.npz")
    return info.fps, names


@dataclass
class HandsSummary:
    """Hands found, per label: frames with the signing hand (= crops) and clips with any."""
    frames: dict
    found: dict
    clips: dict
    clips_found: dict
    no_hand: list  # clip ids without a hand in any frame

    @classmethod
    def of(cls, table) -> "HandsSummary":
        frames, found, clips, clips_found, no_hand = (defaultdict(int), defaultdict(int), defaultdict(int),
                                                      defaultdict(int), [])
        for r in table.itertuples(index=False):
            if not r.landmarks:
                continue
            n = int(r.hand_frames)
            frames[r.label] += int(r.n_frames)
            found[r.label] += n
            clips[r.label] += 1
            clips_found[r.label] += n > 0
            if n == 0:
                no_hand.append(r.clip_id)
        return cls(dict(frames), dict(found), dict(clips), dict(clips_found), sorted(no_hand))

    def lines(self) -> list[str]:
        if not self.clips:
            return []
        n_frames, n_found = sum(self.frames.values()), sum(self.found.values())
        n_clips, n_clips_found = sum(self.clips.values()), sum(self.clips_found.values())
        out = [f"hands: found in {n_found} of {n_frames} frames ({n_found / max(n_frames, 1):.1%}) and in "
               f"{n_clips_found} of {n_clips} clips"]
        worst = sorted(self.frames, key=lambda k: (self.found[k] / max(self.frames[k], 1), k))
        out.append("  per label (frames with a hand): " + ", ".join(
            f"{k} {self.found[k]}/{self.frames[k]}" for k in worst))
        if self.no_hand:
            shown = ", ".join(self.no_hand[:20]) + (f" and {len(self.no_hand) - 20} more" if len(self.no_hand) > 20
                                                    else "")
            out.append(f"  no hand found in {len(self.no_hand)} clip(s): {shown} (check them in the contact "
                       "sheets: a hand-based model gives them no prediction)")
        return out
