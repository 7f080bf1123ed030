"""Unit-test fixtures shared by the image tests."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

import pytest

from dockyard.image import tarsafe
from dockyard.kernel.fake import RecordingKernel
from dockyard.kernel.interface import Kernel

ROOT = os.geteuid() == 0


@pytest.fixture
def unpack_kernel(monkeypatch: pytest.MonkeyPatch) -> Iterator[Kernel]:
    """The kernel layers are unpacked with: the real one as root; without root the
    recording one, so chown, mknod and trusted xattrs are recorded instead of done
    while path resolution and every other file operation is real (DESIGN.md: unit tests without root)."""
    if ROOT:
        yield tarsafe.default_kernel()
        return
    kernel = RecordingKernel(real_files=True)
    monkeypatch.setattr(tarsafe, "_KERNEL", [kernel])
    yield kernel


class Privileged:
    """What chown, mknod and xattrs left on a path: read from disk as root, and
    from the recording kernel's calls otherwise (where they were only recorded)."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel

    def _calls(self, name: str) -> list[tuple[object, ...]]:
        return self.kernel.find(name) if isinstance(self.kernel, RecordingKernel) else []

    def owner(self, path: object) -> tuple[int, int]:
        if ROOT:
            st = os.lstat(path)  # type: ignore[arg-type]
            return st.st_uid, st.st_gid
        real = _real(path)
        found = [(u, g) for p, u, g in self._calls("fchown") + self._calls("lchownat") if p == real]
        return found[-1]

    def xattr(self, path: object, name: str) -> bytes | None:
        if ROOT:
            try:
                return os.getxattr(path, name, follow_symlinks=False)  # type: ignore[arg-type]
            except OSError:
                return None
        real = _real(path)
        found = [v for p, n, v, _ in self._calls("setxattr") if p == real and n == name]
        return found[-1] if found else None

    def device(self, path: object) -> tuple[int, int, int] | None:
        """(S_IFCHR/S_IFBLK, major, minor) of a device node, None for anything else."""
        st = os.lstat(path)  # type: ignore[arg-type]
        if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            return stat.S_IFMT(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev)
        if ROOT:
            return None
        real = _real(path)
        for where, name, mode, major, minor in self._calls("mknodat"):
            if os.path.join(str(where), str(name)) == real:
                return stat.S_IFMT(int(mode)), int(major), int(minor)  # type: ignore[call-overload]
        return None


def _real(path: object) -> str:
    """The path as the kernel reports an fd's: parents resolved, not the entry itself
    (it may be a symlink)."""
    head, tail = os.path.split(os.fspath(path))  # type: ignore[call-overload]
    return os.path.join(os.path.realpath(head), tail)


@pytest.fixture
def privileged(unpack_kernel: Kernel) -> Privileged:
    return Privileged(unpack_kernel)
