"""TracingKernel and RecordingKernel: the start trace and the unit-test fake."""

from __future__ import annotations

import errno
import json

import pytest

from dockyard.errors import KernelError
from dockyard.kernel import flags as K
from dockyard.kernel.fake import RecordingKernel
from dockyard.kernel.interface import Kernel
from dockyard.kernel.trace import TracingKernel


def test_tracing_kernel_times_every_call_and_delegates() -> None:
    inner = RecordingKernel()
    tracer = TracingKernel(inner)
    tracer.unshare(K.CLONE_NEWNS)
    tracer.mount("proc", "/proc", "proc", K.MS_NOSUID, None)
    assert tracer.fork() == 1001  # the inner kernel's answer comes back
    assert inner.names() == ["unshare", "mount", "fork"]
    assert [c for c, _, _, _ in tracer.calls] == ["unshare", "mount", "fork"]
    assert all(isinstance(ns, int) and ns >= 0 for _, _, ns, _ in tracer.calls)
    # Starts on the monotonic clock, in order, each call after the previous one's end.
    starts = [(start, ns) for _, _, ns, start in tracer.calls]
    assert all(a + d <= b for (a, d), (b, _) in zip(starts, starts[1:], strict=False))
    entry = tracer.to_json()[1]
    assert entry["call"] == "mount" and entry["args"] == [
        "proc",
        "/proc",
        "proc",
        K.MS_NOSUID,
        None,
    ]
    json.dumps(tracer.to_json())


def test_tracing_kernel_records_failed_calls() -> None:
    tracer = TracingKernel(RecordingKernel(fail={"pivot_root": errno.EINVAL}))
    with pytest.raises(KernelError) as info:
        tracer.pivot_root(".", ".")
    assert info.value.errno == errno.EINVAL
    assert "pivot_root('.', '.')" in info.value.message
    assert tracer.calls[0][0] == "pivot_root"


def test_every_interface_method_is_traced_and_faked() -> None:
    # A method added to Kernel must exist on all implementations.
    for name in Kernel.__abstractmethods__:
        assert callable(getattr(TracingKernel(RecordingKernel()), name))
    TracingKernel(RecordingKernel())
    RecordingKernel()


def test_cap_names() -> None:
    assert K.cap_number("CAP_SYS_ADMIN") == 21
    assert K.cap_number("net_admin") == 12
    with pytest.raises(ValueError):
        K.cap_number("CAP_NOPE")
