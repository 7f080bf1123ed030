"""The json-file log, byte for byte as dockerd writes it."""

from __future__ import annotations

import json
import re

from dockyard.runtime.jsonlog import (
    MAX_LINE,
    JsonFileLog,
    LineSplitter,
    encode_attrs,
    encode_entry,
    escape_log,
)
from dockyard.runtime.rfc3339 import fixed_nanos, format_rfc3339nano

T = 1_795_841_158_123_456_789  # 2026-11-28T04:45:58.123456789Z


def test_entry_format_matches_dockerd() -> None:
    assert encode_entry(b"hello world\n", "stdout", T) == (
        b'{"log":"hello world\\n","stream":"stdout","time":"2026-11-28T04:45:58.123456789Z"}\n'
    )


def test_attrs_sit_between_stream_and_time_sorted_and_escaped_as_dockerd() -> None:
    attrs = encode_attrs({"z": "q q", "EE": "x y&", "a": "b"})
    assert encode_entry(b"hi\n", "stdout", T, attrs) == (
        b'{"log":"hi\\n","stream":"stdout","attrs":{"EE":"x y\\u0026","a":"b","z":"q q"},'
        b'"time":"2026-11-28T04:45:58.123456789Z"}\n'
    )
    assert encode_attrs({}) == b""


def test_logs_timestamps_keep_nine_digits() -> None:
    """`docker logs -t` prints jsonmessage.RFC3339NanoFixed, never a trimmed fraction."""
    assert fixed_nanos("2026-11-28T04:45:58.12Z") == "2026-11-28T04:45:58.120000000Z"
    assert fixed_nanos("2026-11-28T04:45:58Z") == "2026-11-28T04:45:58.000000000Z"
    assert fixed_nanos("2026-11-28T04:45:58.123456789Z") == "2026-11-28T04:45:58.123456789Z"


def test_time_is_go_rfc3339nano() -> None:
    assert format_rfc3339nano(T) == "2026-11-28T04:45:58.123456789Z"
    # Go trims trailing zeros of the fraction, and drops a zero fraction.
    assert format_rfc3339nano(1_795_841_158_120_000_000) == "2026-11-28T04:45:58.12Z"
    assert format_rfc3339nano(1_795_841_158_000_000_000) == "2026-11-28T04:45:58Z"


def test_escaping_follows_moby_jsonlog() -> None:
    assert escape_log(b'a"b\\c\r\n') == b'a\\"b\\\\c\\r\\n'
    assert escape_log(b"\t\x01<>&") == b"\\u0009\\u0001\\u003c\\u003e\\u0026"
    assert escape_log("é€\u2028".encode()) == "é€".encode() + b"\\u2028"
    assert escape_log(b"bad\xffutf8") == b"bad\\ufffdutf8"
    # Whatever the bytes, the line is valid JSON that decodes to the text.
    line = encode_entry(b"x\x00y\xc3\n", "stderr", T)
    assert json.loads(line)["log"] == "x\x00y\ufffd\n"


def test_split_on_newlines_keeping_them() -> None:
    s = LineSplitter()
    assert s.feed(b"one\ntwo\nthr") == [b"one\n", b"two\n"]
    assert s.feed(b"ee\n") == [b"three\n"]
    assert s.feed(b"\n") == [b"\n"]
    assert s.feed(b"partial") == []
    assert s.flush() == [b"partial"]
    assert s.flush() == []


def test_long_line_becomes_partial_entries() -> None:
    s = LineSplitter()
    data = b"x" * (MAX_LINE * 2 + 10) + b"\n"
    entries = s.feed(data)
    assert [len(e) for e in entries] == [MAX_LINE, MAX_LINE, 11]
    assert b"".join(entries) == data


def test_log_file_written_per_line_and_flushed_at_close(tmp_path) -> None:
    path = tmp_path / "c-json.log"
    log = JsonFileLog(str(path))
    log.write("stdout", b"hello\nwor")
    log.write("stderr", b"oops\n")
    log.write("stdout", b"ld\nno newline at exit")
    log.close()
    lines = path.read_bytes().splitlines()
    entries = [json.loads(line) for line in lines]
    assert [(e["log"], e["stream"]) for e in entries] == [
        ("hello\n", "stdout"),
        ("oops\n", "stderr"),
        ("world\n", "stdout"),
        ("no newline at exit", "stdout"),
    ]
    for line in lines:
        assert re.fullmatch(rb'\{"log":".*","stream":"std(out|err)","time":"[0-9T:.-]+Z"\}', line)


def test_full_disk_drops_entries_and_a_short_write_does_not_eat_the_next(
    tmp_path, monkeypatch
) -> None:
    """ENOSPC: entries are lost (the container is not blocked); a short write's
    fragment is ended with a newline once space is back, so the next entry is whole."""
    import errno
    import os

    from dockyard.runtime import jsonlog

    path = tmp_path / "c-json.log"
    log = JsonFileLog(str(path))
    log.write("stdout", b"first\n")
    real_write = os.write
    mode = {"now": "short"}

    def failing_write(fd: int, data: bytes) -> int:
        if mode["now"] == "short":
            mode["now"] = "full"
            return real_write(fd, data[:10])
        if mode["now"] == "full":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(jsonlog.os, "write", failing_write)
    for text in (b"torn\n", b"lost\n"):
        try:
            log.write("stdout", text)
        except OSError as e:
            assert e.errno == errno.ENOSPC
        else:
            raise AssertionError("a write on a full disk must raise")
    mode["now"] = "ok"
    log.write("stdout", b"back\n")
    log.close()
    assert log.dropped == 2
    lines = path.read_bytes().split(b"\n")
    good = []
    for raw in lines:
        try:
            good.append(json.loads(raw)["log"])
        except ValueError:
            pass
    assert good == ["first\n", "back\n"]
