"""MediaPipe's hand model, hand_landmarker.task: one verified copy in the user cache.

MediaPipe's HandLandmarker needs this file and no package ships it. There are three ways
to get it, and whatever comes in is verified (a whole zip holding both networks, which
MediaPipe loads) before it is used:

1. a file you have: ``signwrite hand-model PATH``, or a stage's ``--hand-model PATH``;
2. Google's published file: ``signwrite hand-model --url URL`` (default HAND_MODEL_URL,
   or $SIGNWRITE_HAND_MODEL_URL);
3. built offline from the two networks inside the mediapipe 0.10.21 wheel on PyPI, which
   pip downloads and nobody installs: ``signwrite hand-model --from-wheel``.

Once MediaPipe has loaded the cached copy, a sidecar ``hand_landmarker.task.sha256`` records
its hash. After that a check is a hash compare with no TensorFlow import, which is why
``python -m signwrite.hand_model --quiet`` (run by scripts/setup.sh) is quick.

What makes a file a hand model is signwrite.hand_model_check's; the wheel build is
signwrite.hand_model_wheel's; this module owns the cache, its lock and the three ways in.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import sys
import threading
from pathlib import Path

from signwrite import hand_model_check as check
from signwrite import hand_model_wheel as wheel
from signwrite.process import run_stage, setup_logging
from signwrite.errors import HandModelError
from signwrite.fsutil import atomic_path, is_disk_full, remove_stale_temps_of, write_text

log = logging.getLogger(__name__)

HAND_MODEL_URL = ("https://storage.googleapis.com/mediapipe-models/hand_landmarker/"
                  "hand_landmarker/float16/latest/hand_landmarker.task")
URL_ENV = "SIGNWRITE_HAND_MODEL_URL"  # replaces HAND_MODEL_URL (tests point it at 127.0.0.1)
CACHE_ENV = "SIGNWRITE_CACHE_DIR"
MODEL_NAME = "hand_landmarker.task"
DOWNLOAD_TIMEOUT = 30  # seconds without a byte before a download is given up

WAYS = ("get one with `signwrite hand-model PATH` (a file you have), `signwrite hand-model --url URL` "
        "(a download), or `signwrite hand-model --from-wheel` (built from the mediapipe 0.10.21 wheel on PyPI)")


def cache_dir() -> Path:
    """$SIGNWRITE_CACHE_DIR, else $XDG_CACHE_HOME/signwrite, else ~/.cache/signwrite."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"  # the XDG spec ignores relative ones
    return base / "signwrite"


def cached_model() -> Path:
    return cache_dir() / MODEL_NAME


def default_url() -> str:
    return os.environ.get(URL_ENV) or HAND_MODEL_URL


# --- checking the cached copy -------------------------------------------------------------

def _is_cached(path: Path) -> bool:
    with contextlib.suppress(OSError):
        return Path(path).expanduser().resolve() == cached_model().resolve()
    return False


def _verify_cached(model: Path) -> None:
    """The cached copy: against its recorded sha256 if it has one, else in full (recording it)."""
    recorded = check.recorded_sha(model)
    if recorded is not None:
        try:
            actual = check.sha256_of(model)
        except FileNotFoundError:
            raise HandModelError(f"{model}: no such file") from None
        except OSError as exc:
            raise HandModelError(f"{model}: cannot be read ({exc.strerror or exc})") from None
        if actual != recorded:
            raise HandModelError(f"{model}: damaged or replaced: its sha256 is not the one recorded in "
                                 f"{check.sidecar(model).name} when MediaPipe last loaded it")
        return
    with _cache_lock():
        if check.recorded_sha(model) is not None:  # another process checked it while we waited
            return _verify_cached(model)
        check.check_bundle(model, str(model))
        digest = check.sha256_of(model)
        check.try_load(model, str(model))
        _record(model, digest)


def _record(model: Path, digest: str) -> None:
    try:
        write_text(check.sidecar(model), f"{digest}  {model.name}\n")
    except OSError as exc:
        log.warning("%s: could not record its sha256 (%s); it will be checked in full each time",
                    model, exc.strerror or exc)


def verify(path: Path | str) -> None:
    """Raise HandModelError unless ``path`` is a hand model MediaPipe loads.

    The cached copy is checked in full once; after that its sha256 is compared with the
    recorded one, so a cached file damaged since then is refused without loading it.
    """
    path = Path(path).expanduser()
    if _is_cached(path):
        _verify_cached(path)
    else:
        check.check_bundle(path, str(path))
        check.try_load(path, str(path))


