"""The suite's own settings: Hypothesis replays the same examples on every run (conftest.py)."""

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st


@pytest.mark.skipif(os.environ.get("HYPOTHESIS_PROFILE", "ci") != "ci", reason="another profile was asked for")
def test_hypothesis_draws_the_same_examples_every_run():
    assert settings.default.derandomize is True and settings.default.database is None
    import test_fuzz_csv

    assert test_fuzz_csv.fuzz.derandomize is True  # the fuzz tests' own settings keep it

    def draws():
        seen = []

        @settings(max_examples=30)
        @given(st.lists(st.integers(), max_size=5), st.text(max_size=5))
        def record(xs, text):
            seen.append((tuple(xs), text))

        record()
        return seen

    first = draws()
    assert len(set(first)) > 10 and draws() == first
