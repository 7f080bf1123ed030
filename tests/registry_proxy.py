"""A counting proxy in front of a real registry that breaks uploads and downloads on cue.

It buffers each request whole before forwarding it, as nginx does by default
(`proxy_request_buffering on`): a request whose client connection drops, or
that the proxy answers itself, never reaches the registry. On cue it
- answers 503 to a blob PATCH instead of forwarding it (a front end whose
  back end is away), or drops the client's connection after some bytes of a
  PATCH's body ("drop"), or passes those bytes on to the registry before
  dropping both connections ("drop-forwarded": no buffering proxy, as if the
  client spoke to the registry itself);
- drops a blob GET's connection after some bytes of the answer.
It records what went where, so that tests can tell from the registry's side
which bytes arrived (and how often). Runs its own event loop in a thread;
`stop()` ends it.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "te", "upgrade"}
_UPLOAD = re.compile(r"/blobs/uploads/([0-9a-f-]+)")


@dataclass
class Break:
    """A blob PATCH to break: of an upload that holds at least `held` bytes,
    by answering 503 or dropping the connection after `after` bytes."""

    held: int
    how: str  # "503", "drop" or "drop-forwarded"
    after: int = 1 << 20
    larger_than: int = 0  # "503": only a PATCH whose body is larger than this
    done: bool = False


@dataclass
class Seen:
    method: str
    path: str
    range: str  # the request's Range (a GET) or the registry's answer's (an upload)
    received: int  # body bytes read from the client
    forwarded: bool  # whether the registry got the request
    status: int
    sent: int = 0  # answer body bytes written to the client


@dataclass
class RegistryProxy:
    upstream: str  # host:port of the registry
    breaks: list[Break] = field(default_factory=list)
    drop_blob_get_after: int = 0  # drop the first blob GET larger than this, once
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        self._held: dict[str, int] = {}  # upload uuid -> bytes the registry acknowledged
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError("the registry proxy did not start")

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._cleanup())
        self._loop.close()

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _cleanup(self) -> None:
        await self._runner.cleanup()
        await self._session.close()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)

    async def _forward_and_drop(self, request: web.Request, body: bytes) -> None:
        """Start the PATCH on the registry with `body`, then drop that connection too."""
        host, port = self.upstream.split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        head = [f"PATCH {request.path_qs} HTTP/1.1", f"Host: {request.host}"]
        head += [
            f"{k}: {v}" for k, v in request.headers.items() if k.lower() not in _HOP | {"host"}
        ]
        head += ["Transfer-Encoding: chunked", "", ""]
        writer.write("\r\n".join(head).encode() + b"%x\r\n" % len(body) + body + b"\r\n")
        await writer.drain()
        await asyncio.sleep(0.5)  # the registry reads what came
        writer.transport.abort()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        upload = _UPLOAD.search(request.path)
        uid = upload.group(1) if upload else ""
        if request.method == "PATCH" and uid:
            cue = next(
                (b for b in self.breaks if not b.done and self._held.get(uid, 0) >= b.held), None
            )
            body = b""
            if cue is not None and cue.how == "503":
                body = await request.read()
                if len(body) > cue.larger_than:
                    cue.done = True
                    self.seen.append(Seen("PATCH", request.path, "", len(body), False, 503))
                    return web.Response(status=503, text="back end away")
            elif cue is not None:
                cue.done = True
                if cue.how.startswith("drop"):
                    body = await request.content.readexactly(cue.after)
                    forwarded = cue.how == "drop-forwarded"
                    if forwarded:
                        await self._forward_and_drop(request, body)
                    self.seen.append(Seen("PATCH", request.path, "", len(body), forwarded, 0))
                    assert request.transport is not None
                    request.transport.abort()
                    return web.Response(status=499)
            if not body:
                body = await request.read()
        else:
            body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        async with self._session.request(
            request.method,
            f"http://{self.upstream}{request.path_qs}",
            headers=headers,  # Host stays ours: the registry's Locations point here
            data=body if body else None,
            allow_redirects=False,
        ) as answer:
            seen = Seen(
                request.method,
                request.path,
                request.headers.get("Range", "") or answer.headers.get("Range", ""),
                len(body),
                True,
                answer.status,
            )
            self.seen.append(seen)
            if uid and "Range" in answer.headers and answer.status in (202, 204):
                end = int(answer.headers["Range"].split("-")[1])
                self._held[uid] = end + 1 if end else 0  # distribution's "0-0": nothing yet
            out = web.StreamResponse(
                status=answer.status,
                headers={k: v for k, v in answer.headers.items() if k.lower() not in _HOP},
            )
            if answer.content_length is not None:
                out.content_length = answer.content_length
            await out.prepare(request)
            if request.method == "HEAD":
                return out
            drop = (
                request.method == "GET"
                and "/blobs/sha256:" in request.path
                and self.drop_blob_get_after
                and (answer.content_length or 0) > self.drop_blob_get_after
            )
            async for chunk in answer.content.iter_chunked(1 << 16):
                if drop and seen.sent + len(chunk) > self.drop_blob_get_after:
                    self.drop_blob_get_after = 0  # once
                    assert request.transport is not None
                    request.transport.abort()
                    return out
                await out.write(chunk)
                seen.sent += len(chunk)
            await out.write_eof()
            return out
