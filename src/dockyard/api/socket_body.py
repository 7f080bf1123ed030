"""A large request body read by a worker thread straight from the connection.

`docker load` sends hundreds of MB. Through aiohttp every 256 KiB of them
costs the event loop a recv into a new bytes object, the HTTP parser's copy
of it, a StreamReader hand-over and a queue hop to the thread that unpacks:
about half a second of the GIL for a 160 MB image, time the unpacking
thread waits for. A body with a Content-Length on a plain (not TLS) socket
is read here instead: what aiohttp already buffered first, then the rest
with readv straight into the unpacker's buffer, on its thread (the GIL free
while it waits), while aiohttp's reading of that connection is paused.

aiohttp's parser still expects the body it never saw, so the connection is
closed after the answer (no keep-alive), and the request's content is marked
ended once the reading thread is done (`end`), so that aiohttp does not wait
for the rest of a body that will not come its way. A client that stops sending for BODY_TIMEOUT ends the stream early:
the reader sees a truncated archive, as when the client goes away.
"""

from __future__ import annotations

import os
import select
import time
from typing import Any

from aiohttp import web

from dockyard.api.server import BODY_TIMEOUT


class SocketBody:
    """The rest of a request's body as a blocking stream (readinto, read), for one
    thread. `close` when done with it (the connection is then closed after the answer)."""

    def __init__(
        self, request: web.Request, fd: int, first: bytes, left: int, protocol: Any
    ) -> None:
        self._request = request
        self._fd = fd
        self._first = memoryview(first)
        self._left = left  # bytes still to come from the socket
        self._protocol = protocol
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)

    @classmethod
    def take(cls, request: web.Request) -> SocketBody | None:
        """The body of `request`, taken from aiohttp, if it can be read this way."""
        length = request.content_length
        transport = request.transport
        content = request.content
        if length is None or transport is None or content.is_eof():
            return None  # chunked, gone, or already all there
        if transport.get_extra_info("ssl_object") is not None:
            return None  # TLS: only the transport can decrypt it
        sock = transport.get_extra_info("socket")
        if sock is None:
            return None
        # What aiohttp has (reading it may resume the transport: pause after).
        if content.exception() is not None:
            return None  # the client is gone: aiohttp's own path says so
        first = content.read_nowait(-1)
        transport.pause_reading()
        fd = os.dup(sock.fileno())
        protocol = request.protocol
        # The connection cannot serve another request: its parser is mid-body.
        # (close: once this request is answered; force_close would end it now.)
        protocol.close()
        return cls(request, fd, first, length - len(first), protocol)

    def readinto(self, buf: memoryview | bytearray) -> int:
        if self._first:
            n = min(len(buf), len(self._first))
            buf[:n] = self._first[:n]
            self._first = self._first[n:]
            return n
        if self._left <= 0 or self._fd < 0:
            return 0
        view = memoryview(buf)[: min(len(buf), self._left)]
        while True:
            try:
                n = os.readv(self._fd, [view])
            except BlockingIOError:
                if not self._poll.poll(BODY_TIMEOUT * 1000):
                    return 0  # the client stalled: a truncated stream
                continue
            except (ConnectionResetError, BrokenPipeError):
                return 0
            if n:
                self._left -= n
                self._protocol.rx_at = time.monotonic()  # not a stalled body (server.py)
            return n

    def read(self, size: int = -1) -> bytes:
        buf = bytearray(size if size is not None and size >= 0 else 1 << 20)
        n = self.readinto(buf)
        return bytes(buf[:n])

    def readable(self) -> bool:
        return True

    def end(self) -> None:
        """On the event loop, once the reading thread is done: the request's body is
        over for aiohttp (no lingering wait for bytes it will never see)."""
        self._request.content.feed_eof()

    def close(self) -> None:
        """Called by the reading thread when done with the stream."""
        if self._fd >= 0:
            self._poll.unregister(self._fd)
            os.close(self._fd)
            self._fd = -1
