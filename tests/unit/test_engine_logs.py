"""`docker logs` over a json-file log: tail, since/until, follow, torn lines."""

from __future__ import annotations

import asyncio

import pytest
from fakes import World, async_test, log_line

from dockyard.engine.logs import read_log

T0 = 1_700_000_000  # 2023-11-14T22:13:20Z


def stamp(second: int) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(T0 + second)) + ".5Z"


def write_log(path, entries) -> None:
    with open(path, "wb") as f:
        for i, (stream, data) in enumerate(entries):
            f.write(log_line(stream, data, stamp(i)))


async def texts(it) -> list[bytes]:
    return [e.data async for e in it]


LINES = [(1, b"l0\n"), (2, b"e1\n"), (1, b"l2\n"), (1, b"l3\n"), (2, b"e4\n")]


@async_test
async def test_all_lines_in_order_with_stream_selection(tmp_path):
    log = tmp_path / "c-json.log"
    write_log(log, LINES)
    assert await texts(read_log(str(log))) == [d for _s, d in LINES]
    assert await texts(read_log(str(log), stderr=False)) == [b"l0\n", b"l2\n", b"l3\n"]
    assert await texts(read_log(str(log), stdout=False)) == [b"e1\n", b"e4\n"]
    entries = [e async for e in read_log(str(log))]
    assert entries[1].stream == 2 and entries[1].time == stamp(1)


@async_test
async def test_tail(tmp_path):
    log = tmp_path / "c-json.log"
    write_log(log, LINES)
    assert await texts(read_log(str(log), tail=2)) == [b"l3\n", b"e4\n"]
    assert await texts(read_log(str(log), tail=0)) == []
    assert await texts(read_log(str(log), tail=100)) == [d for _s, d in LINES]


@async_test
async def test_since_and_until(tmp_path):
    log = tmp_path / "c-json.log"
    write_log(log, LINES)
    assert await texts(read_log(str(log), since=T0 + 2)) == [b"l2\n", b"l3\n", b"e4\n"]
    assert await texts(read_log(str(log), until=T0 + 2)) == [b"l0\n", b"e1\n"]
    assert await texts(read_log(str(log), since=T0 + 1, until=T0 + 3)) == [b"e1\n", b"l2\n"]


@async_test
async def test_missing_log_is_empty(tmp_path):
    assert await texts(read_log(str(tmp_path / "none.log"))) == []


@async_test
async def test_torn_last_line_is_skipped(tmp_path):
    # A crash while the monitor wrote its last line.
    log = tmp_path / "c-json.log"
    write_log(log, LINES[:2])
    with open(log, "ab") as f:
        f.write(log_line(1, b"torn\n")[:20])
    assert await texts(read_log(str(log))) == [b"l0\n", b"e1\n"]


@async_test
async def test_tail_counts_only_whole_lines(tmp_path):
    log = tmp_path / "c-json.log"
    write_log(log, LINES)
    with open(log, "ab") as f:
        f.write(log_line(1, b"torn\n")[:20])
    assert await texts(read_log(str(log), tail=2)) == [b"l3\n", b"e4\n"]


@async_test
async def test_follow_reads_a_line_completed_later_and_ends_when_the_container_stops(tmp_path):
    log = tmp_path / "c-json.log"
    write_log(log, LINES[:1])
    partial = log_line(1, b"late\n", stamp(9))
    with open(log, "ab") as f:
        f.write(partial[:10])
    alive = True
    got: list[bytes] = []

    async def follow() -> None:
        async for e in read_log(str(log), follow=True, running=lambda: alive, poll=0.005):
            got.append(e.data)

    task = asyncio.create_task(follow())
    await asyncio.sleep(0.03)
    assert got == [b"l0\n"]
    with open(log, "ab") as f:
        f.write(partial[10:])
    await asyncio.sleep(0.03)
    assert got == [b"l0\n", b"late\n"]
    alive = False
    await asyncio.wait_for(task, 1)


@async_test
async def test_service_logs_follow_ends_when_the_container_exits(tmp_path):
    w = World(tmp_path)
    await w.image()
    c = await w.run(cmd=["/bin/sleep"])
    link = w.launcher.last(c.id)
    link.emit(1, b"before\n")
    _c, entries = w.containers.logs(
        c.id, stdout=True, stderr=True, tail=None, since=0, until=0, follow=True
    )
    got: list[bytes] = []

    async def read() -> None:
        async for e in entries:
            got.append(e.data)

    task = asyncio.create_task(read())
    await asyncio.sleep(0.02)
    link.emit(2, b"after\n")
    await asyncio.sleep(0.1)
    link.exit(0)
    await asyncio.wait_for(task, 1)
    assert got == [b"before\n", b"after\n"]


