"""docker save / docker load archives."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile

import pytest
from fake_registry import layer as layer_tar

from dockyard.errors import InvalidParameter, NotFound
from dockyard.image.archive import LoadedImage, SavedImage, load_images, save_images
from dockyard.image.store import ImageStore

# Runs without root too: chown, mknod and xattrs then go to the recording kernel
# (tests/unit/conftest.py); only tests that check those results on disk need root.
pytestmark = pytest.mark.usefixtures("unpack_kernel")
needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="checks owners, device nodes or trusted xattrs on disk"
)


def archive(files: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buf.getvalue()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def stores(tmp_path):
    return ImageStore(str(tmp_path / "a")), ImageStore(str(tmp_path / "b"))


def two_images(store: ImageStore) -> tuple[str, str]:
    base = store.import_layer(io.BytesIO(layer_tar({"etc/passwd": b"root:x:0:0::/:/bin/sh\n"})))
    top = store.import_layer(io.BytesIO(layer_tar({"app": b"v1"})), base.chain_id)
    one = store.create_image([base.diff_id], {"Cmd": ["sh"]}, created="2026-01-01T00:00:00Z")
    two = store.create_image(
        [base.diff_id, top.diff_id], {"Cmd": ["app"]}, created="2026-01-01T00:00:00Z"
    )
    return one, two


def test_save_then_load_round_trip(stores):
    src, dst = stores
    one, two = two_images(src)
    out = io.BytesIO()
    save_images(src, [SavedImage(one, ["busybox:latest", "busybox:1"]), SavedImage(two, [])], out)
    loaded = load_images(dst, io.BytesIO(out.getvalue()))
    assert loaded == [LoadedImage(one, ["busybox:latest", "busybox:1"]), LoadedImage(two, [])]
    assert dst.get_blob(one) == src.get_blob(one)  # same config bytes, same id
    assert [layer.diff_id for layer in dst.image_layers(two)] == [
        layer.diff_id for layer in src.image_layers(two)
    ]
    assert dst.read_file(dst.lower_dirs(two), "/app") == b"v1"
    # Loading again reuses everything (same ids, nothing unpacked twice).
    assert load_images(dst, io.BytesIO(gzip.compress(out.getvalue()))) == loaded
    assert len(dst.all_layers()) == 2
    assert not [n for n in os.listdir(os.path.join(dst.root, "layers")) if n.startswith(".")]


def test_saved_layout_is_what_docker_writes(stores):
    src, _ = stores
    one, _two = two_images(src)
    out = io.BytesIO()
    save_images(src, [SavedImage(one, ["busybox"])], out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))
        index = json.load(tar.extractfile("index.json"))
        repositories = json.load(tar.extractfile("repositories"))
        assert json.load(tar.extractfile("oci-layout")) == {"imageLayoutVersion": "1.0.0"}
        (layer_path,) = manifest[0]["Layers"]
        layer_bytes = tar.extractfile(layer_path).read()
    assert manifest[0]["Config"] == "blobs/sha256/" + one[7:]
    assert manifest[0]["RepoTags"] == ["busybox:latest"]
    assert layer_path == "blobs/sha256/" + hashlib.sha256(layer_bytes).hexdigest()
    assert (
        index["manifests"][0]["annotations"]["io.containerd.image.name"]
        == "docker.io/library/busybox:latest"
    )
    assert repositories == {"busybox": {"latest": layer_path.rsplit("/", 1)[1]}}
    assert "blobs/sha256/" + one[7:] in names


def test_loads_pre_25_layout_with_symlinked_duplicate_layers(stores):
    _, dst = stores
    layer = layer_tar({"f": b"x"})
    config = json.dumps(
        {"rootfs": {"type": "layers", "diff_ids": [sha(layer), sha(layer)]}, "config": {}}
    ).encode()
    data = archive(
        {
            "aaa/layer.tar": layer,
            "aaa/VERSION": b"1.0",
            f"{sha(config)[7:]}.json": config,
            "manifest.json": json.dumps(
                [
                    {
                        "Config": f"{sha(config)[7:]}.json",
                        "RepoTags": ["old:v1"],
                        "Layers": ["aaa/layer.tar", "bbb/layer.tar"],
                    }
                ]
            ).encode(),
        },
        symlinks={"bbb/layer.tar": "../aaa/layer.tar"},
    )
    (loaded,) = load_images(dst, io.BytesIO(data))
    assert loaded == LoadedImage(sha(config), ["old:v1"])
    assert len(dst.image_layers(loaded.image_id)) == 2


def test_hostile_archive_paths_stay_inside(stores, tmp_path):
    _, dst = stores
    secret = tmp_path / "secret.tar"
    secret.write_bytes(layer_tar({"stolen": b"host data"}))
    config = json.dumps(
        {"rootfs": {"type": "layers", "diff_ids": [sha(secret.read_bytes())]}}
    ).encode()
    for layer_ref, links in [
        (str(secret), {}),
        ("../../../../../../.." + str(secret), {}),
        ("evil/secret.tar", {"evil": str(tmp_path)}),
    ]:
        data = archive(
            {
                "c.json": config,
                "manifest.json": json.dumps([{"Config": "c.json", "Layers": [layer_ref]}]).encode(),
            },
            links,
        )
        with pytest.raises(InvalidParameter, match="not found in the archive"):
            load_images(dst, io.BytesIO(data))
    assert dst.all_layers() == []


def test_layer_not_matching_config_refused(stores):
    _, dst = stores
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": [sha(b"other")]}}).encode()
    data = archive(
        {
            "c.json": config,
            "l.tar": layer_tar({"a": b"1"}),
            "manifest.json": b'[{"Config":"c.json","Layers":["l.tar"]}]',
        }
    )
    with pytest.raises(InvalidParameter, match="has diff_id"):
        load_images(dst, io.BytesIO(data))
    with pytest.raises(NotFound):
        dst.image_config(sha(config))
    # The layer that did not match was checked before it was named: nothing stays.
    assert dst.all_layers() == [] and dst.prune_layers(keep=set()) == []


def test_not_an_archive(stores):
    _, dst = stores
    with pytest.raises(InvalidParameter, match="neither manifest.json nor index.json"):
        load_images(dst, io.BytesIO(archive({"hello.txt": b"hi"})))


def test_loads_bare_oci_layout(stores):
    """An OCI layout without Docker's manifest.json (skopeo, buildkit --output type=oci)."""
    src, dst = stores
    one, _ = two_images(src)
    out = io.BytesIO()
    save_images(src, [SavedImage(one, ["app:1"])], out)
    stripped = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tin,
        tarfile.open(fileobj=stripped, mode="w") as tout,
    ):
        for member in tin.getmembers():
            if member.name not in ("manifest.json", "repositories"):
                tout.addfile(member, tin.extractfile(member) if member.isfile() else None)
    assert load_images(dst, io.BytesIO(stripped.getvalue())) == [LoadedImage(one, ["app:1"])]


