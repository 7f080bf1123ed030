"""The engine's push (and pull's streaming) against the scripted registry of fake_registry.py.

Push: layers go as gzip blobs that are the stored layer tars; a layer the
registry already has, in this repository or another one known to hold it
(pushed or pulled before, also after a restart), is not compressed again;
a broken upload is retried and a registry that keeps failing is one clear
error. Pull: a passing 500 is retried, a layer restarts when the registry
cannot resume, a blob
longer than its descriptor or swapped for another valid layer fails and
leaves nothing, and the progress of each layer is docker's sequence.
"""

from __future__ import annotations

import gzip
import json
import os

import pytest
from fake_registry import FakeRegistry, layer, sha
from fakes import World, async_test

from dockyard.engine import image_push
from dockyard.engine.progress import ProgressStream
from dockyard.errors import DockyardError, Unauthorized
from dockyard.image import layer_gzip
from dockyard.image.layer_gzip import LayerGzip
from dockyard.image.registry_auth import AuthConfig

unpacks = pytest.mark.usefixtures("unpack_kernel")


def drain(progress: ProgressStream) -> list[dict]:
    out = []
    while not progress._queue.empty():
        message = progress._queue.get_nowait()
        if message is not None:
            out.append(message)
    return out


def statuses(progress: ProgressStream) -> list[str]:
    return [m.get("status", "") for m in drain(progress)]


async def push(w: World, name: str, auth: AuthConfig | None = None) -> list[str]:
    progress = ProgressStream()
    await w.images.push(w.images.push_refs(name, ""), auth or AuthConfig(), progress)
    return statuses(progress)


def no_gzip(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: LayerGzip) -> bytes:
        raise AssertionError("a layer was compressed again")

    monkeypatch.setattr(LayerGzip, "step", refuse)


def on_disk(w: World) -> tuple[list[str], list[str], list[str]]:
    root = w.root
    tmp = sorted(p.name for p in (root / "tmp").iterdir()) if (root / "tmp").exists() else []
    return (
        sorted(p.name for p in (root / "layers").iterdir()),
        sorted(p.name for p in (root / "blobs" / "sha256").iterdir()),
        tmp,
    )


