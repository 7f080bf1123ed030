"""TracingKernel: times every call of another kernel.

This is the container's start trace: what the 2013 article dug out of Docker
with strace, Dockyard records by construction, since every system call goes
through a Kernel.
"""

from __future__ import annotations

import os
from time import perf_counter_ns

from dockyard.kernel.interface import Kernel

TYPE_CHECKING = False  # typing costs ~2 ms to import; annotations are strings here

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

# (call, args, duration ns, start ns): the start on CLOCK_MONOTONIC (perf_counter_ns on
# Linux), the clock every process of a start shares, so their traces line up.
TraceEntry = tuple[str, tuple[object, ...], int, int]

# DOCKYARD_START_TRACE=0 in the daemon's environment (inherited by its monitors)
# turns the start trace off: the bench's baseline for what recording costs.
TRACING = os.environ.get("DOCKYARD_START_TRACE", "1") != "0"


class TracingKernel(Kernel):
    """Delegates to `inner`; appends (call, args, duration ns, start ns) to `calls`.

    Failed calls are recorded too (their duration is what the failure cost).
    """

    def __init__(self, inner: Kernel) -> None:
        self.inner = inner
        self.calls: list[TraceEntry] = []

    def to_json(self) -> list[dict[str, object]]:
        return calls_to_json(self.calls)


def calls_to_json(calls: list[TraceEntry]) -> list[dict[str, object]]:
    """Trace entries as the start trace shows them: plain JSON values only."""
    return [
        {"call": c, "args": [_plain(a) for a in args], "ns": ns, "start": start}
        for c, args, ns, start in calls
    ]


def plain_value(value: object) -> object:
    """json.dumps's `default` for call arguments: bytes by their length, others by repr."""
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    return repr(value)


def _plain(value: object) -> object:
    if value is None or isinstance(value, (int, str, bool, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    return repr(value)


def _traced(name: str) -> Callable[..., Any]:
    def call(self: TracingKernel, *args: Any, **kwargs: Any) -> Any:
        start = perf_counter_ns()
        try:
            return getattr(self.inner, name)(*args, **kwargs)
        finally:
            self.calls.append(
                (name, args + tuple(kwargs.values()), perf_counter_ns() - start, start)
            )

    call.__name__ = name
    call.__qualname__ = f"TracingKernel.{name}"
    return call


# One traced delegate per Kernel method, so a method added to the interface is
# traced without touching this file.
for _name in Kernel.__abstractmethods__:
    setattr(TracingKernel, _name, _traced(_name))
TracingKernel.__abstractmethods__ = frozenset()
