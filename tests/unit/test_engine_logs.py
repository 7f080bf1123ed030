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
        async for batch in entries:
            got.extend(e.data for e in batch)

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
    with pytest.raises(InvalidParameter) as e:
        await w.create(host_config=HostConfig(log_config=LogConfig(type="syslog")))
    assert e.value.message == "logger: no log driver named 'syslog' is registered"
    c = await w.create(host_config=HostConfig(log_config=LogConfig(type="none")))
    with pytest.raises(InvalidParameter) as e:
        w.containers.logs(c.id, stdout=True, stderr=True, tail=None, since=0, until=0, follow=False)
    assert e.value.message == "configured logging driver does not support reading"


@async_test
async def test_big_reads_keep_entries_streams_and_order_across_block_boundaries(
    tmp_path, monkeypatch
):
    """Lines cut by the end of a read block, and stream names written inside the text
    (escaped there) that must not be taken for the entries' own streams."""
    from dockyard.engine import logs as logs_mod

    monkeypatch.setattr(logs_mod, "_BLOCK", 100)  # every few lines a block ends mid-line
    entries = [(1, b'says "stream":"stderr" here\n')] * 5 + [(2, b'"stream":"stdout"\n')]
    entries += [(1, f"line {i}\n".encode()) for i in range(50)] + [(2, b"\xc3\xa9 \\ <&>\n")]
    log = tmp_path / "c-json.log"
    with open(log, "wb") as f:
        for i, (stream, data) in enumerate(entries):
            # the monitor's compact layout (the fallback reads json.dumps' spaced one)
            f.write(
                log_line(stream, data, stamp(i)).replace(b'": "', b'":"').replace(b'", "', b'","')
            )
    got = [(e.stream, e.data) async for e in read_log(str(log))]
    assert got == entries
    only_err = [e.data async for e in read_log(str(log), stdout=False)]
    assert only_err == [b'"stream":"stdout"\n', b"\xc3\xa9 \\ <&>\n"]


def test_frames_are_one_per_entry_as_dockerd_sends_them():
    from dockyard.api.streams import frame, frames

    payloads = [b"a\n", b"", b"bc\n", b"x" * 70000]
    streams = [1, 2, 1, 2]
    assert frames(streams, payloads) == b"".join(map(frame, streams, payloads))


@async_test
async def test_follow_waits_for_the_new_file_of_a_rotation(tmp_path):
    """The monitor renames the log away and opens a new one a moment later: the
    follow reads the old file to its end, then goes on with the new one."""
    log = tmp_path / "c-json.log"
    write_log(log, LINES[:1])
    alive = True
    got: list[bytes] = []

    async def follow() -> None:
        async for e in read_log(str(log), follow=True, running=lambda: alive, poll=0.005):
            got.append(e.data)

    task = asyncio.create_task(follow())
    await asyncio.sleep(0.03)
    with open(log, "ab") as f:
        f.write(log_line(1, b"last of the old file\n", stamp(1)))
    log.rename(tmp_path / "c-json.log.1")
    await asyncio.sleep(0.05)  # no log file at all meanwhile
    write_log(log, [(2, b"first of the new file\n")])
    await asyncio.sleep(0.05)
    alive = False
    await asyncio.wait_for(task, 1)
    assert got == [b"l0\n", b"last of the old file\n", b"first of the new file\n"]


def test_extra_attributes_as_dockerd_picks_them() -> None:
    from dockyard.engine.logconfig import extra_attributes
    from dockyard.engine.models import LogConfig

    lc = LogConfig(
        type="json-file",
        config={"labels": "a,nope", "labels-regex": "^x", "env": "E,NOPE", "env-regex": "^P"},
    )
    labels = {"a": "1", "b": "2", "xy": "3"}
    env = ["E=e", "PATH=/bin", "BARE", "Q=q"]
    assert extra_attributes(lc, labels, env) == {"a": "1", "xy": "3", "E": "e", "PATH": "/bin"}
    assert extra_attributes(LogConfig(type="json-file", config={}), labels, env) == {}