# --- the cache ------------------------------------------------------------------------------

_lock_depth = 0
_thread_lock = threading.RLock()


@contextlib.contextmanager
def _cache_lock():
    """An exclusive OS lock on cache_dir()/.lock; waits for another process installing.

    Reentrant within a process (flock locks of one process on two open files would block
    each other). The kernel drops it when a process dies, so it never goes stale.
    """
    import fcntl

    global _lock_depth
    with _thread_lock:
        if _lock_depth:
            _lock_depth += 1
            try:
                yield
            finally:
                _lock_depth -= 1
            return
        folder = cache_dir()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fh = open(folder / ".lock", "a+")
        except OSError as exc:
            raise HandModelError(f"cannot use the cache folder {folder} ({exc.strerror or exc}); "
                                 f"set {CACHE_ENV} to a folder you can write") from None
        with fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("waiting for another signwrite process putting the hand model in %s", folder)
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            _lock_depth = 1
            try:
                yield
            finally:
                _lock_depth = 0


def _cached_if_recorded() -> Path | None:
    """The cached model if its sha256 matches the recorded one (the quick check), else None."""
    model = cached_model()
    recorded = check.recorded_sha(model)
    try:
        return model if recorded is not None and check.sha256_of(model) == recorded else None
    except OSError:
        return None


def _usable_cache(reasons: list[str]) -> Path | None:
    """The cached model if it verifies, else None with the reason appended; a refused copy is
    removed (it would only be refused again). Call with the cache lock held."""
    model = cached_model()
    if not model.exists():
        reasons.append(f"none in the cache ({model})")
        return None
    try:
        _verify_cached(model)
        return model
    except HandModelError as exc:
        log.warning("%s; removing it", exc)
        for p in (model, check.sidecar(model)):
            with contextlib.suppress(OSError):
                p.unlink()
        reasons.append(f"the cached copy was refused ({exc})")
        return None


def _put_in_cache(fill, name: str) -> Path:
    """``fill(tmp)`` writes a candidate into a temp file in the cache folder; it is verified
    under ``name`` and renamed onto the cached model. A refused candidate leaves nothing."""
    model = cached_model()
    with _cache_lock():
        remove_stale_temps_of(model)  # a killed install's
        with atomic_path(model) as tmp:
            fill(tmp)
            check.check_bundle(tmp, name)
            digest = check.sha256_of(tmp)
            check.try_load(tmp, name)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())  # on disk before the rename, so a crash cannot leave it empty
            check.sidecar(model).unlink(missing_ok=True)  # until the new record is written, check in full
        _record(model, digest)
    return model


def _copy(src: Path, dst: Path) -> None:
    try:
        shutil.copyfile(src, dst)
    except OSError as exc:
        if is_disk_full(exc):
            raise
        raise HandModelError(f"{src}: cannot be read ({exc.strerror or exc})") from None


