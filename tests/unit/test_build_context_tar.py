"""The build context's two tar halves: the CLI's hand-written writer and the
daemon's reader that hashes files as it writes them; plus the heredoc rules."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from dockyard.cli.build_context import directory_tar
from dockyard.engine.build import context_tar, heredocs, words
from dockyard.engine.build.syntax import parse
from dockyard.errors import InvalidParameter


def _make_tree(root: Path) -> None:
    (root / "Dockerfile").write_text("FROM scratch\n")
    deep = root / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    (deep / ("long-name-" + "x" * 90 + ".txt")).write_bytes(b"long\n")
    (root / "ünïcode.txt").write_text("ü\n")
    (root / "exec.sh").write_bytes(b"#!/bin/sh\n")
    (root / "exec.sh").chmod(0o751)
    (root / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 7))
    os.link(root / "exec.sh", root / "exec-hard")
    os.symlink("../../outside/" + "t" * 120, root / "far-link")
    os.mkfifo(root / "fifo")
    (root / "empty").mkdir(mode=0o700)
    (root / "empty").chmod(0o700)


def _sent(root: Path) -> bytes:
    stream, _name, close = directory_tar(str(root), "")
    try:
        return stream.read()
    finally:
        close()


def test_the_cli_tar_reads_back_as_tarfile_and_as_the_daemon_reads_it(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _make_tree(src)
    data = _sent(src)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar}
    long = next(n for n in members if n.endswith(".txt") and "long-name" in n)
    assert len(long) > 100 and members[long].size == 5
    assert members["exec-hard"].mode == 0o751 and members["exec-hard"].uid == 0
    # the second name of the inode (in sorted order) travels as a hard link
    assert members["exec.sh"].islnk() and members["exec.sh"].linkname == "exec-hard"
    assert members["far-link"].linkname.endswith("t" * 120)
    assert members["fifo"].isfifo() and members["empty"].isdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    digests = context_tar.unpack(io.BytesIO(data), str(dest))
    for rel in ("Dockerfile", long, "ünïcode.txt", "big.bin", "exec.sh"):
        content = (src / rel).read_bytes()
        assert (dest / rel).read_bytes() == content
        assert (
            digests[os.path.join(os.path.realpath(dest), rel)] == hashlib.sha256(content).digest()
        )
    assert stat.S_IMODE((dest / "exec.sh").stat().st_mode) == 0o751
    assert (dest / "exec.sh").stat().st_ino == (dest / "exec-hard").stat().st_ino
    assert os.readlink(dest / "far-link") == os.readlink(src / "far-link")
    assert stat.S_ISFIFO((dest / "fifo").lstat().st_mode)
    assert stat.S_IMODE((dest / "empty").stat().st_mode) == 0o700
    assert int((dest / "big.bin").stat().st_mtime) == int((src / "big.bin").stat().st_mtime)


def _tar(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


def _entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([(_entry("../x"), b"x")], "outside of the build context"),
        ([(_entry("a/../../x"), b"x")], "outside of the build context"),
        ([(_entry("l", tarfile.SYMTYPE, "/"), b""), (_entry("l/x"), b"x")], "is not a directory"),
        ([(_entry("f"), b"x"), (_entry("f/x"), b"x")], "is not a directory"),
        ([(_entry("h", tarfile.LNKTYPE, "../../etc/passwd"), b"")], "outside of the build"),
        ([(_entry("c", tarfile.CHRTYPE), b"")], "device node"),
        ([(_entry("d", tarfile.DIRTYPE), b""), (_entry("d"), b"x")], "replaces the directory"),
    ],
)
def test_the_daemon_refuses_entries_that_leave_or_abuse_the_context(tmp_path, members, message):
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(InvalidParameter, match=message):
        context_tar.unpack(io.BytesIO(_tar(*members)), str(dest))
    assert not (tmp_path / "x").exists()


def test_truncated_and_corrupt_archives_are_refused(tmp_path):
    data = _tar((_entry("f"), b"y" * 5000))
    for bad in (data[:700], data[: 512 + 100]):
        dest = tmp_path / f"d{len(bad)}"
        dest.mkdir()
        with pytest.raises(InvalidParameter, match="unexpected end|checksum"):
            context_tar.unpack(io.BytesIO(bad), str(dest))
    corrupt = bytearray(data)
    corrupt[0] ^= 0x01
    dest = tmp_path / "corrupt"
    dest.mkdir()
    with pytest.raises(InvalidParameter, match="checksum"):
        context_tar.unpack(io.BytesIO(bytes(corrupt)), str(dest))


def test_a_later_entry_replaces_an_earlier_one(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    digests = context_tar.unpack(
        io.BytesIO(_tar((_entry("f"), b"first"), (_entry("f"), b"second"))), str(dest)
    )
    assert (dest / "f").read_bytes() == b"second"
    assert digests[str(dest.resolve() / "f")] == hashlib.sha256(b"second").digest()


def test_heredoc_markers_and_raw_expansion():
    assert heredocs.marker("<<EOF") == heredocs.Marker("EOF", chomp=False, expand=True)
    assert heredocs.marker("<<-'EOF'") == heredocs.Marker("EOF", chomp=True, expand=False)
    assert heredocs.marker('<<"EOF"').expand is False  # type: ignore[union-attr]
    assert heredocs.marker("<<EOF python3") is None
    assert heredocs.marker("<<'EOF") is None
    env = {"A": "x y", "B": ""}
    assert words.raw_word("$A '$A' \"$A\" \\$A ${B:-dflt}", env) == "x y '$A' \"x y\" \\$A dflt"
    with pytest.raises(InvalidParameter, match="single-quote"):
        words.raw_word("it's", env)


def test_run_scripts_as_buildkit_makes_them():
    (inst,) = parse("RUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF\n")[0]
    assert heredocs.run_script(inst.args[0], inst) == heredocs.RunScript(
        "/dev/pipes/EOF", ("EOF", "#!/usr/bin/env python3\nprint(1)\n")
    )
    (inst,) = parse("RUN <<-EOF\n\techo a\n\t\techo b\nEOF\n")[0]
    assert heredocs.run_script(inst.args[0], inst).script == "echo a\necho b\n"
    # `<<-` with a tab before `#!`: not a shebang (BuildKit tests the raw body)
    (inst,) = parse("RUN <<-EOF\n\t#!/bin/false\n\techo a\nEOF\n")[0]
    assert heredocs.run_script(inst.args[0], inst).pipe_file is None
    (inst,) = parse("RUN python3 <<EOF\n#!/ignored\nprint(1)\nEOF\n")[0]
    script = heredocs.run_script(inst.args[0], inst)
    assert script.pipe_file is None
    assert script.script == "python3 <<EOF\n#!/ignored\nprint(1)\nEOF\n"


def _members(data: bytes) -> list[tuple[bytes, str, str, int, int, int]]:
    r = context_tar.Reader(io.BytesIO(data))
    out = []
    for kind, name, link, size, mode, mtime in context_tar.members(r):
        r.exact(size + (-size % 512))
        out.append((kind, name, link, size, mode, mtime))
    return out


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_headers_read_the_same_whatever_writer_made_them(fmt):
    """The fast reading of header fields gives what tarfile reads, for each format
    (GNU long names, pax records) and for fields written the old way (space-padded
    octal, a base-256 size, a checksum with its blank elsewhere)."""
    body = io.BytesIO()
    with tarfile.open(fileobj=body, mode="w", format=fmt) as tar:
        for name, data, mode in (("a", b"x" * 700, 0o751), ("d/" + "n" * 120, b"", 0o644)):
            if fmt == tarfile.USTAR_FORMAT and len(name) > 100:
                name = "d/" + "n" * 90
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    data = body.getvalue()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        want = [(m.name, m.size, m.mode, int(m.mtime)) for m in tar]
    got = [(name, size, mode, mtime) for _k, name, _l, size, mode, mtime in _members(data)]
    assert got == want


def _old_style_header(name: bytes, size_field: bytes, mode_field: bytes) -> bytes:
    block = bytearray(512)
    block[0 : len(name)] = name
    block[100:108] = mode_field
    block[108:116] = b"     0 \0"
    block[116:124] = b"     0 \0"
    block[124:136] = size_field
    block[136:148] = b" 14561674400"  # octal, space-padded, no NUL
    block[156:157] = b"0"
    block[148:156] = b" " * 8
    block[148:156] = b"%7o\0" % sum(block)  # space-padded checksum, NUL last
    return bytes(block)


def test_old_style_and_base256_fields_are_read():
    data = b"x" * 5
    spaced = _old_style_header(b"old.txt", b"          5 ", b"   644 \0")
    base256 = _old_style_header(b"big.txt", b"\x80" + (5).to_bytes(11, "big"), b"0000755\0")
    archive = spaced + data + bytes(507) + base256 + data + bytes(507) + bytes(1024)
    assert _members(archive) == [
        (b"0", "old.txt", "", 5, 0o644, 0o14561674400),
        (b"0", "big.txt", "", 5, 0o755, 0o14561674400),
    ]


@pytest.mark.parametrize(
    "name",
    ["a", "a/b", "a/b/", "./a", "./a/b/", "a//b", "a/./b", "./.hidden", ".x/y", "a/.b/c",
     "/abs/p", "a/b/..", "./", ".", "a/../b", "x/"],
)  # fmt: skip
def test_relative_names_as_normpath_makes_them(name):
    import posixpath

    assert context_tar.relative(name) == posixpath.normpath("/" + name.lstrip("/")).lstrip("/")
