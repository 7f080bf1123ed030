"""Reading a container's json-file log (dockerd's format, written by the monitor)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import BinaryIO

import msgspec

from dockyard.engine.clock import parse_rfc3339 as parse_time
from dockyard.runtime.jsonlog import rotated_name


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
    older = _rotated_files(path)
    if tail is not None and tail >= 0:
        lines, offset = _tail_lines(path, tail)
        for name in reversed(older):  # newest first, until there are enough
            if len(lines) >= tail:
                break
            with contextlib.suppress(FileNotFoundError):  # rotated away meanwhile
                more, _ = _tail_lines(name, tail - len(lines))
                lines = more + lines
    else:
        lines = []
        for name in older:
            with contextlib.suppress(FileNotFoundError), open(name, "rb") as f:
                lines += f.read().splitlines()
        with open(path, "rb") as f:
            data = f.read()
        # A final line without newline is being written: leave it for the follow loop.
        cut = data.rfind(b"\n") + 1
        lines, offset = lines + data[:cut].splitlines(), cut
    for raw in lines:
        e = _entry(raw)
        if wanted(e):
            yield e  # type: ignore[misc]
    if not follow:
        return
    pending = b""
    f = open(path, "rb")  # noqa: SIM115 - reopened when the log rotates
    try:
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
            if _replaced(path, f):
                # Rotated (max-file > 1), and what was written before is read: go on
                # in the new file from its start.
                f.close()
                f = open(path, "rb")  # noqa: SIM115
                pending = b""
                continue
            if os.fstat(f.fileno()).st_size < f.tell():
                f.seek(0)  # emptied in place (max-file 1)
                pending = b""
                continue
            if not alive:
                return
            await asyncio.sleep(poll)
    finally:
        f.close()


def _rotated_files(path: str) -> list[str]:
    """The older files of a rotated log, oldest first (<path>.N ... <path>.1)."""
    found = []
    n = 1
    while os.path.exists(rotated_name(path, n)):
        found.append(rotated_name(path, n))
        n += 1
    return found[::-1]


def _replaced(path: str, f: BinaryIO) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(f.fileno())
    return (st.st_dev, st.st_ino) != (own.st_dev, own.st_ino)