@unpacks
@async_test
async def test_push_sends_gzip_of_the_layer_and_never_compresses_it_twice(tmp_path, monkeypatch):
    w = World(tmp_path)
    image_id = await w.image("app")
    async with FakeRegistry() as fake:
        w.images.tag(image_id, f"{fake.host}/team/app", "v1")
        out = await push(w, f"{fake.host}/team/app:v1")
        assert "Preparing" in out and out.count("Pushed") == 1
        body, media_type = fake.manifests[("team/app", "v1")]
        manifest = json.loads(body)
        assert media_type == manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
        (desc,) = manifest["layers"]
        assert desc["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
        (diff_id,) = w.images.blobs.image_diff_ids(image_id)
        assert gzip.decompress(fake.blobs[desc["digest"]]) == w.images.blobs.get_blob(diff_id)
        assert desc["size"] == len(fake.blobs[desc["digest"]])
        assert manifest["config"]["digest"] == image_id

        no_gzip(monkeypatch)
        out = await push(w, f"{fake.host}/team/app:v1")
        assert "Layer already exists" in out and "Pushed" not in out
        # Another repository of the registry: mounted, even by the next daemon.
        w = World(tmp_path)
        w.images.tag(image_id, f"{fake.host}/other/app", "v2")
        out = await push(w, f"{fake.host}/other/app:v2")
        assert "Mounted from team/app" in out and "Pushed" not in out
        assert json.loads(fake.manifests[("other/app", "v2")][0])["layers"] == [desc]


@unpacks
@async_test
async def test_a_pulled_image_pushes_its_layers_as_pulled(tmp_path, monkeypatch):
    w = World(tmp_path)
    async with FakeRegistry() as fake:
        tars = [layer({"a": b"1" * 5000}), layer({"b": b"2" * 5000})]
        image_id = fake.add_image("src/app", "v1", tars)
        await w.images.pull(f"{fake.host}/src/app", "v1", AuthConfig(), ProgressStream())
        pulled = json.loads(fake.manifests[("src/app", "v1")][0])["layers"]
        no_gzip(monkeypatch)
        w.images.tag(image_id, f"{fake.host}/dst/app", "v1")
        out = await push(w, f"{fake.host}/dst/app:v1")
        assert out.count("Mounted from src/app") == 2
        pushed = json.loads(fake.manifests[("dst/app", "v1")][0])["layers"]
        assert [d["digest"] for d in pushed] == [d["digest"] for d in pulled]
        assert {d["mediaType"] for d in pushed} == {"application/vnd.oci.image.layer.v1.tar+gzip"}


@unpacks
@pytest.mark.parametrize("failure", ["close", "500"])
@async_test
async def test_a_broken_upload_is_retried(tmp_path, monkeypatch, failure):
    monkeypatch.setattr(image_push, "RETRY_DELAY", 0)
    w = World(tmp_path)
    image_id = await w.image("app")
    async with FakeRegistry(upload_failure=failure, upload_failures_left=1) as fake:
        w.images.tag(image_id, f"{fake.host}/app", "v1")
        out = await push(w, f"{fake.host}/app:v1")
        assert "Retrying in 0 seconds" in out and "Pushed" in out
        assert ("app", "v1") in fake.manifests


@unpacks
@async_test
async def test_a_registry_that_keeps_failing_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(image_push, "RETRY_DELAY", 0)
    w = World(tmp_path)
    image_id = await w.image("app")
    async with FakeRegistry(upload_failure="500", upload_failures_left=99) as fake:
        w.images.tag(image_id, f"{fake.host}/app", "v1")
        with pytest.raises(DockyardError, match="disk on fire"):
            await push(w, f"{fake.host}/app:v1")
        assert fake.upload_failures_left == 99 - image_push.UPLOAD_ATTEMPTS
        assert ("app", "v1") not in fake.manifests  # no manifest for missing layers


@unpacks
@async_test
async def test_push_with_refused_credentials(tmp_path):
    w = World(tmp_path)
    image_id = await w.image("app")
    async with FakeRegistry(auth="basic") as fake:
        w.images.tag(image_id, f"{fake.host}/app", "v1")
        with pytest.raises(Unauthorized):
            await push(w, f"{fake.host}/app:v1", AuthConfig("alice", "wrong"))
        assert not fake.uploads and ("app", "v1") not in fake.manifests
        await push(w, f"{fake.host}/app:v1", AuthConfig("alice", "pw"))
        assert ("app", "v1") in fake.manifests


# -- pull: streaming into the unpacker ----------------------------------------------------


@unpacks
@async_test
async def test_a_layer_starts_over_when_the_registry_cannot_resume(tmp_path):
    w = World(tmp_path)
    async with FakeRegistry() as fake:
        tar = layer({f"f{i}": bytes([i]) * 40_000 for i in range(20)})
        image_id = fake.add_image("app", "v1", [tar], gz=False)
        fake.blob_failure[sha(tar)] = "no-range"
        progress = ProgressStream()
        await w.images.pull(f"{fake.host}/app", "v1", AuthConfig(), progress)
        ranged = [r for r in fake.requests if "Range" in r[2]]
        assert ranged, "the drop was not followed by a Range request"
    assert w.images.blobs.image_diff_ids(image_id) == [sha(tar)]
    layer_dir = w.images.blobs.image_layers(image_id)[0].path
    with open(f"{layer_dir}/f7", "rb") as f:
        assert f.read() == bytes([7]) * 40_000
    assert on_disk(w)[2] == []


@unpacks
@async_test
async def test_a_passing_500_on_a_blob_is_retried(tmp_path):
    w = World(tmp_path)
    async with FakeRegistry() as fake:
        tar = layer({"a": b"a" * 10_000})
        image_id = fake.add_image("app", "v1", [tar])
        fake.blob_failure[sha(gzip.compress(tar, mtime=0))] = "500-once"
        await w.images.pull(f"{fake.host}/app", "v1", AuthConfig(), ProgressStream())
    assert w.images.resolve(f"{fake.host}/app:v1") == image_id


@unpacks
@async_test
async def test_a_blob_swapped_for_another_valid_layer_fails_and_leaves_nothing(tmp_path):
    w = World(tmp_path)
    async with FakeRegistry() as fake:
        real, other = layer({"real": b"r" * 50_000}), layer({"evil": b"e" * 50_000})
        fake.add_image("app", "v1", [real])
        digest = sha(gzip.compress(real, mtime=0))
        fake.blobs[digest] = gzip.compress(other, mtime=0)  # unpacks fine, wrong digest
        before = on_disk(w)
        with pytest.raises(DockyardError, match=f"verification failed for digest {digest}"):
            await w.images.pull(f"{fake.host}/app", "v1", AuthConfig(), ProgressStream())
    assert w.images.list() == []
    assert on_disk(w)[:2] == before[:2] and on_disk(w)[2] == []


@unpacks
@async_test
async def test_a_blob_that_matches_its_digest_but_is_no_tar_fails_and_leaves_nothing(tmp_path):
    w = World(tmp_path)
    async with FakeRegistry() as fake:
        garbage = bytes(range(256)) * 4000  # the unpacker gives up long before its end
        fake.add_image("app", "v1", [layer({"ok": b"1"}), garbage])
        ident = sha(gzip.compress(garbage, mtime=0))[7:19]
        with pytest.raises(DockyardError) as e:
            await w.images.pull(f"{fake.host}/app", "v1", AuthConfig(), ProgressStream())
    assert e.value.message.startswith(f"failed to register layer {ident}: invalid layer archive")
    assert w.images.list() == [] and on_disk(w)[0] == [] and on_disk(w)[2] == []


@unpacks
@async_test
async def test_a_blob_longer_than_its_descriptor_fails(tmp_path):
    w = World(tmp_path)
    async with FakeRegistry() as fake:
        fake.add_image("app", "v1", [layer({"a": b"a" * 50_000})])
        manifest = json.loads(fake.manifests[("app", "v1")][0])
        manifest["layers"][0]["size"] -= 10
        fake.manifests[("app", "v1")] = (json.dumps(manifest).encode(), manifest["mediaType"])
        with pytest.raises(DockyardError, match="longer than the"):
            await w.images.pull(f"{fake.host}/app", "v1", AuthConfig(), ProgressStream())
    assert w.images.list() == [] and on_disk(w)[0] == []


@unpacks
@async_test
async def test_pull_progress_is_dockers_sequence_per_layer(tmp_path):
    w = World(tmp_path)
    async with FakeRegistry() as fake:
        tars = [layer({name: name.encode() * 300_000}) for name in "abcd"]
        fake.add_image("app", "v1", tars)
        progress = ProgressStream()
        await w.images.pull(f"{fake.host}/app", "v1", AuthConfig(), progress)
        manifest = json.loads(fake.manifests[("app", "v1")][0])
    messages = drain(progress)
    for n, desc in enumerate(manifest["layers"]):
        ident = desc["digest"][7:19]
        seen = [m["status"] for m in messages if m.get("id") == ident]
        collapsed = [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s]
        waiting = ["Waiting"] if n == 3 else []  # three download at a time, as dockerd
        assert collapsed == [
            "Pulling fs layer",
            *waiting,
            "Downloading",
            "Verifying Checksum",
            "Download complete",
            "Extracting",
            "Pull complete",
        ], seen
        last_download = [
            m for m in messages if m.get("id") == ident and m["status"] == "Downloading"
        ]
        assert last_download[-1]["progressDetail"] == {
            "current": desc["size"],
            "total": desc["size"],
        }


@unpacks
@async_test
async def test_a_layer_that_occurs_twice_is_compressed_and_sent_once(tmp_path, monkeypatch):
    w = World(tmp_path)
    same = layer({"twice": b"2" * 20_000})
    async with FakeRegistry() as source, FakeRegistry() as target:
        image_id = source.add_image("app", "v1", [same, layer({"x": b"x"}), same])
        await w.images.pull(f"{source.host}/app", "v1", AuthConfig(), ProgressStream())
        made = []
        real_init = LayerGzip.__init__

        def counting_init(self: LayerGzip, source_file) -> None:  # type: ignore[no-untyped-def]
            made.append(source_file.name)
            real_init(self, source_file)

        monkeypatch.setattr(LayerGzip, "__init__", counting_init)
        w.images.tag(image_id, f"{target.host}/app", "v1")
        out = await push(w, f"{target.host}/app:v1")  # another registry: nothing to mount
        assert len(made) == 2 and out.count("Pushed") == 2
        assert out.count("Preparing") == 2
        layers = json.loads(target.manifests[("app", "v1")][0])["layers"]
        assert len(layers) == 3 and layers[0] == layers[2] != layers[1]


# -- push: a broken upload goes on where the registry stands ---------------------------


async def incompressible_image(w: World, size: int = 400_000) -> str:
    data = layer({"noise": os.urandom(size)})

    async def body(f) -> None:  # type: ignore[no-untyped-def]
        f.write(data)

    return await w.images.import_rootfs(body, repo="noise", tag="", changes=[])


def small_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    """PATCHes of ~64 KiB of gzip, from 16 KiB reads of the layer."""
    monkeypatch.setattr(image_push, "SEGMENT", 64 << 10)
    monkeypatch.setattr(layer_gzip, "_CHUNK", 16 << 10)


def sent_once(fake: FakeRegistry, blob: bytes) -> None:
    """Every byte of the blob reached the registry once: the PATCHes it kept
    follow each other, from 0 to the blob's end, none overlapping."""
    offset = 0
    for start, count in fake.patches:
        assert start == offset, fake.patches
        offset += count
    assert offset == len(blob)


@unpacks
@pytest.mark.parametrize("failure", ["close", "500", "close-keep"])
@async_test
async def test_a_broken_upload_goes_on_from_where_the_registry_stands(
    tmp_path, monkeypatch, failure
):
    monkeypatch.setattr(image_push, "RETRY_DELAY", 0)
    small_segments(monkeypatch)
    w = World(tmp_path)
    image_id = await incompressible_image(w)
    # The first PATCH (the whole layer) breaks, then one of the segments after it.
    async with FakeRegistry(upload_failure=failure, upload_failure_at=[0, 150_000]) as fake:
        w.images.tag(image_id, f"{fake.host}/app", "v1")
        out = await push(w, f"{fake.host}/app:v1")
        assert out.count("Retrying in 0 seconds") == 2 and "Pushed" in out
        (desc,) = json.loads(fake.manifests[("app", "v1")][0])["layers"]
        blob = fake.blobs[desc["digest"]]
        (diff_id,) = w.images.blobs.image_diff_ids(image_id)
        assert gzip.decompress(blob) == w.images.blobs.get_blob(diff_id)
        posts = [r for r in fake.requests if r[0] == "POST" and "/uploads/" in r[1]]
        assert len(posts) == 2  # the layer's upload (one, resumed) and the config's
        status = [r for r in fake.requests if r[0] == "GET" and "/uploads/" in r[1]]
        assert len(status) == 2
        # The registry got each byte once; after the first break, in segments.
        sent_once(fake, blob)
        assert len(fake.patches) >= 4
        assert all(count <= 200_000 for _, count in fake.patches)
        if failure == "close-keep":  # the registry kept 1000 bytes of each cut PATCH
            assert fake.patches[0] == (0, 1000)
            assert sum(1 for p in fake.patches if p[1] == 1000) == 2


@unpacks
@async_test
async def test_an_upload_the_registry_lost_starts_over_from_byte_0(tmp_path, monkeypatch):
    monkeypatch.setattr(image_push, "RETRY_DELAY", 0)
    small_segments(monkeypatch)
    w = World(tmp_path)
    image_id = await incompressible_image(w)
    async with FakeRegistry(
        upload_failure="close", upload_failure_at=[0], upload_status_unknown=True
    ) as fake:
        w.images.tag(image_id, f"{fake.host}/app", "v1")
        out = await push(w, f"{fake.host}/app:v1")
        assert "Retrying in 0 seconds" in out and "Pushed" in out
        (desc,) = json.loads(fake.manifests[("app", "v1")][0])["layers"]
        posts = [r for r in fake.requests if r[0] == "POST" and "/uploads/" in r[1]]
        assert len(posts) == 3  # the layer twice, then the config
        assert [r for r in fake.requests if r[0] == "DELETE"]  # the lost upload cancelled
        assert not fake.uploads
        sent_once(fake, fake.blobs[desc["digest"]])


@unpacks
@async_test
async def test_a_resumed_upload_the_registry_holds_wrong_starts_over(tmp_path, monkeypatch):
    monkeypatch.setattr(image_push, "RETRY_DELAY", 0)
    small_segments(monkeypatch)
    w = World(tmp_path)
    image_id = await incompressible_image(w)
    async with FakeRegistry(upload_failure="close-keep-garbled", upload_failure_at=[0]) as fake:
        w.images.tag(image_id, f"{fake.host}/app", "v1")
        out = await push(w, f"{fake.host}/app:v1")
        # The break, then the closing PUT refused (DIGEST_INVALID): from byte 0.
        assert out.count("Retrying in 0 seconds") == 2 and "Pushed" in out
        posts = [r for r in fake.requests if r[0] == "POST" and "/uploads/" in r[1]]
        assert len(posts) == 3
        (desc,) = json.loads(fake.manifests[("app", "v1")][0])["layers"]
        (diff_id,) = w.images.blobs.image_diff_ids(image_id)
        assert gzip.decompress(fake.blobs[desc["digest"]]) == w.images.blobs.get_blob(diff_id)


@unpacks
@async_test
async def test_a_registry_that_takes_one_patch_per_upload_gets_the_layer_in_one(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(image_push, "RETRY_DELAY", 0)
    small_segments(monkeypatch)
    w = World(tmp_path)
    image_id = await incompressible_image(w)
    async with FakeRegistry(
        upload_failure="close-keep", upload_failure_at=[0], one_patch_per_upload=True
    ) as fake:
        w.images.tag(image_id, f"{fake.host}/app", "v1")
        out = await push(w, f"{fake.host}/app:v1")
        assert out.count("Retrying in 0 seconds") == 2 and "Pushed" in out
        (desc,) = json.loads(fake.manifests[("app", "v1")][0])["layers"]
        blob = fake.blobs[desc["digest"]]
        # Cut (1000 bytes kept), resumed with a second PATCH: refused; then whole again.
        assert fake.patches[0] == (0, 1000) and fake.patches[-1] == (0, len(blob))
        posts = [r for r in fake.requests if r[0] == "POST" and "/uploads/" in r[1]]
        assert len(posts) == 3


def test_the_gzip_of_a_layer_is_the_same_bytes_every_time(tmp_path):
    # What resuming by compressing again relies on.
    path = tmp_path / "layer.tar"
    path.write_bytes(layer({"a": os.urandom(3 << 20), "b": b"text " * 500_000}))
    outs = []
    for _ in range(2):
        with open(path, "rb") as f:
            gz = LayerGzip(f)
            outs.append(_all(gz))
    assert outs[0] == outs[1] and gzip.decompress(outs[0]) == path.read_bytes()


def _all(gz: LayerGzip) -> bytes:
    out = bytearray()
    while not gz.done:
        out += gz.step()
    return bytes(out)


@unpacks
@async_test
async def test_what_a_push_remembered_of_a_layer_goes_with_it(tmp_path):
    w = World(tmp_path)
    image_id = await w.image("app")
    keep_id = await incompressible_image(w, 1000)
    async with FakeRegistry() as fake:
        for image, repo in ((image_id, "team/app"), (keep_id, "team/other")):
            w.images.tag(image, f"{fake.host}/{repo}", "v1")
            await push(w, f"{fake.host}/{repo}:v1")
    (diff_id,) = w.images.blobs.image_diff_ids(image_id)
    (kept,) = w.images.blobs.image_diff_ids(keep_id)
    forms = json.loads((tmp_path / "compressed-layers.json").read_bytes())
    assert set(forms) == {diff_id, kept}
    w.images.delete(f"{fake.host}/team/app:v1")
    assert w.images.distribution.compressed_forms(diff_id)  # "app" still holds it
    w.images.delete("app")
    forms = json.loads((tmp_path / "compressed-layers.json").read_bytes())
    sources = json.loads((tmp_path / "blob-sources.json").read_bytes())
    assert set(forms) == {kept}
    assert [digest for _, digest, _ in sources] == [forms[kept][0][0]]
    # `image prune -a` too.
    w.images.prune({"dangling": ["false"]})
    assert World(tmp_path).images.distribution.compressed_forms(kept) == []
    assert json.loads((tmp_path / "compressed-layers.json").read_bytes()) == {}
    assert json.loads((tmp_path / "blob-sources.json").read_bytes()) == []


@unpacks
@async_test
async def test_a_token_that_expires_between_patches_is_renewed_and_the_upload_goes_on(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(image_push, "RETRY_DELAY", 0)
    small_segments(monkeypatch)
    w = World(tmp_path)
    image_id = await incompressible_image(w)
    # A break first, so that the layer goes on in segments (several PATCHes).
    async with FakeRegistry(
        auth="bearer", token_lifetime=4, upload_failure="close", upload_failure_at=[0]
    ) as fake:
        w.images.tag(image_id, f"{fake.host}/app", "v1")
        out = await push(w, f"{fake.host}/app:v1", AuthConfig("alice", "pw"))
        assert "Pushed" in out and ("app", "v1") in fake.manifests
        assert fake.token_generation >= 1  # it did expire during the push
        tokens = [r for r in fake.requests if r[1].startswith("/token")]
        assert len(tokens) >= 2
        posts = [r for r in fake.requests if r[0] == "POST" and "/uploads/" in r[1]]
        assert len(posts) == 2  # the layer's upload went on, the config's
        (desc,) = json.loads(fake.manifests[("app", "v1")][0])["layers"]
        sent_once(fake, fake.blobs[desc["digest"]])
        assert len(fake.patches) >= 3


@unpacks
@async_test
async def test_a_layer_committed_by_a_put_whose_answer_was_lost_is_not_sent_again(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(image_push, "RETRY_DELAY", 0)
    w = World(tmp_path)
    image_id = await incompressible_image(w)
    async with FakeRegistry(drop_after_commit=True) as fake:
        w.images.tag(image_id, f"{fake.host}/app", "v1")
        out = await push(w, f"{fake.host}/app:v1")
        assert "Pushed" in out and "Retrying in 0 seconds" not in out
        assert not fake.drop_after_commit  # the answer was lost
        posts = [r for r in fake.requests if r[0] == "POST" and "/uploads/" in r[1]]
        assert len(posts) == 2 and len(fake.patches) == 1  # the layer once, the config
        assert ("app", "v1") in fake.manifests
