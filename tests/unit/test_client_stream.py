"""Docker's 8-byte multiplexed stream frames, however the bytes are chunked."""

from __future__ import annotations

from dockyard.client.stream import FrameDecoder, OutputSink, copy_stream, demux, encode_frame


def test_demux_frames_split_anywhere():
    data = encode_frame(1, b"hello\n") + encode_frame(2, b"err\n") + encode_frame(1, b"")
    data += encode_frame(1, bytes(range(256)))
    for step in (1, 3, 7, 8, 9, len(data)):
        chunks = [data[i : i + step] for i in range(0, len(data), step)]
        out: dict[int, bytes] = {1: b"", 2: b""}
        for stream, payload in demux(chunks):
            out[stream] += payload
        assert out[1] == b"hello\n" + bytes(range(256))
        assert out[2] == b"err\n"


def test_partial_frame_is_delivered_early():
    dec = FrameDecoder()
    frame = encode_frame(1, b"abcdef")
    assert list(dec.feed(frame[:10])) == [(1, b"ab")]
    assert dec.pending == 4
    assert list(dec.feed(frame[10:])) == [(1, b"cdef")]
    assert dec.pending == 0


def test_copy_stream_raw_for_tty():
    got: list[bytes] = []
    sink = OutputSink(stdout=got.append, stderr=lambda b: got.append(b"ERR" + b))
    copy_stream([b"\x01\x00\x00\x00raw tty bytes"], sink, tty=True)
    assert got == [b"\x01\x00\x00\x00raw tty bytes"]


def test_copy_stream_demuxed_to_stdout_and_stderr():
    out: list[bytes] = []
    err: list[bytes] = []
    sink = OutputSink(stdout=out.append, stderr=err.append)
    copy_stream([encode_frame(1, b"o"), encode_frame(2, b"e")], sink, tty=False)
    assert (out, err) == ([b"o"], [b"e"])
