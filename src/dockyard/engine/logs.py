"""Reading a container's json-file log (dockerd's format, written by the monitor)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import quote_plus

import msgspec

from dockyard.engine.clock import parse_rfc3339 as parse_time
from dockyard.engine.log_window import seek_since, start_file, window_slice


class _Line(msgspec.Struct, gc=False):
    log: str
    stream: str
    time: str
    attrs: dict[str, str] | None = None  # --log-opt labels/env


_decode = msgspec.json.Decoder(_Line).decode


@dataclass(slots=True)
class LogEntry:
    stream: int  # 1 stdout, 2 stderr
    data: bytes
    time: str  # RFC3339Nano


def _tail_lines(f: BinaryIO, n: int) -> tuple[list[bytes], int]:
    """The last n lines of a file without reading all of it; also the end offset."""
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


class LogBatch:
    """Consecutive entries of a log column by column (no object per line): a reader of
    a 100 MB log handles a few hundred of these, not 1.6M entries. Iterating gives
    LogEntry objects, for readers that want them."""

    __slots__ = ("attrs", "data", "streams", "times")

    def __init__(
        self,
        streams: list[int],
        data: list[bytes],
        times: list[str],
        attrs: list[bytes] | None = None,
    ) -> None:
        self.streams = streams
        self.data = data
        self.times = times
        self.attrs = attrs  # per entry `k=v,k2=v2` (logs --details); None: none has any

    def with_details(self) -> list[bytes]:
        """`logs --details`: each line after its attributes and a space (dockerd's
        attrsByteSlice: sorted, query-escaped), the space even when there are none."""
        if self.attrs is None:
            return [b" " + d for d in self.data]
        return [a + b" " + d for a, d in zip(self.attrs, self.data, strict=True)]

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self) -> Iterator[LogEntry]:
        return map(LogEntry, self.streams, self.data, self.times)


_STREAM = {"stdout": 1, "stderr": 2}
# msgspec decodes newline-delimited JSON in one call: no split, no object per line
# beyond the decoded struct.
_decode_lines = msgspec.json.Decoder(_Line).decode_lines


def _lines(raw: bytes) -> tuple[list[_Line], bool]:
    """Complete lines (raw ends with a newline), decoded; whether all of them were."""
    try:
        return _decode_lines(raw), True
    except msgspec.DecodeError:
        # A torn line from a crash: line by line, skipping what does not decode
        # rather than failing the read.
        out = []
        for line in raw.split(b"\n"):
            if line.strip():
                with contextlib.suppress(msgspec.DecodeError):
                    out.append(_decode(line))
        return out, False


def _batch(raw: bytes, keep: Callable[[int, str], bool] | None) -> LogBatch | None:
    lines, whole = _lines(raw)
    if not lines:
        return None
    n = len(lines)
    # Mostly all of one stream: counted in the raw bytes (outside a string only; inside
    # one its quotes would be escaped), not looked at line by line.
    if whole and raw.count(b'"stream":"stdout"') == n:
        streams = [1] * n
    elif whole and raw.count(b'"stream":"stderr"') == n:
        streams = [2] * n
    else:
        streams = [_STREAM.get(x.stream, 1) for x in lines]
    attrs = [_details(x.attrs) for x in lines] if b'"attrs":' in raw else None
    batch = LogBatch(streams, [x.log.encode() for x in lines], [x.time for x in lines], attrs)
    return batch if keep is None else _filtered(batch, keep)


def _details(attrs: dict[str, str] | None) -> bytes:
    if not attrs:
        return b""
    return ",".join(
        f"{quote_plus(k, safe='')}={quote_plus(v, safe='')}" for k, v in sorted(attrs.items())
    ).encode()


_BLOCK = 2 << 20  # bytes of the log file per read


def _blocks(f: BinaryIO) -> Iterator[bytes]:
    """Runs of complete lines, about _BLOCK bytes each; a last line without its newline
    (being written, or torn by a crash) is left unread."""
    pending = b""
    while chunk := f.read(_BLOCK):
        pending += chunk
        cut = pending.rfind(b"\n") + 1
        if cut:
            yield pending[:cut]
            pending = pending[cut:]


def _read_file_blocks(name: str, since: float = 0.0) -> Iterator[bytes]:
    """A rotated file's blocks; with `since`, a plain file's from near its first entry
    at or after it (log_window.seek_since)."""
    import gzip

    try:
        with gzip.open(name, "rb") if name.endswith(".gz") else open(name, "rb") as f:
            if since and not name.endswith(".gz"):
                seek_since(f, since)  # type: ignore[arg-type]
            yield from _blocks(f)  # type: ignore[arg-type]
    except (OSError, EOFError):
        return  # rotated away meanwhile, or a torn archive: skip it


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
) -> AsyncIterator[LogBatch]:
    """Entries in batches of a few MB of log, oldest first, read as they are sent (a
    100 MB log is never in memory at once), then new ones while `follow`."""

    keep: Callable[[int, str], bool] | None = None
    if not (stdout and stderr) or since or until:

        def keep(stream: int, time: str) -> bool:
            if not (stdout if stream == 1 else stderr):
                return False
            if since or until:
                t = parse_time(time)
                if since and t < since:
                    return False
                if until and t > until:
                    return False
            return True

    rotated = rotated_files(path)
    try:
        # One open file from the first read to the end of a follow: a rotation while a
        # big log is read cannot make the follow loop seek into the next file.
        f: BinaryIO | None = open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        f = None
    if f is None and not rotated:
        return  # never written, or deleted under the daemon: nothing to show
    try:
        offset = 0
        if tail is not None and tail >= 0:
            lines, offset = _tail_lines(f, tail) if f is not None else ([], 0)
            if len(lines) < tail:
                # older lines from the rotated files, newest file first until the tail is full
                older: list[bytes] = []
                for old in reversed(rotated):
                    if len(older) + len(lines) >= tail:
                        break
                    older = _read_rotated(old).splitlines() + older
                older = older[max(0, len(older) - (tail - len(lines))) :]
                lines = older + lines
            if lines:
                batch = _batch(b"\n".join(lines) + b"\n", keep)
                if batch is not None:
                    yield batch
        else:
            # The window is found by the lines' order, not by a filter over every line
            # (log_window.py); only the stream choice is a filter.
            streams = None if stdout and stderr else _stream_filter(stdout, stderr)
            first = start_file([*rotated, path], since) if since else 0
            for old in rotated[first:]:
                for raw in _read_file_blocks(old, since):
                    batch, ended = _windowed(raw, streams, since, until)
                    if batch is not None:
                        yield batch
                    if ended:
                        return  # nothing later can be before until
            if f is not None:
                if since:
                    offset = seek_since(f, since)
                for raw in _blocks(f):
                    offset += len(raw)
                    batch, ended = _windowed(raw, streams, since, until)
                    if batch is not None:
                        yield batch
                    if ended:
                        return
        if not follow or f is None:
            return
        pending = b""
        f.seek(offset)
        while True:
            alive = running()
            if f is None:
                try:
                    f = open(path, "rb")  # noqa: SIM115
                except FileNotFoundError:  # between the rotation's rename and the new file
                    if not alive:
                        return
                    await asyncio.sleep(poll)
                    continue
            chunk = f.read()
            if not chunk and _rotated_away(f, path):
                # the monitor rotated (or truncated) the file: what was left in the old
                # one is read above; carry on with the new one from its start
                f.close()
                f = None
                continue
            if chunk:
                pending += chunk
                cut = pending.rfind(b"\n") + 1
                raw, pending = pending[:cut], pending[cut:]
                batch = _batch(raw, None) if raw else None
                late = None
                if batch is not None and until:
                    # the first entry after `until` ends the stream
                    times = batch.times
                    late = next((i for i, t in enumerate(times) if parse_time(t) > until), None)
                    if late is not None:
                        batch = LogBatch(
                            batch.streams[:late],
                            batch.data[:late],
                            times[:late],
                            batch.attrs[:late] if batch.attrs is not None else None,
                        )
                if batch is not None and keep is not None:
                    batch = _filtered(batch, keep)
                if batch is not None and batch.data:
                    yield batch
                if late is not None:
                    return
                continue
            if not alive:
                return
            await asyncio.sleep(poll)
    finally:
        if f is not None:
            f.close()


def _stream_filter(stdout: bool, stderr: bool) -> Callable[[int, str], bool]:
    def keep(stream: int, _time: str) -> bool:
        return stdout if stream == 1 else stderr

    return keep


def _windowed(
    raw: bytes, streams: Callable[[int, str], bool] | None, since: float, until: float
) -> tuple[LogBatch | None, bool]:
    """The entries of a block inside the since/until window and of the chosen streams;
    whether the window ended in this block (an entry after `until`)."""
    batch = _batch(raw, None)
    if batch is None:
        return None, False
    ended = False
    if since or until:
        lo, hi, ended = window_slice(batch.times, since, until)
        if lo or hi < len(batch):
            if lo == hi:
                return None, ended
            batch = LogBatch(batch.streams[lo:hi], batch.data[lo:hi], batch.times[lo:hi])
    return (batch if streams is None else _filtered(batch, streams)), ended


def _filtered(batch: LogBatch, keep: Callable[[int, str], bool]) -> LogBatch | None:
    pairs = zip(batch.streams, batch.times, strict=True)
    picked = [i for i, (stream, t) in enumerate(pairs) if keep(stream, t)]
    if not picked:
        return None
    return LogBatch(
        [batch.streams[i] for i in picked],
        [batch.data[i] for i in picked],
        [batch.times[i] for i in picked],
        [batch.attrs[i] for i in picked] if batch.attrs is not None else None,
    )


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
