from __future__ import annotations

import os
from pathlib import Path

import pytest

from videotools import make_numbered_video

# Quiet TensorFlow's C++ start-up chatter in test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Hypothesis: by default (and so in CI, which runs scripts/test.sh) every run tries the same
# examples, so a failure is replayed by running the suite again; no example database is
# kept between runs. HYPOTHESIS_PROFILE=explore draws new examples each run (to hunt for
# bugs locally; a failure prints the seed that replays it).
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
_hypothesis_settings.register_profile("explore", derandomize=False, print_blob=True)
_hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
JUNAID = SHARED_DATA / "asl-letters-junaid" / "tutorial"


@pytest.fixture
def numbered_video(tmp_path):
    """Factory: a tiny H.264 video whose frames carry their own index."""

    def make(name="v.mp4", seconds=4.0, fps=10, gop=50, **kw):
        return make_numbered_video(tmp_path / name, seconds, fps, gop, **kw)

    return make


@pytest.fixture
def junaid_dir():
    if not JUNAID.is_dir():
        pytest.skip("real footage ../shared/data/asl-letters-junaid not present")
    return JUNAID


# The longest test modules first (measured with --durations on 2 cores): scripts/test.sh
# hands whole modules to its workers in this order (pytest-xdist --dist loadscope), so one
# worker is not left with a long module to run alone at the end while the other waits.
LONGEST_FIRST = ["test_demo.py", "test_faults.py", "test_train_promises.py", "test_landmark_runs.py",
                 "test_distribute.py", "test_train.py", "test_hands.py", "test_landmark_model.py",
                 "test_worked_example.py", "test_annotate.py", "test_live.py", "test_backbones.py"]


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each module keeps its order
