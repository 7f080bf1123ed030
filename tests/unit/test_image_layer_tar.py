"""Directory -> layer tar (docker commit / export), and back."""

from __future__ import annotations

import io
import os
import stat
import tarfile

import pytest

from dockyard.image.layer_tar import write_layer_tar
from dockyard.image.tarsafe import unpack_layer

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mknod, xattrs)")

CAP = bytes.fromhex("0100000280000000000000000000000000000000")  # has a byte >= 0x80


def tar_names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [m.name for m in tar.getmembers()]


def build_upper(root) -> None:
    """An overlay upper dir as a container leaves it."""
    os.makedirs(root / "etc")
    (root / "etc/hostname").write_bytes(b"box\n")
    os.chown(root / "etc/hostname", 1000, 1001)
    os.mknod(root / "etc/motd", stat.S_IFCHR, os.makedev(0, 0))  # deleted file
    os.makedirs(root / "var/cache")
    os.setxattr(root / "var/cache", "trusted.overlay.opaque", b"y")  # rm -rf + recreate
    (root / "var/cache/new").write_bytes(b"n")
    (root / "bin").mkdir()
    (root / "bin/ping").write_bytes(b"\x7fELF")
    os.chmod(root / "bin/ping", 0o4755)
    os.setxattr(root / "bin/ping", "security.capability", CAP)
    os.setxattr(root / "bin/ping", "user.ignored", b"x")
    os.link(root / "bin/ping", root / "bin/ping6")
    os.symlink("/etc", root / "etclink")
    os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mkfifo(root / "fifo")


def test_overlay_upper_becomes_docker_layer(tmp_path):
    upper = tmp_path / "upper"
    build_upper(upper)
    buf = io.BytesIO()
    write_layer_tar(str(upper), buf)
    data = buf.getvalue()
    assert tar_names(data) == [
        "bin",
        "bin/ping",
        "bin/ping6",
        "etc",
        "etc/hostname",
        "etc/.wh.motd",
        "etclink",
        "fifo",
        "null",
        "var",
        "var/cache",
        "var/cache/.wh..wh..opq",
        "var/cache/new",
    ]
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        ping6 = tar.getmember("bin/ping6")
        assert ping6.islnk() and ping6.linkname == "bin/ping"
        ping = tar.getmember("bin/ping")
        assert "SCHILY.xattr.user.ignored" not in ping.pax_headers
        hostname = tar.getmember("etc/hostname")
        assert (hostname.uid, hostname.gid, hostname.uname) == (1000, 1001, "")
    # Same tree, same bytes: commits of identical content share the layer.
    again = io.BytesIO()
    write_layer_tar(str(upper), again)
    assert again.getvalue() == data


def test_round_trip_through_unpack(tmp_path):
    upper, copy = tmp_path / "upper", tmp_path / "copy"
    build_upper(upper)
    buf = io.BytesIO()
    write_layer_tar(str(upper), buf)
    unpack_layer(io.BytesIO(buf.getvalue()), str(copy))
    wh = os.lstat(copy / "etc/motd")
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == 0
    assert os.getxattr(copy / "var/cache", "trusted.overlay.opaque") == b"y"
    assert os.getxattr(copy / "bin/ping", "security.capability") == CAP
    assert stat.S_IMODE(os.stat(copy / "bin/ping").st_mode) == 0o4755
    assert os.stat(copy / "bin/ping6").st_ino == os.stat(copy / "bin/ping").st_ino
    assert os.readlink(copy / "etclink") == "/etc"
    assert os.stat(copy / "etc/hostname").st_uid == 1000
    assert os.lstat(copy / "null").st_rdev == os.makedev(1, 3)


def test_symlinked_dirs_are_archived_as_links_not_followed(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    os.symlink("/etc", root / "hostetc")
    buf = io.BytesIO()
    write_layer_tar(str(root), buf)
    assert tar_names(buf.getvalue()) == ["hostetc"]


def test_export_mode_keeps_devices(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    os.mknod(root / "c", stat.S_IFCHR, os.makedev(0, 0))
    buf = io.BytesIO()
    write_layer_tar(str(root), buf, overlay_whiteouts=False)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        (member,) = tar.getmembers()
    assert member.name == "c" and member.ischr()


def test_merged_export_applies_whiteouts_and_opaque_dirs(tmp_path):
    from dockyard.image.layer_tar import write_merged_tar

    low, mid, upper = tmp_path / "low", tmp_path / "mid", tmp_path / "upper"
    for d in (low / "etc", low / "var/cache", mid / "var/cache", upper / "etc"):
        d.mkdir(parents=True)
    (low / "etc/motd").write_bytes(b"low motd")
    (low / "etc/passwd").write_bytes(b"low passwd")
    (low / "var/cache/old").write_bytes(b"old")
    (low / "gone").mkdir()
    (low / "gone/file").write_bytes(b"x")
    os.mknod(mid / "gone", stat.S_IFCHR, os.makedev(0, 0))
    os.setxattr(mid / "var/cache", "trusted.overlay.opaque", b"y")
    (mid / "var/cache/new").write_bytes(b"new")
    os.mknod(upper / "etc/motd", stat.S_IFCHR, os.makedev(0, 0))
    (upper / "etc/passwd").write_bytes(b"upper passwd")
    os.chmod(upper / "etc", 0o700)

    buf = io.BytesIO()
    write_merged_tar([str(upper), str(mid), str(low)], buf)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        assert tar.getnames() == ["etc", "etc/passwd", "var", "var/cache", "var/cache/new"]
        assert tar.extractfile("etc/passwd").read() == b"upper passwd"
        assert tar.getmember("etc").mode == 0o700  # the top-most copy's attributes
