"""The monitor host's shared reactor: one container's failing callback ends that
container only; the others' callbacks of the same poll still run."""

from __future__ import annotations

import os

from dockyard.runtime.monitor import _Reactor
from dockyard.runtime.monitor_host import _ReactorView


class _Host:
    def __init__(self) -> None:
        self.crashes: list[tuple[object, Exception]] = []

    def crashed(self, monitor: object, exc: Exception) -> None:
        self.crashes.append((monitor, exc))


def test_a_failing_callback_is_reported_for_its_monitor_and_the_others_run() -> None:
    shared = _Reactor()
    host = _Host()
    bad_view, good_view = _ReactorView(shared, host), _ReactorView(shared, host)  # type: ignore[arg-type]
    bad_view.monitor, good_view.monitor = "bad", "good"  # type: ignore[assignment]
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    ran: list[str] = []

    def bad() -> None:
        ran.append("bad")
        raise ValueError("a monitor bug")

    def good() -> None:
        ran.append("good")
        os.read(r2, 10)

    try:
        bad_view.on_read(r1, bad)
        good_view.on_read(r2, good)
        os.write(w1, b"x")
        os.write(w2, b"y")
        shared.poll(1.0)
        assert sorted(ran) == ["bad", "good"]
        assert [(m, str(e)) for m, e in host.crashes] == [("bad", "a monitor bug")]
        # A forgotten fd is off the shared reactor (its number may be reused).
        bad_view.forget(r1)
        assert r1 not in shared.sel.get_map()
    finally:
        for fd in (r1, w1, r2, w2):
            os.close(fd)
