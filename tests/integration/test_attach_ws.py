"""GET /containers/{id}/attach/ws, as dockerd: a websocket client (no browser here:
the API on its socket refuses web pages) talks to a container's stdin and stdout."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

pytestmark = pytest.mark.root


async def _converse(socket_path: str, ref: str, query: str, send: bytes, want: bytes) -> bytes:
    got = b""
    connector = aiohttp.UnixConnector(path=socket_path)
    url = f"http://localhost/v1.50/containers/{ref}/attach/ws?{query}"
    async with aiohttp.ClientSession(connector=connector) as s, s.ws_connect(url) as ws:
        await ws.send_bytes(send)
        async with asyncio.timeout(30):
            while want not in got:
                msg = await ws.receive()
                assert msg.type == aiohttp.WSMsgType.BINARY, msg  # binary since API 1.28
                got += msg.data
    return got


def test_attach_ws_carries_stdin_and_output(daemon, unique) -> None:
    name = unique("attachws")
    r = daemon.dockyard(
        "run", "-di", "--name", name, "busybox", "sh", "-c", "while read l; do echo got-$l; done"
    )
    assert r.returncode == 0, r.stderr
    try:
        query = "stream=1&stdin=1&stdout=1&stderr=1"
        got = asyncio.run(_converse(str(daemon.socket), name, query, b"one\n", b"got-one"))
        assert b"\x01\x00\x00\x00" not in got  # raw: no multiplexing headers
        # closing the socket detaches: the container still runs and answers again
        state = daemon.request("GET", f"/containers/{name}/json").json()["State"]
        assert state["Running"] is True
        asyncio.run(_converse(str(daemon.socket), name, query, b"two\n", b"got-two"))
    finally:
        daemon.dockyard("rm", "-f", name)


def test_attach_ws_errors_come_before_the_upgrade(daemon, unique) -> None:
    r = daemon.request("GET", "/containers/no-such-container-here/attach/ws?stream=1")
    assert r.status == 404
    name = unique("attachws-plain")
    assert daemon.dockyard("create", "--name", name, "busybox", "true").returncode == 0
    try:
        r = daemon.request("GET", f"/containers/{name}/attach/ws?stream=1")  # no Upgrade
        assert r.status == 400 and b"websocket" in r.body
    finally:
        daemon.dockyard("rm", "-f", name)
