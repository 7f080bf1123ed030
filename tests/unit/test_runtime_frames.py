"""The monitor's wire protocol: Docker's 8-byte stream header, plus JSON control frames."""

from __future__ import annotations

import json

import pytest

from dockyard.runtime import frames


def test_header_is_dockers() -> None:
    assert frames.encode(frames.STDOUT, b"hello") == b"\x01\x00\x00\x00\x00\x00\x00\x05hello"
    assert frames.encode(frames.STDERR, b"") == b"\x02\x00\x00\x00\x00\x00\x00\x00"


def test_decoder_handles_split_and_joined_frames() -> None:
    wire = (
        frames.encode(frames.STDOUT, b"a" * 70000)
        + frames.encode(frames.STDERR, b"err")
        + frames.encode_control({"event": "exit", "exit_code": 3})
    )
    dec = frames.FrameDecoder()
    got: list[tuple[int, bytes]] = []
    for i in range(0, len(wire), 7):
        got += dec.feed(wire[i : i + 7])
    assert [s for s, _ in got] == [1, 2, 3]
    assert got[0][1] == b"a" * 70000
    assert json.loads(got[2][1]) == {"event": "exit", "exit_code": 3}
    assert dec.pending == 0


def test_oversized_frame_is_rejected() -> None:
    dec = frames.FrameDecoder()
    with pytest.raises(ValueError):
        dec.feed(frames.HEADER.pack(1, frames.MAX_PAYLOAD + 1))


def test_log_error_event_is_checked() -> None:
    good = {"event": "log-error", "error": "No space left on device", "dropped": 3}
    assert frames.parse_event(json.dumps(good).encode()) == good
    for bad in ({**good, "dropped": "3"}, {**good, "error": 1}, {"event": "log-error"}):
        with pytest.raises(ValueError):
            frames.parse_event(json.dumps(bad).encode())
