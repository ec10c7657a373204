"""The ``signwrite`` console script: one subcommand per stage.

Each stage module has ``main(argv=None) -> int``; this file only dispatches to it, so
``signwrite fetch ...`` and ``python -m signwrite.fetch ...`` are the same program. The
plumbing the stages share (logging, Ctrl-C, TensorFlow's import) is in ``process``.
"""

from __future__ import annotations

import importlib
import sys

STAGES = {
    "fetch": ("signwrite.fetch", "download videos, cut clips, sort them into train/test"),
    "extract-frames": ("signwrite.extract_frames", "sample JPEG frames from every clip"),
    "train": ("signwrite.train", "train and evaluate a clip classifier"),
    "evaluate": ("signwrite.evaluate", "re-score a saved run on the test clips"),
    "predict": ("signwrite.predict", "classify new videos or transcribe a long one"),
    "live": ("signwrite.live", "classify a webcam (or a video played as one) continuously"),
    "demo": ("signwrite.demo", "the whole pipeline on a generated offline dataset"),
    "annotate": ("signwrite.annotate", "propose clip times for the signs of a video, in a known order"),
    "hand-model": ("signwrite.hand_model", "put MediaPipe's hand model (hand_landmarker.task) in the user cache"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        width = max(map(len, STAGES))
        lines = [f"  {name:<{width}}  {desc}" for name, (_, desc) in STAGES.items()]
        print("usage: signwrite STAGE [options]   (signwrite STAGE --help for a stage's options)\n\n"
              "stages:\n" + "\n".join(lines))
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from signwrite import __version__

        print(f"signwrite {__version__}")
        return 0
    name = argv[0].replace("_", "-")
    if name not in STAGES:
        print(f"signwrite: unknown stage {argv[0]!r}; choose one of: {', '.join(STAGES)}", file=sys.stderr)
        return 2
    module = importlib.import_module(STAGES[name][0])
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
