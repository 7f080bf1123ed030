"""TarFeed: commit's layer tar encoded on its own thread gives tarfile's bytes."""

from __future__ import annotations

import io
import tarfile
import threading

import pytest

from dockyard.image.tar_feed import TarFeed


def members() -> list[tuple[tarfile.TarInfo, bytes | None]]:
    out: list[tuple[tarfile.TarInfo, bytes | None]] = []
    for i, size in enumerate([0, 1, 511, 512, 513, 3_000_000]):
        info = tarfile.TarInfo(f"d/f{i}-" + "\u00e9" * i + "x" * (40 * i))  # pax names too
        info.size, info.mtime, info.uid = size, 1_600_000_000, 10_000_000 * i
        out.append((info, bytes([i]) * size))
    link = tarfile.TarInfo("d/link")
    link.type, link.linkname = tarfile.LNKTYPE, "d/f1-\u00e9x"
    folder = tarfile.TarInfo("d")
    folder.type = tarfile.DIRTYPE
    return [(folder, None), *out, (link, None)]


def test_same_bytes_as_tarfile():
    expected = io.BytesIO()
    with tarfile.open(fileobj=expected, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members():
            tar.addfile(info, io.BytesIO(data) if data else None)
    got = io.BytesIO()
    feed = TarFeed(got)
    for info, data in members():
        feed.addfile(info, io.BytesIO(data) if data else None)
    feed.close()
    assert got.getvalue() == expected.getvalue()


def test_a_file_shorter_than_its_header_fails_and_the_thread_ends():
    feed = TarFeed(io.BytesIO())
    info = tarfile.TarInfo("f")
    info.size = 10_000
    with pytest.raises(OSError, match="unexpected end of data"):
        feed.addfile(info, io.BytesIO(b"short"))
    feed.abort()  # in the middle of a member: must not hang
    assert not any(t.name == "layer-tar" and t.is_alive() for t in threading.enumerate())
