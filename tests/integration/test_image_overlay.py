"""Layers unpacked by the image store, mounted by the real kernel's overlayfs.

Checks that what Docker layer tars mean (files, whiteouts, opaque dirs) is
what a container sees when its rootfs is an overlay of our lowerdirs, and
that ImageStore.read_file agrees with the mounted view.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile

import pytest

from dockyard.image.store import ImageStore

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount overlayfs"),
]


def layer_tar(entries: list[tuple[str, bytes | None]]) -> bytes:
    """(name, data) with data None for a directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def mounted(tmp_path):
    store = ImageStore(str(tmp_path / "root"))
    base = store.import_layer(
        io.BytesIO(
            layer_tar(
                [
                    ("etc", None),
                    ("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
                    ("etc/motd", b"hello\n"),
                    ("var/cache", None),
                    ("var/cache/old1", b"1"),
                    ("var/cache/old2", b"2"),
                    ("opt/app/bin", b"v1"),
                ]
            )
        )
    )
    top = store.import_layer(
        io.BytesIO(
            layer_tar(
                [
                    ("etc/.wh.motd", b""),
                    ("etc/passwd", b"root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n"),
                    ("var/cache/.wh..wh..opq", b""),
                    ("var/cache/new", b"n"),
                    ("opt/.wh.app", b""),
                ]
            )
        ),
        base.chain_id,
    )
    image_id = store.create_image([base.diff_id, top.diff_id], {})
    lower = store.lower_dirs(image_id)
    upper, work, merged = (tmp_path / n for n in ("upper", "work", "merged"))
    for d in (upper, work, merged):
        d.mkdir()
    opts = f"lowerdir={':'.join(lower)},upperdir={upper},workdir={work}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(merged)], check=True)
    try:
        yield store, [str(upper), *lower], merged
    finally:
        subprocess.run(["umount", str(merged)], check=True)


def test_overlay_sees_what_the_layers_mean(mounted):
    store, dirs, merged = mounted
    assert not (merged / "etc/motd").exists()  # whiteout
    assert sorted(os.listdir(merged / "var/cache")) == ["new"]  # opaque dir
    assert not (merged / "opt/app").exists()  # whited-out directory
    assert b"app:x:1000" in (merged / "etc/passwd").read_bytes()


def test_read_file_agrees_with_the_mount(mounted):
    store, dirs, merged = mounted
    for path in ("/etc/passwd", "/etc/motd", "/var/cache/old1", "/var/cache/new", "/opt/app/bin"):
        on_mount = (
            (merged / path.lstrip("/")).read_bytes()
            if (merged / path.lstrip("/")).is_file()
            else None
        )
        assert store.read_file(dirs, path) == on_mount, path
    # Changes made in the container (upper dir) are seen too, deletions included.
    (merged / "etc/group").write_bytes(b"app:x:1000:\n")
    os.unlink(merged / "etc/passwd")
    assert store.read_file(dirs, "/etc/group") == b"app:x:1000:\n"
    assert store.read_file(dirs, "/etc/passwd") is None
