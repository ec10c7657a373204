import os
import stat

import pytest

from signwrite import fsutil
from signwrite.errors import SignwriteError


def test_atomic_write_leaves_no_temp_and_normal_permissions(tmp_path):
    target = tmp_path / "sub" / "out.json"
    fsutil.write_json(target, {"a": 1})
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert stat.S_IMODE(target.stat().st_mode) == fsutil.FILE_MODE
    assert fsutil.FILE_MODE & stat.S_IRGRP  # readable by others under the usual umask 022
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with fsutil.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_full_disk_becomes_a_clear_error(tmp_path):
    target = tmp_path / "x.bin"
    with pytest.raises(SignwriteError, match="disk is full"):
        with fsutil.atomic_path(target):
            raise OSError(28, "No space left on device")
    assert not list(tmp_path.iterdir())


def test_lock_refuses_a_second_holder(tmp_path):
    with fsutil.folder_lock(tmp_path, "fetch"):
        with pytest.raises(SignwriteError, match="another 'fetch' run"):
            with fsutil.folder_lock(tmp_path, "fetch"):
                pass
    with fsutil.folder_lock(tmp_path, "fetch"):  # released again
        pass


def test_remove_stale_temps(tmp_path):
    stale = fsutil.temp_path_for(tmp_path / "a" / "clip.mp4")
    keep = tmp_path / "a" / "clip.mp4"
    keep.write_text("x")
    assert stale.exists()
    assert fsutil.remove_stale_temps(tmp_path) == 1
    assert not stale.exists() and keep.exists()
    assert os.listdir(tmp_path / "a") == ["clip.mp4"]
