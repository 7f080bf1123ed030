"""`docker commit` copies the upper dir as a layer (image/layer_copy) instead of
writing a tar and unpacking it: same diffID, same layer on disk, and a blob
rebuilt byte for byte when save or push needs it."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import stat
import struct
import tarfile
from pathlib import Path

import pytest

from dockyard.errors import DockyardError
from dockyard.image.file_pool import SMALL_FILE
from dockyard.image.layer_tar import write_layer_tar
from dockyard.image.store import ImageStore

pytestmark = [
    pytest.mark.usefixtures("unpack_kernel"),
    pytest.mark.skipif(os.geteuid() != 0, reason="makes whiteouts, devices and trusted xattrs"),
]

MTIME = 1_600_000_000
# A v2 file capability: cap_net_bind_service in the permitted and effective sets.
CAPS = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)


def upper_dir(root: Path) -> tuple[Path, set[str]]:
    """A container's upper dir with every kind of change a commit meets."""
    up = root / "upper"
    (up / "etc/app").mkdir(parents=True)
    (up / "etc/passwd").write_bytes(b"root:x:0:0\napp:x:1000:1000\n")
    (up / "etc/app/conf").write_bytes(os.urandom(300_000))
    os.chmod(up / "etc/app/conf", 0o640)
    os.chown(up / "etc/app/conf", 1000, 1001)
    (up / "usr/bin").mkdir(parents=True)
    (up / "usr/bin/ping").write_bytes(b"\x7fELF ping")
    os.chown(up / "usr/bin/ping", 0, 0)
    os.chmod(up / "usr/bin/ping", 0o4755)  # setuid
    os.setxattr(up / "usr/bin/ping", "security.capability", CAPS)
    os.setxattr(up / "usr/bin/ping", "user.note", b"not in a layer tar")
    os.link(up / "usr/bin/ping", up / "usr/bin/ping6")  # hard links, two dirs
    os.link(up / "usr/bin/ping", up / "etc/ping-link")
    os.mknod(up / "etc/shadow", stat.S_IFCHR, os.makedev(0, 0))  # deleted file
    os.chown(up / "etc/shadow", 0, 42, follow_symlinks=False)
    (up / "var/cache").mkdir(parents=True)  # a directory replaced: opaque
    os.setxattr(up / "var/cache", "trusted.overlay.opaque", b"y")
    (up / "var/cache/new").write_bytes(b"fresh")
    (up / "var/empty").mkdir()
    os.chmod(up / "var/empty", 0o1777)
    os.symlink("/etc/passwd", up / "etc/abs-link")
    os.symlink("../usr/bin/ping", up / "etc/rel-link")
    os.symlink("nowhere", up / "var/dangling")
    os.chown(up / "var/dangling", 7, 8, follow_symlinks=False)
    os.mknod(up / "var/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mkfifo(up / "var/fifo", 0o620)
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(up / "var/sock"))  # skipped, as by dockerd
    (up / "dir-\u00e9t\u00e9").mkdir()
    (up / "dir-\u00e9t\u00e9" / ("long-" * 30)).write_bytes(b"long name")
    (up / "etc/hosts").write_bytes(b"127.0.0.1 stub")  # a mount stub: excluded
    (up / "empty-file").write_bytes(b"")
    for path in sorted(up.rglob("*"), reverse=True):
        os.utime(path, (MTIME, MTIME + 0.7), follow_symlinks=False)
    return up, {"etc/hosts"}


def tree(root: str, whiteout_times: bool = True) -> list[tuple]:
    """What a user (or overlayfs) sees of a layer dir, entry by entry."""
    out = []
    inodes: dict[int, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted([*dirnames, *filenames]):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            whiteout = stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
            row: list = [rel, stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode)]
            row += [st.st_uid, st.st_gid, st.st_rdev]
            if not whiteout or whiteout_times:
                row.append(st.st_mtime_ns)
            if stat.S_ISREG(st.st_mode):
                row.append(Path(path).read_bytes())
                row.append(inodes.setdefault(st.st_ino, rel))  # hard links: same first name
            if stat.S_ISLNK(st.st_mode):
                row.append(os.readlink(path))
            else:
                row.append(sorted((x, os.getxattr(path, x)) for x in os.listxattr(path)))
            out.append(tuple(row))
    return out


