"""LinuxKernel's error reporting and read-only queries (no root needed)."""

from __future__ import annotations

import errno
import fcntl
import json
import os

import pytest

from dockyard.errors import KernelError
from dockyard.kernel.linux import LinuxKernel
from dockyard.kernel.trace import TracingKernel


def test_failed_calls_raise_kernel_error_with_call_args_and_errno(tmp_path) -> None:
    kernel = LinuxKernel()
    with pytest.raises(KernelError) as info:
        kernel.umount2(str(tmp_path / "not-mounted"), 0)
    assert info.value.syscall == "umount2"
    assert info.value.errno in (errno.EINVAL, errno.ENOENT, errno.EPERM)
    assert str(tmp_path / "not-mounted") in info.value.message
    with pytest.raises(KernelError) as info:
        kernel.setns(str(tmp_path / "no-such-netns"), 0x40000000)
    assert info.value.errno == errno.ENOENT


def test_cgroup_paths_and_missing_controller(tmp_path) -> None:
    kernel = LinuxKernel(cgroup_root=str(tmp_path))
    assert kernel.cgroup_dir("memory", "/dockyard/c1/") == f"{tmp_path}/memory/dockyard/c1"
    assert not kernel.cgroup_has("memory", "", "cgroup.procs")
    kernel.cgroup_create("memory", "dockyard/c1")
    with pytest.raises(KernelError):  # control files are never created by writing
        kernel.cgroup_write("memory", "dockyard/c1", "memory.nope", "1")
    (tmp_path / "memory/dockyard/c1/memory.limit_in_bytes").touch()
    kernel.cgroup_write("memory", "dockyard/c1", "memory.limit_in_bytes", "1048576")
    assert kernel.cgroup_read("memory", "dockyard/c1", "memory.limit_in_bytes") == "1048576"
    os.unlink(tmp_path / "memory/dockyard/c1/memory.limit_in_bytes")
    kernel.cgroup_remove("memory", "dockyard/c1")
    kernel.cgroup_remove("memory", "dockyard/c1")  # already gone: fine
    assert not (tmp_path / "memory/dockyard/c1").exists()


def test_capability_queries() -> None:
    kernel = LinuxKernel()
    assert kernel.cap_last() >= 37
    held = kernel.permitted_caps()
    assert all(name.startswith("CAP_") for name in held)
    if os.geteuid() != 0:
        assert "CAP_SYS_ADMIN" not in held


def test_trace_of_real_calls_is_json_friendly(tmp_path) -> None:
    tracer = TracingKernel(LinuxKernel())
    root = tracer.open_at(-100, str(tmp_path), os.O_PATH | os.O_DIRECTORY)
    tracer.mkdirat(root, "a", 0o755)
    tracer.symlinkat("a", root, "link")
    tracer.close(root)
    assert (tmp_path / "link").is_symlink() and (tmp_path / "a").is_dir()
    calls = tracer.to_json()
    assert [e["call"] for e in calls] == ["open_at", "mkdirat", "symlinkat", "close"]
    json.dumps(calls)


def test_mark_cloexec_from_leaves_only_lower_fds_to_an_exec() -> None:
    # In a child, so the test process's own fds keep their flags.
    low_r, low_w = os.pipe()
    high = fcntl.fcntl(low_r, fcntl.F_DUPFD, max(low_r, low_w) + 1)
    os.set_inheritable(low_r, True)
    os.set_inheritable(high, True)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            LinuxKernel().mark_cloexec_from(high)
            code = 0 if os.get_inheritable(low_r) and not os.get_inheritable(high) else 2
        finally:
            os._exit(code)
    try:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert os.get_inheritable(high)  # the parent's untouched
    finally:
        for fd in (low_r, low_w, high):
            os.close(fd)
