"""The registry client and the engine's pull against a scripted in-process registry.

The fake speaks enough of the Distribution v2 API to misbehave on purpose:
Bearer and Basic challenges, a blob connection dropped half-way (once, or
every time), 500 answers, and manifests that do not match their digest.
The real registry (docker-registry) is exercised by tests/integration.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
from typing import Any
from urllib.parse import unquote

import pytest
from fake_registry import FakeRegistry, layer, sha
from fakes import World, async_test

from dockyard.engine.progress import ProgressStream
from dockyard.errors import DockyardError, NotFound, Unauthorized
from dockyard.image.registry import Registry, new_session
from dockyard.image.registry_auth import (
    AuthConfig,
    InsecureRegistries,
    decode_auth_header,
    parse_challenge,
)

# Pulled layers are unpacked with the recording kernel when not root (see conftest).
unpacks = pytest.mark.usefixtures("unpack_kernel")


# -- pure parsing -------------------------------------------------------------------


def test_parse_challenge():
    assert parse_challenge(
        'Bearer realm="https://auth.io/token",service="reg",scope="a:b:pull"'
    ) == (
        "bearer",
        {"realm": "https://auth.io/token", "service": "reg", "scope": "a:b:pull"},
    )
    assert parse_challenge('Basic realm="x"') == ("basic", {"realm": "x"})


def test_insecure_registries():
    default = InsecureRegistries()
    assert default.allows("127.0.0.1:5000") and default.allows("127.9.9.9")
    assert default.allows("localhost:5000") and default.allows("[::1]:5000")
    assert not default.allows("registry.example.com") and not default.allows("10.0.0.1:5000")
    configured = InsecureRegistries(["10.0.0.0/8", "myreg.lan:5000", "http://other.lan"])
    assert configured.allows("10.1.2.3:5000")
    assert configured.allows("myreg.lan:5000") and not configured.allows("myreg.lan:6000")
    assert configured.allows("other.lan")


def test_x_registry_auth_header():
    raw = json.dumps({"username": "u", "password": "p", "serveraddress": "r"}).encode()
    assert decode_auth_header(base64.urlsafe_b64encode(raw).decode().rstrip("=")) == AuthConfig(
        "u", "p"
    )
    assert decode_auth_header("e30=") == AuthConfig()
    assert decode_auth_header("%%%not base64") == AuthConfig()  # anonymous, as dockerd
    deep = base64.urlsafe_b64encode(b"[" * 4000 + b"]" * 4000).decode()
    assert decode_auth_header(deep) == AuthConfig()  # was a RecursionError: a 500


# -- the client -------------------------------------------------------------------


@async_test
async def test_bearer_token_per_scope_with_credentials():
    async with FakeRegistry(auth="bearer") as fake, new_session() as session:
        fake.add_image("team/app", "v1", [layer({"a": b"1"})])
        registry = Registry(session, fake.host, AuthConfig("alice", "pw"))
        body, media_type, digest = await registry.get_manifest("team/app", "v1")
        assert media_type.endswith("manifest.v2+json") and digest == sha(body)
        token_requests = [r for r in fake.requests if r[1].startswith("/token")]
        assert len(token_requests) == 1
        assert "scope=repository:team/app:pull" in unquote(token_requests[0][1])

        anonymous = Registry(session, fake.host, AuthConfig())
        with pytest.raises(Unauthorized):
            await anonymous.get_manifest("team/app", "v1")


@async_test
async def test_basic_auth_and_refused_credentials():
    async with FakeRegistry(auth="basic") as fake, new_session() as session:
        fake.add_image("app", "v1", [layer({"a": b"1"})])
        await Registry(session, fake.host, AuthConfig("alice", "pw")).get_manifest("app", "v1")
        with pytest.raises(Unauthorized, match="no basic auth credentials"):
            await Registry(session, fake.host).get_manifest("app", "v1")
        with pytest.raises(Unauthorized, match="401 Unauthorized"):
            await Registry(session, fake.host, AuthConfig("alice", "nope")).login()
        await Registry(session, fake.host, AuthConfig("alice", "pw")).login()


@async_test
async def test_blob_download_resumes_with_range_after_a_drop():
    async with FakeRegistry() as fake, new_session() as session:
        data = os.urandom(3 << 20)
        fake.blobs[sha(data)] = data
        fake.blob_failure[sha(data)] = "close-once"
        got = bytearray()
        size = await Registry(session, fake.host).fetch_blob(
            "app", sha(data), got.extend, got.clear
        )
        assert size == len(data) and bytes(got) == data
        ranges = [r[2].get("Range") for r in fake.requests if "/blobs/" in r[1]]
        assert ranges[0] is None and ranges[1].startswith("bytes=") and ranges[1] != "bytes=0-"


@async_test
async def test_manifest_not_matching_the_asked_digest_is_refused():
    async with FakeRegistry() as fake, new_session() as session:
        fake.add_image("app", "v1", [layer({"a": b"1"})])
        wrong = sha(b"something else")
        fake.manifests[("app", wrong)] = fake.manifests[("app", "v1")]
        with pytest.raises(DockyardError, match="manifest verification failed"):
            await Registry(session, fake.host).get_manifest("app", wrong)
        with pytest.raises(NotFound, match="manifest for .*/app:v2 not found"):
            await Registry(session, fake.host).get_manifest("app", "v2")


# -- the engine's pull ---------------------------------------------------------------


def drain(progress: ProgressStream) -> list[dict[str, Any]]:
    out = []
    while not progress._queue.empty():
        message = progress._queue.get_nowait()
        if message is not None:
            out.append(message)
    return out


def on_disk(w: World) -> tuple[list[str], list[str], list[str]]:
    root = w.root
    return (
        sorted(os.listdir(root / "layers")),
        sorted(os.listdir(root / "blobs" / "sha256")),
        sorted(os.listdir(root / "tmp")) if (root / "tmp").exists() else [],
    )


@unpacks
@async_test
async def test_pull_of_gzip_layers_behind_bearer_auth(tmp_path):
    w = World(tmp_path)
    async with FakeRegistry(auth="bearer") as fake:
        layers = [layer({"etc/os": b"fake\n"}), layer({"app": b"v1"})]
        image_id = fake.add_image("team/app", "v1", layers)
        progress = ProgressStream()
        ids = await w.images.pull(
            f"{fake.host}/team/app", "v1", AuthConfig("alice", "pw"), progress
        )
    assert ids == [image_id]
    assert w.images.resolve(f"{fake.host}/team/app:v1") == image_id
    assert w.images.blobs.image_diff_ids(image_id) == [sha(t) for t in layers]
    record = w.images.get(image_id)
    assert record.repo_digests == [
        f"{fake.host}/team/app@{sha(fake.manifests[('team/app', 'v1')][0])}"
    ]
    statuses = [m.get("status", "") for m in drain(progress)]
    assert statuses[0] == "Pulling from team/app"
    assert statuses.count("Pull complete") == 2
    assert statuses[-1] == f"Status: Downloaded newer image for {fake.host}/team/app:v1"


@unpacks
@pytest.mark.parametrize("failure", ["500", "close-always"])
@async_test
async def test_failing_registry_leaves_the_store_as_it_was(tmp_path, failure):
    w = World(tmp_path)
    async with FakeRegistry() as fake:
        good = layer({"a": b"1" * 100_000})
        bad = layer({"b": b"2" * 100_000})
        fake.add_image("app", "v1", [good, bad])
        digest = sha(gzip.compress(bad, mtime=0))
        fake.blob_failure[digest] = failure
        before = on_disk(w)
        with pytest.raises(DockyardError) as e:
            await w.images.pull(f"{fake.host}/app", "v1", AuthConfig(), ProgressStream())
    expected = {
        "500": f"fetching blob {digest} of {fake.host}/app: unknown: boom",
        "close-always": f"fetching blob {digest} of {fake.host}/app: the connection broke "
        "off 4 times, the last after ",
    }[failure]
    assert e.value.message.startswith(expected), e.value.message
    assert w.images.list() == []
    assert on_disk(w)[0] == before[0]  # the layer that did arrive was removed again
    assert not [n for n in on_disk(w)[2] if n.startswith("pull-")]


@unpacks
@async_test
async def test_layer_not_matching_the_config_diff_id_fails_the_pull(tmp_path):
    w = World(tmp_path)
    async with FakeRegistry() as fake:
        fake.add_image("app", "v1", [layer({"a": b"1"})])
        # Same manifest, but the config now claims another diff_id.
        manifest = json.loads(fake.manifests[("app", "v1")][0])
        config = json.loads(fake.blobs[manifest["config"]["digest"]])
        config["rootfs"]["diff_ids"] = [sha(b"not the layer")]
        config_bytes = json.dumps(config).encode()
        fake.blobs[sha(config_bytes)] = config_bytes
        manifest["config"]["digest"], manifest["config"]["size"] = (
            sha(config_bytes),
            len(config_bytes),
        )
        fake.manifests[("app", "v1")] = (json.dumps(manifest).encode(), manifest["mediaType"])
        with pytest.raises(DockyardError, match="diff_id"):
            await w.images.pull(f"{fake.host}/app", "v1", AuthConfig(), ProgressStream())
    assert w.images.list() == []
    assert on_disk(w)[0] == []


@unpacks
@async_test
async def test_full_disk_during_pull_is_one_clear_line(tmp_path):
    import errno

    w = World(tmp_path)
    real_unpack = w.images.blobs.unpack
    calls = []

    def unpack_until_full(stream, **kw):
        calls.append(stream)
        if len(calls) == 2:  # layers unpack side by side: either one may be the second
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_unpack(stream, **kw)

    w.images.blobs.unpack = unpack_until_full  # type: ignore[method-assign]
    async with FakeRegistry() as fake:
        fake.add_image("app", "v1", [layer({"a": b"1"}), layer({"b": b"2"})])
        with pytest.raises(DockyardError) as e:
            await w.images.pull(f"{fake.host}/app", "v1", AuthConfig(), ProgressStream())
    assert e.value.message == "failed to register layer: write: no space left on device"
    assert w.images.list() == [] and on_disk(w)[0] == []


def test_what_a_registry_says_it_holds_of_an_upload():
    from dockyard.image.registry_upload import range_end

    assert range_end("0-1048575") == 1 << 20
    assert range_end("bytes=0-99") == 100
    assert range_end("0-0") == 0  # docker/distribution's answer for nothing yet
    # Anything else cannot be resumed from: the blob starts over.
    for header in (None, "", "5-9", "0-", "0-x", "-3", "0-1-2", "garbage"):
        assert range_end(header) is None, header
