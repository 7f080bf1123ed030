"""The build context's index answers as its unpacked files do: the same sources
for every kind of COPY argument (links inside the context followed, links that
climb out clamped at its root, wildcards, `..`), the same entries and the same
checksum, so a cached build that never unpacks the context reuses exactly the
steps a build from the files would (and a changed file still misses)."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from dockyard.cli.build_context import directory_tar
from dockyard.engine.build import context_tar
from dockyard.engine.build.context_index import ContextIndex, IndexedRoot
from dockyard.engine.build.sources import Ownership, SourceRoot, checksum, header
from dockyard.errors import DockyardError
from dockyard.kernel.linux import LinuxKernel

ARGS = [
    ".",
    "src",
    "src/",
    "src/a.txt",
    "src/sub/../a.txt",
    "./src/sub",
    "link-to-file",
    "link-to-dir",
    "link-to-dir/deep.txt",
    "abs-link",
    "climbing-link",
    "dangling",
    "loop",
    "src/*.txt",
    "*",
    "src/s?b",
    "src/[ab].txt",
    "src/a.txt/x",
    "missing",
    "../outside",
    "hard2",
    "fifo",
]


def _context(root: Path) -> None:
    (root / "src" / "sub").mkdir(parents=True)
    (root / "src" / "a.txt").write_text("a\n")
    (root / "src" / "b.txt").write_bytes(os.urandom(70_000))
    (root / "src" / "sub" / "deep.txt").write_text("deep\n")
    (root / "src" / "sub" / "deep.txt").chmod(0o600)
    (root / "src" / "sub").chmod(0o750)
    (root / "src" / ("long-" + "n" * 120)).write_text("long\n")
    (root / "empty").mkdir(mode=0o711)
    (root / "empty").chmod(0o711)
    os.symlink("src/a.txt", root / "link-to-file")
    os.symlink("src/sub", root / "link-to-dir")
    os.symlink("/src/b.txt", root / "abs-link")
    os.symlink("../../../../src/a.txt", root / "climbing-link")
    os.symlink("nowhere", root / "dangling")
    os.symlink("loop", root / "loop")
    (root / "hard1").write_text("hard\n")
    os.link(root / "hard1", root / "hard2")
    os.mkfifo(root / "fifo")
    (root / "Dockerfile").write_text("FROM scratch\n")


def _answer(root, arg: str) -> object:
    try:
        found = root.resolve(arg, "COPY")
    except DockyardError as e:
        return type(e).__name__, e.message
    own = Ownership()
    out = []
    for src in found:
        entries = list(root.entries(src, "x"))
        shown = [
            (e.name, e.st.st_mode, header(e, own).size, header(e, own).linkname) for e in entries
        ]
        out.append((src.rel, src.is_dir, shown, checksum(entries, own, root.digests)))
    return out


@pytest.fixture
def both(tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    _context(ctx)
    stream, _name, close = directory_tar(str(ctx), "")
    data = stream.read()
    close()
    disk = tmp_path / "disk"
    disk.mkdir()
    digests = context_tar.unpack(io.BytesIO(data), str(disk))
    index = ContextIndex(str(tmp_path / "virtual"), str(tmp_path / "virtual.tar"))
    index.read(io.BytesIO(data))
    with index.saved.open() as saved:
        assert saved.read() == data  # the tar is kept whole
    files = SourceRoot(LinuxKernel(), str(disk), digests)
    yield IndexedRoot(index), files
    files.close()


@pytest.mark.parametrize("arg", ARGS)
def test_the_index_resolves_and_checksums_as_the_files_do(both, arg):
    indexed, files = both
    assert _answer(indexed, arg) == _answer(files, arg)


def test_the_index_reads_plain_files_only(both):
    indexed, _files = both
    index = indexed.index
    assert index.file_bytes("Dockerfile", 100) == b"FROM scratch\n"
    assert index.file_bytes("src/b.txt", 10) is not None
    assert index.file_bytes("link-to-file", 100) is None  # a link: the files decide
    assert index.file_bytes("src", 100) is None
    assert index.file_bytes("nothing", 100) is None
    index.remove("Dockerfile")
    assert indexed.resolve("src", "COPY")  # the rest is still there
    with pytest.raises(DockyardError):
        IndexedRoot(index).resolve("Dockerfile", "COPY")


def test_a_file_outside_the_context_never_takes_a_context_files_digest(tmp_path):
    """A COPY's heredoc or download lives beside the context, not in it: its digest is
    its own even where the tail of its path names a file of the context."""
    build = tmp_path / "build"
    root = build / "context"
    root.mkdir(parents=True)
    body = io.BytesIO()
    import tarfile

    with tarfile.open(fileobj=body, mode="w") as tar:
        for name, data in (("0", b"in the context"), ("Dockerfile", b"FROM scratch\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    body.seek(0)
    index = ContextIndex(str(root), str(build / "context.tar"))
    index.read(body)
    digests = IndexedRoot(index).digests
    assert digests.get(f"{index.root}/0") == hashlib.sha256(b"in the context").digest()
    # ".../build/step-12/0": as long as the root and a "/", then "0"
    outside = f"{index.root[: -len('context')]}step-12/0"
    assert outside[len(index.root) + 1 :] == "0"
    assert digests.get(outside) is None
    assert digests.get(str(build / "context-other" / "0")) is None
