"""signwrite.hand_model: getting, verifying and caching MediaPipe's hand_landmarker.task.

Every test has its own cache folder (SIGNWRITE_CACHE_DIR), a download URL on a closed local
port and a wheel step that fails, unless it says otherwise: nothing here uses the internet
or pip. Real model bytes come from the real cache or /tmp/mpdl; without them those tests skip.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import socket
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from signwrite import cli, hand_model, hand_model_check, hand_model_wheel
from signwrite.errors import HandModelError

REAL_CANDIDATES = (hand_model.cached_model(), Path("/tmp/mpdl/hand_landmarker.task"))  # before any env patch


@pytest.fixture(scope="session")
def real_bytes() -> bytes:
    for p in REAL_CANDIDATES:
        if p.is_file():
            data = p.read_bytes()
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                if set(hand_model_check.MEMBERS) <= set(zf.namelist()):
                    return data
    pytest.skip("no real hand_landmarker.task in the user cache or /tmp/mpdl "
                "(run `signwrite hand-model` once to get one)")


@pytest.fixture(scope="session")
def networks(real_bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(real_bytes)) as zf:
        return {m: zf.read(m) for m in hand_model_check.MEMBERS}


@pytest.fixture(scope="session")
def closed_port_url():
    """A URL on 127.0.0.1 whose port refuses every connection: bound by this process for the
    whole session but never listening, so no other program can take it in the meantime
    (a port that is bound, read and closed again may be anyone's by the time it is used)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{s.getsockname()[1]}/hand_landmarker.task"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch, closed_port_url):
    cache = tmp_path / "cache"
    monkeypatch.setenv("SIGNWRITE_CACHE_DIR", str(cache))
    monkeypatch.setenv("SIGNWRITE_HAND_MODEL_URL", closed_port_url)

    def no_pip(dest):
        raise HandModelError("pip is not used in tests")

    monkeypatch.setattr(hand_model_wheel, "download_wheel", no_pip)
    return cache


def no_test_load(monkeypatch):
    """From here on, MediaPipe loading a model fails the test."""
    def fail(path, name):
        raise AssertionError(f"unexpected test load of {name}")

    monkeypatch.setattr(hand_model_check, "try_load", fail)


def cache_leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if p.name != ".lock") if cache.exists() else []


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def corrupt(data: bytes) -> bytes:
    mid = len(data) // 2  # inside the second network's stored bytes
    return data[:mid] + bytes(b ^ 0xFF for b in data[mid:mid + 64]) + data[mid + 64:]


