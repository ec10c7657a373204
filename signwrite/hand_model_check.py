"""Whether a file is a hand model: a whole zip holding both networks, which MediaPipe loads.

check_bundle is the cheap check (no MediaPipe); try_load has MediaPipe make a HandLandmarker
from it. The cached copy's sidecar (``hand_landmarker.task.sha256``) records its hash once it
has loaded, so signwrite.hand_model can check it later by a hash compare alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import zipfile
from pathlib import Path

from signwrite.errors import HandModelError

MEMBERS = ("hand_detector.tflite", "hand_landmarks_detector.tflite")


def sidecar(model: Path) -> Path:
    return model.with_name(model.name + ".sha256")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def recorded_sha(model: Path) -> str | None:
    """The hash the sidecar records (``sha256sum`` format), or None if there is no usable one."""
    try:
        text = sidecar(model).read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError):
        return None
    return text[0] if text and re.fullmatch(r"[0-9a-f]{64}", text[0]) else None


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def check_bundle(path: Path, name: str) -> None:
    """A whole zip holding both networks, every member matching its CRC; cheap, no MediaPipe."""
    import zlib

    try:
        if not path.is_file():
            raise HandModelError(f"{name}: no such file")
        with zipfile.ZipFile(path) as zf:
            missing = [m for m in MEMBERS if m not in zf.namelist()]
            if missing:
                raise HandModelError(f"{name}: not a hand model: the zip has no {' or '.join(missing)}")
            damaged = zf.testzip()
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise HandModelError(f"{name}: not a hand model: not a whole zip file, or cut off "
                             f"({one_line(exc)})") from None
    except OSError as exc:
        raise HandModelError(f"{name}: cannot be read ({exc.strerror or exc})") from None
    if damaged:
        raise HandModelError(f"{name}: damaged: {damaged} does not match its checksum")


def mediapipe_quiet():
    """Without -v, hide what MediaPipe and TensorFlow print natively on import and load:
    start-up notes, LiteRT's "INFO: ..." lines and its "ERROR: ..." line for a bad network
    (our error repeats it)."""
    from signwrite import process

    if not process.quiet_native():
        return contextlib.nullcontext()
    return process.native_stderr_filtered(re.compile(process.TF_NOISE.pattern + r"|(INFO|ERROR): .*"))


def try_load(path: Path, name: str) -> None:
    """Have MediaPipe make a HandLandmarker from ``path``, then close it."""
    with mediapipe_quiet():
        try:
            from signwrite.hands import import_vision

            vision = import_vision()  # without TensorFlow, when nothing else has imported it
            from mediapipe.tasks.python.core.base_options import BaseOptions
        except ImportError as exc:
            raise HandModelError(f"cannot check {name}: mediapipe does not import ({one_line(exc)}); "
                                 "run scripts/setup.sh to reinstall signwrite's packages") from None
        try:
            options = vision.HandLandmarkerOptions(base_options=BaseOptions(model_asset_path=str(path)))
            vision.HandLandmarker.create_from_options(options).close()
        except Exception as exc:  # MediaPipe raises ValueError or RuntimeError, by what is wrong
            raise HandModelError(f"{name}: MediaPipe cannot load it as a hand model ({one_line(exc)})") from None