@async_test
async def test_service_logs_refuses_drivers_that_cannot_be_read(tmp_path):
    from dockyard.engine.models import HostConfig, LogConfig
    from dockyard.errors import InvalidParameter

    w = World(tmp_path)
    await w.image()
    c = await w.create(host_config=HostConfig(log_config=LogConfig(type="none")))
    with pytest.raises(InvalidParameter) as e:
        w.containers.logs(c.id, stdout=True, stderr=True, tail=None, since=0, until=0, follow=False)
    assert e.value.message == 'configured logging driver does not support reading: "none"'


@async_test
async def test_create_fills_in_and_checks_the_log_driver_and_runtime(tmp_path):
    from dockyard.engine.models import HostConfig, LogConfig
    from dockyard.errors import InvalidParameter

    w = World(tmp_path)
    await w.image()
    c = await w.create(host_config=HostConfig(log_config=LogConfig(type="")))
    assert (c.host_config.log_config.type, c.host_config.log_config.config) == ("json-file", {})
    assert c.host_config.runtime == "dockyard"
    refused = {
        "logger: no log driver named 'syslog' is registered": HostConfig(
            log_config=LogConfig(type="syslog")
        ),
        "unknown log opt 'max-sise' for json-file log driver": HostConfig(
            log_config=LogConfig(config={"max-sise": "10m"})
        ),
        "unknown log opt 'max-size' for none log driver": HostConfig(
            log_config=LogConfig(type="none", config={"max-size": "10m"})
        ),
        "log opt 'compress' of the json-file log driver is not supported by this dockyard": (
            HostConfig(log_config=LogConfig(config={"compress": "true"}))
        ),
        "max-size must be a positive number": HostConfig(
            log_config=LogConfig(config={"max-size": "0"})
        ),
        "invalid size: '10q'": HostConfig(log_config=LogConfig(config={"max-size": "10q"})),
        "max-file cannot be less than 1": HostConfig(
            log_config=LogConfig(config={"max-size": "1k", "max-file": "0"})
        ),
        "unknown or invalid runtime name: runc": HostConfig(runtime="runc"),
    }
    for message, hc in refused.items():
        with pytest.raises(InvalidParameter) as e:
            await w.create(host_config=hc)
        assert e.value.message == message
    # max-size/max-file reach the monitor (go-units' decimal sizes, as dockerd).
    c = await w.create(
        host_config=HostConfig(log_config=LogConfig(config={"max-size": "10m", "max-file": "3"}))
    )
    await w.containers.start(c.id)
    assert w.launcher.log_rotations[c.id] == (10_000_000, 3)


@async_test
async def test_logs_read_across_rotated_files(tmp_path):
    from dockyard.engine.logs import read_log
    from dockyard.runtime.jsonlog import JsonFileLog

    path = tmp_path / "c-json.log"
    log = JsonFileLog(str(path), max_size=200, max_files=3)
    for i in range(40):
        log.write("stdout", f"line {i}\n".encode())
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["c-json.log", "c-json.log.1", "c-json.log.2"]
    assert all((tmp_path / f).stat().st_size <= 200 + 80 for f in files)
    got = [e.data async for e in read_log(str(path))]
    kept = len(got)
    assert got == [f"line {i}\n".encode() for i in range(40 - kept, 40)] and kept < 40
    tail = [e.data async for e in read_log(str(path), tail=kept - 1)]
    assert tail == got[1:]


@async_test
async def test_follow_goes_on_across_a_rotation(tmp_path):
    from dockyard.engine.logs import read_log
    from dockyard.runtime.jsonlog import JsonFileLog

    path = tmp_path / "c-json.log"
    log = JsonFileLog(str(path), max_size=100, max_files=2)
    log.write("stdout", b"first\n")
    done = False
    got: list[bytes] = []

    async def follow() -> None:
        async for e in read_log(str(path), follow=True, running=lambda: not done, poll=0.01):
            got.append(e.data)

    task = asyncio.create_task(follow())
    for i in range(10):
        await asyncio.sleep(0.03)
        log.write("stdout", f"more {i}\n".encode())
    await asyncio.sleep(0.1)
    done = True
    log.close()
    await asyncio.wait_for(task, 2)
    assert got == [b"first\n"] + [f"more {i}\n".encode() for i in range(10)]