def _download(url: str, dest: Path) -> None:
    """Download ``url`` to ``dest``; HandModelError naming the URL if it fails or is cut off."""
    import http.client
    import urllib.error
    import urllib.request

    from tqdm import tqdm

    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as resp, open(dest, "wb") as f:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            got = 0
            with tqdm(total=total, desc=MODEL_NAME, unit="B", unit_scale=True, unit_divisor=1024,
                      leave=False, disable=None if log.isEnabledFor(logging.INFO) else True) as bar:
                for block in iter(lambda: resp.read(1 << 16), b""):
                    f.write(block)
                    got += len(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as exc:
        raise HandModelError(f"{url}: HTTP error {exc.code} ({exc.reason})") from None
    except urllib.error.URLError as exc:
        raise HandModelError(f"{url}: cannot be reached ({check.one_line(exc.reason)})") from None
    except (http.client.HTTPException, ValueError) as exc:  # ValueError: not a URL at all
        raise HandModelError(f"{url}: the download failed ({check.one_line(exc)})") from None
    except OSError as exc:
        if is_disk_full(exc):
            raise
        raise HandModelError(f"{url}: the download failed ({exc.strerror or check.one_line(exc)})") from None
    if total is not None and got != total:
        raise HandModelError(f"{url}: the download was cut off ({got} of {total} bytes)")


def _install_file(src: Path) -> Path:
    src = Path(src).expanduser()
    if not src.is_file():
        raise HandModelError(f"{src}: no such file")
    model = _put_in_cache(lambda tmp: _copy(src, tmp), str(src))
    log.info("hand model: copied %s into %s", src, model)
    return model


def _install_url(url: str) -> Path:
    log.info("downloading the hand model from %s", url)
    model = _put_in_cache(lambda tmp: _download(url, tmp), url)
    log.info("hand model: downloaded %s into %s", url, model)
    return model


def _install_wheel() -> Path:
    import tempfile

    log.info("building the hand model from the %s wheel (pip download; it is not installed)",
             wheel.WHEEL_REQUIREMENT)
    with tempfile.TemporaryDirectory(prefix="signwrite-wheel-") as tmpdir:
        whl = wheel.download_wheel(Path(tmpdir))
        model = _put_in_cache(lambda tmp: wheel.build_from_wheel(whl, tmp), f"the model built from {whl.name}")
    log.info("hand model: built from %s into %s", whl.name, model)
    return model


def no_model_message(reasons: list[str]) -> str:
    why = "; ".join(" ".join(r.split()) for r in reasons)
    return f"no usable hand model ({MODEL_NAME}): {why}; {WAYS}"


def install_hand_model(path: Path | str | None = None, url: str | None = None,
                       from_wheel: bool = False) -> Path:
    """Put a verified hand model in the cache and return its path.

    ``path``: copy that file in. ``url``: download it. ``from_wheel``: build it from the
    mediapipe 0.10.21 wheel. None of them: keep a verified cached copy, else download it from
    default_url(), else build it from the wheel.
    """
    if sum((path is not None, url is not None, bool(from_wheel))) > 1:
        raise ValueError(f"give at most one of path, url, from_wheel; received: path={path!r}, "
                         f"url={url!r}, from_wheel={from_wheel!r}")
    if path is not None:
        return _install_file(Path(path))
    if url is not None:
        return _install_url(url)
    if from_wheel:
        return _install_wheel()
    model = _cached_if_recorded()
    if model is not None:
        log.info("hand model: %s (cached)", model)
        return model
    with _cache_lock():
        reasons = []
        model = _usable_cache(reasons)
        if model is not None:
            log.info("hand model: %s (cached)", model)
            return model
        for name, install in (("download", lambda: _install_url(default_url())), ("wheel", _install_wheel)):
            try:
                return install()
            except HandModelError as exc:
                reasons.append(f"{name}: {exc}")
                if name == "download":
                    log.info("%s; trying the %s wheel instead", exc, wheel.WHEEL_REQUIREMENT)
        raise HandModelError(no_model_message(reasons))


def hand_model_path(explicit: Path | str | None = None, *, download: bool = True) -> Path:
    """The hand model a stage should use: ``explicit`` if given (verified, not copied), else the
    verified cached copy, else (``download``) one fetched or built into the cache."""
    if explicit is not None:
        path = Path(explicit).expanduser()
        try:
            verify(path)
        except HandModelError as exc:
            raise HandModelError(f"{exc}; give another file, or leave the option out to use the one in "
                                 "the cache (`signwrite hand-model` puts one there)") from None
        log.info("hand model: %s (given)", path)
        return path
    if download:
        return install_hand_model()
    model = _cached_if_recorded()
    if model is None:
        with _cache_lock():
            reasons = []
            model = _usable_cache(reasons)
        if model is None:
            raise HandModelError(no_model_message(reasons + ["downloading was not allowed"]))
    log.info("hand model: %s (cached)", model)
    return model


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="signwrite hand-model",
        description=f"Put MediaPipe's hand model ({MODEL_NAME}) in the user cache ({cache_dir()}), "
                    "verified, and print its path. With no option: keep a verified cached copy, else "
                    "download it, else build it from the mediapipe 0.10.21 wheel.")
    way = p.add_mutually_exclusive_group()
    way.add_argument("path", nargs="?", type=Path, help=f"a {MODEL_NAME} you have: verified, then copied in")
    way.add_argument("--url", help=f"download it from URL (default: ${URL_ENV} or {HAND_MODEL_URL})")
    way.add_argument("--from-wheel", action="store_true",
                     help=f"build it from the networks inside the {wheel.WHEEL_REQUIREMENT} wheel on PyPI "
                          "(downloaded with pip, never installed)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing unless something goes wrong")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(argv)
    setup_logging(a.verbose)
    if a.quiet and not a.verbose:
        logging.getLogger().setLevel(logging.WARNING)

    def install() -> int:
        model = install_hand_model(a.path, a.url, a.from_wheel)
        if not a.quiet:
            print(model)
        return 0

    return run_stage("hand-model", install)


if __name__ == "__main__":
    sys.exit(main())
