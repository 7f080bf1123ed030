"""Raw streams over HTTP: attach's hijacked connection and the multiplexed stream format.

dockerd answers attach with `101 UPGRADED` when the client asks to upgrade (then the
socket carries frames both ways) and with `200` + raw body otherwise; the 2013 API
answers `200 OK` with nothing but its Content-Type. aiohttp would add chunking and
headers, so `RawStreamResponse` writes exactly the head it is given.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import struct
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from aiohttp import web, web_protocol
from multidict import CIMultiDict

RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"

_HEADER = struct.Struct(">BxxxI")

log = logging.getLogger("dockyard.api")


def frame(stream: int, data: bytes) -> bytes:
    """Docker's 8-byte header: [stream, 0, 0, 0, size (uint32 big-endian)] + payload."""
    return _HEADER.pack(stream, len(data)) + data


def frames(streams: Iterable[int], payloads: list[bytes]) -> bytes:
    """Many frames in one buffer, one per payload (as dockerd frames each log entry),
    built without a Python-level step per frame."""
    headers = map(_HEADER.pack, streams, map(len, payloads))
    return b"".join(itertools.chain.from_iterable(zip(headers, payloads, strict=True)))


class RawStreamResponse(web.StreamResponse):
    """A response whose body is the connection itself: no length, no chunks, closes after."""

    # aiohttp's switch for "the body length is not HTTP's business" (as for websockets).
    _length_check = False

    def __init__(self, status: int, reason: str, headers: dict[str, str]) -> None:
        super().__init__(status=status, reason=reason)
        self._exact_headers = headers
        self.force_close()

    async def _write_headers(self) -> None:
        # Only the head dockerd sends: no Date/Server/Connection additions.
        self._headers = CIMultiDict(self._exact_headers)
        await super()._write_headers()


class StdinReader:
    """Receives the bytes a client sends after the upgrade (stdin), as aiohttp's parser."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if data:
            self.queue.put_nowait(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self.queue.put_nowait(None)


def _eof_received(self: web_protocol.RequestHandler) -> bool | None:
    """aiohttp closes the socket when the client half-closes. The docker CLI half-closes
    its attach connection right after the request when it has no stdin to send (often
    before the handler even runs), and the output must still reach it: while a request
    is in flight keep the socket open for writing and close it after the answer."""
    parser = self._payload_parser
    if parser is not None:
        parser.feed_eof()
    idle = self._waiter is not None and not self._messages  # waiting for a next request
    if idle:
        return None
    self.keep_alive(False)
    return True


def keep_half_closed_connections_open() -> None:
    web_protocol.RequestHandler.eof_received = _eof_received  # type: ignore[method-assign]


def take_over_input(request: web.Request) -> StdinReader | None:
    """Route what the client sends after its attach request (stdin) to a StdinReader.

    Call it before the response head goes out, so no byte is parsed as a new request."""
    protocol = request.protocol
    if protocol is None or protocol._payload_parser is not None:  # a request body: not ours
        return None
    reader = StdinReader()
    protocol.set_parser(reader)  # type: ignore[arg-type]
    transport = protocol.transport
    if transport is not None and not transport.is_reading():
        reader.feed_eof()  # the client half-closed before we got here
    return reader


class StdinTarget(Protocol):
    """Where a client's stdin goes: an attach's (AttachStreams) or an exec's (ExecStreams)."""

    @property
    def stdin(self) -> Callable[[bytes], Awaitable[None]] | None: ...

    @property
    def close_stdin(self) -> Callable[[], Awaitable[None]] | None: ...


async def pump_stdin(queue: asyncio.Queue[bytes | None], target: StdinTarget) -> None:
    """The client's bytes to the process until the client's EOF, then its stdin closed
    (when the target closes it). The process may end while input still comes: the rest
    is dropped."""
    assert target.stdin is not None
    try:
        while (data := await queue.get()) is not None:
            await target.stdin(data)
        if target.close_stdin is not None:
            await target.close_stdin()
    except Exception as e:  # noqa: BLE001 - nothing is left to write to
        log.debug("stdin not delivered: %s", e)
