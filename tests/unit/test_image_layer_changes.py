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
    if os.geteuid() != 0:
        pytest.skip("a whiteout is a 0:0 character device")
    os.mknod(upper / "bin" / "vi", stat.S_IFCHR | 0o600, 0)
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
