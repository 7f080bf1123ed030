"""LayerDigest: the diff_id hash and the blob copy of a layer stream, inline or
on a thread of their own beside the unpacking."""

from __future__ import annotations

import hashlib
import os

import pytest

from dockyard.image.digesting import LayerDigest


@pytest.mark.parametrize("background", [False, True])
def test_digest_and_blob_are_the_stream(tmp_path, background):
    data = os.urandom(3_000_000)
    fd = os.open(tmp_path / "blob", os.O_WRONLY | os.O_CREAT, 0o600)
    digest = LayerDigest(fd, background=background)
    buf = bytearray(65536)
    view = memoryview(buf)
    for i in range(0, len(data), len(buf)):
        part = data[i : i + len(buf)]
        view[: len(part)] = part  # one buffer refilled, as the tar reader does
        digest(view[: len(part)])
    digest.finish()
    os.close(fd)
    assert digest.sha.hexdigest() == hashlib.sha256(data).hexdigest()
    assert digest.count == len(data)
    assert (tmp_path / "blob").read_bytes() == data


def test_a_failed_blob_write_is_raised_to_the_reader():
    """The disk filling up under the digest thread fails the layer, not silently."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write now fails (EPIPE)
    digest = LayerDigest(write_end, background=True)
    with pytest.raises(BrokenPipeError):
        for _ in range(100):
            digest(memoryview(b"x" * 4096))
        digest.finish()
    digest.stop()
    os.close(write_end)
