"""docker diff's A/C/D from an upper directory over image layers."""

from __future__ import annotations

import os
import stat

import pytest

from dockyard.image.layer_changes import ADDED, DELETED, MODIFIED, changes


def test_added_changed_deleted(tmp_path):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "etc").mkdir(parents=True)
    (lower / "etc" / "passwd").write_text("root\n")
    (lower / "bin").mkdir()
    (lower / "bin" / "vi").write_text("")
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "passwd").write_text("root\nme\n")
    (upper / "new").mkdir()
    (upper / "new" / "f").write_text("")
    (upper / "bin").mkdir()
    try:  # a whiteout: a 0:0 character device, any user's to make on Linux >= 5.8
        os.mknod(upper / "bin" / "vi", stat.S_IFCHR | 0o600, 0)
    except PermissionError:
        pytest.skip("making an overlay whiteout needs root on this kernel")
    assert changes(str(upper), [str(lower)]) == [
        ("/bin", MODIFIED), ("/bin/vi", DELETED), ("/etc", MODIFIED), ("/etc/passwd", MODIFIED),
        ("/new", ADDED), ("/new/f", ADDED),
    ]  # fmt: skip


def test_a_symlink_in_the_image_is_not_followed(tmp_path):
    # The image's /x points at the host's root: /x/passwd in the container's layer
    # must not be judged by the host's /x/... nor by following the link.
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    lower.mkdir()
    os.symlink("/etc", lower / "x")
    (upper / "x").mkdir(parents=True)
    (upper / "x" / "passwd").write_text("")
    assert changes(str(upper), [str(lower)]) == [("/x", MODIFIED), ("/x/passwd", ADDED)]


def test_symlinks_in_the_upper_dir_are_not_walked(tmp_path):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    lower.mkdir()
    upper.mkdir()
    os.symlink("/", upper / "root")
    assert changes(str(upper), [str(lower)]) == [("/root", ADDED)]


def test_opaque_dir_is_deleted_and_its_content_added(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("trusted.overlay.opaque needs root")
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "var" / "spool").mkdir(parents=True)
    (lower / "var" / "spool" / "old").write_text("")
    (upper / "var" / "spool").mkdir(parents=True)
    os.setxattr(upper / "var" / "spool", "trusted.overlay.opaque", b"y")
    (upper / "var" / "spool" / "new").write_text("")
    assert changes(str(upper), [str(lower)]) == [
        ("/var", MODIFIED), ("/var/spool", DELETED), ("/var/spool/new", ADDED),
    ]  # fmt: skip


def test_a_copied_up_dir_with_the_image_attributes_is_only_a_parent(tmp_path):
    # overlayfs copies a directory up with its mtime: dockerd lists it only when an
    # entry in it is added or deleted, not when a file in it is modified.
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "etc").mkdir(parents=True)
    (lower / "etc" / "passwd").write_text("root\n")
    (lower / "etc" / "group").write_text("root\n")
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "passwd").write_text("root\nme\n")
    st = os.stat(lower / "etc")
    os.chmod(upper / "etc", st.st_mode)
    os.utime(upper / "etc", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert changes(str(upper), [str(lower)]) == [("/etc/passwd", MODIFIED)]
    (upper / "etc" / "new").write_text("")
    os.utime(upper / "etc", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert changes(str(upper), [str(lower)]) == [
        ("/etc", MODIFIED), ("/etc/new", ADDED), ("/etc/passwd", MODIFIED),
    ]  # fmt: skip
