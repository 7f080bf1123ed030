"""Where a build's time goes: seconds per phase (context upload, parse, cache
look-ups, COPY checksum and copy, RUN container create/run/remove, layer
commit, tagging), summed over its steps.

The daemon appends one JSON line per build to the file named by the
environment variable DOCKYARD_BUILD_PROFILE when it is set (bench/build_bench.py
reads it); otherwise the phases are only logged at debug level.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator

log = logging.getLogger("dockyard.build")

PROFILE_ENV = "DOCKYARD_BUILD_PROFILE"


class BuildProfile:
    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self._start = time.perf_counter()

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        self.phases[name] = self.phases.get(name, 0.0) + seconds

    def finish(self, nocache: bool, ok: bool) -> None:
        self.phases["total (daemon)"] = time.perf_counter() - self._start
        log.debug("build phases: %s", self.phases)
        path = os.environ.get(PROFILE_ENV)
        if not path:
            return
        record = {"nocache": nocache, "ok": ok, "phases": self.phases}
        with contextlib.suppress(OSError), open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