@needs_root
def test_layer_blob_is_roots_and_plain_whatever_the_archive_said(stores):
    """A plain layer.tar becomes the blob by a hard link: never with the archive's owner or bits."""
    _, dst = stores
    layer = layer_tar({"f": b"x" * 5000})
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": [sha(layer)]}}).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data, mode in [
            ("c.json", config, 0o644),
            ("l/layer.tar", layer, 0o6777),
            ("manifest.json", b'[{"Config":"c.json","Layers":["l/layer.tar"]}]', 0o644),
        ]:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), mode, 1000, 1000
            tar.addfile(info, io.BytesIO(data))
    (loaded,) = load_images(dst, io.BytesIO(buf.getvalue()))
    st = os.stat(dst.blob_path(sha(layer)))
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777, st.st_nlink) == (0, 0, 0o644, 1)
    with open(dst.blob_path(sha(layer)), "rb") as f:
        assert f.read() == layer


def test_oversized_metadata_refused(stores, monkeypatch):
    import dockyard.image.archive as archive_module

    _, dst = stores
    monkeypatch.setattr(archive_module, "MAX_METADATA", 1000)
    data = archive({"manifest.json": b"[" + b" " * 2000 + b"]"})
    with pytest.raises(InvalidParameter, match="manifest.json is larger than"):
        load_images(dst, io.BytesIO(data))
