#!/usr/bin/env bash
# Create .venv (once), install signwrite into it with its test tools, and put MediaPipe's hand
# model in the user cache (signwrite hand-model). Safe to re-run; quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "signwrite needs Python 3.10 or newer")'
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
# Re-install only when the package metadata changed since the last install.
stamp=.venv/.signwrite-installed
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
    # opencv-python (from an older signwrite) and mediapipe's opencv-contrib-python share the
    # cv2 folder: removing one breaks the other, so remove it and lay contrib down again
    if .venv/bin/python -m pip show --quiet opencv-python >/dev/null 2>&1; then
        .venv/bin/python -m pip uninstall --quiet --yes opencv-python
        .venv/bin/python -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps \
            "$(.venv/bin/python -m pip show opencv-contrib-python | sed -n 's/^Version: /opencv-contrib-python==/p')"
    fi
    touch "$stamp"
fi
# The hand model: kept if the cache already holds a verified one, else downloaded, else built
# offline from the networks inside mediapipe's 0.10.21 wheel on PyPI.
.venv/bin/python -m signwrite.hand_model --quiet
