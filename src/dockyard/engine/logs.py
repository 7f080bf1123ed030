"""Reading a container's json-file log (dockerd's format, written by the monitor)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import msgspec

from dockyard.engine.clock import parse_rfc3339 as parse_time


class _Line(msgspec.Struct):
    log: str
    stream: str
    time: str


_decode = msgspec.json.Decoder(_Line).decode


@dataclass
class LogEntry:
    stream: int  # 1 stdout, 2 stderr
    data: bytes
    time: str  # RFC3339Nano


def _entry(raw: bytes) -> LogEntry | None:
    try:
        line = _decode(raw)
    except msgspec.DecodeError:
        return None  # a torn last line from a crash: skip it rather than fail the read
    return LogEntry(2 if line.stream == "stderr" else 1, line.log.encode(), line.time)


def _tail_lines(path: str, n: int) -> tuple[list[bytes], int]:
    """The last n lines of a file without reading all of it; also the end offset."""
    with open(path, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        pos, buf = end, b""
        while pos > 0 and buf.count(b"\n") <= n:
            step = min(65536, pos)
            pos -= step
            f.seek(pos)
            buf = f.read(step) + buf
    # A last line without newline is still being written (or torn by a crash): it is
    # not one of the n, and the follow loop picks it up from its start.
    cut = buf.rfind(b"\n") + 1
    lines = buf[:cut].splitlines()
    return lines[-n:] if n else [], end - (len(buf) - cut)


async def read_log(
    path: str,
    *,
    stdout: bool = True,
    stderr: bool = True,
    tail: int | None = None,
    since: float = 0.0,
    until: float = 0.0,
    follow: bool = False,
    running: Callable[[], bool] = lambda: False,
    poll: float = 0.05,
) -> AsyncIterator[LogEntry]:
    def wanted(e: LogEntry | None) -> bool:
        if e is None or not (stdout if e.stream == 1 else stderr):
            return False
        if since or until:
            t = parse_time(e.time)
            if since and t < since:
                return False
            if until and t > until:
                return False
        return True

    if not os.path.exists(path):
        return
    if tail is not None and tail >= 0:
        lines, offset = _tail_lines(path, tail)
    else:
        with open(path, "rb") as f:
            data = f.read()
        offset = len(data)
        # A final line without newline is being written: leave it for the follow loop.
        cut = data.rfind(b"\n") + 1
        lines, offset = data[:cut].splitlines(), cut
    for raw in lines:
        e = _entry(raw)
        if wanted(e):
            yield e  # type: ignore[misc]
    if not follow:
        return
    pending = b""
    with open(path, "rb") as f:
        f.seek(offset)
        while True:
            alive = running()
            chunk = f.read()
            if chunk:
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for raw in complete:
                    e = _entry(raw)
                    if wanted(e):
                        yield e  # type: ignore[misc]
                    if until and e is not None and parse_time(e.time) > until:
                        return
                continue
            if not alive:
                return
            await asyncio.sleep(poll)
