"""Broken uploads and downloads resume against a real registry (Debian's docker-registry).

The registry sits behind tests/registry_proxy.py, which buffers requests as
nginx does and breaks a push's layer upload twice (a 503 in place of the
first PATCH, then a connection dropped in the middle of a later one) and a
pull's blob download once. What the proxy forwarded shows, from the
registry's side, that every byte of the layer reached it once: the upload
went on where the registry stood instead of starting over. The image then
pulls back (resuming with Range) and runs with its data intact.
"""

from __future__ import annotations

import json
import urllib.request

import pytest

from registry_proxy import Break, RegistryProxy
from registry_server import RegistryServer

SEGMENT = 32 << 20  # image_push.SEGMENT: the gzip bytes of a PATCH after a break
NOISE = 80_000_000  # incompressible: three segments


@pytest.fixture
def proxied_registry():
    server = RegistryServer()
    proxy = RegistryProxy(server.host)
    yield server, proxy
    proxy.stop()
    server.stop()


@pytest.fixture
def noise_image(daemon, unique):
    """busybox and a layer of 80 MB of random bytes; (name, sha256sum of /noise)."""
    name, box = unique("noise"), unique("noisebox")
    proc = daemon.dockyard(
        "run", "--name", box, "--network", "none", "busybox",
        "sh", "-c", f"head -c {NOISE} /dev/urandom > /noise && sha256sum /noise",
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    checksum = proc.stdout.split()[0]
    proc = daemon.dockyard("commit", box, f"{name}:v1", timeout=300)
    assert proc.returncode == 0, proc.stderr
    daemon.dockyard("rm", box)
    yield name, checksum
    daemon.dockyard("rmi", "-f", f"{name}:v1")


def test_push_resumes_a_broken_layer_upload_and_pull_a_broken_download(
    daemon, proxied_registry, noise_image
):
    server, proxy = proxied_registry
    name, checksum = noise_image
    remote = f"{proxy.host}/{name}:v1"
    # The first PATCH (the whole layer, as dockerd sends it) meets a 503; the
    # upload goes on in segments, and the second of those is cut after 4 MiB.
    proxy.breaks = [
        Break(held=0, how="503", larger_than=NOISE // 2),  # not busybox's layer
        Break(held=SEGMENT, how="drop", after=4 << 20),
    ]
    assert daemon.dockyard("tag", f"{name}:v1", remote).returncode == 0
    proc = daemon.dockyard("push", remote, timeout=300)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert all(b.done for b in proxy.breaks)
    assert proc.stdout.count(": Pushed") == 2, proc.stdout

    with urllib.request.urlopen(
        urllib.request.Request(
            f"http://{server.host}/v2/{name}/manifests/v1",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        ),
        timeout=10,
    ) as resp:
        layers = json.loads(resp.read())["layers"]
    size = layers[-1]["size"]
    assert size > 2 * SEGMENT
    patches = [s for s in proxy.seen if s.method == "PATCH"]
    uploads = {s.path for s in patches if s.received >= size}
    assert len(uploads) == 1, [(s.path, s.received) for s in patches]
    (upload,) = uploads
    mine = [s for s in patches if s.path == upload]
    # From the registry's side: each byte of the layer arrived once, in one upload.
    assert sum(s.received for s in mine if s.forwarded) == size
    refused = [s for s in mine if not s.forwarded]
    assert [(s.status, s.received) for s in refused] == [(503, size), (0, 4 << 20)]
    # Each break was followed by a GET on the upload that the registry answered
    # with what it held, and the next PATCH went on from there.
    status = [s for s in proxy.seen if s.method == "GET" and s.path == upload]
    assert [(s.status, s.range) for s in status[:1]] == [(204, "0-0")]  # nothing yet
    assert len(status) == 2 and status[1].status == 204
    held = int(status[1].range.split("-")[1]) + 1
    acked = [int(s.range.split("-")[1]) + 1 for s in mine if s.forwarded]
    assert SEGMENT <= acked[0] == held < acked[1] and acked[-1] == size
    # segments of SEGMENT bytes and at most one gzip piece (~1 MiB) more
    assert all(b - a < SEGMENT + (2 << 20) for a, b in zip([0, *acked], acked, strict=False)), acked
    # The client sent again only what the registry never got.
    assert sum(s.received for s in mine) == 2 * size + (4 << 20)
    posts = [s for s in proxy.seen if s.method == "POST"]
    assert len(posts) == 3  # busybox's layer, the noise layer, the config: none started over

    # Pull it back through a download that breaks once, and run it.
    assert daemon.dockyard("rmi", remote, f"{name}:v1").returncode == 0
    proxy.drop_blob_get_after = 30 << 20
    proc = daemon.dockyard("pull", remote, timeout=300)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert proxy.drop_blob_get_after == 0  # the break happened
    digest = layers[-1]["digest"]
    gets = [s for s in proxy.seen if s.method == "GET" and s.path.endswith(digest)]
    assert len(gets) == 2 and not gets[0].range
    start = int(gets[1].range.removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= gets[0].sent  # what arrived before the break is not fetched again
    assert gets[1].status == 206 and gets[1].sent == size - start
    run = daemon.dockyard("run", "--rm", "--network", "none", remote, "sha256sum", "/noise")
    assert run.returncode == 0, run.stderr
    assert run.stdout.split()[0] == checksum
    daemon.dockyard("rmi", remote)


def test_a_push_starts_a_layer_over_where_the_registry_cannot_resume(
    daemon, proxied_registry, unique
):
    # docker/distribution keeps the bytes of a PATCH cut off midway, then refuses
    # the upload (its signed state says fewer): GET on it answers 404, and the
    # layer goes again from byte 0 in a new upload.
    server, proxy = proxied_registry
    remote = f"{proxy.host}/{unique('restart')}:v1"
    proxy.breaks = [Break(held=0, how="drop-forwarded", after=200_000)]
    assert daemon.dockyard("tag", "busybox", remote).returncode == 0
    proc = daemon.dockyard("push", remote, timeout=300)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert proxy.breaks[0].done and "Retrying in" in proc.stdout
    (cut,) = [s for s in proxy.seen if s.method == "PATCH" and s.status == 0]
    assert cut.forwarded and cut.received == 200_000
    (status,) = [s for s in proxy.seen if s.method == "GET" and s.path == cut.path]
    assert status.status == 404
    posts = [s for s in proxy.seen if s.method == "POST"]
    assert len(posts) == 3  # the layer twice, then the config
    layer = [s for s in proxy.seen if s.method == "PATCH" and s.path != cut.path]
    assert layer and layer[0].range.startswith("0-")
    assert daemon.dockyard("rmi", remote).returncode == 0
    proc = daemon.dockyard("pull", remote, timeout=300)
    assert proc.returncode == 0, proc.stderr
    run = daemon.dockyard("run", "--rm", "--network", "none", remote, "true")
    assert run.returncode == 0, run.stderr
    daemon.dockyard("rmi", remote)
