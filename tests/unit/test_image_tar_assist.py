"""GNU tar making a layer's plain entries (image/tar_assist): the same tree as the
unpacker alone, the same refusals, and no tar process left behind.

The hostile archives of test_image_tarsafe also run with the assist there
(its `tar_assist` fixture); here: what only the assisted path can get
wrong (a tree that differs from the reference, a child that outlives an
error, a full disk, a stream cut while tar is writing).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
from child_processes import tar_children

from dockyard.errors import DockyardError, InvalidParameter, StorageFull
from dockyard.image import tar_assist
from dockyard.image.store import ImageStore
from dockyard.image.tarsafe import unpack_layer
from dockyard.kernel.tar_child import gnu_tar_available

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="tar sets owners and xattrs as root only"),
    pytest.mark.skipif(not gnu_tar_available(), reason="GNU tar not installed"),
]

CAP = b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"


@pytest.fixture(autouse=True)
def no_tar_left():
    yield
    assert tar_children() == []


@pytest.fixture
def assists(monkeypatch) -> list[tar_assist.TarAssist]:
    """The TarAssist of each unpack (to see that tar did the work)."""
    made: list[tar_assist.TarAssist] = []
    real = tar_assist.assist_for

    def spy(unpacker, dest):
        found = real(unpacker, dest)
        if found is not None:
            made.append(found)
        return found

    monkeypatch.setattr(tar_assist, "assist_for", spy)
    return made


def member(
    name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", fmt: int = tarfile.PAX_FORMAT, **kw
):
    """One member's bytes in `fmt` (tarfile.PAX_FORMAT or GNU_FORMAT)."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = kw.pop("mode", 0o755 if kind == tarfile.DIRTYPE else 0o644)
    info.uid = kw.pop("uid", 0)
    info.gid = kw.pop("gid", 0)
    info.mtime = kw.pop("mtime", 1_600_000_000)
    info.linkname = kw.pop("linkname", "")
    info.devmajor, info.devminor = kw.pop("dev", (0, 0))
    info.pax_headers = kw.pop("pax", {})
    assert not kw, kw
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    blob = info.tobuf(fmt, "utf-8", "surrogateescape")
    return blob + data + bytes(-len(data) % 512)


def archive(*members: bytes) -> bytes:
    return b"".join(members) + bytes(1024)


PAX, GNU = tarfile.PAX_FORMAT, tarfile.GNU_FORMAT
DIR, SYM, LNK, CHR = tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE
LONG = "deep/" + "d" * 90 + "/" + "f" * 120  # > 100 chars: pax path / GNU long name


def varied() -> bytes:
    big = os.urandom(3 << 20)
    return archive(
        member("./", DIR, mode=0o755, mtime=1_500_000_000),
        member("etc", DIR, mtime=1_400_000_001),
        member("etc/hostname", data=b"box\n", uid=1000, gid=1001, mtime=1_400_000_000),
        member("etc/empty"),
        member(
            "etc/nanos",
            data=b"n",
            pax={"mtime": "1600000000.123456789", "atime": "1600000001.5"},
        ),
        member("etc/future", data=b"f", mtime=4_102_444_800),  # 2100: tar says nothing
        member("etc/epoch", data=b"e", mtime=0),
        member("etc/far", data=b"f", pax={"mtime": "99999999999.5"}),  # past ext4's range
        member("etc/big", data=big, uid=3_000_000, gid=2_999_999),  # pax uid/gid
        member("bin", DIR),
        member("bin/su", data=b"\x7fELF", mode=0o4755),
        member("bin/sg", data=b"\x7fELF", mode=0o2711, gid=42),
        member(
            "bin/ping",
            data=b"\x7fELF",
            uid=5,
            pax={"SCHILY.xattr.security.capability": CAP.decode()},
        ),
        member("bin/tagged", data=b"t", pax={"SCHILY.xattr.user.mime": "text/plain"}),
        member("bin/su2", LNK, linkname="bin/su"),
        member("bin/su3", LNK, linkname="/bin/su"),  # a leading slash, as dockerd takes it
        member("tmp", DIR, mode=0o1777),
        member("ro", DIR, mode=0o555, mtime=1_300_000_000),
        member("ro/child", data=b"c"),
        member("ro/sub", DIR, mode=0o500),
        member("ro/sub/leaf", data=b"l", mode=0o400),
        member("links", DIR),
        member("links/abs", SYM, linkname="/etc/hostname", uid=7, gid=8),
        member("links/rel", SYM, linkname="../etc/hostname"),
        member("links/dangling", SYM, linkname="nowhere/at/all"),
        member("links/up", SYM, linkname="../../../.."),
        member("deep", DIR),
        member("deep/" + "d" * 90, DIR),
        member(LONG, data=b"pax long name", fmt=PAX),
        member(LONG + "-gnu", data=b"gnu long name", fmt=GNU),
        member("links/longtarget", SYM, linkname="/" + "t" * 150, fmt=GNU),
        member("caf\u00e9", data=b"utf-8 short name"),
        member("deep/" + "\u00e9" * 70, data=b"utf-8 long name: the unpacker's"),
        # The unpacker's entries in between: tar is ended, then started again.
        member("etc/.wh.gone"),
        member("opq", DIR),
        member("opq/.wh..wh..opq"),
        member("opq/after", data=b"a"),
        member("etc/hostname", data=b"replaced\n", mtime=1_400_000_002),
        member("dev", DIR),
        member("dev/null", CHR, dev=(1, 3), mode=0o666),
        member("etc/overlay", data=b"o", pax={"SCHILY.xattr.trusted.overlay.redirect": "/x"}),
        member("implied/parent/file", data=b"its parents are made 0755"),
        member("implied", DIR, mode=0o700, mtime=1_200_000_000),  # after its children
        member("etc/more", data=b"added to a directory tar finished with"),
        member("etc/hard-after", LNK, linkname="etc/hostname"),  # to the replaced file
        member("links/abs2", SYM, linkname="/etc/passwd"),
        member("a/.wh..wh.plnk/x", data=b"aufs bookkeeping, skipped"),
    )


