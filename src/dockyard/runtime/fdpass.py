"""socket.send_fds/recv_fds and a SEQPACKET socketpair, on `_socket` alone.

`import socket` builds its IntEnums (and imports enum and selectors): ~3 ms of
every `dockyard-runtime run`. The runtime's channels to its container init
need only the C socket type; these are socket.py's own helpers over it, the fd
arrays as C ints by int.to_bytes (`array` imports collections.abc, `struct` is
one more extension module to load).
"""

from __future__ import annotations

import _socket
import sys

_INT = 4  # sizeof(int): SCM_RIGHTS carries an array of them

TYPE_CHECKING = False
if TYPE_CHECKING:
    from socket import socket


def seqpacket_pair() -> tuple[socket, socket]:
    """socket.socketpair(AF_UNIX, SOCK_SEQPACKET): close-on-exec, as Python makes them."""
    return _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)


def unix_stream() -> socket:
    return _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)


def send_fds(sock: socket, buffers: list[bytes], fds: list[int]) -> int:
    data = b"".join(fd.to_bytes(_INT, sys.byteorder, signed=True) for fd in fds)
    return sock.sendmsg(buffers, [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, data)])


def recv_fds(sock: socket, bufsize: int, maxfds: int) -> tuple[bytes, list[int], int, object]:
    fds: list[int] = []
    msg, ancdata, flags, addr = sock.recvmsg(bufsize, _socket.CMSG_LEN(maxfds * _INT))
    for level, kind, data in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            whole = len(data) - len(data) % _INT
            fds.extend(
                int.from_bytes(data[i : i + _INT], sys.byteorder, signed=True)
                for i in range(0, whole, _INT)
            )
    return msg, fds, flags, addr
