"""Attach over a real socket: the exact heads, frames or raw bytes, stdin, half-close."""

from __future__ import annotations

import asyncio
import struct

from fakes import SEED_CREATE, FakeLink, RawConnection, World, api_server, async_test, settle

UPGRADE_HEAD = (
    b"HTTP/1.1 101 UPGRADED\r\n"
    b"Content-Type: application/vnd.docker.multiplexed-stream\r\n"
    b"Connection: Upgrade\r\n"
    b"Upgrade: tcp\r\n"
    b"\r\n"
)


def attach_request(ref: str, query: str, *, upgrade: bool = True, version: str = "v1.50") -> bytes:
    head = f"POST /{version}/containers/{ref}/attach?{query} HTTP/1.1\r\nHost: docker\r\n"
    if upgrade:
        head += "Connection: Upgrade\r\nUpgrade: tcp\r\n"
    return (head + "Content-Length: 0\r\n\r\n").encode()


def frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxI", stream, len(data)) + data


async def world(tmp_path) -> World:
    w = World(tmp_path)
    await w.image("ubuntu")
    return w


@async_test
async def test_upgrade_head_is_dockerds_exact_bytes_then_multiplexed_frames(tmp_path):
    w = await world(tmp_path)
    c = await w.run(cmd=["/bin/sleep"], name="web")
    link = w.launcher.last(c.id)
    async with api_server(w) as server:
        conn = await RawConnection.open(server)
        await conn.send(attach_request("web", "stream=1&stdout=1&stderr=1"))
        assert await conn.head() == UPGRADE_HEAD
        link.emit(1, b"out\n")
        link.emit(2, b"err!\n")
        assert await conn.read_exactly(12) == frame(1, b"out\n")
        assert await conn.read_exactly(13) == frame(2, b"err!\n")
        link.exit(0)
        assert await conn.rest() == b""  # the stream ends with the container
        conn.close()


@async_test
async def test_without_upgrade_the_answer_is_200_with_the_raw_body(tmp_path):
    w = await world(tmp_path)
    c = await w.run(cmd=["/bin/sleep"], name="web")
    async with api_server(w) as server:
        conn = await RawConnection.open(server)
        await conn.send(attach_request("web", "stream=1&stdout=1", upgrade=False))
        assert await conn.head() == (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\n\r\n"
        )
        w.launcher.last(c.id).emit(1, b"x")
        w.launcher.last(c.id).exit(0)
        assert await conn.rest() == frame(1, b"x")
        conn.close()


@async_test
async def test_tty_container_streams_raw_bytes(tmp_path):
    w = await world(tmp_path)
    c = await w.run(cmd=["/bin/sh"], name="term", tty=True)
    async with api_server(w) as server:
        conn = await RawConnection.open(server)
        await conn.send(attach_request("term", "stream=1&stdout=1&stderr=1"))
        head = await conn.head()
        assert head.startswith(b"HTTP/1.1 101 UPGRADED\r\n")
        assert b"Content-Type: application/vnd.docker.raw-stream\r\n" in head
        link = w.launcher.last(c.id)
        link.emit(1, b"$ ")
        link.exit(0)
        assert await conn.rest() == b"$ "
        conn.close()


@async_test
async def test_output_arrives_when_the_client_half_closes_right_after_the_request(tmp_path):
    # The docker CLI shuts its write side when it has no stdin to send.
    w = await world(tmp_path)
    c = await w.run(cmd=["/bin/sleep"], name="web")
    link = w.launcher.last(c.id)
    async with api_server(w) as server:
        conn = await RawConnection.open(server)
        await conn.send(attach_request("web", "stream=1&stdout=1&stderr=1"), half_close=True)
        assert await conn.head() == UPGRADE_HEAD
        await asyncio.sleep(0.02)
        link.emit(1, b"still here\n")
        link.exit(0)
        assert await conn.rest() == frame(1, b"still here\n")
        conn.close()


