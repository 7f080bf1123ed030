"""docker load unpacks layers as the archive streams in (image/streamed_layers):
what the manifest (which comes last) finally says must hold as if the archive
had been spooled first: unused or broken members are ignored unless used, a
used one is checked against its config and its name, nothing half is left."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest
from fake_registry import layer as layer_tar

from dockyard.errors import InvalidParameter
from dockyard.image.archive import load_images
from dockyard.image.digest import chain_ids
from dockyard.image.store import ImageStore

pytestmark = pytest.mark.usefixtures("unpack_kernel")


def hexdigest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def oci_archive(
    blobs: list[bytes],
    layers: list[str],
    diff_ids: list[str],
    extra: dict[str, bytes] | None = None,
    first: list[tuple[str, bytes | str]] = (),  # type: ignore[assignment]
) -> bytes:
    """`first`, then blobs, manifest.json last (as docker save writes): `layers`
    are the manifest's layer paths, `diff_ids` the config's."""
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "config": {},
         "rootfs": {"type": "layers", "diff_ids": [f"sha256:{d}" for d in diff_ids]}}
    ).encode()  # fmt: skip
    files = {f"blobs/sha256/{hexdigest(b)}": b for b in blobs}
    files.update(extra or {})
    files[f"blobs/sha256/{hexdigest(config)}"] = config
    manifest = [
        {"Config": f"blobs/sha256/{hexdigest(config)}", "RepoTags": ["t:1"], "Layers": layers}
    ]
    files["manifest.json"] = json.dumps(manifest).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in [*first, *files.items()]:
            info = tarfile.TarInfo(name)
            if isinstance(data, str):  # a symlink to `data`
                info.type, info.linkname = tarfile.SYMTYPE, data
                tar.addfile(info)
                continue
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def store(tmp_path) -> ImageStore:
    return ImageStore(str(tmp_path / "s"))


def leftovers(store: ImageStore) -> list[str]:
    return [
        n for d in (store.layers_dir, store.blobs_dir) for n in os.listdir(d) if n.startswith(".")
    ]


def test_streamed_layers_load_and_are_kept_as_blobs(store):
    one, two = layer_tar({"a": b"1" * 5000}), layer_tar({"b": b"2"})
    data = oci_archive([one, two], [f"blobs/sha256/{hexdigest(x)}" for x in (one, two)],
                       [hexdigest(one), hexdigest(two)])  # fmt: skip
    (loaded,) = load_images(store, io.BytesIO(data))
    assert loaded.repo_tags == ["t:1"]
    layers = store.image_layers(loaded.image_id)
    assert [x.diff_id for x in layers] == [f"sha256:{hexdigest(x)}" for x in (one, two)]
    assert Path(layers[0].path, "a").read_bytes() == b"1" * 5000
    assert store.get_blob(layers[0].diff_id) == one  # save gives back the same bytes
    assert leftovers(store) == []


def test_an_image_with_the_same_layer_twice(store):
    """One blob used at two places: taken once as streamed, once again from it."""
    same = layer_tar({"f": b"same"})
    path = f"blobs/sha256/{hexdigest(same)}"
    data = oci_archive([same], [path, path], [hexdigest(same)] * 2)
    (loaded,) = load_images(store, io.BytesIO(data))
    chains = chain_ids([f"sha256:{hexdigest(same)}"] * 2)
    assert [x.chain_id for x in store.image_layers(loaded.image_id)] == chains
    assert leftovers(store) == []


def test_unused_broken_members_are_ignored(store):
    """A member that looks like a layer but is not one (truncated tar) only
    matters if the manifest uses it, as when the archive was spooled first."""
    good = layer_tar({"ok": b"fine"})
    broken = layer_tar({"big": os.urandom(20_000)})[:3000]
    data = oci_archive([good], [f"blobs/sha256/{hexdigest(good)}"], [hexdigest(good)],
                       extra={"junk/layer.tar": broken})  # fmt: skip
    (loaded,) = load_images(store, io.BytesIO(data))
    assert len(store.image_layers(loaded.image_id)) == 1
    assert leftovers(store) == [] and len(store.all_layers()) == 1


def test_a_used_broken_member_fails_with_its_own_error(store):
    broken = layer_tar({"big": os.urandom(20_000)})[:3000]
    data = oci_archive([], ["junk/layer.tar"], ["00" * 32], extra={"junk/layer.tar": broken})
    with pytest.raises(InvalidParameter, match="truncated"):
        load_images(store, io.BytesIO(data))
    assert store.all_layers() == [] and leftovers(store) == []


def test_streamed_layer_checked_against_config_and_name(store):
    layer = layer_tar({"x": b"x"})
    named = f"blobs/sha256/{hexdigest(layer)}"
    wrong_config = oci_archive([layer], [named], ["11" * 32])
    with pytest.raises(InvalidParameter, match="the config says"):
        load_images(store, io.BytesIO(wrong_config))
    # Under another digest's name: its bytes do not match that name.
    misnamed = oci_archive([], ["blobs/sha256/" + "22" * 32], [hexdigest(layer)],
                           extra={"blobs/sha256/" + "22" * 32: layer})  # fmt: skip
    with pytest.raises(InvalidParameter, match="does not match its digest"):
        load_images(store, io.BytesIO(misnamed))
    assert store.all_layers() == [] and leftovers(store) == []


def test_compressed_layer_named_by_its_compressed_digest(store):
    plain = layer_tar({"z": b"zipped" * 100})
    packed = gzip.compress(plain)
    data = oci_archive([packed], [f"blobs/sha256/{hexdigest(packed)}"], [hexdigest(plain)])
    (loaded,) = load_images(store, io.BytesIO(data))
    (layer,) = store.image_layers(loaded.image_id)
    assert layer.diff_id == f"sha256:{hexdigest(plain)}"
    assert store.get_blob(layer.diff_id) == plain  # the blob is the uncompressed tar


def test_archive_cut_in_the_middle_of_a_layer_leaves_nothing(store):
    big = layer_tar({f"f{i}": os.urandom(3000) for i in range(50)})
    data = oci_archive([big], [f"blobs/sha256/{hexdigest(big)}"], [hexdigest(big)])
    with pytest.raises(InvalidParameter, match="truncated|unexpected end"):
        load_images(store, io.BytesIO(data[: len(data) // 2]))
    assert store.all_layers() == [] and leftovers(store) == []


def test_a_later_member_of_the_same_name_wins(store):
    """tar semantics: the last member of a name is the file, streamed or not."""
    first, second = layer_tar({"v": b"first"}), layer_tar({"v": b"second"})
    data = oci_archive([], ["l/layer.tar"], [hexdigest(second)],
                       first=[("l/layer.tar", first), ("l/layer.tar", second)])  # fmt: skip
    (loaded,) = load_images(store, io.BytesIO(data))
    (layer,) = store.image_layers(loaded.image_id)
    assert Path(layer.path, "v").read_bytes() == b"second"
    assert leftovers(store) == []


def test_layers_are_read_once_from_the_upload_not_from_a_spooled_copy(store, monkeypatch):
    """What makes load as fast as `tar -x`: each layer is unpacked from the
    stream as it passes, no file of it is written to be read back."""
    sources = []
    unpack = ImageStore.unpack

    def recording(self, stream, **kwargs):  # type: ignore[no-untyped-def]
        sources.append(hasattr(stream, "fileno"))
        return unpack(self, stream, **kwargs)

    monkeypatch.setattr(ImageStore, "unpack", recording)
    one, two = layer_tar({"a": b"1"}), layer_tar({"b": b"2"})
    data = oci_archive([one, two], [f"blobs/sha256/{hexdigest(x)}" for x in (one, two)],
                       [hexdigest(one), hexdigest(two)])  # fmt: skip
    load_images(store, io.BytesIO(data))
    assert sources == [False, False]
    # Loaded again: the layers are known by their names, spooled and not unpacked.
    sources.clear()
    load_images(store, io.BytesIO(data))
    assert sources == []


def test_a_layer_path_replaced_by_a_symlink_is_what_it_points_to(store):
    """tar semantics again: a member "a" streamed as a layer, then replaced by a
    symlink to another layer "b", is "b" for the manifest (as if spooled)."""
    one, two = layer_tar({"a": b"A"}), layer_tar({"b": b"B"})
    first = [("a/layer.tar", one), ("b/layer.tar", two), ("a/layer.tar", "../b/layer.tar")]
    data = oci_archive([], ["a/layer.tar"], [hexdigest(one)], first=first)
    with pytest.raises(InvalidParameter, match="the config says"):
        load_images(store, io.BytesIO(data))
    assert store.all_layers() == [] and leftovers(store) == []
    # And the config that says "b" loads.
    data = oci_archive([], ["a/layer.tar"], [hexdigest(two)], first=first)
    (loaded,) = load_images(store, io.BytesIO(data))
    (layer,) = store.image_layers(loaded.image_id)
    assert Path(layer.path, "b").read_bytes() == b"B"
