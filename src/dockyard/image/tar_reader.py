"""Reading a tar stream forward, fast, hashing every byte as it passes.

tarfile spends tens of microseconds of Python on each member (TarInfo
objects, per-field decoding, a file object per member) and reads its source
through small buffers; a rootfs layer has ten thousand members, so that
alone made unpacking slower than `tar -x`. Here one bytearray is refilled
with readinto, a header is parsed by slicing one 512-byte block, names stay
bytes (what the file system takes), member data is handed out as
memoryviews of the buffer (no copy), and every byte read is passed once to
`on_read` (the layer's diff_id hash, its blob copy).

Formats, read as Go's archive/tar (what dockerd uses) reads them: v7, ustar
(name prefix), pax ('x' records apply to the next member, 'g' global records
are ignored, as dockerd ignores them), GNU ('L'/'K' long names, base-256
numbers, 'S' sparse files) and the pax sparse formats 0.0, 0.1 and 1.0.
Special headers (pax, long names, sparse maps) are bounded (1 MiB, as Go),
so memory stays flat whatever the stream holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol
from zlib import adler32

from dockyard.errors import InvalidParameter

BLOCK = 512
MAX_SPECIAL = 1 << 20  # pax headers, long names, sparse maps (Go: maxSpecialFileSize)
_ZERO_BLOCK = bytes(BLOCK)

REG = ord("0")
LNK = ord("1")
SYM = ord("2")
CHR = ord("3")
BLK = ord("4")
DIR = ord("5")
FIFO = ord("6")
CONT = ord("7")
_PAX = ord("x")
_PAX_GLOBAL = ord("g")
_GNU_LONGNAME = ord("L")
_GNU_LONGLINK = ord("K")
_GNU_SPARSE = ord("S")
_POSIX_MAGIC = b"ustar\x0000"
_GNU_MAGIC = b"ustar  \x00"


class Source(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class TarFormatError(InvalidParameter):
    """A stream that is not a well-formed tar (corrupt, truncated)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid layer archive: {reason}")


class TarEntry:
    """One member's header, everything numeric already decoded."""

    __slots__ = (
        "name", "type", "mode", "uid", "gid", "size", "mtime_ns", "atime_ns",
        "linkname", "devmajor", "devminor", "xattrs", "sparse", "real_size",
    )  # fmt: skip

    def __init__(self) -> None:
        self.name = b""
        self.type = REG
        self.mode = 0
        self.uid = 0
        self.gid = 0
        self.size = 0  # data bytes in the archive
        self.mtime_ns = 0
        self.atime_ns = 0
        self.linkname = b""
        self.devmajor = 0
        self.devminor = 0
        self.xattrs: list[tuple[str, bytes]] | None = None  # SCHILY.xattr.*
        self.sparse: list[tuple[int, int]] | None = None  # (offset, length) data regions
        self.real_size = 0  # the file's size (a sparse file's apparent size)

    @property
    def shown(self) -> str:
        """The name for messages."""
        return self.name.decode("utf-8", "backslashreplace")


def _cut(field: bytes) -> bytes:
    end = field.find(b"\0")
    return field if end < 0 else field[:end]


def _num(field: bytes) -> int:
    """A numeric header field: octal text, or GNU/Go base-256 binary."""
    try:
        # The common case in one C call: digits (blanks around them) ending in NULs.
        # Anything else (a NUL inside, base-256, empty) fails here and is read below.
        return int(field.rstrip(b"\0"), 8)
    except ValueError:
        pass
    if field and field[0] & 0x80:
        n = int.from_bytes(field[1:], "big")
        if field[0] == 0xFF:  # negative (Go writes these for times before 1970)
            return n - (1 << (8 * (len(field) - 1)))
        return n | ((field[0] & 0x7F) << (8 * (len(field) - 1)))
    text = _cut(field).strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise TarFormatError(f"invalid number {text!r} in a tar header") from None


def _byte_sum(block: bytes) -> int:
    """sum(block) of a 512-byte block, in C: adler32's low half is 1 + the byte sum
    modulo 65521, exact for 256 bytes (at most 65280)."""
    return (adler32(block[:256]) & 0xFFFF) + (adler32(block[256:]) & 0xFFFF) - 2


def _time_ns(text: bytes) -> int:
    """A pax time ("1600000000.123456789") in nanoseconds, exactly."""
    whole, _, frac = text.partition(b".")
    try:
        sec = int(whole)
        ns = int((frac + b"000000000")[:9]) if frac else 0
    except ValueError:
        raise TarFormatError(f"invalid pax time {text!r}") from None
    return sec * 1_000_000_000 - ns if text.startswith(b"-") else sec * 1_000_000_000 + ns


