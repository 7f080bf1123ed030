"""A test daemon with the web dashboard on (`--ui 127.0.0.1:PORT`), for the
dashboard's access tests and its browser tests: one per module, checked for
leftovers like the session's daemon."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

from tests.conftest import (
    ContainerDirWatch,
    Daemon,
    force_clean,
    free_port,
    new_daemon,
    require_root,
    shut_down,
)

_URL = re.compile(r"open (http://127\.0\.0\.1:(\d+)/\?token=([0-9a-f]+))")


@dataclass
class Dashboard:
    daemon: Daemon
    url: str  # as the daemon logged it, token included
    port: int
    token: str

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def cookie(self) -> str:
        return f"dockyard-ui-{self.port}={self.token}"


def dashboard_daemon(import_busybox: bool = True) -> Iterator[Dashboard]:
    require_root()
    port = free_port()
    d = new_daemon(extra_args=["--ui", f"127.0.0.1:{port}"])
    watch = None
    try:
        d.start()
        watch = ContainerDirWatch(d.data_root)
        if import_busybox:
            d.import_busybox()
        deadline = time.monotonic() + 10
        found = None
        while found is None and time.monotonic() < deadline:
            found = _URL.search(d.log_path.read_text(errors="replace"))
            time.sleep(0.05)
        assert found, "the daemon did not log the dashboard's URL\n" + d.log_tail()
        assert int(found.group(2)) == port
        yield Dashboard(d, found.group(1), port, found.group(3))
    finally:
        problems = shut_down(d, watch)
        log = d.log_tail()
        force_clean(d.base)
        assert not problems, (
            "the dashboard daemon left things behind:\n" + "\n".join(problems) + log
        )
