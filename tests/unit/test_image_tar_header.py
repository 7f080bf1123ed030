"""Commit hashes its layer tar with its own header encoder and stream (image/
tar_header, image/tar_feed); the tar is rebuilt later by tarfile. One byte of
difference and a committed image's layer no longer matches its diffID: both
must write tarfile's bytes exactly, for every kind of member."""

from __future__ import annotations

import io
import random
import tarfile

import pytest

from dockyard.image.tar_feed import TarFeed
from dockyard.image.tar_header import header


def tobuf(info: tarfile.TarInfo) -> bytes:
    return info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")


def member(rng: random.Random) -> tarfile.TarInfo:
    """A member with fields at and around every limit of a ustar header."""
    names = [
        "etc/passwd",
        "a" * 99,
        "b" * 100,
        "c" * 101,
        "d/" * 50,
        "usr/" + "x" * 95,  # 99 chars: a directory's "/" makes it 100
        "usr/" + "x" * 96,  # 100: with its "/", 101
        "caf\u00e9",  # not ASCII: a pax "path" record
        "bad-\udce9",  # a name that is not UTF-8 (surrogateescape)
        "sp ace/new\nline",
        "",
    ]
    info = tarfile.TarInfo(rng.choice(names))
    info.type = rng.choice(
        [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE,
         tarfile.BLKTYPE, tarfile.FIFOTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE]
    )  # fmt: skip
    info.mode = rng.choice([0o644, 0o755, 0o4755, 0o7777, 0o100644, 0])
    info.uid = rng.choice([0, 1000, 8**7 - 1, 8**7, 2**31])
    info.gid = rng.choice([0, 42, 8**7 - 1, 8**7])
    info.size = rng.choice([0, 1, 511, 512, 8**11 - 1, 8**11])
    info.mtime = rng.choice([0, 1_600_000_000, 8**11 - 1, 8**11, 1_600_000_000.5])
    info.uname = info.gname = rng.choice(["", "", "", "root"])
    info.linkname = rng.choice(["", "../target", "l" * 100, "l" * 101, "\u00fcber"])
    if info.type in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor = rng.choice([0, 1, 8**7 - 1])
        info.devminor = rng.choice([0, 3, 255])
    if rng.random() < 0.2:
        info.pax_headers = {"SCHILY.xattr.security.capability": "\x01\x00\x00\x02"}
    if rng.random() < 0.1:
        info.pax_headers = {
            "SCHILY.xattr.security.capability": "\udcff\x00",
            "hdrcharset": "BINARY",
        }
    return info


@pytest.mark.parametrize("seed", range(5))
def test_headers_are_tarfiles_bytes(seed):
    rng = random.Random(seed)
    plain = 0
    for _ in range(2000):
        info = member(rng)
        try:
            expected = tobuf(info)
        except ValueError:  # tarfile refuses it: so must we
            with pytest.raises(ValueError):
                header(info)
            continue
        assert header(info) == expected, (info.name, info.type, info.get_info())
        plain += len(expected) == tarfile.BLOCKSIZE
    assert plain > 50  # the encoder's own path was taken, not only tarfile's


def test_a_stream_is_tarfiles_stream(tmp_path):
    """Members with and without data, of sizes around blocks and records: the
    same bytes as tarfile's "w|" stream, end-of-archive padding included."""
    rng = random.Random(7)
    # One file ending where the end blocks fill the record exactly, or just do not.
    cases = [[8704 - 512], [8704], [8704 + 1], [9728 - 511]]
    for count in (0, 1, 2, 17, 40):
        cases.append([rng.choice([0, 1, 511, 512, 513, 10240, 70_000]) for _ in range(count)])
    for sizes in cases:
        members = []
        for i, size in enumerate(sizes):
            info = tarfile.TarInfo(f"f{i}" if i % 3 or len(sizes) == 1 else f"d{i}")
            info.type = tarfile.REGTYPE if i % 3 or len(sizes) == 1 else tarfile.DIRTYPE
            info.mtime, info.uname, info.gname = 1_600_000_000, "", ""
            data = rng.randbytes(size)
            info.size = len(data) if info.type == tarfile.REGTYPE else 0
            members.append((info, data))
        expected = io.BytesIO()
        with tarfile.open(fileobj=expected, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for info, data in members:
                tar.addfile(info, io.BytesIO(data) if info.size else None)
        got = io.BytesIO()
        feed = TarFeed(got)
        for info, data in members:
            feed.addfile(info, io.BytesIO(data) if info.size else None)
        feed.close()
        assert got.getvalue() == expected.getvalue(), sizes
