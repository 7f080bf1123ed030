"""Content store, layer import, image configs and GC."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from dockyard.errors import InvalidParameter, NotFound
from dockyard.image.atomic import own_tag
from dockyard.image.digest import chain_id, chain_ids
from dockyard.image.store import ImageStore

# Runs without root too: chown, mknod and xattrs then go to the recording kernel
# (tests/unit/conftest.py); only tests that check those results on disk need root.
pytestmark = pytest.mark.usefixtures("unpack_kernel")
needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="checks owners, device nodes or trusted xattrs on disk"
)


def make_tar(files: dict[str, bytes], extra: list[tarfile.TarInfo] = ()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)
    return buf.getvalue()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path) -> ImageStore:
    return ImageStore(str(tmp_path / "root"))


def test_blobs_are_content_addressed(store):
    digest = store.put_blob(b"hello")
    assert digest == sha(b"hello")
    assert store.put_blob(b"hello") == digest  # idempotent
    assert store.get_blob(digest) == b"hello"
    with pytest.raises(NotFound):
        store.get_blob(sha(b"nope"))
    with pytest.raises(InvalidParameter):
        store.get_blob("sha256:../../etc/passwd")


def test_import_layer_computes_diff_id_and_keeps_uncompressed_blob(store):
    tar = make_tar({"etc/os-release": b"ID=test\n"})
    layer = store.import_layer(io.BytesIO(gzip.compress(tar)))
    assert layer.diff_id == sha(tar)  # of the *uncompressed* tar
    assert layer.chain_id == layer.diff_id
    assert store.get_blob(layer.diff_id) == tar
    assert layer.size == 8
    assert Path(layer.path, "etc/os-release").read_bytes() == b"ID=test\n"
    assert layer.path == os.path.join(store.root, "layers", layer.chain_id[7:], "diff")
    meta = json.loads(Path(store.root, "layers", layer.chain_id[7:], "meta.json").read_text())
    assert meta["diff_id"] == layer.diff_id and meta["parent"] is None
    assert store.layer(layer.chain_id) == layer


def test_chain_ids_follow_oci_spec(store):
    base = store.import_layer(io.BytesIO(make_tar({"a": b"1"})))
    top = store.import_layer(io.BytesIO(make_tar({"b": b"2"})), parent_chain_id=base.chain_id)
    expected = "sha256:" + hashlib.sha256(f"{base.chain_id} {top.diff_id}".encode()).hexdigest()
    assert top.chain_id == expected == chain_id(base.chain_id, top.diff_id)
    assert chain_ids([base.diff_id, top.diff_id]) == [base.chain_id, top.chain_id]
    assert top.parent == base.chain_id


def test_same_layer_is_reused(store):
    tar = make_tar({"a": b"1"})
    first = store.import_layer(io.BytesIO(tar))
    again = store.import_layer(io.BytesIO(gzip.compress(tar)))
    assert again == first
    assert [n for n in os.listdir(os.path.join(store.root, "layers"))] == [first.chain_id[7:]]


def test_missing_parent_is_not_found(store):
    with pytest.raises(NotFound):
        store.import_layer(io.BytesIO(make_tar({"a": b"1"})), parent_chain_id=sha(b"x"))


def test_hostile_layer_leaves_no_half_layer(store, tmp_path):
    evil = tarfile.TarInfo("../../escape")
    with pytest.raises(InvalidParameter):
        store.import_layer(io.BytesIO(make_tar({"ok": b"1"}, [evil])))
    assert os.listdir(os.path.join(store.root, "layers")) == []
    assert os.listdir(store.blobs_dir) == []
    assert not os.path.exists(tmp_path / "escape")


def test_image_id_is_sha256_of_config_bytes_and_reproducible(store):
    layer = store.import_layer(io.BytesIO(make_tar({"a": b"1"})))
    kwargs = dict(created="2026-01-01T00:00:00Z", history=[{"created": "2026-01-01T00:00:00Z"}])
    image_id = store.create_image([layer.diff_id], {"Cmd": ["sh"]}, **kwargs)
    raw = store.get_blob(image_id)
    assert image_id == sha(raw)
    assert store.create_image([layer.diff_id], {"Cmd": ["sh"]}, **kwargs) == image_id
    config = store.image_config(image_id)
    assert config["rootfs"] == {"type": "layers", "diff_ids": [layer.diff_id]}
    assert config["os"] == "linux" and config["config"] == {"Cmd": ["sh"]}
    assert config["created"] == "2026-01-01T00:00:00Z"


def test_create_image_needs_its_layers(store):
    with pytest.raises(NotFound):
        store.create_image([sha(b"missing")], {})


def test_image_config_of_unknown_or_non_config_blob(store):
    with pytest.raises(NotFound, match="No such image"):
        store.image_config(sha(b"nope"))
    with pytest.raises(NotFound):
        store.image_config(store.put_blob(b"not json"))


def test_layers_lower_dirs_and_size(store):
    base = store.import_layer(io.BytesIO(make_tar({"a": b"111"})))
    top = store.import_layer(io.BytesIO(make_tar({"b": b"22"})), base.chain_id)
    image_id = store.create_image([base.diff_id, top.diff_id], {})
    assert store.image_layers(image_id) == [base, top]
    assert store.lower_dirs(image_id) == [top.path, base.path]
    assert store.image_size(image_id) == 5


def test_import_rootfs_like_docker_import(store):
    tar = make_tar({"bin/hello": b"#!/bin/sh\necho hi\n"})
    image_id = store.import_rootfs(io.BytesIO(tar), changes=["CMD /bin/hello", "ENV A=1"])
    config = store.image_config(image_id)
    assert config["config"] == {"Cmd": ["/bin/sh", "-c", "/bin/hello"], "Env": ["A=1"]}
    assert config["comment"] == "Imported from -"
    assert config["rootfs"]["diff_ids"] == [sha(tar)]
    (entry,) = config["history"]
    assert entry == {"created": config["created"], "comment": "Imported from -"}
    other = store.import_rootfs(io.BytesIO(tar), message="from ci")
    assert store.image_config(other)["history"][0]["comment"] == "from ci"


def test_import_rootfs_bad_change_fails_before_unpacking(store):
    with pytest.raises(InvalidParameter, match="run is not a valid change command"):
        store.import_rootfs(io.BytesIO(make_tar({"a": b"1"})), changes=["RUN x"])
    assert os.listdir(store.blobs_dir) == []


def test_delete_image_keeps_shared_layers(store):
    base = store.import_layer(io.BytesIO(make_tar({"base": b"b"})))
    top1 = store.import_layer(io.BytesIO(make_tar({"one": b"1"})), base.chain_id)
    top2 = store.import_layer(io.BytesIO(make_tar({"two": b"2"})), base.chain_id)
    img1 = store.create_image([base.diff_id, top1.diff_id], {"Cmd": ["1"]})
    img2 = store.create_image([base.diff_id, top2.diff_id], {"Cmd": ["2"]})

    store.delete_image(img1, keep={img2})
    with pytest.raises(NotFound):
        store.image_config(img1)
    with pytest.raises(NotFound):
        store.layer(top1.chain_id)
    assert not store.has_blob(top1.diff_id)
    assert os.path.isdir(base.path) and os.path.isdir(top2.path)
    assert store.lower_dirs(img2) == [top2.path, base.path]

    store.delete_image(img2, keep=set())
    assert store.all_layers() == []
    assert os.listdir(store.blobs_dir) == []


def test_delete_image_spares_unrelated_unreferenced_layers(store):
    """A layer being pulled right now (no image yet) must survive another image's removal."""
    pulling = store.import_layer(io.BytesIO(make_tar({"p": b"p"})))
    layer = store.import_layer(io.BytesIO(make_tar({"a": b"a"})))
    image_id = store.create_image([layer.diff_id], {})
    store.delete_image(image_id, keep=set())
    assert store.layer(pulling.chain_id) == pulling
    assert store.prune_layers(keep=set()) == [pulling.chain_id]
    assert store.all_layers() == []