IMPLIED = {"implied/parent"}


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def snapshot(root: Path, names: list[str]) -> dict[str, tuple]:
    """Each path's lstat fields, link target, xattrs, then content. Taken by names
    known beforehand: listing a directory (or reading a file) moves its atime."""
    seen: dict[str, tuple] = {}
    inodes: dict[int, str] = {}
    for rel in [".", *names]:
        path = root / rel
        st = os.lstat(path)
        attrs = {
            name: os.getxattr(path, name, follow_symlinks=False)
            for name in sorted(os.listxattr(path, follow_symlinks=False))
        }
        link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
        first = inodes.setdefault(st.st_ino, rel)  # hard links: the same first name
        # A whiteout (0/0 device) is made when met, its times those of the moment.
        # So is a directory no entry names (made for its children).
        whiteout = stat.S_ISCHR(st.st_mode) and st.st_rdev == 0 or rel in IMPLIED
        seen[rel] = (
            st.st_mode,
            st.st_uid,
            st.st_gid,
            st.st_size,
            None if whiteout else st.st_mtime_ns,
            None if whiteout else st.st_atime_ns,
            st.st_nlink,
            st.st_rdev,
            link,
            attrs,
            first,
        )
    for rel in names:
        path = root / rel
        if stat.S_ISREG(os.lstat(path).st_mode):
            seen[rel] = (*seen[rel], path.read_bytes())
    return seen


@pytest.mark.parametrize("workers", [0, 4])
def test_the_tree_is_the_unpackers(tmp_path, assists, workers):
    tar = varied()
    listed, plain, assisted = tmp_path / "listed", tmp_path / "plain", tmp_path / "assisted"
    unpack_layer(io.BytesIO(tar), str(listed), workers=workers)
    names = listing(listed)
    size_plain = unpack_layer(io.BytesIO(tar), str(plain), workers=workers)
    size_assisted = unpack_layer(io.BytesIO(tar), str(assisted), workers=workers, tar_assist=True)
    assert size_plain == size_assisted
    want, got = snapshot(plain, names), snapshot(assisted, names)
    for rel in want:
        assert got[rel] == want[rel], rel
    assert listing(assisted) == names
    # tar did most of it, and was ended and started again around the unpacker's entries.
    (used,) = assists
    assert used.forwarded >= 30 and used.children >= 3
    # What the checks are about, on disk:
    st = os.lstat(assisted / "bin/ping")
    assert os.getxattr(assisted / "bin/ping", "security.capability") == CAP
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (5, 0o644)
    assert stat.S_IMODE(os.lstat(assisted / "bin/su").st_mode) == 0o4755
    assert os.lstat(assisted / "etc/nanos").st_mtime_ns == 1_600_000_000_123_456_789
    assert os.lstat(assisted / "ro").st_mtime_ns == 1_300_000_000 * 10**9
    assert os.lstat(assisted / "etc").st_mtime_ns == 1_400_000_001 * 10**9
    assert os.lstat(assisted / "links/abs").st_uid == 7
    assert os.lstat(assisted / "bin/su3").st_ino == os.lstat(assisted / "bin/su").st_ino


def test_a_layer_of_plain_entries_is_all_tars(tmp_path, assists):
    tar = archive(
        member("d", DIR),
        *(member(f"d/f{i}", data=b"x" * i) for i in range(300)),
        member("d/s", SYM, linkname="f1"),
        member("d/h", LNK, linkname="d/f2"),
    )
    unpack_layer(io.BytesIO(tar), str(tmp_path / "l"), workers=4, tar_assist=True)
    (used,) = assists
    assert (used.forwarded, used.children) == (303, 1)
    assert (tmp_path / "l/d/f299").read_bytes() == b"x" * 299


