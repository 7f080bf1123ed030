"""A GNU tar child that extracts the tar stream it is fed into one directory.

Creating the inodes of a rootfs layer is kernel work that `tar -x` does with
no interpreter between its system calls; image/tar_assist feeds it the
entries it has checked (headers it wrote itself, data as read) and keeps
every decision. This module only runs the process: options, pipe, the
messages it leaves, and its end (it never outlives its caller: killed and
reaped on every path out).

The options, each for a reason:
  -x -f - -B -b 256     extract from stdin, whatever sizes the pipe's reads have,
                        in 128 KiB records (not 10 KiB: a tenth of tar's system
                        time on a rootfs layer)
  --numeric-owner --same-owner -p
                        owners by number, modes with setuid/setgid/sticky, no umask
  -G                    incremental: atime taken from the header's pax "atime"
                        (without it tar sets atime to "now"); the caller never
                        sends a dumpdir ('D') member, the one thing -G acts on
  --keep-old-files      defence in depth: an existing name is an error, never
                        replaced (the caller sends only new names)
  --delay-directory-restore
                        directory modes and times set once, at the end
  --warning=no-timestamp
                        no message for times in the future (kept as given, as
                        dockerd keeps them): any other message is a failure
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
from collections.abc import Sequence

TAR = "/usr/bin/tar"
_OPTIONS = (
    "-x", "-f", "-", "-B", "-b", "256", "-G",
    "--numeric-owner", "--same-owner", "--same-permissions",
    "--keep-old-files", "--delay-directory-restore", "--warning=no-timestamp",
)  # fmt: skip
_PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_IOV_MAX = 1024
_MESSAGE_MAX = 4096  # of tar's messages, what a failure shows

_GNU: list[bool] = []


def gnu_tar_available() -> bool:
    """GNU tar at /usr/bin/tar (Debian's essential tar), checked once."""
    if not _GNU:
        ok = False
        if os.access(TAR, os.X_OK):
            try:
                out = subprocess.run(
                    [TAR, "--version"],
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    env={"LC_ALL": "C"},
                    timeout=10,
                    check=False,
                ).stdout
                ok = out.startswith(b"tar (GNU tar)")
            except (OSError, subprocess.SubprocessError):
                ok = False
        _GNU.append(ok)
    return _GNU[0]


class TarChildFailed(Exception):
    """The child exited non-zero or said something: `status`, `message`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message or f"tar exited with status {status}")
        self.status = status
        self.message = message


class TarChild:
    """One `tar -x` into `directory`, fed by `write`; `finish` ends the stream and
    raises TarChildFailed if tar failed or printed anything; `kill` on any other
    way out."""

    def __init__(self, directory: str) -> None:
        # Messages go to memory, not a pipe: a tar that reports many failures
        # while we block writing its stdin must not wait on us (and a full disk
        # must not swallow them).
        self._err = os.memfd_create("tar-messages", os.MFD_CLOEXEC)
        try:
            self._proc = subprocess.Popen(
                [TAR, *_OPTIONS],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=self._err,
                cwd=directory,
                env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"},
                close_fds=True,
            )
        except BaseException:
            os.close(self._err)
            raise
        assert self._proc.stdin is not None
        self._fd = self._proc.stdin.fileno()
        with contextlib.suppress(OSError):  # a smaller pipe only costs more wake-ups
            fcntl.fcntl(self._fd, _F_SETPIPE_SZ, _PIPE_SIZE)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def write(self, chunks: Sequence[bytes | bytearray | memoryview]) -> None:
        """All of `chunks`, in order (few system calls: writev). TarChildFailed if
        tar is gone (EPIPE), with what it said."""
        fd = self._fd
        pending = [memoryview(c) for c in chunks if len(c)]
        try:
            while pending:
                n = os.writev(fd, pending[:_IOV_MAX])
                while n:
                    first = pending[0]
                    if n >= len(first):
                        n -= len(first)
                        pending.pop(0)
                    else:
                        pending[0] = first[n:]
                        n = 0
        except BrokenPipeError:
            raise self._failure() from None

    def said_something(self) -> bool:
        """tar has printed a message (a failure on some entry): stop feeding it."""
        return os.fstat(self._err).st_size > 0

    def finish(self) -> None:
        """End of the stream: wait for tar; TarChildFailed unless it exited 0 silently."""
        assert self._proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self._proc.stdin.close()
        status = self._proc.wait()
        message = self._message()
        self._close_err()
        if status or message:
            raise TarChildFailed(status, message)

    def kill(self) -> None:
        """Stop and reap it (nothing it does may outlive the caller's error)."""
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
        with contextlib.suppress(BrokenPipeError, OSError):
            if self._proc.stdin is not None:
                self._proc.stdin.close()
        self._proc.wait()
        self._close_err()

    def _failure(self) -> TarChildFailed:
        with contextlib.suppress(BrokenPipeError, OSError):
            if self._proc.stdin is not None:
                self._proc.stdin.close()
        status = self._proc.wait()
        message = self._message()
        self._close_err()
        return TarChildFailed(status, message)

    def _message(self) -> str:
        if self._err < 0:
            return ""
        data = os.pread(self._err, _MESSAGE_MAX, 0)
        return data.decode("utf-8", "backslashreplace").strip()

    def _close_err(self) -> None:
        if self._err >= 0:
            os.close(self._err)
            self._err = -1