def test_stale_temporaries_of_dead_processes_are_swept(store):
    dead = os.path.join(store.root, "layers", ".tmp-999999999-abc")
    os.makedirs(os.path.join(dead, "diff"))
    half_blob = os.path.join(store.blobs_dir, ".tmp-999999999-def")
    Path(half_blob).write_bytes(b"half")
    mine = os.path.join(store.root, "layers", f".tmp-{own_tag()}-live")
    os.makedirs(mine)
    # Same pid as us but another start time: a crashed earlier process.
    reused = os.path.join(store.root, "layers", f".tmp-{os.getpid()}.1-old")
    os.makedirs(reused)
    ImageStore(store.root)
    assert not os.path.exists(dead) and not os.path.exists(half_blob)
    assert not os.path.exists(reused)
    assert os.path.exists(mine)


def test_large_layer_streams_with_bounded_memory(store):
    """A tar from a pipe-like reader (no seek, short reads) of a few MB."""
    payload = os.urandom(3 << 20)
    tar = make_tar({"big": payload})

    class Pipe:
        def __init__(self, data: bytes) -> None:
            self.data = io.BytesIO(data)

        def read(self, n: int = -1) -> bytes:
            return self.data.read(min(n, 4096) if n and n > 0 else 4096)

    layer = store.import_layer(Pipe(gzip.compress(tar)))
    assert layer.diff_id == sha(tar)
    assert os.path.getsize(os.path.join(layer.path, "big")) == len(payload)


