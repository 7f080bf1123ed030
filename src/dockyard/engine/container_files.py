"""A container's files for the archive API (docker cp), running or stopped."""

from __future__ import annotations

import os

from dockyard.engine import mounts
from dockyard.engine.archive import ContainerFiles
from dockyard.engine.container_records import ContainerRecords
from dockyard.errors import Conflict, InvalidParameter, NotFound
from dockyard.image.layered_copy import copy_tree
from dockyard.image.users import resolve_user


class ContainerFileAccess(ContainerRecords):
    """docker cp's access to a container's files."""

    def files(self, ref: str, action: str = "") -> ContainerFiles:
        """The files of a container for the archive API (docker cp): a running one seen
        through its own root, a stopped one with its rootfs and volumes mounted for the
        time of the copy (it cannot start meanwhile). `action`: the container event a
        copy that succeeds emits (dockerd's archive-path, extract-to-dir)."""
        from dockyard.kernel.linux import LinuxKernel

        c = self.get(ref)
        kernel = LinuxKernel()
        if c.state.running and c.state.pid:
            files = ContainerFiles.of_running(kernel, c.state.pid, ref)
        else:
            if c.id in self._copying:
                raise Conflict(f"container {ref} is busy: another copy is in progress")
            lower = self._images.blobs.lower_dirs(c.image)
            upper = os.path.join(c.bundle, "upper")
            binds, _tmpfs = mounts.runtime_mounts(
                c, self.volumes, lambda path, dest: copy_tree([upper, *lower], path, dest)
            )
            self._copying.add(c.id)
            try:
                files = ContainerFiles.of_stopped(
                    kernel,
                    ref,
                    os.path.join(c.bundle, "cp-root"),
                    (lower, upper, os.path.join(c.bundle, "work")),
                    binds,
                )
            except BaseException:
                self._copying.discard(c.id)
                raise
            unmount = files._on_close

            def done() -> None:
                try:
                    if unmount is not None:
                        unmount()
                finally:
                    self._copying.discard(c.id)

            files._on_close = done
        files.readonly_rootfs = c.host_config.readonly_rootfs
        if action:
            files.on_success = lambda: self.emit(c, action)
        if c.config.user:
            lower = self._images.blobs.lower_dirs(c.image)
            upper = os.path.join(c.bundle, "upper")
            try:
                uid, gid, _groups = resolve_user(
                    c.config.user, lambda p: self._images.blobs.read_file([upper, *lower], p)
                )
                files.owner = (uid, gid)
            except (InvalidParameter, NotFound):
                pass  # an unknown user fails the container's start, not a copy
        return files
