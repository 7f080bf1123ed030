"""docker load keeps a layer's tar as its tar-split (image/tar_split), not as a copy:
save and push must still give the exact bytes loaded (the diff_id), for every
tar shape a writer makes; a layer whose own entries replace each other keeps a
blob; a layer changed on disk is refused, never handed out or followed out."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from fake_registry import FakeRegistry, layer, sha
from fakes import World, async_test
from test_image_streamed_load import hexdigest, leftovers, oci_archive

from dockyard.engine.progress import ProgressStream
from dockyard.errors import DockyardError
from dockyard.image.archive import SavedImage, load_images, save_images
from dockyard.image.registry_auth import AuthConfig
from dockyard.image.store import ImageStore
from dockyard.image.tar_split import SPLIT_NAME

pytestmark = pytest.mark.usefixtures("unpack_kernel")


@pytest.fixture
def store(tmp_path) -> ImageStore:
    return ImageStore(str(tmp_path / "s"))


def load_one(store: ImageStore, tar: bytes) -> str:
    """Load an archive of the one layer `tar`; its diff_id."""
    name = f"blobs/sha256/{hexdigest(tar)}"
    (loaded,) = load_images(store, io.BytesIO(oci_archive([tar], [name], [hexdigest(tar)])))
    (one,) = store.image_layers(loaded.image_id)
    return one.diff_id


def layer_dir(store: ImageStore, diff_id: str) -> Path:
    (chain,) = [c for c in store.all_layers() if store.layer(c).diff_id == diff_id]
    return Path(store.layer(chain).path).parent


def pax_layer() -> bytes:
    """What docker and tar writers put in layers: pax records (long names, xattrs,
    sub-second times), GNU long names, links, a file larger than the pool's,
    empty files, and more zero blocks after the end than the format needs."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add(name: str, data: bytes | None = None, **fields: object) -> None:
            info = tarfile.TarInfo(name)
            for key, value in fields.items():
                setattr(info, key, value)
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)

        add("d", type=tarfile.DIRTYPE, mode=0o755)
        add("d/" + "long" * 40, b"a long name\n", mtime=1_700_000_000.25)
        add("d/big", os.urandom(1000) * 3200)  # > 1 MiB: written by the unpacker itself
        add("d/empty", b"")
        add("d/caps", b"x" * 700, pax_headers={"SCHILY.xattr.user.k": "v"})
        add("d/link", type=tarfile.LNKTYPE, linkname="d/empty")
        add("d/sym", type=tarfile.SYMTYPE, linkname="../outside")
        add(".wh.gone", b"")  # a whiteout: no file of its name
    gnu = io.BytesIO()
    with tarfile.open(fileobj=gnu, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("g/" + "gnu" * 50)
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    pax, gnu_members = buf.getvalue(), gnu.getvalue()
    # The GNU members before the end blocks, and a long zero tail after them.
    return (
        pax[: _end_of_members(pax)]
        + gnu_members[: _end_of_members(gnu_members)]
        + b"\0" * (1024 * 12)
    )


def _end_of_members(data: bytes) -> int:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        end = 0
        for m in tar:
            end = m.offset_data + (-(-m.size // 512) * 512 if m.isreg() else 0)
    return end


def test_a_loaded_layer_keeps_no_blob_and_gives_its_bytes_back(store):
    tar = pax_layer()
    diff_id = load_one(store, tar)
    assert diff_id == f"sha256:{hexdigest(tar)}"
    where = layer_dir(store, diff_id)
    split = (where / SPLIT_NAME).stat().st_size
    assert split < len(tar) // 50  # headers and padding, not the data
    assert not store.has_blob(diff_id)  # no copy of the tar
    assert store.has_layer_tar(diff_id)
    assert store.get_blob(diff_id) == tar  # assembled again, exactly
    assert leftovers(store) == []


def test_gnu_sparse_members_are_kept_inline(store, tmp_path):
    """A sparse member's data is kept in the tar-split itself (not a reference to
    the file, whose holes the tar does not hold)."""
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "sparse", "wb") as f:
        f.seek(5 << 20)
        f.write(b"end")
        f.seek(0)
        f.write(b"start")
    (src / "plain").write_bytes(b"p" * 3000)
    out = tmp_path / "l.tar"
    subprocess.run(
        ["tar", "--sparse", "--format=gnu", "-C", src, "-cf", out, "sparse", "plain"], check=True
    )
    tar = out.read_bytes()
    assert tar[156:157] == b"S"  # GNU tar wrote the sparse member as such
    diff_id = load_one(store, tar)
    assert store.get_blob(diff_id) == tar
    (chain,) = store.all_layers()
    assert Path(store.layer(chain).path, "sparse").stat().st_size == (5 << 20) + 3


@pytest.mark.parametrize(
    "entries",
    [
        # the same name twice: the second file replaces the first
        [("f", b"first"), ("f", b"second!")],
        # a whiteout of a name this layer made
        [("d/x", b"made"), ("d/.wh.x", b"")],
        # a directory (and a file in it) replaced by a file
        [("a/b", b"inside"), ("a", b"now a file")],
    ],
    ids=["same-name", "whiteout-of-own-file", "dir-replaced"],
)
def test_a_layer_that_replaces_its_own_entries_keeps_a_blob(store, entries):
    """The tar-split could not name what was removed: from the first removal on,
    the tar goes to a blob (what came before assembled), which must be the tar."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tar = buf.getvalue()
    diff_id = load_one(store, tar)
    assert store.has_blob(diff_id)
    assert not (layer_dir(store, diff_id) / SPLIT_NAME).exists()
    assert store.get_blob(diff_id) == tar
    last_name, last_data = entries[-1]
    (chain,) = store.all_layers()
    if not last_name.rsplit("/", 1)[-1].startswith(".wh."):
        assert Path(store.layer(chain).path, last_name).read_bytes() == last_data
    assert leftovers(store) == []


def test_save_after_load_writes_the_layer_loaded(store):
    tar = pax_layer()
    name = f"blobs/sha256/{hexdigest(tar)}"
    (loaded,) = load_images(store, io.BytesIO(oci_archive([tar], [name], [hexdigest(tar)])))
    out = io.BytesIO()
    save_images(store, [SavedImage(loaded.image_id, ["t:1"])], out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as saved:
        member = saved.extractfile(name)
        assert member is not None and member.read() == tar
    # And loaded again elsewhere: the same image.
    other = ImageStore(str(Path(store.root).parent / "other"))
    (again,) = load_images(other, io.BytesIO(out.getvalue()))
    assert again.image_id == loaded.image_id


def test_a_layer_changed_on_disk_is_refused(store):
    tar = layer({"f": b"12345", "g": b"other"})
    diff_id = load_one(store, tar)
    (chain,) = store.all_layers()
    Path(store.layer(chain).path, "f").write_bytes(b"54321")  # same size, other bytes
    with pytest.raises(DockyardError, match="changed on disk"):
        store.blob_path(diff_id)
    assert not store.has_blob(diff_id)
    assert leftovers(store) == []


def test_a_file_swapped_for_a_symlink_is_not_followed(store, tmp_path):
    """The data a reference names is read inside the layer: a file replaced by a
    symlink to a host file with the very same bytes is refused, not read."""
    secret = tmp_path / "host-file"
    secret.write_bytes(b"12345")
    tar = layer({"f": b"12345"})
    diff_id = load_one(store, tar)
    (chain,) = store.all_layers()
    path = Path(store.layer(chain).path, "f")
    path.unlink()
    path.symlink_to(secret)
    with pytest.raises(DockyardError, match="cannot rebuild"):
        store.blob_path(diff_id)
    assert not store.has_blob(diff_id)


def test_a_directory_swapped_for_a_symlink_out_resolves_inside_the_layer(store, tmp_path):
    """Parents resolve inside the layer as the unpacker resolved them: a directory
    replaced by a symlink to a host directory holding the same file is refused."""
    host = tmp_path / "host"
    host.mkdir()
    (host / "f").write_bytes(b"12345")
    tar = layer({"d/f": b"12345"})
    diff_id = load_one(store, tar)
    (chain,) = store.all_layers()
    d = Path(store.layer(chain).path, "d")
    (d / "f").unlink()
    d.rmdir()
    d.symlink_to(host)  # absolute: inside the layer it names nothing
    with pytest.raises(DockyardError, match="cannot rebuild"):
        store.blob_path(diff_id)


def test_a_truncated_tar_split_is_refused(store):
    tar = layer({"f": b"x" * 2000})
    diff_id = load_one(store, tar)
    split = layer_dir(store, diff_id) / SPLIT_NAME
    split.write_bytes(split.read_bytes()[:-100])
    with pytest.raises(DockyardError, match="cannot rebuild"):
        store.blob_path(diff_id)


@async_test
async def test_push_after_load_sends_the_layer_loaded(tmp_path):
    w = World(tmp_path)
    tar = pax_layer()
    name = f"blobs/sha256/{hexdigest(tar)}"
    archive = oci_archive([tar], [name], [hexdigest(tar)])

    async def chunks():
        for i in range(0, len(archive), 65536):
            yield archive[i : i + 65536]

    await w.images.load(chunks())
    async with FakeRegistry() as fake:
        w.images.tag(w.images.resolve("t:1"), f"{fake.host}/team/app", "v1")
        progress = ProgressStream()
        await w.images.push(
            w.images.push_refs(f"{fake.host}/team/app:v1", ""), AuthConfig(), progress
        )
        body, _ = fake.manifests[("team/app", "v1")]
        (desc,) = json.loads(body)["layers"]
        assert gzip.decompress(fake.blobs[desc["digest"]]) == tar
        assert desc["digest"] == sha(fake.blobs[desc["digest"]])
