"""Resolving and creating paths inside a root, on the real kernel (no root needed).

Each case runs twice: with openat2(RESOLVE_IN_ROOT) and with the fd-by-fd walk
used where openat2 is missing.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from dockyard.errors import KernelError, RuntimeFailure
from dockyard.kernel import flags as K
from dockyard.kernel import securejoin
from dockyard.kernel.fake import RecordingKernel
from dockyard.kernel.linux import LinuxKernel
from dockyard.kernel.securejoin import open_in_root, walk_in_root


class NoOpenat2(LinuxKernel):
    """A kernel older than 5.6 (ENOSYS), or a seccomp profile older than openat2 (EPERM)."""

    def __init__(self, err: int) -> None:
        super().__init__()
        self.err = err

    def open_in_root(self, root_fd: int, path: str, flags: int) -> int:
        raise KernelError("openat2", (root_fd, path), self.err)


@pytest.fixture(params=["openat2", "walk-enosys", "walk-eperm"])
def kernel(request, monkeypatch) -> LinuxKernel:
    monkeypatch.setattr(securejoin, "_openat2_missing", [])
    if request.param == "openat2":
        return LinuxKernel()
    return NoOpenat2(errno.ENOSYS if request.param == "walk-enosys" else errno.EPERM)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "real").mkdir(parents=True)
    (root / "etc").symlink_to("/../../../outside")  # absolute: relative to the container's root
    (root / "rel").symlink_to("../../real")
    (root / "loop").symlink_to("loop")
    (tmp_path / "host").mkdir()
    return root


def resolve(kernel: LinuxKernel, root: Path, path: str, create: str | None = None) -> str:
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        fd = open_in_root(kernel, root_fd, path, create)  # type: ignore[arg-type]
    finally:
        os.close(root_fd)
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def test_symlinks_and_dotdot_stay_inside(kernel, root: Path) -> None:
    (root / "outside").mkdir()
    (root / "outside" / "hosts").touch()
    assert resolve(kernel, root, "/etc/hosts") == str(root / "outside" / "hosts")
    (root / "real" / "x").mkdir()
    assert resolve(kernel, root, "/rel/x") == str(root / "real" / "x")
    assert resolve(kernel, root, "/../..") == str(root)
    assert resolve(kernel, root, "/real/../../..") == str(root)


def test_missing_parts_are_created_inside(kernel, root: Path) -> None:
    # /etc points at /outside, which does not exist yet: created in the root, not on the host.
    assert resolve(kernel, root, "/etc/a/b", "dir") == str(root / "outside" / "a" / "b")
    assert (root / "outside" / "a" / "b").is_dir()
    f = resolve(kernel, root, "/new/file", "file")
    assert f == str(root / "new" / "file") and (root / "new" / "file").is_file()
    # A dangling absolute symlink is created where it points, inside the root.
    (root / "real" / "dangling").symlink_to("/../elsewhere/target")
    assert resolve(kernel, root, "/real/dangling", "file") == str(root / "elsewhere" / "target")
    assert not (root.parent / "elsewhere").exists()


def test_a_symlink_to_a_host_dir_is_resolved_in_the_root(kernel, root: Path) -> None:
    host = root.parent / "host"
    (root / "swap").symlink_to(host)  # what a racing container plants
    got = resolve(kernel, root, "/swap/made", "dir")
    assert got == str(root / str(host).lstrip("/") / "made")
    assert not (host / "made").exists()


def test_loops_and_missing_paths_fail(kernel, root: Path) -> None:
    with pytest.raises((KernelError, RuntimeFailure)):
        resolve(kernel, root, "/loop/x")
    with pytest.raises(KernelError) as info:
        resolve(kernel, root, "/real/nope")
    assert info.value.errno == errno.ENOENT


def test_walk_closes_what_it_opened(root: Path) -> None:
    kernel = LinuxKernel()
    before = set(os.listdir("/proc/self/fd"))
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    (root / "real" / "d").mkdir()
    fd = walk_in_root(kernel, root_fd, "/rel/d/../d")
    assert os.readlink(f"/proc/self/fd/{fd}") == str(root / "real" / "d")
    os.close(fd)
    os.close(root_fd)
    assert set(os.listdir("/proc/self/fd")) == before


def test_openat2_is_used_when_present(root: Path) -> None:
    kernel = LinuxKernel()
    root_fd = kernel.open_at(K.AT_FDCWD, str(root), os.O_PATH | os.O_DIRECTORY)
    try:
        fd = kernel.open_in_root(root_fd, "/rel/../real", os.O_PATH)
        assert os.readlink(f"/proc/self/fd/{fd}") == str(root / "real")
        os.close(fd)
    finally:
        os.close(root_fd)


class Racer(RecordingKernel):
    """A container changing the tree between the runtime's calls: `script` maps a
    call name to the errnos its next calls meet."""

    def __init__(self, script: dict[str, list[int]], **kw) -> None:
        super().__init__(**kw)
        self.script = script

    def _rec(self, name: str, *args: object) -> None:
        super()._rec(name, *args)
        pending = self.script.get(name)
        if pending:
            raise KernelError(name, args, pending.pop(0))


def test_a_racer_that_wins_the_create_only_costs_a_retry() -> None:
    # mkdirat meets EEXIST (someone made it first), then ENOENT (its parent was
    # removed): each time the path is resolved again from the root.
    k = Racer({"mkdirat": [errno.EEXIST, errno.ENOENT]}, absent={"/r/x"})
    root = k.open_at(K.AT_FDCWD, "/r", os.O_PATH | os.O_DIRECTORY)
    fd = open_in_root(k, root, "/x", "dir")
    assert k.path_of(fd) == "/r/x"
    assert [n for n in k.names() if n in ("open_in_root", "mkdirat")] == [
        "open_in_root", "open_in_root", "mkdirat",  # ENOENT; the parent; EEXIST
        "open_in_root", "open_in_root", "mkdirat",  # ENOENT; the parent; ENOENT
        "open_in_root", "open_in_root", "mkdirat",  # ENOENT; the parent; made
        "open_in_root",                             # the result, resolved in the root
    ]  # fmt: skip
    assert k.open_fds == {root, fd}


def test_a_racer_that_never_stops_gets_an_error_not_an_escape() -> None:
    k = Racer({"mkdirat": [errno.ENOENT] * 100}, absent={"/r/x"})
    root = k.open_at(K.AT_FDCWD, "/r", os.O_PATH | os.O_DIRECTORY)
    with pytest.raises(RuntimeFailure, match="kept changing"):
        open_in_root(k, root, "/x", "dir")
    assert k.open_fds == {root}