def test_commit_copy_matches_tar_and_unpack(tmp_path):
    up, exclude = upper_dir(tmp_path)
    by_tar = ImageStore(str(tmp_path / "a"))
    by_copy = ImageStore(str(tmp_path / "b"))
    expected = by_tar._import_directory_tar(str(up), None, exclude)
    layer = by_copy.import_directory(str(up), None, exclude)
    assert layer.diff_id == expected.diff_id
    assert layer.chain_id == expected.chain_id
    assert layer.size == expected.size
    # The same layer on disk (whiteouts' times aside: the unpacker does not set them).
    assert tree(layer.path, whiteout_times=False) == tree(expected.path, whiteout_times=False)
    names = [row[0] for row in tree(layer.path)]
    assert "var/sock" not in names and "etc/hosts" not in names
    assert os.getxattr(os.path.join(layer.path, "var/cache"), "trusted.overlay.opaque") == b"y"
    ping = os.stat(os.path.join(layer.path, "usr/bin/ping"))
    assert ping.st_nlink == 3 and ping.st_mode & stat.S_ISUID
    # No tar was written; the one save or push asks for is rebuilt, byte for byte.
    assert not by_copy.has_blob(layer.diff_id)
    rebuilt = Path(by_copy.blob_path(layer.diff_id)).read_bytes()
    assert rebuilt == by_tar.get_blob(expected.diff_id)
    assert "sha256:" + hashlib.sha256(rebuilt).hexdigest() == layer.diff_id
    with tarfile.open(fileobj=io.BytesIO(rebuilt)) as tar:
        assert "etc/.wh.shadow" in tar.getnames()
        assert "var/cache/.wh..wh..opq" in tar.getnames()


def test_rebuilt_tar_equals_the_upper_dirs(tmp_path):
    """The layer dir gives the tar of the upper dir it was copied from."""
    up, exclude = upper_dir(tmp_path)
    store = ImageStore(str(tmp_path / "s"))
    layer = store.import_directory(str(up), None, exclude)
    from_upper = io.BytesIO()
    write_layer_tar(str(up), from_upper, exclude=exclude)
    from_layer = io.BytesIO()
    write_layer_tar(layer.path, from_layer)
    assert from_layer.getvalue() == from_upper.getvalue()


def test_a_file_named_like_a_whiteout_goes_the_tar_way(tmp_path):
    """A container may create ".wh.x": in a layer tar that is a whiteout of x,
    which the copy leaves to the unpacker (Docker's meaning, as before)."""
    up = tmp_path / "upper"
    up.mkdir()
    (up / ".wh.motd").write_bytes(b"")
    (up / "keep").write_bytes(b"kept")
    base = ImageStore(str(tmp_path / "a"))._import_directory_tar(str(up))
    store = ImageStore(str(tmp_path / "b"))
    layer = store.import_directory(str(up))
    assert layer.diff_id == base.diff_id
    motd = os.lstat(os.path.join(layer.path, "motd"))
    assert stat.S_ISCHR(motd.st_mode) and motd.st_rdev == 0
    assert store.has_blob(layer.diff_id)  # the tar way keeps its blob


def test_a_changed_layer_dir_is_not_passed_off_as_its_tar(tmp_path):
    up, exclude = upper_dir(tmp_path)
    store = ImageStore(str(tmp_path / "s"))
    layer = store.import_directory(str(up), None, exclude)
    Path(layer.path, "etc/passwd").write_bytes(b"tampered")
    with pytest.raises(DockyardError, match="no longer gives its tar"):
        store.blob_path(layer.diff_id)
    assert not store.has_blob(layer.diff_id)
    assert [n for n in os.listdir(store.blobs_dir) if n.startswith(".tmp")] == []


def test_a_copy_failing_midway_leaves_nothing(tmp_path, monkeypatch):
    """Disk full (or any error) in the middle of the copy: no layer, no temporaries."""
    from dockyard.image.layer_copy import LayerCopy

    up, exclude = upper_dir(tmp_path)
    store = ImageStore(str(tmp_path / "s"))

    def full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(LayerCopy, "symlink", full)
    with pytest.raises(OSError, match="No space"):
        store.import_directory(str(up), None, exclude)
    assert store.all_layers() == []
    assert os.listdir(store.layers_dir) == [] and os.listdir(store.blobs_dir) == []