def zip_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def server(real_bytes):
    """A local HTTP server: /ok the real model, /cutoff half of it under the full length,
    /half half of it (an honest length), /page an HTML page; anything else a 404."""
    routes = {
        "/ok": (real_bytes, len(real_bytes)),
        "/cutoff": (real_bytes[: len(real_bytes) // 2], len(real_bytes)),
        "/half": (real_bytes[: len(real_bytes) // 2], len(real_bytes) // 2),
        "/page": (b"<html>not here</html>", 21),
    }
    hits: dict[str, int] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits[self.path] = hits.get(self.path, 0) + 1
            if self.path not in routes:
                self.send_error(404)
                return
            body, length = routes[self.path]
            self.send_response(200)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.url = lambda path: f"http://127.0.0.1:{httpd.server_address[1]}{path}"
    httpd.hits = hits
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    assert hand_model.cached_model() == tmp_path / "cache" / "hand_landmarker.task"
    monkeypatch.delenv("SIGNWRITE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hand_model.cache_dir() == tmp_path / "xdg" / "signwrite"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert hand_model.cache_dir() == tmp_path / "home" / ".cache" / "signwrite"


def test_a_good_file_given_is_verified_and_used_in_place(tmp_path, real_bytes, isolated):
    given = tmp_path / "mine.task"
    given.write_bytes(real_bytes)
    hand_model.verify(given)
    assert hand_model.hand_model_path(given, download=False) == given
    assert cache_leftovers(isolated) == []  # not copied, no sidecar written anywhere
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.task"]


def bad_files(real: bytes, nets: dict[str, bytes]) -> dict[str, tuple[bytes, str]]:
    return {
        "truncated": (real[: len(real) // 2], "not a whole zip file, or cut off"),
        "corrupt": (corrupt(real), "does not match its checksum"),
        "not-a-zip": (b"<html>sign in</html>", "not a whole zip file"),
        "one-network": (zip_of({"hand_detector.tflite": nets["hand_detector.tflite"]}),
                        "the zip has no hand_landmarks_detector.tflite"),
        "garbage-networks": (zip_of({m: b"\0" * 4096 for m in hand_model_check.MEMBERS}),
                             "MediaPipe cannot load it as a hand model"),
    }


@pytest.mark.parametrize("kind", ["truncated", "corrupt", "not-a-zip", "one-network", "garbage-networks"])
def test_bad_files_are_refused_in_one_line(kind, tmp_path, real_bytes, networks, isolated):
    data, why = bad_files(real_bytes, networks)[kind]
    bad = tmp_path / f"{kind}.task"
    bad.write_bytes(data)
    with pytest.raises(HandModelError) as verified:
        hand_model.verify(bad)
    with pytest.raises(HandModelError) as used:
        hand_model.hand_model_path(bad)
    with pytest.raises(HandModelError) as installed:
        hand_model.install_hand_model(path=bad)
    for exc in (verified.value, used.value, installed.value):
        assert "\n" not in str(exc) and str(exc).startswith(f"{bad}: ") and why in str(exc)
    assert cache_leftovers(isolated) == []


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(HandModelError, match=r"nope\.task: no such file"):
        hand_model.verify(tmp_path / "nope.task")


def test_cached_copy_is_loaded_once_then_checked_by_sha256(real_bytes, isolated, monkeypatch):
    model = hand_model.cached_model()
    isolated.mkdir()
    model.write_bytes(real_bytes)
    hand_model.verify(model)  # no record yet: a full check, then the record
    assert (isolated / "hand_landmarker.task.sha256").read_text() == f"{sha(real_bytes)}  hand_landmarker.task\n"
    no_test_load(monkeypatch)
    hand_model.verify(model)
    assert hand_model.hand_model_path(download=False) == model


@pytest.mark.parametrize("kind", ["truncated", "corrupt"])
def test_a_damaged_cache_file_with_a_stale_sha256_is_refused_without_loading(
        kind, real_bytes, networks, isolated, monkeypatch):
    model = hand_model.cached_model()
    isolated.mkdir()
    model.write_bytes(bad_files(real_bytes, networks)[kind][0])
    (isolated / "hand_landmarker.task.sha256").write_text(f"{sha(real_bytes)}  hand_landmarker.task\n")
    no_test_load(monkeypatch)
    with pytest.raises(HandModelError, match="sha256 is not the one recorded") as exc:
        hand_model.verify(model)
    assert str(exc.value).startswith(f"{model}: damaged or replaced")
    with pytest.raises(HandModelError) as none:
        hand_model.hand_model_path(download=False)
    line = str(none.value)
    assert "\n" not in line
    assert line.startswith("no usable hand model (hand_landmarker.task): the cached copy was refused")
    assert cache_leftovers(isolated) == []  # refused, so removed: never used


def test_a_damaged_cache_file_without_a_record_is_refused(real_bytes, isolated):
    isolated.mkdir()
    hand_model.cached_model().write_bytes(corrupt(real_bytes))
    with pytest.raises(HandModelError, match="does not match its checksum"):
        hand_model.verify(hand_model.cached_model())
    assert not (isolated / "hand_landmarker.task.sha256").exists()


def test_install_from_a_file_replaces_the_cache_only_with_a_good_one(tmp_path, real_bytes, isolated, monkeypatch):
    given = tmp_path / "mine.task"
    given.write_bytes(real_bytes)
    model = hand_model.install_hand_model(path=given)
    assert model == isolated / "hand_landmarker.task" and model.read_bytes() == real_bytes
    assert cache_leftovers(isolated) == ["hand_landmarker.task", "hand_landmarker.task.sha256"]
    bad = tmp_path / "bad.task"
    bad.write_bytes(corrupt(real_bytes))
    with pytest.raises(HandModelError, match="does not match its checksum"):
        hand_model.install_hand_model(path=bad)
    assert model.read_bytes() == real_bytes  # the good copy stays, and no temp is left
    assert cache_leftovers(isolated) == ["hand_landmarker.task", "hand_landmarker.task.sha256"]
    no_test_load(monkeypatch)
    assert hand_model.hand_model_path() == model


def test_at_most_one_way_at_a_time(tmp_path):
    with pytest.raises(ValueError, match="received: path="):
        hand_model.install_hand_model(path=tmp_path / "a.task", from_wheel=True)


def test_download_from_a_url(server, real_bytes, isolated):
    model = hand_model.install_hand_model(url=server.url("/ok"))
    assert model.read_bytes() == real_bytes
    assert hand_model_check.recorded_sha(model) == sha(real_bytes)
    assert server.hits == {"/ok": 1}


@pytest.mark.parametrize("path, why", [
    ("/missing", "HTTP error 404"),
    ("/cutoff", "the download was cut off ("),
    ("/half", "not a whole zip file, or cut off"),
    ("/page", "not a whole zip file"),
])
def test_a_bad_download_names_the_url_and_leaves_nothing(path, why, server, real_bytes, isolated):
    url = server.url(path)
    with pytest.raises(HandModelError) as exc:
        hand_model.install_hand_model(url=url)
    assert str(exc.value).startswith(f"{url}: ") and why in str(exc.value) and "\n" not in str(exc.value)
    if path == "/cutoff":
        assert f"{len(real_bytes) // 2} of {len(real_bytes)} bytes" in str(exc.value)
    assert cache_leftovers(isolated) == []


def test_the_automatic_path_downloads_from_the_env_url_once(server, real_bytes, monkeypatch, caplog):
    monkeypatch.setenv("SIGNWRITE_HAND_MODEL_URL", server.url("/ok"))
    caplog.set_level("INFO", logger="signwrite.hand_model")
    model = hand_model.hand_model_path()
    assert model.read_bytes() == real_bytes and server.hits == {"/ok": 1}
    assert f"downloaded {server.url('/ok')} into {model}" in caplog.text
    no_test_load(monkeypatch)
    assert hand_model.hand_model_path() == model
    assert server.hits == {"/ok": 1}  # the second call used the cache


def fake_wheel(path: Path, networks: dict[str, bytes], *, leave_out: str | None = None) -> Path:
    members = {wheel_member: networks[name] for name, wheel_member in hand_model_wheel.WHEEL_NETWORKS.items()
               if wheel_member != leave_out}
    members["mediapipe/__init__.py"] = b""
    path.write_bytes(zip_of(members))
    return path


def test_build_from_wheel(tmp_path, networks):
    out = hand_model_wheel.build_from_wheel(fake_wheel(tmp_path / "mediapipe.whl", networks), tmp_path / "built.task")
    assert out == tmp_path / "built.task"
    with zipfile.ZipFile(out) as zf:
        assert {m: zf.read(m) for m in zf.namelist()} == networks
    hand_model.verify(out)  # MediaPipe loads the bundle


def test_build_from_a_wheel_without_the_networks(tmp_path, networks):
    member = hand_model_wheel.WHEEL_NETWORKS["hand_landmarks_detector.tflite"]
    wheel = fake_wheel(tmp_path / "mediapipe.whl", networks, leave_out=member)
    with pytest.raises(HandModelError, match=f"no {member} inside"):
        hand_model_wheel.build_from_wheel(wheel, tmp_path / "built.task")
    assert not (tmp_path / "built.task").exists()


def test_the_automatic_path_falls_back_to_the_wheel(tmp_path, networks, monkeypatch, caplog):
    def wheel_download(dest):
        return fake_wheel(Path(dest) / "mediapipe-0.10.21-py3-none-any.whl", networks)

    monkeypatch.setattr(hand_model_wheel, "download_wheel", wheel_download)
    caplog.set_level("INFO", logger="signwrite.hand_model")
    model = hand_model.hand_model_path()
    with zipfile.ZipFile(model) as zf:
        assert {m: zf.read(m) for m in zf.namelist()} == networks
    assert "Connection refused" in caplog.text or "cannot be reached" in caplog.text
    assert f"built from mediapipe-0.10.21-py3-none-any.whl into {model}" in caplog.text


def test_cli_prints_the_cached_path(tmp_path, real_bytes, isolated, capsys):
    given = tmp_path / "mine.task"
    given.write_bytes(real_bytes)
    assert "hand-model" in cli.STAGES
    assert cli.main(["hand-model", str(given)]) == 0
    assert capsys.readouterr().out == f"{isolated / 'hand_landmarker.task'}\n"
    assert hand_model.main(["--quiet"]) == 0
    assert capsys.readouterr().out == ""


def test_cli_one_error_line_when_nothing_works(isolated, capsys):
    url = os.environ["SIGNWRITE_HAND_MODEL_URL"]
    assert hand_model.main([]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("signwrite hand-model: error:")]
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("signwrite hand-model: error: no usable hand model (hand_landmarker.task): "
                           f"none in the cache ({isolated / 'hand_landmarker.task'})")
    assert f"download: {url}: cannot be reached" in line and "wheel: pip is not used in tests" in line
    for way in ("PATH", "--url URL", "--from-wheel"):
        assert f"`signwrite hand-model {way}`" in line
    assert cache_leftovers(isolated) == []


def child_env(**extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(extra)
    return env


def test_two_processes_installing_at_once(server, real_bytes, isolated):
    env = child_env(SIGNWRITE_HAND_MODEL_URL=server.url("/ok"))
    cmd = [sys.executable, "-m", "signwrite.hand_model"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    model = isolated / "hand_landmarker.task"
    for rc, out, err in results:
        assert (rc, out) == (0, f"{model}\n"), err
    assert server.hits == {"/ok": 1}  # the second waited for the first and used its copy
    assert model.read_bytes() == real_bytes
    assert cache_leftovers(isolated) == ["hand_landmarker.task", "hand_landmarker.task.sha256"]
    hand_model_check.check_bundle(model, str(model))
    hand_model_check.try_load(model, str(model))


def test_the_cached_fast_path_imports_no_tensorflow(tmp_path, real_bytes, isolated):
    given = tmp_path / "mine.task"
    given.write_bytes(real_bytes)
    hand_model.install_hand_model(path=given)
    record = (isolated / "hand_landmarker.task.sha256").read_text()
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "signwrite.hand_model", "--quiet"],
                          env=child_env(), capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stdout) == (0, "")
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    assert "signwrite.fsutil" in imported  # the listing is real
    assert not {m for m in imported if m.split(".")[0] in ("tensorflow", "mediapipe")}
    assert (isolated / "hand_landmarker.task.sha256").read_text() == record
