"""save / load through the CLIs: Docker's archive formats both ways, hostile archives refused.

`dockerd_2010_archive` builds, byte for byte in layout, what `docker save`
of dockerd 20.10 writes (dockerd itself is not available here): one
directory per layer holding VERSION, json and layer.tar, the image config
as <id>.json, manifest.json and repositories.
"""

from __future__ import annotations

import gzip
import json
import tarfile
from pathlib import Path

import pytest
from archives import (
    base_layer,
    dockerd_2010_archive,
    entry,
    image_config,
    sha,
    store_state,
    tar_bytes,
    top_layer,
)
from archives import (
    two_layer_image as load_two_layer_image,
)


@pytest.fixture
def two_layer_image(daemon, unique, tmp_path):
    yield from load_two_layer_image(daemon, unique, tmp_path)


def test_dockerd_2010_archive_loads_as_layers_and_runs(daemon, two_layer_image, inspect):
    name, image_id = two_layer_image
    info = inspect(f"{name}:v1")
    assert info["Id"] == image_id
    assert info["RootFS"]["Layers"] == [
        "sha256:" + sha(base_layer()),
        "sha256:" + sha(top_layer()),
    ]
    proc = daemon.dockyard(
        "run", "--rm", f"{name}:v1", "sh", "-c",
        "cat /etc/motd; ls /data; test -e /bin/cat || echo no-cat; ls -n /etc/motd",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    # Layer two's file, its opaque /data (old is gone), its whiteout of cat,
    # and the owner and mode the tar gave.
    assert lines[:3] == ["from layer two", "new", "no-cat"]
    assert lines[3].split()[0:4] == ["-rw-------", "1", "1000", "1000"]


def test_layers_are_shared_and_unpacked_once(daemon, two_layer_image, unique, tmp_path):
    name, image_id = two_layer_image
    before = store_state(daemon)[1]
    other = unique("onelayer")
    data, one_id = dockerd_2010_archive([base_layer()], [f"{other}:v1"], ["sh"])
    (tmp_path / "one.tar").write_bytes(data)
    assert daemon.dockyard("load", "-i", str(tmp_path / "one.tar")).returncode == 0
    # The base layer is the two-layer image's bottom layer: nothing new unpacked.
    assert store_state(daemon)[1] == before
    # Removing the one-layer image keeps the layer its sibling still uses.
    assert daemon.dockyard("rmi", f"{other}:v1").returncode == 0
    proc = daemon.dockyard("run", "--rm", f"{name}:v1", "busybox", "cat", "/etc/motd")
    assert proc.stdout == "from layer two\n", proc.stderr


def test_save_load_round_trip(daemon, two_layer_image, tmp_path):
    name, image_id = two_layer_image
    assert daemon.dockyard("tag", f"{name}:v1", f"{name}:v2").returncode == 0
    out = tmp_path / "saved.tar"
    # A bare repository name saves every tag of it, as docker does.
    proc = daemon.dockyard("save", "-o", str(out), name)
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("manifest.json"))
        index = json.load(tar.extractfile("index.json"))
        repositories = json.load(tar.extractfile("repositories"))
    assert {"manifest.json", "index.json", "oci-layout", "repositories"} <= names
    assert sorted(manifest[0]["RepoTags"]) == [f"{name}:v1", f"{name}:v2"]
    assert manifest[0]["Config"] == "blobs/sha256/" + image_id[7:]
    assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]] == [
        "v1",
        "v2",
    ]
    assert set(repositories[name]) == {"v1", "v2"}

    assert daemon.dockyard("rmi", f"{name}:v1", f"{name}:v2").returncode == 0
    assert daemon.dockyard("inspect", image_id).returncode == 1
    proc = daemon.dockyard("load", "-i", str(out))
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.splitlines()) == [
        f"Loaded image: {name}:v1",
        f"Loaded image: {name}:v2",
    ]
    assert daemon.dockyard("run", "--rm", f"{name}:v2", "busybox", "cat", "/etc/motd").stdout == (
        "from layer two\n"
    )


def test_save_to_stdout_and_load_from_stdin_compressed(daemon, two_layer_image, tmp_path):
    import subprocess
    import sys

    import zstandard

    name, image_id = two_layer_image
    saved = subprocess.run(
        [sys.executable, "-m", "dockyard", "save", image_id],
        capture_output=True, env=daemon.env, timeout=60,
    )  # fmt: skip
    assert saved.returncode == 0, saved.stderr
    for packed in (gzip.compress(saved.stdout), zstandard.ZstdCompressor().compress(saved.stdout)):
        loaded = subprocess.run(
            [sys.executable, "-m", "dockyard", "load"],
            input=packed, capture_output=True, env=daemon.env, timeout=60,
        )  # fmt: skip
        assert loaded.returncode == 0, loaded.stderr
        # Saved by id: no tags, so docker's "Loaded image ID" line.
        assert loaded.stdout.decode() == f"Loaded image ID: {image_id}\n"