def busy_upper_dir(root: Path) -> Path:
    """An upper dir that keeps the copy's file threads busy: hundreds of
    directories (more than the copy holds open at once), files on both sides of
    the small-file limit, hard links to files just handed to a thread, symlinks
    with owners, names that are not UTF-8, setuid, capabilities, whiteouts,
    opaque dirs."""
    up = root / "upper"
    up.mkdir()
    for i in range(300):
        d = up / f"d{i:03}"
        d.mkdir()
        for j in range(4):
            (d / f"f{j}").write_bytes(os.urandom(i * 7 + j))
        if i % 10 == 0:
            os.link(d / "f3", d / "f3-link")  # its target is likely still in flight
        os.symlink(f"../d{(i + 1) % 300:03}/f1", d / "sym")  # symlinks: thread jobs too
        if i % 25 == 0:
            os.chown(d / "sym", 1000 + i, 2000, follow_symlinks=False)
        if i % 50 == 0:
            os.setxattr(d, "trusted.overlay.opaque", b"y")
            os.mknod(d / "gone", stat.S_IFCHR, os.makedev(0, 0))
        os.chmod(d, 0o555 if i % 7 == 0 else 0o750)
    for size in (SMALL_FILE - 1, SMALL_FILE, SMALL_FILE + 1, 3 * SMALL_FILE + 5):
        (up / f"size-{size}").write_bytes(os.urandom(size))
    os.link(up / f"size-{SMALL_FILE + 1}", up / "d001" / "big-link")
    odd = os.fsencode(str(up)) + b"/caf\xe9\nname"
    with open(odd, "wb") as f:
        f.write(b"latin-1 name with a newline")
    os.chown(odd, 1000, 1000)
    os.symlink(b"caf\xe9-target", os.fsencode(str(up)) + b"/sym-caf\xe9")
    os.chmod(odd, 0o4711)
    os.setxattr(up / "d002" / "f1", "security.capability", CAPS)
    os.chmod(up / "d002" / "f1", 0o6755)
    os.chown(up / "d003", 1000, 1001)
    os.setxattr(up / "d004", "security.capability", CAPS)  # a directory's travel too
    for path in sorted(up.rglob("*"), reverse=True):
        os.utime(path, (MTIME, MTIME + 0.7), follow_symlinks=False)
    return up


def test_files_made_by_threads_give_the_tar_ways_layer(tmp_path):
    """The copy's file threads change nothing a user sees: the same diffID, tree
    (owners, modes, times of directories whose children were made by threads,
    hard links) and rebuilt tar as the tar-and-unpack way."""
    up = busy_upper_dir(tmp_path)
    by_tar = ImageStore(str(tmp_path / "a"))
    by_copy = ImageStore(str(tmp_path / "b"))
    expected = by_tar._import_directory_tar(str(up))
    layer = by_copy.import_directory(str(up))
    assert (layer.diff_id, layer.size) == (expected.diff_id, expected.size)
    assert tree(layer.path, whiteout_times=False) == tree(expected.path, whiteout_times=False)
    assert Path(by_copy.blob_path(layer.diff_id)).read_bytes() == by_tar.get_blob(expected.diff_id)


def test_threads_and_no_threads_copy_alike(tmp_path, unpack_kernel):
    from dockyard.image.copied_layers import copy_tree

    up = busy_upper_dir(tmp_path)
    got = []
    for workers in (0, 3):
        layers = tmp_path / f"layers{workers}"
        layers.mkdir()
        diff_id, size, tmp_dir = copy_tree(
            str(up), str(layers), frozenset(), unpack_kernel, workers
        )
        got.append((diff_id, size, tree(os.path.join(tmp_dir, "diff"))))
    assert got[0] == got[1]


