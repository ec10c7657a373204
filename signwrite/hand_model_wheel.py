"""The hand model built offline from the networks inside the mediapipe 0.10.21 wheel on PyPI,
which pip downloads (no dependencies) and nobody installs: ``signwrite hand-model --from-wheel``.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

from signwrite.errors import HandModelError
from signwrite.fsutil import atomic_path
from signwrite.hand_model_check import mediapipe_quiet, one_line

# The last mediapipe wheel that still ships the hand networks as files. It pins protobuf<5 and
# numpy<2, so it is only ever downloaded and read, never installed.
WHEEL_REQUIREMENT = "mediapipe==0.10.21"
WHEEL_NETWORKS = {  # name in the bundle -> path in the wheel
    "hand_detector.tflite": "mediapipe/modules/palm_detection/palm_detection_full.tflite",
    "hand_landmarks_detector.tflite": "mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
}
# The .tflite files are the same on every platform, so a wheel for another one does as well.
WHEEL_FALLBACK_TARGET = ("--python-version", "3.11", "--platform", "manylinux_2_28_x86_64")


def build_from_wheel(wheel_path: Path | str, out_path: Path | str) -> Path:
    """Bundle the two hand networks inside a mediapipe wheel (a zip) into a .task file."""
    wheel_path, out_path = Path(wheel_path), Path(out_path)
    networks = {}
    try:
        with zipfile.ZipFile(wheel_path) as whl:
            for name, member in WHEEL_NETWORKS.items():
                try:
                    networks[name] = whl.read(member)
                except KeyError:
                    raise HandModelError(f"{wheel_path}: no {member} inside; not a mediapipe 0.10.x wheel") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise HandModelError(f"{wheel_path}: not a readable wheel ({one_line(exc)})") from None
    try:  # it pulls in TensorFlow, so only here
        with mediapipe_quiet():
            from mediapipe.tasks.python.metadata.metadata_writers.model_asset_bundle_utils import (
                create_model_asset_bundle)
    except ImportError as exc:
        raise HandModelError(f"cannot build a hand model: mediapipe does not import ({one_line(exc)}); "
                             "run scripts/setup.sh to reinstall signwrite's packages") from None
    with atomic_path(out_path) as tmp:
        create_model_asset_bundle(networks, str(tmp))
    return out_path


def download_wheel(dest: Path) -> Path:
    """``pip download`` the mediapipe 0.10.21 wheel (no dependencies, never installed) into dest."""
    import subprocess

    base = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-input",
            "--disable-pip-version-check", "--quiet", "--dest", str(dest), WHEEL_REQUIREMENT]
    why = ""
    for cmd in (base, base + list(WHEEL_FALLBACK_TARGET)):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(Path(dest).glob("mediapipe-*.whl"))
        if proc.returncode == 0 and wheels:
            return wheels[0]
        lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR")]
        why = (errors or lines or [f"pip exited with status {proc.returncode}"])[-1]
    raise HandModelError(f"pip could not download {WHEEL_REQUIREMENT} ({why})")
