"""The archive API's file work on a plain directory as a container's root (openat2 needs
no root): stat headers, tars of paths, extraction that cannot leave the root."""

from __future__ import annotations

import base64
import io
import json
import os
import tarfile

import pytest

from dockyard.engine.archive import ContainerFiles
from dockyard.errors import NotFound
from dockyard.kernel.linux import LinuxKernel


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (r / "out").symlink_to("/")
    (r / "up").symlink_to("../../..")
    return r


def files_of(root) -> ContainerFiles:
    return ContainerFiles(LinuxKernel(), os.open(root, os.O_PATH | os.O_DIRECTORY), "c1")


def test_stat_header_is_dockers_path_stat(root):
    with files_of(root) as f:
        st = f.stat("/out")
        doc = json.loads(base64.b64decode(st.header()))
    assert doc["name"] == "out" and doc["linkTarget"] == "/"
    assert doc["mode"] & (1 << 27)  # Go's ModeSymlink
    with (
        files_of(root) as f,
        pytest.raises(NotFound, match="Could not find the file /nope in container c1"),
    ):
        f.stat("/nope")


def test_tar_of_a_path_through_a_planted_link_stays_inside(root):
    buf = io.BytesIO()
    with files_of(root) as f:
        f.write_tar("/out/etc/passwd", buf)  # /out -> / resolves to the root's /etc/passwd
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        assert tar.getnames() == ["passwd"]
        assert tar.extractfile("passwd").read() == b"root:x:0:0::/root:/bin/sh\n"
    buf = io.BytesIO()
    with files_of(root) as f:
        f.write_tar("/up/etc/.", buf)  # ../../.. clamps at the root
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        assert "./passwd" in tar.getnames()


def test_extract_through_links_and_dotdot_never_leaves_the_root(root, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("a", "../escaped-dotdot"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    for dest in ("/out", "/up", "/"):
        buf.seek(0)
        with files_of(root) as f:
            try:
                f.extract(dest, io.BytesIO(buf.getvalue()))
            except Exception:  # noqa: BLE001 - a refusal is fine, an escape is not
                pass
    assert (root / "a").read_text() == "x"
    assert not (tmp_path / "escaped-dotdot").exists()
    assert not (tmp_path / "a").exists()  # the root's parent got nothing either