@async_test
async def test_stdin_over_the_hijacked_connection_reaches_the_process(tmp_path):
    w = await world(tmp_path)
    c = await w.run(cmd=["/bin/cat"], name="cat", open_stdin=True, stdin_once=True)
    link = w.launcher.last(c.id)
    async with api_server(w) as server:
        conn = await RawConnection.open(server)
        await conn.send(attach_request("cat", "stream=1&stdin=1&stdout=1"))
        assert await conn.head() == UPGRADE_HEAD
        await conn.send(b"hello\n", half_close=True)
        for _ in range(100):
            if link.stdin_closed:
                break
            await asyncio.sleep(0.01)
        assert bytes(link.stdin) == b"hello\n" and link.stdin_closed
        link.emit(1, b"hello\n")
        link.exit(0)
        assert await conn.rest() == frame(1, b"hello\n")
        conn.close()


async def gated_echo_program(gate: asyncio.Event):
    async def program(link: FakeLink) -> None:
        await gate.wait()
        link.emit(1, (" ".join(link.args[1:]) + "\n").encode())
        link.exit(0)

    return program


@async_test
async def test_the_seeds_2013_session_create_start_attach(tmp_path):
    """create, start, then attach?logs=1&stream=1 as docker 0.5.3 did: raw 'hello world'."""
    w = await world(tmp_path)
    gate = asyncio.Event()
    w.launcher.programs["/bin/echo"] = await gated_echo_program(gate)
    async with api_server(w) as server:
        conn = await RawConnection.open(server)
        await conn.send(
            b"POST /v1.4/containers/create HTTP/1.1\r\nHost: \r\n"
            b"User-Agent: Docker-Client/0.5.3\r\nContent-Length: 335\r\n"
            b"Content-Type: application/json\r\n\r\n" + SEED_CREATE
        )
        head = await conn.head()
        assert head.startswith(b"HTTP/1.1 201 Created\r\n")
        assert b"Content-Type: text/plain; charset=utf-8\r\n" in head
        assert b"Content-Length: 21\r\n" in head
        body = await conn.read_exactly(21)
        short = body[7:19].decode()
        conn.close()

        conn = await RawConnection.open(server)
        start_body = b'{"Binds":null,"ContainerIDFile":""}'
        await conn.send(
            f"POST /v1.4/containers/{short}/start HTTP/1.1\r\nHost: \r\n"
            f"User-Agent: Docker-Client/0.5.3\r\nContent-Length: {len(start_body)}\r\n"
            "Content-Type: application/json\r\n\r\n".encode()
            + start_body
        )
        assert (await conn.head()).startswith(b"HTTP/1.1 204 No Content\r\n")
        conn.close()

        conn = await RawConnection.open(server)
        await conn.send(
            f"POST /v1.4/containers/{short}/attach?logs=1&stderr=1&stdout=1&stream=1 HTTP/1.1\r\n"
            "Host: \r\nUser-Agent: Docker-Client/0.5.3\r\nContent-Length: 0\r\n"
            "Content-Type: plain/text\r\n\r\n".encode()
        )
        assert await conn.head() == (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n"
        )
        gate.set()
        assert await conn.rest() == b"hello world\n"
        conn.close()


@async_test
async def test_v14_attach_after_the_container_exited_replays_the_log_once(tmp_path):
    w = await world(tmp_path)
    gate = asyncio.Event()
    gate.set()
    w.launcher.programs["/bin/echo"] = await gated_echo_program(gate)
    c = await w.run(cmd=["/bin/echo", "hello", "world"])
    await w.containers.wait(c.id)
    await settle()
    async with api_server(w) as server:
        conn = await RawConnection.open(server)
        await conn.send(
            attach_request(
                c.short_id, "logs=1&stderr=1&stdout=1&stream=1", upgrade=False, version="v1.4"
            )
        )
        await conn.head()
        assert await conn.rest() == b"hello world\n"
        conn.close()


@async_test
async def test_attach_to_unknown_container_is_a_json_404(tmp_path):
    w = await world(tmp_path)
    async with api_server(w) as server:
        conn = await RawConnection.open(server)
        await conn.send(attach_request("ghost", "stream=1&stdout=1"))
        head = await conn.head()
        assert head.startswith(b"HTTP/1.1 404 ")
        assert b'{"message":"No such container: ghost"}' in await conn.reader.read(200)
        conn.close()
