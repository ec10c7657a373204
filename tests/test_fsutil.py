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


def test_native_stderr_filter_drops_tensorflows_start_up_lines_and_keeps_the_rest(capfd):
    """What native code writes to file descriptor 2 in the block: TensorFlow's start-up noise
    goes, every other line comes out afterwards, in order, even when the block is interrupted."""
    from signwrite.process import native_stderr_filtered

    noise = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
             "I0000 00:00:1795313928.190716     708 port.cc:153] oneDNN custom operations are on.\n"
             "E0000 00:00:1795313931.784218     708 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n")
    with pytest.raises(KeyboardInterrupt):
        with native_stderr_filtered():
            os.write(2, b"first line of ours\n" + noise.encode())
            os.write(2, b"E0000 00:00:1.2     708 op_kernel.cc:9] a real native error\n")
            raise KeyboardInterrupt
    os.write(2, b"after\n")
    err = capfd.readouterr().err
    assert err == ("first line of ours\nE0000 00:00:1.2     708 op_kernel.cc:9] a real native error\n"
                   "after\n")
