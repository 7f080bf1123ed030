"""One daemon per data root: the lock file names the daemon that holds it."""

from __future__ import annotations

import os

import pytest

from dockyard.daemon import DataRootLock
from dockyard.errors import DockyardError


def test_the_lock_names_its_holder_and_a_second_daemon_is_refused(tmp_path):
    # What an earlier daemon with a longer pid left: overwritten in place, then cut.
    (tmp_path / "dockyard.lock").write_text("123456789012\n")
    first = DataRootLock(str(tmp_path))
    first.acquire()
    assert (tmp_path / "dockyard.lock").read_text() == f"{os.getpid()}\n"
    with pytest.raises(DockyardError, match=f"another dockyard daemon \\(pid {os.getpid()}\\)"):
        DataRootLock(str(tmp_path)).acquire()
    os.close(first._fd)  # the daemon holds it for its life; the test process goes on