def test_save_refuses_a_terminal_and_unknown_images(daemon, tmp_path):
    proc = daemon.dockyard("save", "-o", str(tmp_path / "x.tar"), "no-such-image:v9")
    assert proc.returncode == 1
    assert "No such image: no-such-image:v9" in proc.stderr
    assert not (tmp_path / "x.tar").exists()
    proc = daemon.dockyard("save", "-o", str(tmp_path / "nodir" / "x.tar"), "busybox")
    assert proc.returncode == 1 and "does not exist" in proc.stderr


def test_load_replacing_a_tag_says_so(daemon, two_layer_image, unique, tmp_path):
    name, image_id = two_layer_image
    data, other_id = dockerd_2010_archive([base_layer()], [f"{name}:v1"], ["true"])
    (tmp_path / "a.tar").write_bytes(data)
    proc = daemon.dockyard("load", "-i", str(tmp_path / "a.tar"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"The image {name}:v1 already exists, renaming the old one with ID {image_id} "
        "to empty string",
        f"Loaded image: {name}:v1",
    ]
    daemon.dockyard("rmi", other_id)


def hostile_archives() -> dict[str, tuple[bytes, str]]:
    good_layer = base_layer()
    good, _ = dockerd_2010_archive([good_layer], ["hostile:v1"], ["sh"])
    config = image_config([sha(good_layer)], ["sh"])

    def with_manifest(layer_path: str, extra: list) -> bytes:
        manifest = [{"Config": "c.json", "RepoTags": ["hostile:v1"], "Layers": [layer_path]}]
        return tar_bytes(
            [
                (entry("c.json"), config),
                (entry("manifest.json"), json.dumps(manifest).encode()),
                *extra,
            ]
        )

    wrong_config = image_config(["0" * 64], ["sh"])
    return {
        "dotdot": (with_manifest("../../../../etc/passwd", []), "not found in the archive"),
        "symlink-out": (
            with_manifest(
                "l/layer.tar",
                [entry("l", tarfile.SYMTYPE, 0o777, linkname="/var/lib")],
            ),
            "not found in the archive",
        ),
        "device": (
            with_manifest(
                "l.tar",
                [(entry("l.tar"), good_layer), entry("dev-sda", tarfile.BLKTYPE, devmajor=8)],
            ),
            "refusing device node",
        ),
        "device-in-layer": (
            with_manifest(
                "l.tar",
                [(entry("l.tar"), tar_bytes([entry("sda", tarfile.BLKTYPE, devmajor=8)]))],
            ),
            "refusing device node",
        ),
        "corrupt-gzip": (gzip.compress(good)[:-4000] + b"\0" * 100, "invalid layer archive"),
        "layer-not-its-diff-id": (
            tar_bytes(
                [
                    (entry("c.json"), wrong_config),
                    (entry("l.tar"), good_layer),
                    (
                        entry("manifest.json"),
                        b'[{"Config":"c.json","RepoTags":["hostile:v1"],"Layers":["l.tar"]}]',
                    ),
                ]
            ),
            "has diff_id",
        ),
        "config-not-its-name": (
            tar_bytes(
                [
                    (entry(f"{'a' * 64}.json"), config),
                    (entry("l.tar"), good_layer),
                    (
                        entry("manifest.json"),
                        json.dumps(
                            [{"Config": f"{'a' * 64}.json", "RepoTags": [], "Layers": ["l.tar"]}]
                        ).encode(),
                    ),
                ]
            ),
            "does not match its digest",
        ),
    }


@pytest.mark.parametrize("kind", sorted(hostile_archives()))
def test_hostile_archive_refused_and_store_unchanged(daemon, kind, tmp_path):
    data, message = hostile_archives()[kind]
    before = store_state(daemon)
    path = tmp_path / "hostile.tar"
    path.write_bytes(data)
    proc = daemon.dockyard("load", "-i", str(path))
    assert proc.returncode == 1
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert daemon.dockyard("inspect", "hostile:v1").returncode == 1
    assert store_state(daemon) == before
    assert not Path("/etc/passwd-dky").exists()


@pytest.mark.docker_cli
def test_docker_cli_save_and_load(daemon, two_layer_image, tmp_path):
    name, image_id = two_layer_image
    out = tmp_path / "docker-saved.tar"
    proc = daemon.docker("save", "-o", str(out), f"{name}:v1")
    assert proc.returncode == 0, proc.stderr
    assert daemon.dockyard("rmi", f"{name}:v1").returncode == 0
    proc = daemon.docker("load", "-i", str(out))
    assert proc.returncode == 0, proc.stderr
    assert f"Loaded image: {name}:v1" in proc.stdout
    proc = daemon.docker("image", "inspect", "-f", "{{.Id}}", f"{name}:v1")
    assert proc.stdout.strip() == image_id
    proc = daemon.docker("run", "--rm", f"{name}:v1", "busybox", "cat", "/etc/motd")
    assert proc.stdout == "from layer two\n", proc.stderr


def test_load_api_reports_layers_unless_quiet(daemon, unique):
    name = unique("progress")
    # Layers no other test has: only layers not yet in the store are reported.
    layers = [tar_bytes([(entry(f"{name}-{i}"), name.encode() * (i + 1))]) for i in range(2)]
    data, image_id = dockerd_2010_archive(layers, [f"{name}:v1"], ["sh"])
    headers = {"Content-Type": "application/x-tar"}
    resp = daemon.request("POST", "/images/load?quiet=0", data, headers)
    assert resp.status == 200
    messages = [json.loads(line) for line in resp.body.splitlines() if line.strip()]
    loading = [m for m in messages if m.get("status") == "Loading layer"]
    # Named by diff_id, as dockerd 20.10 names them (not by chain id).
    diff_ids = [sha(layer) for layer in layers]
    assert {m["id"] for m in loading} == {d[:12] for d in diff_ids}
    # Layers are unpacked side by side: each one's last report is its completion.
    for diff_id, layer in zip(diff_ids, layers, strict=True):
        last = [m for m in loading if m["id"] == diff_id[:12]][-1]["progressDetail"]
        assert last["current"] == last["total"] == len(layer)
    assert messages[-1] == {"stream": f"Loaded image: {name}:v1\n"}
    # Quiet unless asked, as dockerd (docker-py sends no "quiet").
    for query in ("?quiet=1", ""):
        resp = daemon.request("POST", "/images/load" + query, data, headers)
        messages = [json.loads(line) for line in resp.body.splitlines() if line.strip()]
        assert messages == [{"stream": f"Loaded image: {name}:v1\n"}]
    daemon.dockyard("rmi", image_id)


def test_save_platform_is_checked_not_ignored(daemon):
    arch = daemon.request("GET", "/version").json()["Arch"]
    other = "s390x" if arch != "s390x" else "amd64"
    query = '/images/get?names=busybox&platform={"os":"linux","architecture":"%s"}'
    ok = daemon.request("GET", query % arch)
    assert ok.status == 200 and ok.body[:512].strip(b"\0")
    refused = daemon.request("GET", query % other)
    assert refused.status == 404
    assert f"not for the requested platform linux/{other}" in refused.json()["message"]


def _raw_load(daemon, head_length: int, body: bytes, *, close_early: bool) -> tuple[bytes, bool]:
    """POST /images/load by hand: a Content-Length of `head_length`, `body` sent, then
    the write side shut if `close_early`. (The answer, whether the daemon closed the
    connection right after it: well before its 30 s keep-alive would.)"""
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(60)
    sock.connect(daemon.socket)
    head = (
        "POST /images/load?quiet=1 HTTP/1.1\r\nHost: d\r\nContent-Type: application/x-tar\r\n"
        f"Content-Length: {head_length}\r\nConnection: keep-alive\r\n\r\n"
    ).encode()
    sock.sendall(head + body)
    if close_early:
        sock.shutdown(socket.SHUT_WR)
    answer = b""
    while not answer.endswith(b"\r\n0\r\n\r\n"):  # the end of a chunked answer
        chunk = sock.recv(65536)
        if not chunk:
            sock.close()
            return answer, True
        answer += chunk
    sock.settimeout(10)
    try:
        closed = sock.recv(1) == b""
    except TimeoutError:
        closed = False
    sock.close()
    return answer, closed


def test_a_load_whose_client_stops_mid_body_leaves_nothing(daemon, unique):
    """The body is read straight from the socket (api/socket_body): a client that
    goes away halfway gets a clear error, the store stays as it was, and the
    daemon serves the next request."""
    name = unique("cut")
    # Larger than what aiohttp buffers before the handler runs: read from the socket.
    layer = tar_bytes([(entry(f"{name}-big"), b"x" * 6_000_000)])
    data, _ = dockerd_2010_archive([layer], [f"{name}:v1"], ["sh"])
    before = store_state(daemon)
    answer, _ = _raw_load(daemon, len(data), data[: len(data) // 2], close_early=True)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
    assert b"unexpected end of archive" in answer
    assert store_state(daemon) == before
    assert daemon.dockyard("inspect", f"{name}:v1").returncode == 1
    assert daemon.request("GET", "/_ping").status == 200


def test_a_load_read_from_the_socket_answers_then_closes(daemon, unique):
    """The whole body by hand: loaded, the answer complete, then the connection
    closed (its HTTP parser never saw the body, so it cannot serve another)."""
    name = unique("direct")
    layer = tar_bytes([(entry(f"{name}-f"), b"y" * 6_000_000)])
    data, image_id = dockerd_2010_archive([layer], [f"{name}:v1"], ["sh"])
    answer, closed = _raw_load(daemon, len(data), data, close_early=False)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert f"Loaded image: {name}:v1".encode() in answer
    assert closed
    proc = daemon.dockyard("inspect", "-f", "{{.Id}}", f"{name}:v1")
    assert proc.stdout.strip() == image_id
    daemon.dockyard("rmi", image_id)
