"""COPY and ADD: files written into an overlay of the image, the changes a layer.

The image's layers are mounted (overlay, with a fresh upper dir) on a
root-only scratch directory; the destination is resolved inside that root by
the kernel (symlinks of the image stay inside it), missing directories are
made, and the files are unpacked there by the layer unpacker. The upper dir
then holds exactly the step's changes, as a container's would.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from typing import BinaryIO

from dockyard.errors import InvalidParameter, KernelError
from dockyard.image.tarsafe import unpack_layer
from dockyard.kernel.flags import MNT_DETACH
from dockyard.kernel.interface import Kernel
from dockyard.runtime.securejoin import open_in_root

_EMPTY = "empty-lower"


@contextlib.contextmanager
def mounted_image(
    kernel: Kernel, lowers: list[str], scratch: str, remove: bool = True
) -> Iterator[tuple[int, str]]:
    """(O_PATH fd of the root, upper dir) of an overlay of `lowers` (top-most
    first) with an empty upper dir, under `scratch`; unmounted after, and removed
    unless `remove` is False (a step's scratch goes with the build's directory,
    which is deleted after the answer: unlinking its files can take longer than
    the step)."""
    os.makedirs(scratch, mode=0o700)
    upper, work, root = (os.path.join(scratch, d) for d in ("upper", "work", "root"))
    for d in (upper, work, root):
        os.mkdir(d, 0o755)
    if not lowers:  # FROM scratch: overlay needs one lower dir
        empty = os.path.join(scratch, _EMPTY)
        os.mkdir(empty, 0o755)
        lowers = [empty]
    try:
        kernel.mount_overlay(root, lowers, upper, work)
        try:
            fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                yield fd, upper
            finally:
                os.close(fd)
        finally:
            kernel.umount2(root, MNT_DETACH)
    finally:
        if remove:
            shutil.rmtree(scratch, ignore_errors=True)


def make_dirs(kernel: Kernel, root_fd: int, path: str, owner: tuple[int, int] | None) -> None:
    """mkdir -p inside the root; directories made here get `owner` (--chown)."""
    parts = [p for p in path.split("/") if p]
    for i in range(len(parts)):
        prefix = "/" + "/".join(parts[: i + 1])
        try:
            os.close(kernel.open_in_root(root_fd, prefix, os.O_PATH))
            continue
        except KernelError:
            pass
        fd = open_in_root(kernel, root_fd, prefix, "dir")
        try:
            if owner is not None:
                os.chown(f"/proc/self/fd/{fd}", *owner)
        finally:
            os.close(fd)


def is_dir_in_root(kernel: Kernel, root_fd: int, path: str) -> bool:
    try:
        fd = kernel.open_in_root(root_fd, path, os.O_PATH)
    except KernelError:
        return False
    try:
        import stat

        return stat.S_ISDIR(os.fstat(fd).st_mode)
    finally:
        os.close(fd)


def extract_into(
    kernel: Kernel, root_fd: int, directory: str, produce: Callable[[BinaryIO], None]
) -> None:
    """Unpack the tar that `produce` writes into `directory` (inside the root)."""
    fd = kernel.open_in_root(root_fd, directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        read_fd, write_fd = os.pipe()
        failure: list[BaseException] = []

        def writer() -> None:
            try:
                with open(write_fd, "wb") as out:
                    produce(out)
            except BrokenPipeError:
                pass
            except BaseException as e:  # handed to the caller below
                failure.append(e)

        thread = threading.Thread(target=writer, name="build-copy-tar", daemon=True)
        thread.start()
        try:
            with open(read_fd, "rb") as stream:
                unpack_layer(stream, directory, allow_devices=False, dest_fd=fd)
        except BaseException:
            thread.join()
            if failure:
                raise failure[0] from None
            raise
        thread.join()
        if failure:
            raise failure[0]
    finally:
        os.close(fd)


def extract_archive(kernel: Kernel, root_fd: int, directory: str, archive: str) -> None:
    """ADD of a local tar archive: its entries, owners kept, into `directory`."""
    fd = kernel.open_in_root(root_fd, directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with open(archive, "rb") as f:
            unpack_layer(f, directory, allow_devices=False, dest_fd=fd)
    except InvalidParameter as e:
        raise InvalidParameter(f"ADD failed: {e.message}") from None
    finally:
        os.close(fd)


_MOUNTINFO_ESCAPES = {" ": "\\040", "\t": "\\011", "\n": "\\012", "\\": "\\134"}


def unmount_under(path: str) -> None:
    """Detach any overlay a step left mounted below `path` (never delete through one)."""
    from dockyard.kernel.linux import LinuxKernel

    points = []
    # mountinfo's escapes (octal for space, tab, newline, backslash): lines that
    # cannot hold `path` are passed over without being split and decoded each.
    escaped = "".join(_MOUNTINFO_ESCAPES.get(c, c) for c in path) + "/"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if escaped not in line:
                continue
            point = line.split()[4].encode().decode("unicode_escape")
            if point.startswith(path + "/"):
                points.append(point)
    for point in sorted(points, key=len, reverse=True):
        with contextlib.suppress(KernelError):
            LinuxKernel().umount2(point, MNT_DETACH)
