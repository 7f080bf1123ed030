"""`logs --since/--until` finds its window by bisecting, skipping whole rotated files,
and stopping after `until`: what it returns is what a filter over every line gives."""

from __future__ import annotations

import asyncio
import gzip
import json
import time

import pytest
from fakes import async_test, log_line

from dockyard.engine import log_window, logs
from dockyard.engine.clock import parse_rfc3339
from dockyard.engine.logs import read_log

T0 = 1_700_000_000


def stamp(ms: int) -> str:
    """RFC3339Nano as the monitor writes it: trailing zeros trimmed (".5Z", "Z")."""
    secs, frac = divmod(ms, 1000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(T0 + secs))
    digits = f"{frac:03d}".rstrip("0")
    return f"{base}.{digits}Z" if digits else f"{base}Z"


def entries(n: int, start: int = 0) -> list[tuple[int, bytes, str]]:
    """n entries, times in order with runs of equal times (several lines a millisecond)."""
    return [
        (1 if i % 3 else 2, f"line {i}\n".encode(), stamp((start + i) // 3 * 7))
        for i in range(start, start + n)
    ]


def raw(es: list[tuple[int, bytes, str]]) -> bytes:
    return b"".join(log_line(s, d, t) for s, d, t in es)


def reference(es, since=0.0, until=0.0, stdout=True, stderr=True):
    """A filter over every line, as logs read before."""
    out = []
    for s, d, t in es:
        ts = parse_rfc3339(t)
        if (since and ts < since) or (until and ts > until) or not (stdout if s == 1 else stderr):
            continue
        out.append((s, d, t))
    return out


async def read(path, **kw) -> list[tuple[int, bytes, str]]:
    return [(e.stream, e.data, e.time) async for e in read_log(str(path), **kw)]


def bounds(es) -> list[float]:
    """Every entry's time, just before and after each, and beyond both ends."""
    times = sorted({parse_rfc3339(t) for _s, _d, t in es})
    out = [times[0] - 1, times[-1] + 1]
    for t in times[:: max(1, len(times) // 40)] + times[-3:]:
        out += [t, t - 0.0005, t + 0.0005]
    return out


@pytest.fixture
def tiny_steps(monkeypatch):
    """Bisect down to single lines and cut blocks every few lines, so every edge case
    of both is met on a small log."""
    monkeypatch.setattr(log_window, "SCAN_BYTES", 0)
    monkeypatch.setattr(logs, "_BLOCK", 300)


@async_test
async def test_since_and_until_equal_a_full_filter_on_a_log_of_many_lines(tmp_path, tiny_steps):
    es = entries(3000)
    log = tmp_path / "c-json.log"
    log.write_bytes(raw(es))
    for since in bounds(es):
        assert await read(log, since=since) == reference(es, since=since), since
    for until in bounds(es):
        assert await read(log, until=until) == reference(es, until=until), until
    cuts = bounds(es)
    for since, until in zip(cuts, reversed(cuts), strict=True):
        got = await read(log, since=since, until=until, stdout=False)
        assert got == reference(es, since, until, stdout=False), (since, until)


@async_test
async def test_since_and_until_across_rotated_files_plain_and_gzipped(tmp_path, tiny_steps):
    es = entries(900)
    log = tmp_path / "c-json.log"
    # oldest first: .3.gz, .2.gz, .1, then the file being written; the boundaries fall
    # inside runs of equal times, so the same time ends one file and starts the next
    parts = [es[:250], es[250:500], es[500:700], es[700:]]
    with gzip.open(f"{log}.3.gz", "wb") as g:
        g.write(raw(parts[0]))
    with gzip.open(f"{log}.2.gz", "wb") as g:
        g.write(raw(parts[1]))
    (tmp_path / "c-json.log.1").write_bytes(raw(parts[2]))
    log.write_bytes(raw(parts[3]))
    assert parts[1][-1][2] == parts[2][0][2]  # one time across a file boundary
    edge = parse_rfc3339(parts[2][0][2])  # since at it: the older file's last lines count
    assert await read(log, since=edge) == reference(es, since=edge)
    for since in bounds(es):
        assert await read(log, since=since) == reference(es, since=since), since
        until = since + 1.5
        assert await read(log, since=since, until=until) == reference(es, since, until)
    for until in bounds(es):
        assert await read(log, until=until) == reference(es, until=until), until


@async_test
async def test_whole_files_before_since_are_not_read(tmp_path, monkeypatch):
    es = entries(400)
    log = tmp_path / "c-json.log"
    with gzip.open(f"{log}.2.gz", "wb") as g:
        g.write(raw(es[:100]))
    (tmp_path / "c-json.log.1").write_bytes(raw(es[100:200]))
    log.write_bytes(raw(es[200:]))
    opened: list[str] = []
    real = logs._read_file_blocks

    def spy(name, since=0.0):
        opened.append(name.rsplit("/", 1)[1])
        return real(name, since)

    monkeypatch.setattr(logs, "_read_file_blocks", spy)
    since = parse_rfc3339(es[250][2])
    assert await read(log, since=since) == reference(es, since=since)
    assert opened == []  # both rotated files end before since
    since = parse_rfc3339(es[150][2])
    assert await read(log, since=since) == reference(es, since=since)
    assert opened == ["c-json.log.1"]


@async_test
async def test_tail_with_since_and_timestamps_are_unchanged(tmp_path, tiny_steps):
    es = entries(600)
    log = tmp_path / "c-json.log"
    (tmp_path / "c-json.log.1").write_bytes(raw(es[:300]))
    log.write_bytes(raw(es[300:]))
    since = parse_rfc3339(es[250][2])
    # --tail takes the last lines first, then the window (dockerd's order)
    assert await read(log, tail=400, since=since) == reference(es[-400:], since=since)
    assert await read(log, tail=10, since=since) == es[-10:]
    # the times (what -t prints) are the entries' own, to the nanosecond digits written
    got = await read(log, since=since)
    assert [t for _s, _d, t in got] == [t for _s, _d, t in reference(es, since=since)]


@async_test
async def test_torn_and_foreign_lines_still_give_the_full_filters_answer(tmp_path, tiny_steps):
    es = entries(500)
    body = raw(es[:200]) + b'{"log":"torn\n' + raw(es[200:300]) + b"not json at all\n"
    body += raw(es[300:]) + b'{"log":"being written","stre'
    log = tmp_path / "c-json.log"
    log.write_bytes(body)
    for since in bounds(es):
        assert await read(log, since=since) == reference(es, since=since), since
    for until in bounds(es):
        assert await read(log, until=until) == reference(es, until=until), until


@async_test
async def test_empty_missing_and_half_written_logs(tmp_path, tiny_steps):
    log = tmp_path / "c-json.log"
    assert await read(log, since=T0) == []  # no log at all
    log.write_bytes(b"")
    assert await read(log, since=T0, until=T0 + 5) == []
    log.write_bytes(b'{"log":"x\\n","stream":"stdout","time":"2023-11-14T22:13:2')
    assert await read(log, since=T0) == []
    (tmp_path / "c-json.log.1.gz").write_bytes(b"\x1f\x8b not really gzip")
    log.write_bytes(raw(entries(5)))
    assert await read(log, since=T0) == entries(5)  # the broken archive is skipped


@async_test
async def test_follow_ends_at_once_when_the_log_already_passed_until(tmp_path):
    es = entries(30)
    log = tmp_path / "c-json.log"
    log.write_bytes(raw(es))
    until = parse_rfc3339(es[10][2])

    async def follow():
        return await read(log, follow=True, until=until, running=lambda: True, poll=0.01)

    got = await asyncio.wait_for(follow(), 5)
    assert got == reference(es, until=until)


def test_seek_since_lands_at_most_scan_bytes_before_the_first_entry(tmp_path):
    es = entries(20000)
    data = raw(es)
    log = tmp_path / "c-json.log"
    log.write_bytes(data)
    starts = [0]
    for line in data.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    probes = 0
    real = log_window.line_time

    def counting(line: bytes) -> float | None:
        nonlocal probes
        probes += 1
        return real(line)

    log_window.line_time = counting  # type: ignore[assignment]
    try:
        for i in (0, 1, 5000, 12345, 19999):
            since = parse_rfc3339(es[i][2])
            want = starts[next(j for j, e in enumerate(es) if parse_rfc3339(e[2]) >= since)]
            probes = 0
            with open(log, "rb") as f:
                at = log_window.seek_since(f, since)
                assert f.tell() == at
            assert at in starts and at <= want <= at + log_window.SCAN_BYTES
            assert probes <= 20  # a bisection of 1.8 MB, not a parse of 20000 lines
    finally:
        log_window.line_time = real  # type: ignore[assignment]


def test_line_time_of_bad_lines():
    assert log_window.line_time(b"") is None
    assert log_window.line_time(b"[1, 2]\n") is None
    assert log_window.line_time(json.dumps({"time": 5}).encode()) is None
    assert log_window.line_time(b'{"time":"yesterday"}\n') == 0.0  # junk: as the filter reads it


def test_a_lines_time_equals_the_api_seconds_for_it():
    """The CLI sends --until as "secs.nanos": a line written at that time is inside."""
    assert parse_rfc3339("2026-11-29T03:45:43.975311325Z") == float("1795923943.975311325")
    assert parse_rfc3339("2023-11-14T22:13:20.5Z") == float("1700000000.500000000")
    assert parse_rfc3339("2023-11-14T22:13:20Z") == 1700000000.0
    assert parse_rfc3339("2023-11-14T22:13:20.5+01:00") == 0.0  # junk, not a crash
    assert parse_rfc3339("1969-12-31T23:59:59.5Z") == -0.5
