"""The build context's saved tar: the same bytes back whether it stayed in memory
or went to its file, and never more than the limit held in memory."""

from __future__ import annotations

import os
import random

import pytest

from dockyard.engine.build.saved_tar import SavedTar


def _pieces(seed: int) -> tuple[bytes, list[bytes]]:
    rng = random.Random(seed)
    pieces = [rng.randbytes(rng.choice((0, 1, 511, 512, 4096, 10_000))) for _ in range(60)]
    return b"".join(pieces), pieces


@pytest.mark.parametrize("limit", [1 << 30, 50_000, 1])
def test_read_back_at_any_offset_in_memory_or_spilled(tmp_path, limit):
    data, pieces = _pieces(limit)
    path = tmp_path / "context.tar"
    saved = SavedTar(str(path), memory_limit=limit)
    for piece in pieces:
        saved.write(piece)
    saved.close()
    # past the limit, it is all in the file (what came before included); else no file
    assert saved.in_memory == (len(data) <= limit)
    assert path.exists() == (not saved.in_memory)
    if path.exists():
        assert path.read_bytes() == data
    rng = random.Random(1)
    for _ in range(300):
        offset = rng.randrange(len(data) + 10)
        n = rng.choice((0, 1, 512, 9000, 100_000))
        assert saved.read_at(offset, n) == data[offset : offset + n]
    with saved.open() as f:
        got = b""
        while chunk := f.read(rng.choice((1, 700, 8192))):
            got += chunk
    assert got == data
    with saved.open() as f:
        assert f.read(3) == data[:3]
        assert f.read() == data[3:]
        assert f.read() == b""
    saved.discard()
    assert not os.path.exists(path)
