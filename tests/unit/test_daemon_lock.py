"""One daemon per data root: the lock file names the daemon that holds it."""

from __future__ import annotations

import os

import pytest

from dockyard.daemon import DataRootLock
from dockyard.errors import DockyardError
from dockyard.kernel.fake import RecordingKernel
from dockyard.kernel.linux import LinuxKernel


def test_the_lock_names_its_holder_and_a_second_daemon_is_refused(tmp_path):
    # What an earlier daemon with a longer pid left: overwritten in place, then cut.
    (tmp_path / "dockyard.lock").write_text("123456789012\n")
    first = DataRootLock(str(tmp_path), LinuxKernel())
    first.acquire()
    assert (tmp_path / "dockyard.lock").read_text() == f"{os.getpid()}\n"
    with pytest.raises(DockyardError, match=f"another dockyard daemon \\(pid {os.getpid()}\\)"):
        DataRootLock(str(tmp_path), LinuxKernel()).acquire()
    os.close(first._fd)  # the daemon holds it for its life; the test process goes on


def test_the_lock_is_the_kernels_and_a_held_one_refuses_the_start(tmp_path):
    """The flock goes through kernel/ (recorded by the fake): a lock another daemon
    holds refuses the start with that daemon's pid, and the lock file stays as it was."""
    (tmp_path / "dockyard.lock").write_text("4242\n")
    kernel = RecordingKernel()
    kernel.locks_held_elsewhere = True
    with pytest.raises(DockyardError, match=r"another dockyard daemon \(pid 4242\)"):
        DataRootLock(str(tmp_path), kernel).acquire()
    assert [name for name, _ in kernel.calls] == ["try_lock"]
    assert (tmp_path / "dockyard.lock").read_text() == "4242\n"
    free = RecordingKernel()
    lock = DataRootLock(str(tmp_path), free)
    lock.acquire()
    assert [name for name, _ in free.calls] == ["try_lock"]
    assert (tmp_path / "dockyard.lock").read_text() == f"{os.getpid()}\n"
    os.close(lock._fd)
