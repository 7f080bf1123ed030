"""Whole messages both ways between `dockyard-runtime create` and its container
init, over two pipes: what a SOCK_SEQPACKET socketpair gives, without `_socket`.

Loading the `_socket` extension is ~0.3 ms of every `dockyard-runtime run`; the
init's channel needs it only to pass a terminal's pty (SCM_RIGHTS), so a config
with `process.terminal` still gets the socketpair (fdpass.seqpacket_pair).
Each message goes as a 4-byte length and its bytes; one writer per direction.
Both ends are close-on-exec (os.pipe), as Python makes sockets.
"""

from __future__ import annotations

import os

_HEADER = 4


class MessagePipe:
    """One end: send() and recv() as on a SEQPACKET socket (b"" once the other end
    is closed). Writing after the other end closed raises BrokenPipeError."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self._read_fd = read_fd
        self._write_fd = write_fd

    def send(self, data: bytes) -> int:
        view = memoryview(len(data).to_bytes(_HEADER, "little") + data)
        while view:
            view = view[os.write(self._write_fd, view) :]
        return len(data)

    def recv(self, bufsize: int) -> bytes:
        """The next message (at most `bufsize` bytes of it, as a datagram socket
        truncates); b"" at the other end's close."""
        header = self._read_exactly(_HEADER)
        if len(header) < _HEADER:
            return b""
        size = int.from_bytes(header, "little")
        data = self._read_exactly(size)
        if len(data) < size:
            return b""  # the writer died mid-message: as good as closed
        return data[:bufsize]

    def _read_exactly(self, size: int) -> bytes:
        chunks = []
        while size > 0:
            chunk = os.read(self._read_fd, size)
            if not chunk:
                break
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        for fd in (self._read_fd, self._write_fd):
            if fd >= 0:
                os.close(fd)
        self._read_fd = self._write_fd = -1


def message_pipe_pair() -> tuple[MessagePipe, MessagePipe]:
    """Two connected ends, as socket.socketpair() returns them."""
    a_read, b_write = os.pipe()
    b_read, a_write = os.pipe()
    return MessagePipe(a_read, a_write), MessagePipe(b_read, b_write)