def test_not_for_a_directory_that_holds_something(tmp_path, assists):
    dest = tmp_path / "l"
    dest.mkdir()
    (dest / "keep").write_bytes(b"k")
    unpack_layer(io.BytesIO(archive(member("a", data=b"a"))), str(dest), tar_assist=True)
    assert assists == []
    assert sorted(os.listdir(dest)) == ["a", "keep"]


@pytest.mark.parametrize(
    "members, message",
    [
        # A file through a symlink tar made: the unpacker's, resolved inside the layer.
        ([member("a", SYM, linkname="/etc"), member("a/passwd", data=b"x")], None),
        ([member("a", SYM, linkname="../../.."), member("a/x", data=b"x")], None),
        ([member("../x", data=b"x")], "outside of the layer"),
        ([member("f", data=b"x"), member("h", LNK, linkname="../../etc/passwd")], "outside"),
        ([member("s", SYM, linkname="/etc/passwd"), member("h", LNK, linkname="s")], None),
        ([member("f", data=b"x"), member("f/g", data=b"y")], "not a directory"),
    ],
)
def test_hostile_entries_after_tars_stay_inside(tmp_path, members, message):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("secret\n")
    dest = tmp_path / "layer"
    tar = archive(member("ok", data=b"made by tar"), *members)
    if message is None:
        unpack_layer(io.BytesIO(tar), str(dest), tar_assist=True)
    else:
        with pytest.raises(InvalidParameter, match=message):
            unpack_layer(io.BytesIO(tar), str(dest), tar_assist=True)
    assert sorted(os.listdir(outside)) == ["passwd"]
    assert (outside / "passwd").read_text() == "secret\n"
    for path in dest.rglob("*"):  # nothing made anywhere but in the layer
        assert str(path.resolve()).startswith(str(dest)) or path.is_symlink()
    if (dest / "h").exists() and (dest / "s").is_symlink():
        assert os.path.samestat(os.lstat(dest / "h"), os.lstat(dest / "s"))  # the link itself


def test_device_nodes_still_refused_when_untrusted(tmp_path):
    tar = archive(member("ok", data=b"x"), member("dev/sda", tarfile.BLKTYPE, dev=(8, 0)))
    with pytest.raises(InvalidParameter, match="refusing device node"):
        unpack_layer(io.BytesIO(tar), str(tmp_path / "l"), tar_assist=True, allow_devices=False)


@pytest.mark.parametrize("cut", ["data", "header"])
def test_a_stream_cut_while_tar_writes_fails_and_kills_tar(tmp_path, assists, cut):
    whole = archive(
        *(member(f"f{i}", data=os.urandom(5000)) for i in range(50)),
        member("big", data=os.urandom(2 << 20)),
    )
    end = len(whole) - 1024 - (1 << 20) if cut == "data" else len(whole) - 1024 - (2 << 20) - 300
    with pytest.raises(InvalidParameter, match="truncated"):
        unpack_layer(io.BytesIO(whole[:end]), str(tmp_path / "l"), tar_assist=True)
    assert assists and assists[0].forwarded >= 40  # tar was at work when the stream ended


def test_a_tar_that_fails_is_an_error_with_its_message(tmp_path, monkeypatch):
    """tar refusing what it was sent (here: a name made behind its back) fails the
    unpack with tar's message; the child is reaped."""
    real = tar_assist.TarAssist._forward
    made = []

    def sabotage(self, reader, entry):
        if entry.name == b"b" and not made:
            made.append(1)
            (tmp_path / "l" / "b").write_bytes(b"someone else's")
        return real(self, reader, entry)

    monkeypatch.setattr(tar_assist.TarAssist, "_forward", sabotage)
    tar = archive(member("a", data=b"a"), member("b", data=b"b"), member("c", data=b"c"))
    with pytest.raises(DockyardError, match="failed to extract layer: tar: .*b"):
        unpack_layer(io.BytesIO(tar), str(tmp_path / "l"), tar_assist=True)
    assert (tmp_path / "l/b").read_bytes() == b"someone else's"  # --keep-old-files


def test_tar_killed_midway_is_an_error(tmp_path, monkeypatch):
    real = tar_assist.TarAssist._forward

    def kill_it(self, reader, entry):
        if entry.name == b"f20" and self._child is not None:
            os.kill(self._child.pid, 9)
        return real(self, reader, entry)

    monkeypatch.setattr(tar_assist.TarAssist, "_forward", kill_it)
    tar = archive(*(member(f"f{i}", data=os.urandom(70_000)) for i in range(40)))
    with pytest.raises(DockyardError, match="tar: killed by signal 9"):
        unpack_layer(io.BytesIO(tar), str(tmp_path / "l"), tar_assist=True)