def test_lease_protects_layers_of_an_image_being_assembled(store):
    shared = store.import_layer(io.BytesIO(make_tar({"s": b"s"})))
    old = store.create_image([shared.diff_id], {})
    with store.lease() as pinned:
        again = store.import_layer(io.BytesIO(make_tar({"s": b"s"})))  # reused, pinned
        assert again == shared and shared.chain_id in pinned
        store.delete_image(old, keep=set())  # a concurrent `rmi` of the old image
        assert store.prune_layers(keep=set()) == []
        new = store.create_image([shared.diff_id], {"Cmd": ["x"]})
    assert store.image_layers(new) == [shared]
    store.delete_image(new, keep=set())
    assert store.all_layers() == []


def test_delete_is_idempotent(store):
    layer = store.import_layer(io.BytesIO(make_tar({"a": b"a"})))
    image_id = store.create_image([layer.diff_id], {})
    store.delete_image(image_id, keep=set())
    store.delete_image(image_id, keep=set())
    assert store.all_layers() == []


def test_parallel_imports(store):
    from concurrent.futures import ThreadPoolExecutor

    tars = [make_tar({f"f{i}": os.urandom(100_000)}) for i in range(8)] * 2
    with ThreadPoolExecutor(8) as pool:
        layers = list(pool.map(lambda t: store.import_layer(io.BytesIO(t)), tars))
    assert [layer.diff_id for layer in layers] == [sha(t) for t in tars]
    assert len(store.all_layers()) == 8
    assert not [n for n in os.listdir(os.path.join(store.root, "layers")) if n.startswith(".")]


@needs_root
def test_import_directory_commits_an_upper_dir(store, tmp_path):
    base = store.import_layer(io.BytesIO(make_tar({"etc/motd": b"hi", "etc/passwd": b"root"})))
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc/passwd").write_bytes(b"root\napp")
    os.mknod(upper / "etc/motd", 0o020000, os.makedev(0, 0))
    top = store.import_directory(str(upper), base.chain_id)
    assert top.parent == base.chain_id
    image_id = store.create_image([base.diff_id, top.diff_id], {})
    dirs = store.lower_dirs(image_id)
    assert store.read_file(dirs, "/etc/passwd") == b"root\napp"
    assert store.read_file(dirs, "/etc/motd") is None
    with tarfile.open(fileobj=io.BytesIO(store.get_blob(top.diff_id))) as tar:
        assert tar.getnames() == ["etc", "etc/.wh.motd", "etc/passwd"]


def test_import_directory_of_missing_dir_fails_cleanly(store, tmp_path):
    with pytest.raises(FileNotFoundError):
        store.import_directory(str(tmp_path / "nope"))
    assert store.all_layers() == []


def test_truncated_upload_leaves_nothing(store):
    tar = make_tar({"big": os.urandom(200_000)})
    with pytest.raises(InvalidParameter, match="invalid layer archive"):
        store.import_layer(io.BytesIO(gzip.compress(tar)[:30_000]))
    assert os.listdir(os.path.join(store.root, "layers")) == []
    assert os.listdir(store.blobs_dir) == []


def test_crash_mid_import_leaves_a_usable_store(store):
    """SIGKILL while a layer is being unpacked: no layer, no blob, temporaries swept."""
    import signal
    import subprocess
    import sys
    import time

    tar = make_tar({f"f{i}": os.urandom(10_000) for i in range(200)})
    code = (
        "import sys\nfrom dockyard.image.store import ImageStore\n"
        f"ImageStore({store.root!r}).import_layer(sys.stdin.buffer)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)
    try:
        child.stdin.write(tar[: len(tar) // 2])
        child.stdin.flush()
        layers_dir = os.path.join(store.root, "layers")
        deadline = time.monotonic() + 10
        while not any(n.startswith(".tmp-") for n in os.listdir(layers_dir)):
            assert time.monotonic() < deadline, "import never started"
            time.sleep(0.01)
        time.sleep(0.1)  # let it unpack part of the tar
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdin.close()
    reopened = ImageStore(store.root)
    assert reopened.all_layers() == []
    assert os.listdir(layers_dir) == [] and os.listdir(store.blobs_dir) == []
    layer = reopened.import_layer(io.BytesIO(tar))  # and it works afterwards
    assert layer.diff_id == sha(tar)
