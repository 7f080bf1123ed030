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
_decode_many = msgspec.json.Decoder(list[_Line]).decode


@dataclass(slots=True)
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


def _entries(raws: list[bytes]) -> list[LogEntry]:
    """Many lines in one decode (a JSON array of them): 7x faster than line by line."""
    try:
        lines = _decode_many(b"[" + b",".join(raws) + b"]")
    except msgspec.DecodeError:
        return [e for raw in raws if (e := _entry(raw)) is not None]
    return [LogEntry(2 if ln.stream == "stderr" else 1, ln.log.encode(), ln.time) for ln in lines]


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
    **kwargs: object,
) -> AsyncIterator[LogEntry]:
    """One entry at a time (attach's replay); see read_log_batches."""
    async for batch in read_log_batches(path, **kwargs):  # type: ignore[arg-type]
        for e in batch:
            yield e


_BATCH = 4096


async def read_log_batches(
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
) -> AsyncIterator[list[LogEntry]]:
    """Entries in batches (what one read of the file gave), so a reader of a 100 MB log
    writes big chunks instead of one write per line."""

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

    rotated = rotated_files(path)
    if not os.path.exists(path) and not rotated:
        return  # never written, or deleted under the daemon: nothing to show
    try:
        if tail is not None and tail >= 0:
            lines, offset = _tail_lines(path, tail)
        else:
            with open(path, "rb") as f:
                data = f.read()
            # A final line without newline is being written: leave it for the follow loop.
            cut = data.rfind(b"\n") + 1
            lines, offset = data[:cut].splitlines(), cut
    except FileNotFoundError:
        lines, offset = [], 0
    if tail is None or tail < 0 or len(lines) < tail:
        # older lines from the rotated files, newest file first until the tail is full
        older: list[bytes] = []
        for old in reversed(rotated):
            if tail is not None and tail >= 0 and len(older) + len(lines) >= tail:
                break
            older = _read_rotated(old).splitlines() + older
        if tail is not None and tail >= 0:
            older = older[max(0, len(older) - (tail - len(lines))) :] if tail > len(lines) else []
        lines = older + lines
    for start in range(0, len(lines), _BATCH):
        batch = [e for e in _entries(lines[start : start + _BATCH]) if wanted(e)]
        if batch:
            yield batch  # type: ignore[misc]
    if not follow:
        return
    pending = b""
    try:
        f = open(path, "rb")  # noqa: SIM115 (reopened across rotations)
    except FileNotFoundError:
        return
    try:
        f.seek(offset)
        while True:
            alive = running()
            chunk = f.read()
            if not chunk and _rotated_away(f, path):
                # the monitor rotated (or truncated) the file: what was left in the old
                # one is read above; carry on with the new one from its start
                f.close()
                try:
                    f = open(path, "rb")  # noqa: SIM115
                except FileNotFoundError:
                    if not alive:
                        return
                    await asyncio.sleep(poll)
                    continue
                chunk = f.read()
            if chunk:
                pending += chunk
                *complete, pending = pending.split(b"\n")
                batch = []
                for raw in complete:
                    e = _entry(raw)
                    if until and e is not None and parse_time(e.time) > until:
                        if batch:
                            yield batch
                        return
                    if wanted(e):
                        batch.append(e)  # type: ignore[arg-type]
                if batch:
                    yield batch
                continue
            if not alive:
                return
            await asyncio.sleep(poll)
    finally:
        f.close()


def rotated_files(path: str) -> list[str]:
    """The rotated files of a log, oldest first: log.N(.gz) ... log.1(.gz)."""
    out = []
    for i in range(1, 1000):
        for name in (f"{path}.{i}", f"{path}.{i}.gz"):
            if os.path.exists(name):
                out.append(name)
                break
        else:
            break
    return list(reversed(out))


def _read_rotated(name: str) -> bytes:
    import gzip

    try:
        if name.endswith(".gz"):
            with gzip.open(name, "rb") as g:
                data = g.read()
        else:
            with open(name, "rb") as f:
                data = f.read()
    except (OSError, EOFError):
        return b""  # rotated away meanwhile, or a torn archive: skip it
    return data[: data.rfind(b"\n") + 1]


def _rotated_away(f: object, path: str) -> bool:
    fd = f.fileno()  # type: ignore[attr-defined]
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False  # deleted, not rotated: nothing new will come from a new file
    mine = os.fstat(fd)
    if (st.st_dev, st.st_ino) != (mine.st_dev, mine.st_ino):
        return True
    if st.st_size < f.tell():  # type: ignore[attr-defined]
        f.seek(0)  # type: ignore[attr-defined]  # truncated (max-file 1)
    return False