@pytest.fixture
def small_fs(tmp_path):
    where = tmp_path / "small"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def test_a_full_disk_is_storage_full_and_leaves_nothing(small_fs, assists):
    store = ImageStore(str(small_fs / "root"))
    tar = archive(
        member("d", DIR),
        *(member(f"d/f{i}", data=os.urandom(100_000)) for i in range(60)),  # 6 MB > 4 MB
    )
    with pytest.raises(StorageFull, match="no space left on device"):
        store.unpack(io.BytesIO(tar))
    assert assists and assists[0].forwarded > 0
    assert os.listdir(store.layers_dir) == [] and os.listdir(store.blobs_dir) == []


def test_the_store_unpacks_with_tar(tmp_path, assists):
    store = ImageStore(str(tmp_path / "root"))
    tar = archive(member("d", DIR), member("d/f", data=b"hello"))
    unpacked = store.unpack(io.BytesIO(tar))
    try:
        assert (Path(unpacked.tmp_dir) / "diff/d/f").read_bytes() == b"hello"
        assert assists[0].forwarded == 2
    finally:
        with contextlib.suppress(OSError):
            subprocess.run(["rm", "-rf", unpacked.tmp_dir, unpacked.tmp_blob], check=False)


def test_enospc_message_mapping():
    from dockyard.kernel.tar_child import TarChildFailed

    full = tar_assist._failure(TarChildFailed(2, "tar: x: Cannot write: No space left on device"))
    assert isinstance(full, StorageFull)
    other = tar_assist._failure(TarChildFailed(2, "tar: x: Cannot open: Permission denied\nmore"))
    assert other.message == "failed to extract layer: tar: tar: x: Cannot open: Permission denied"
    assert errno.ENOSPC  # the class, not the number, is what callers see


class _Interrupted:
    """A stream that is interrupted (Ctrl-C, a cancelled load) after `at` bytes."""

    def __init__(self, data: bytes, at: int) -> None:
        self._data, self._at, self._pos = data, at, 0

    def read(self, n: int = -1) -> bytes:
        if self._pos >= self._at:
            raise KeyboardInterrupt
        n = min(n if n >= 0 else len(self._data), self._at - self._pos, 65536)
        out = self._data[self._pos : self._pos + n]
        self._pos += len(out)
        return out


def test_an_interrupted_unpack_leaves_no_tar(tmp_path, assists):
    tar = archive(*(member(f"f{i}", data=os.urandom(20_000)) for i in range(100)))
    with pytest.raises(KeyboardInterrupt):
        unpack_layer(_Interrupted(tar, len(tar) // 2), str(tmp_path / "l"), tar_assist=True)
    assert assists[0].forwarded > 10  # tar was running


def test_without_gnu_tar_the_unpacker_does_it_all(tmp_path, assists, monkeypatch):
    monkeypatch.setattr(tar_assist, "gnu_tar_available", lambda: False)
    tar = archive(member("d", DIR), member("d/f", data=b"x"))
    unpack_layer(io.BytesIO(tar), str(tmp_path / "l"), tar_assist=True)
    assert assists == [] and (tmp_path / "l/d/f").read_bytes() == b"x"


def test_tar_never_sees_the_archives_headers(tmp_path, assists):
    """A pax global header (ignored by dockerd and by our reader, applied by GNU tar
    to every member after it) and a GNU long name that a pax path overrides: a
    parser that read them differently would make other names and owners. Tar is
    sent headers written from what the reader decided, so the trees agree."""
    glob = tarfile.TarInfo._create_pax_generic_header(  # type: ignore[attr-defined]
        {"uid": "4321", "gid": "4321", "mtime": "1", "path": "evil"}, tarfile.XGLTYPE, "utf-8"
    )
    longname = tarfile.TarInfo._create_gnu_long_header(  # type: ignore[attr-defined]
        "gnu-says-this-name", tarfile.GNUTYPE_LONGNAME, "utf-8", "strict"
    )
    tar = archive(
        glob,
        member("./", DIR),
        member("d", DIR),
        longname + member("d/pax-says-this-name", data=b"x", uid=7, fmt=PAX),
        member("d/plain", data=b"y"),
    )
    listed, plain, assisted = tmp_path / "listed", tmp_path / "plain", tmp_path / "assisted"
    unpack_layer(io.BytesIO(tar), str(listed))
    names = listing(listed)
    unpack_layer(io.BytesIO(tar), str(plain))
    unpack_layer(io.BytesIO(tar), str(assisted), tar_assist=True)
    assert snapshot(assisted, names) == snapshot(plain, names)
    assert listing(assisted) == names
    assert assists[0].forwarded == 3
    assert os.lstat(assisted / "d/plain").st_uid == 0  # not the global header's 4321
