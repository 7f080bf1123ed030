"""Tar headers byte for byte as tarfile's PAX_FORMAT writes them, cheaper.

A layer's diffID is the hash of its tar, and a committed layer's tar is
rebuilt later by tarfile (copied_layers.rebuild_tar): the bytes must not
change. `TarInfo.tobuf` costs ~20 us a member (a dict of its fields, pax
checks field by field, struct packing), which on one core is the price of a
whole small file's copy. `header` writes the plain ustar block itself when
tarfile would write nothing else (no pax record: ASCII names that fit,
numbers that fit, no xattrs) and asks tarfile otherwise.
"""

from __future__ import annotations

import tarfile

_MAGIC = tarfile.POSIX_MAGIC  # b"ustar\x0000"
_NO_DEVICE = b"\0" * 16
_SMALL = 8**7  # what an 8-byte octal field holds
_LARGE = 8**11  # a 12-byte one
_TAIL = b"\0" * (512 - 345)  # after devminor: prefix (155) and the block's padding (12)


def header(info: tarfile.TarInfo) -> bytes:
    """`info.tobuf(tarfile.PAX_FORMAT)` with tarfile's defaults (utf-8, surrogateescape)."""
    name = info.name
    kind = info.type
    if kind == tarfile.DIRTYPE and not name.endswith("/"):
        name += "/"
    uid, gid, size, mtime = info.uid, info.gid, info.size, info.mtime
    linkname = info.linkname
    if (
        info.pax_headers
        or info.uname
        or info.gname
        or not name.isascii()
        or len(name) > 100
        or not linkname.isascii()
        or len(linkname) > 100
        or type(uid) is not int
        or type(gid) is not int
        or type(size) is not int
        or type(mtime) is not int
        or not 0 <= uid < _SMALL
        or not 0 <= gid < _SMALL
        or not 0 <= size < _LARGE
        or not 0 <= mtime < _LARGE
        or info.mode is None
        or type(kind) is not bytes
        or len(kind) != 1
    ):
        return info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        major, minor = info.devmajor, info.devminor
        if type(major) is not int or type(minor) is not int:
            return info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")
        if not (0 <= major < _SMALL and 0 <= minor < _SMALL):
            return info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")
        devices = b"%07o\0%07o\0" % (major, minor)
    else:
        devices = _NO_DEVICE
    raw_name = name.encode("ascii")
    raw_link = linkname.encode("ascii")
    numbers = b"%07o\0%07o\0%07o\0%011o\0%011o\0" % (info.mode & 0o7777, uid, gid, size, mtime)
    # The checksum: every byte with its own field as 8 spaces (NULs add nothing).
    total = sum(raw_name) + sum(numbers) + 8 * 32 + kind[0] + sum(raw_link) + sum(_MAGIC)
    total += sum(devices)
    return b"".join(
        (
            raw_name,
            b"\0" * (100 - len(raw_name)),
            numbers,
            b"%06o\0 " % total,
            kind,
            raw_link,
            b"\0" * (100 - len(raw_link)),
            _MAGIC,
            b"\0" * 64,  # uname, gname
            devices,
            _TAIL,
        )
    )
