"""Bind mounts on the real kernel, with and without the new mount API, in a
private mount namespace of a forked child (root only)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from dockyard.errors import KernelError
from dockyard.kernel import flags as K
from dockyard.kernel.linux import LinuxKernel
from dockyard.runtime.bundle import MountEntry
from dockyard.runtime.container_init import mount_one, open_root


class OldKernel(LinuxKernel):
    """Linux < 5.12: no open_tree/mount_setattr."""

    def bind_mount_at(self, *args: object) -> None:
        raise KernelError("open_tree", args, errno.ENOSYS)


def in_private_namespace(fn) -> str:  # noqa: ANN001
    """Run fn() in a forked child with its own mount namespace; its string result."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            LinuxKernel().unshare(K.CLONE_NEWNS)
            LinuxKernel().mount(None, "/", None, K.MS_REC | K.MS_PRIVATE, None)
            out = fn()
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            out = f"error: {exc!r}"
        os.write(w, out.encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    os.waitpid(pid, 0)
    return out


@pytest.mark.parametrize("kernel_class", [LinuxKernel, OldKernel])
def test_read_only_file_and_directory_binds(tmp_path: Path, kernel_class) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    root, src = tmp_path / "root", tmp_path / "src"
    root.mkdir()
    src.mkdir()
    (src / "f").write_text("x")
    kernel = kernel_class()

    def mount() -> str:
        root_fd = open_root(kernel, str(root))
        ro = K.MS_BIND | K.MS_REC | K.MS_RDONLY | K.MS_NOSUID
        mount_one(
            kernel, root_fd, MountEntry("/d/e", "", str(src), ro, "", K.MS_PRIVATE | K.MS_REC)
        )
        mount_one(kernel, root_fd, MountEntry("/h", "", str(src / "f"), ro, "", 0))
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
        found = []
        for line in lines:
            fields = line.split()
            if fields[4] in (f"{root}/d/e", f"{root}/h"):
                found.append(f"{fields[4][len(str(root)) :]} {fields[5]} {fields[6]}")
        return "\n".join(sorted(found))

    out = in_private_namespace(mount)
    assert [line.split()[0] for line in out.splitlines()] == ["/d/e", "/h"], out
    for line in out.splitlines():
        _where, options, tags = line.split()
        assert {"ro", "nosuid"} <= set(options.split(",")), line
        assert tags == "-", line  # no shared:/master: tag: private, as asked