def _pax_int(value: bytes, key: bytes) -> int:
    try:
        n = int(value)
    except ValueError:
        raise TarFormatError(f"invalid pax {key.decode('ascii', 'replace')} {value!r}") from None
    if n < 0:
        raise TarFormatError(f"invalid pax {key.decode('ascii', 'replace')} {value!r}")
    return n


def _parse_pax(data: bytes) -> tuple[dict[bytes, bytes], list[int]]:
    """pax records ("%d %s=%s\\n"); the GNU 0.0 sparse offsets/sizes in order."""
    records: dict[bytes, bytes] = {}
    sparse00: list[int] = []
    pos, end = 0, len(data)
    while pos < end:
        if data[pos] == 0:
            break  # NUL padding
        space = data.find(b" ", pos, pos + 21)
        if space < 0:
            raise TarFormatError("invalid pax header")
        try:
            length = int(data[pos:space])
        except ValueError:
            raise TarFormatError("invalid pax header") from None
        stop = pos + length
        if length <= space - pos + 1 or stop > end or data[stop - 1] != 0x0A:
            raise TarFormatError("invalid pax header")
        key, eq, value = data[space + 1 : stop - 1].partition(b"=")
        if not eq:
            raise TarFormatError("invalid pax header")
        if key in (b"GNU.sparse.offset", b"GNU.sparse.numbytes"):
            sparse00.append(_pax_int(value, key))
        else:
            records[key] = value
        pos = stop
    return records, sparse00


def _pairs(numbers: list[int], what: str) -> list[tuple[int, int]]:
    if len(numbers) % 2:
        raise TarFormatError(f"invalid sparse map ({what})")
    return [(numbers[i], numbers[i + 1]) for i in range(0, len(numbers), 2)]


class Consumed(Protocol):
    """Told every byte the reader consumes, in stream order (image/tar_split): member
    data taken by the caller (`data`), everything else (`raw`: headers, padding,
    data skipped, what follows the end of the archive)."""

    def raw(self, chunk: bytes | memoryview, /) -> None: ...

    def data(self, chunk: bytes | memoryview, /) -> None: ...