def test_a_file_thread_failing_leaves_nothing_and_no_thread(tmp_path, monkeypatch):
    """Disk full in a file thread: the commit fails with that error, no layer, no
    temporaries, and no thread left writing into the removed directory."""
    import threading

    from dockyard.image.layer_copy import LayerCopy

    up = busy_upper_dir(tmp_path)
    store = ImageStore(str(tmp_path / "s"))
    real = LayerCopy._write_small
    calls = []

    def full(self, parent, name, how, data):  # type: ignore[no-untyped-def]
        calls.append(threading.current_thread().name)
        if len(calls) == 500:
            raise OSError(28, "No space left on device")
        real(self, parent, name, how, data)

    monkeypatch.setattr(LayerCopy, "_write_small", full)
    with pytest.raises(OSError, match="No space"):
        store.import_directory(str(up))
    assert any(name.startswith("layer-files") for name in calls)  # it was a thread's
    assert store.all_layers() == []
    assert os.listdir(store.layers_dir) == [] and os.listdir(store.blobs_dir) == []
    assert not [t for t in threading.enumerate() if t.name.startswith("layer-files")]


def test_a_threaded_tar_is_tarfiles_tar(tmp_path):
    """save and push rebuild a committed layer's tar on a thread (tar_feed):
    byte for byte tarfile's, on a tree with every kind of entry and name."""
    up = busy_upper_dir(tmp_path)
    first, _ = upper_dir(tmp_path / "more")
    os.rename(first, up / "more")
    plain, threaded = io.BytesIO(), io.BytesIO()
    write_layer_tar(str(up), plain)
    write_layer_tar(str(up), threaded, threaded=True)
    assert len(plain.getvalue()) > 8 * SMALL_FILE
    assert threaded.getvalue() == plain.getvalue()


def test_a_commit_staged_next_to_its_upper_dir_lands_in_the_store(tmp_path):
    """The copy is made in the bundle (copied_layers.staging_dir) and then moved:
    the layer is whole in the store, the bundle holds nothing more than before."""
    up = busy_upper_dir(tmp_path)
    reference = ImageStore(str(tmp_path / "ref")).import_directory(str(up))
    store = ImageStore(str(tmp_path / "s"))
    before = sorted(os.listdir(tmp_path))
    layer = store.import_directory(str(up), stage_in=str(tmp_path))
    assert layer.diff_id == reference.diff_id
    assert tree(layer.path) == tree(reference.path)
    assert os.path.dirname(os.path.dirname(layer.path)) == store.layers_dir
    assert sorted(os.listdir(tmp_path)) == before
    # The same tree again: the layer exists, the second copy is dropped, not left.
    assert store.import_directory(str(up), stage_in=str(tmp_path)).chain_id == layer.chain_id
    assert sorted(os.listdir(tmp_path)) == before


def test_staging_on_another_file_system_falls_back_to_the_store(tmp_path):
    """A rename cannot cross file systems: a bundle elsewhere (here tmpfs) is not
    used, and the commit still works."""
    from dockyard.image.copied_layers import staging_dir

    store = ImageStore(str(tmp_path / "s"))
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second file system at /dev/shm")
    assert staging_dir(store.layers_dir, str(tmp_path)) == str(tmp_path)
    assert staging_dir(store.layers_dir, str(shm)) == store.layers_dir
    assert staging_dir(store.layers_dir, str(tmp_path / "gone")) == store.layers_dir
    up = busy_upper_dir(tmp_path)
    elsewhere = shm / f"dky-test-stage-{os.getpid()}"
    elsewhere.mkdir()
    try:
        layer = store.import_directory(str(up), stage_in=str(elsewhere))
        assert os.path.isdir(layer.path) and os.listdir(elsewhere) == []
    finally:
        elsewhere.rmdir()


def test_a_failed_staged_copy_leaves_nothing_in_the_bundle(tmp_path, monkeypatch):
    from dockyard.image.layer_copy import LayerCopy

    up = busy_upper_dir(tmp_path)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    store = ImageStore(str(tmp_path / "s"))
    real = LayerCopy._write_small
    calls = []

    def full(self, parent, name, how, data):  # type: ignore[no-untyped-def]
        calls.append(name)
        if len(calls) == 300:
            raise OSError(28, "No space left on device")
        real(self, parent, name, how, data)

    monkeypatch.setattr(LayerCopy, "_write_small", full)
    with pytest.raises(OSError, match="No space"):
        store.import_directory(str(up), stage_in=str(bundle))
    assert os.listdir(bundle) == [] and store.all_layers() == []
