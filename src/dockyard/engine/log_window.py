"""The --since/--until window of a json-file log, found without parsing every line.

The monitor writes a log's entries in time order (each line's time is taken as it
is written, files rotate oldest to newest), so the window is a run of consecutive
lines:

- the rotated files that end before `since` are skipped whole: a file ends before
  the first entry of the next one (a gzipped file is read only up to its first line);
- in a plain file, the first entry at or after `since` is found by bisecting on
  byte offsets (a few dozen lines parsed for a 100 MB file, not 1.6M);
- reading stops at the first entry after `until`, as dockerd's reader does;
- a block of lines that lies wholly inside the window is taken as it is; only the
  blocks at its two edges have their lines' times parsed one by one.

The result is the one a filter over every line gives (tests/unit/test_log_window.py).
"""

from __future__ import annotations

import bisect
import gzip
import os
from typing import BinaryIO

import msgspec

from dockyard.engine.clock import parse_rfc3339 as parse_time


class _Time(msgspec.Struct, gc=False):
    time: str


_decode_time = msgspec.json.Decoder(_Time).decode

# Below this many bytes between the bounds, the rest is read (and filtered) rather
# than bisected further: one read block costs less than a few more seeks.
SCAN_BYTES = 64 * 1024


def line_time(line: bytes) -> float | None:
    """The time of one log line; None if it is not a whole entry (a torn line)."""
    try:
        return parse_time(_decode_time(line).time)
    except msgspec.DecodeError:
        return None


def first_time(name: str) -> float | None:
    """The time of a log file's first entry (plain or gzipped); None if unknown."""
    try:
        with gzip.open(name, "rb") if name.endswith(".gz") else open(name, "rb") as f:
            line = f.readline()
    except (OSError, EOFError):
        return None
    return line_time(line) if line.endswith(b"\n") else None


def start_file(files: list[str], since: float) -> int:
    """The index of the first file that may hold an entry at or after `since`: the
    newest whose first entry is before it (every older file ends before that entry),
    or 0."""
    for i in range(len(files) - 1, 0, -1):
        t = first_time(files[i])
        if t is not None and t < since:
            return i
    return 0


def seek_since(f: BinaryIO, since: float) -> int:
    """A line start in `f` at or before its first entry at or after `since`, and
    at most SCAN_BYTES before it: reading from there and dropping what is earlier
    than `since` gives what reading the whole file would. Leaves `f` there."""
    end = f.seek(0, os.SEEK_END)
    # lo is a line start, every entry before it is earlier than since;
    # no whole line starting at or after hi is earlier than since.
    lo, hi = 0, end
    while hi - lo > SCAN_BYTES:
        mid = (lo + hi) // 2
        f.seek(max(mid - 1, 0))
        if mid:
            f.readline()  # to the first line that starts at or after mid
        start = f.tell()
        line = f.readline() if start < hi else b""
        if not line.endswith(b"\n"):
            hi = mid  # no whole line starts in [mid, hi)
            continue
        t = line_time(line)
        if t is None:
            break  # a torn line: the rest is read from lo, line by line
        if t < since:
            lo = start + len(line)
        else:
            hi = start
    f.seek(lo)
    return lo


def window_slice(times: list[str], since: float, until: float) -> tuple[int, int, bool]:
    """The consecutive entries of a block (their times, in order) inside the window:
    (first, end, whether an entry after `until` ended the window here)."""
    first, end, ended = 0, len(times), False
    if since and parse_time(times[0]) < since:
        first = bisect.bisect_left(times, since, key=parse_time)
    if until and parse_time(times[-1]) > until:
        end = bisect.bisect_right(times, until, lo=first, key=parse_time)
        ended = True
    return first, max(first, end), ended