class TarReader:
    """Members of a tar stream, in order; their data read through this reader."""

    def __init__(
        self,
        source: Source,
        on_read: Callable[[memoryview], None] | None = None,
        chunk: int = 1 << 20,
        consumed: Consumed | None = None,
    ) -> None:
        self._source = source
        self._readinto = getattr(source, "readinto", None)
        self._buf = bytearray(chunk)
        self._view = memoryview(self._buf)
        self._start = 0  # next unread byte in _buf
        self._end = 0  # end of valid bytes in _buf
        self._eof = False
        self.on_read = on_read
        self._left = 0  # data bytes of the current member not consumed yet
        self._pad = 0  # padding after them
        self.count = 0  # bytes read from the source
        self.consumed = consumed

    # -- the buffer ------------------------------------------------------------------

    def _fill(self) -> bool:
        """Read more after _end (moving what is unread to the front first)."""
        if self._eof:
            return False
        start, end = self._start, self._end
        if start == end:
            self._start = self._end = start = end = 0
        elif end == len(self._buf) or start > len(self._buf) // 2:
            rest = bytes(self._view[start:end])
            self._view[: len(rest)] = rest
            self._start, self._end = 0, len(rest)
            start, end = 0, len(rest)
        room = self._view[end:]
        if self._readinto is not None:
            n = self._readinto(room)
        else:
            data = self._source.read(len(room))
            n = len(data)
            room[:n] = data
        if not n:
            self._eof = True
            return False
        if self.on_read is not None:
            self.on_read(self._view[end : end + n])
        self.count += n
        self._end = end + n
        return True

    def _skip(self, n: int) -> None:
        while n:
            avail = self._end - self._start
            if not avail:
                if not self._fill():
                    raise TarFormatError("unexpected end of archive (truncated)")
                continue
            step = min(avail, n)
            if self.consumed is not None:
                self.consumed.raw(self._view[self._start : self._start + step])
            self._start += step
            n -= step

    def take(self, n: int) -> memoryview:
        """Up to `n` (> 0) bytes of the current member's data, as a view valid until the
        next call; TarFormatError if the stream ends first."""
        if self._start == self._end and not self._fill():
            raise TarFormatError("unexpected end of archive (truncated member data)")
        start = self._start
        step = min(n, self._left, self._end - start)
        self._start = start + step
        self._left -= step
        view = self._view[start : start + step]
        if self.consumed is not None:
            self.consumed.data(view)
        return view

    def _read_exact(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            if self._start == self._end and not self._fill():
                raise TarFormatError("unexpected end of archive (truncated)")
            step = min(n - len(out), self._end - self._start)
            out += self._view[self._start : self._start + step]
            self._start += step
        return bytes(out)

    def peek(self, n: int) -> bytes:
        """Up to `n` (<= the buffer's size) first bytes of what is left of the current
        member's data, without consuming them (fewer only if the member is shorter)."""
        n = min(n, self._left)
        while self._end - self._start < n:
            if not self._fill():
                raise TarFormatError("unexpected end of archive (truncated member data)")
        return bytes(self._view[self._start : self._start + n])

    @property
    def left(self) -> int:
        """Data bytes of the current member not read yet."""
        return self._left

    def read_data(self, n: int) -> bytes:
        """`n` bytes of the current member's data (small reads: a sparse map)."""
        if n > self._left:
            raise TarFormatError("member data shorter than its header says")
        start = self._start
        if self._end - start >= n:  # the common case: one copy out of the buffer
            self._start = start + n
            data = bytes(self._view[start : start + n])
        else:
            data = self._read_exact(n)
        self._left -= n
        if self.consumed is not None:
            self.consumed.data(data)
        return data

    def drain(self) -> None:
        """Read (and so hash) what follows the end of the archive: padding counts in
        a layer's diff_id."""
        if self.consumed is not None:
            self.consumed.raw(self._view[self._start : self._end])
        self._start = self._end
        while self._fill():
            if self.consumed is not None:
                self.consumed.raw(self._view[self._start : self._end])
            self._start = self._end

    # -- headers ---------------------------------------------------------------------

    def _special(self, size: int, what: str) -> bytes:
        if size > MAX_SPECIAL:
            raise TarFormatError(f"{what} of {size} bytes (at most {MAX_SPECIAL})")
        data = self._read_exact(size)
        if self.consumed is not None:
            self.consumed.raw(data)
        self._skip(-size % BLOCK)
        return data

    def _block(self) -> bytes | None:
        while self._end - self._start < BLOCK:
            if not self._fill():
                if self._end == self._start:
                    return None  # the stream ends between members: a clean end
                raise TarFormatError("unexpected end of archive (truncated header)")
        start = self._start
        self._start = start + BLOCK
        block = bytes(self._view[start : start + BLOCK])
        if self.consumed is not None:
            self.consumed.raw(block)
        return block

    def next(self) -> TarEntry | None:
        """The next member, or None at the end of the archive."""
        if self._left or self._pad:
            self._skip(self._left + self._pad)
            self._left = self._pad = 0
        pax: dict[bytes, bytes] = {}
        sparse00: list[int] = []
        longname = longlink = None
        while True:
            block = self._block()
            if block is None and not self.count:
                raise TarFormatError("empty archive")  # as tarfile: nothing came at all
            if block is None or block == _ZERO_BLOCK:
                return None
            stored = _num(block[148:156])
            unsigned = _byte_sum(block) - sum(block[148:156]) + 256
            if stored != unsigned:
                signed = unsigned - 2 * sum(b for b in block if b > 127)
                signed += 2 * sum(b for b in block[148:156] if b > 127)
                if stored != signed:
                    raise TarFormatError("bad checksum in a tar header")
            kind = block[156] or REG
            size = _num(block[124:136])
            if size < 0:
                raise TarFormatError("negative member size")
            if kind == _PAX:
                records, more = _parse_pax(self._special(size, "pax header"))
                pax.update(records)
                sparse00.extend(more)
                continue
            if kind == _PAX_GLOBAL:
                self._special(size, "pax global header")  # ignored, as by dockerd
                continue
            if kind == _GNU_LONGNAME:
                longname = _cut(self._special(size, "GNU long name"))
                continue
            if kind == _GNU_LONGLINK:
                longlink = _cut(self._special(size, "GNU long link name"))
                continue
            break
        e = TarEntry()
        magic = block[257:265]
        name = _cut(block[0:100])
        if magic == _POSIX_MAGIC:
            prefix = _cut(block[345:500])
            if prefix:
                name = prefix + b"/" + name
        e.name = longname if longname is not None else name
        e.linkname = longlink if longlink is not None else _cut(block[157:257])
        if kind == CONT:
            kind = REG
        elif kind == REG and block[156] == 0 and e.name.endswith(b"/"):
            kind = DIR  # v7: a directory is a "regular file" named with a slash
        e.type = kind
        e.mode = _num(block[100:108])
        e.uid = _num(block[108:116])
        e.gid = _num(block[116:124])
        e.mtime_ns = e.atime_ns = _num(block[136:148]) * 1_000_000_000
        if magic in (_POSIX_MAGIC, _GNU_MAGIC) and kind in (CHR, BLK):
            e.devmajor = _num(block[329:337])
            e.devminor = _num(block[337:345])
        if kind == _GNU_SPARSE:
            e.type = REG
            e.sparse = self._gnu_sparse(block)
            e.real_size = _num(block[483:495])
        if pax:
            size = self._apply_pax(e, pax, size)
        e.size = size
        if sparse00 and not e.sparse:
            e.sparse = _pairs(sparse00, "GNU.sparse.offset/numbytes")
        if e.sparse is None:
            e.real_size = size
        self._left = size
        self._pad = -size % BLOCK
        if pax.get(b"GNU.sparse.major") == b"1" and pax.get(b"GNU.sparse.minor") == b"0":
            e.sparse = self._sparse_map_10(e)
        return e

    def _apply_pax(self, e: TarEntry, pax: dict[bytes, bytes], size: int) -> int:
        for key, value in pax.items():
            if key == b"path":
                e.name = value
            elif key == b"linkpath":
                e.linkname = value
            elif key == b"size":
                size = _pax_int(value, key)
            elif key == b"uid":
                e.uid = _pax_int(value, key)
            elif key == b"gid":
                e.gid = _pax_int(value, key)
            elif key == b"mtime":
                e.mtime_ns = _time_ns(value)
            elif key.startswith(b"SCHILY.xattr."):
                if e.xattrs is None:
                    e.xattrs = []
                e.xattrs.append((key[13:].decode("utf-8", "surrogateescape"), value))
        if b"atime" in pax:
            e.atime_ns = _time_ns(pax[b"atime"])
        else:
            e.atime_ns = e.mtime_ns
        sparse_name = pax.get(b"GNU.sparse.name")
        if sparse_name is not None:
            e.name = sparse_name
        real = pax.get(b"GNU.sparse.realsize", pax.get(b"GNU.sparse.size"))
        if real is not None:
            e.real_size = _pax_int(real, b"GNU.sparse.realsize")
            e.sparse = e.sparse or []
        sparse_map = pax.get(b"GNU.sparse.map")
        if sparse_map is not None:
            try:
                numbers = [int(x) for x in sparse_map.split(b",")] if sparse_map else []
            except ValueError:
                raise TarFormatError("invalid sparse map (GNU.sparse.map)") from None
            e.sparse = _pairs(numbers, "GNU.sparse.map")
        return size

    def _gnu_sparse(self, block: bytes) -> list[tuple[int, int]]:
        regions: list[tuple[int, int]] = []

        def parse(area: bytes, count: int) -> None:
            for i in range(count):
                entry = area[i * 24 : i * 24 + 24]
                if entry[:12] == bytes(12):
                    return
                if len(regions) >= MAX_SPECIAL // 24:
                    raise TarFormatError("sparse map too large")
                regions.append((_num(entry[:12]), _num(entry[12:])))

        parse(block[386:482], 4)
        extended = block[482]
        while extended:
            ext = self._block()
            if ext is None:
                raise TarFormatError("unexpected end of archive (truncated sparse map)")
            parse(ext[:504], 21)
            extended = ext[504]
        return regions

    def _sparse_map_10(self, e: TarEntry) -> list[tuple[int, int]]:
        """Sparse 1.0: the map is at the start of the data, decimal numbers one a
        line (a count, then offset/length pairs), padded to a block."""
        numbers: list[int] = []
        consumed = 0
        pending = b""
        wanted: int | None = None
        while wanted is None or len(numbers) < 2 * wanted:
            if consumed >= MAX_SPECIAL:
                raise TarFormatError("sparse map too large")
            chunk = self.read_data(BLOCK)
            consumed += BLOCK
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            for line in lines:
                try:
                    n = int(line)
                except ValueError:
                    raise TarFormatError("invalid sparse map (1.0)") from None
                if wanted is None:
                    wanted = n
                elif len(numbers) < 2 * wanted:
                    numbers.append(n)
            if wanted is not None and len(numbers) >= 2 * wanted:
                break
        e.size -= consumed
        return _pairs(numbers, "1.0")


class MemberData:
    """What is left of the current member's data, as a stream of its own (a
    layer tar inside a `docker save` archive, unpacked as it arrives)."""

    def __init__(self, reader: TarReader) -> None:
        self._reader = reader

    def readinto(self, buf: memoryview) -> int:
        left = self._reader.left
        if not left:
            return 0
        view = self._reader.take(min(len(buf), left))
        n = len(view)
        buf[:n] = view
        return n

    def read(self, size: int = -1) -> bytes:
        left = self._reader.left
        if not left:
            return b""
        return bytes(self._reader.take(left if size is None or size < 0 else min(size, left)))

    def readable(self) -> bool:
        return True
