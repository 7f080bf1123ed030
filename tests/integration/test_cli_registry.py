"""pull / push / login / logout against a real registry (Debian's docker-registry) on 127.0.0.1."""

from __future__ import annotations

import base64
import gzip
import json
import re
import shutil
import subprocess
import tarfile
import urllib.request
from urllib.parse import unquote

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
from archives import two_layer_image as load_two_layer_image

from registry_server import RegistryServer

SKOPEO = shutil.which("skopeo")


@pytest.fixture(scope="module")
def registry():
    server = RegistryServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def auth_registry():
    server = RegistryServer(users={"alice": "s3cret"})
    yield server
    server.stop()


@pytest.fixture
def two_layer_image(daemon, unique, tmp_path):
    yield from load_two_layer_image(daemon, unique, tmp_path)


@pytest.fixture
def pushed(daemon, registry, two_layer_image, unique):
    """The two-layer image pushed as REGISTRY/<unique>:v1; (name, image id, digest)."""
    _, image_id = two_layer_image
    name = f"{registry.host}/{unique('app')}"
    assert daemon.dockyard("tag", image_id, f"{name}:v1").returncode == 0
    proc = daemon.dockyard("push", f"{name}:v1")
    assert proc.returncode == 0, proc.stderr
    digest = re.search(r"v1: digest: (sha256:[0-9a-f]{64}) size: \d+", proc.stdout)
    assert digest, proc.stdout
    yield name, image_id, digest.group(1), proc.stdout
    daemon.dockyard("rmi", "-f", f"{name}:v1")


def manifest_of(registry: RegistryServer, path: str, ref: str) -> tuple[dict, str, int]:
    req = urllib.request.Request(
        f"http://{registry.host}/v2/{path}/manifests/{ref}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = resp.read()
        return json.loads(body), resp.headers["Docker-Content-Digest"], len(body)


def put_manifest(registry: RegistryServer, path: str, ref: str, doc: dict, media_type: str) -> str:
    body = json.dumps(doc).encode()
    req = urllib.request.Request(
        f"http://{registry.host}/v2/{path}/manifests/{ref}",
        data=body,
        method="PUT",
        headers={"Content-Type": media_type},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.headers["Docker-Content-Digest"]


def test_push_then_pull_back_a_multi_layer_image(daemon, registry, pushed):
    name, image_id, digest, push_out = pushed
    path = name.split("/", 1)[1]
    lines = push_out.splitlines()
    assert lines[0] == f"The push refers to repository [{name}]"
    assert sum(1 for line in lines if line.endswith(": Pushed")) == 2
    # What the registry holds: an OCI manifest of gzip layers that are our layer tars.
    manifest, registry_digest, _ = manifest_of(registry, path, "v1")
    assert registry_digest == digest
    assert [layer["mediaType"] for layer in manifest["layers"]] == [
        "application/vnd.oci.image.layer.v1.tar+gzip"
    ] * 2
    blobs = [registry.blob_file(layer["digest"]).read_bytes() for layer in manifest["layers"]]
    assert [len(b) for b in blobs] == [layer["size"] for layer in manifest["layers"]]
    assert [gzip.decompress(b) for b in blobs] == [base_layer(), top_layer()]
    assert manifest["config"]["digest"] == image_id

    # Pushing again uploads nothing.
    again = daemon.dockyard("push", f"{name}:v1")
    assert again.stdout.count("Layer already exists") == 2, again.stdout

    assert daemon.dockyard("rmi", "-f", image_id).returncode == 0
    proc = daemon.dockyard("pull", f"{name}:v1")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0] == f"v1: Pulling from {path}"
    assert sum(1 for line in out if line.endswith(": Pull complete")) == 2
    assert f"Digest: {digest}" in out
    assert f"Status: Downloaded newer image for {name}:v1" in out
    assert out[-1] == f"{name}:v1"
    inspect = json.loads(daemon.dockyard("inspect", f"{name}:v1").stdout)[0]
    assert inspect["Id"] == image_id
    assert inspect["RepoDigests"] == [f"{name}@{digest}"]
    run = daemon.dockyard(
        "run", "--rm", f"{name}:v1", "sh", "-c", "busybox cat /etc/motd; ls /data; ls /bin/cat"
    )
    assert run.stdout.splitlines()[:2] == ["from layer two", "new"], run.stderr
    # A second pull has nothing to do.
    proc = daemon.dockyard("pull", f"{name}:v1")
    assert f"Status: Image is up to date for {name}:v1" in proc.stdout


def test_pull_by_digest_and_missing_tags(daemon, registry, pushed):
    name, image_id, digest, _ = pushed
    assert daemon.dockyard("rmi", "-f", image_id).returncode == 0
    proc = daemon.dockyard("pull", f"{name}@{digest}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == f"{name}@{digest}"
    assert daemon.dockyard("inspect", "-f", "{{.Id}}", f"{name}@{digest}").stdout.strip() == (
        image_id
    )
    assert daemon.dockyard("inspect", f"{name}:v1").returncode == 1  # no tag was pulled
    rmi = daemon.dockyard("rmi", f"{name}@{digest}")
    assert rmi.stdout.splitlines() == [f"Untagged: {name}@{digest}", f"Deleted: {image_id}"]
    proc = daemon.dockyard("pull", f"{name}:nope")
    assert proc.returncode == 1
    assert f"manifest for {name}:nope not found" in proc.stderr
    daemon.dockyard("rmi", "-f", image_id)


def test_run_pulls_a_missing_image(daemon, registry, pushed):
    name, image_id, _, _ = pushed
    assert daemon.dockyard("rmi", "-f", image_id).returncode == 0
    proc = daemon.dockyard("run", "--rm", f"{name}:v1", "busybox", "cat", "/etc/motd")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "from layer two\n"
    assert f"Unable to find image '{name}:v1' locally" in proc.stderr
    assert "Pull complete" in proc.stderr


def test_manifest_list_picks_the_platform(daemon, registry, pushed, unique, tmp_path):
    name, image_id, amd64_digest, _ = pushed
    path = name.split("/", 1)[1]
    # A second image, said to be for arm64, pushed under another tag.
    other = f"{name}:arm"
    arm_config = json.loads(image_config([sha(base_layer())], ["sh"]))
    arm_config["architecture"], arm_config["variant"] = "arm64", "v8"
    data, arm_id = archive_with_config(arm_config, other)
    (tmp_path / "arm.tar").write_bytes(data)
    assert daemon.dockyard("load", "-i", str(tmp_path / "arm.tar")).returncode == 0
    proc = daemon.dockyard("push", other)
    assert proc.returncode == 0, proc.stderr
    arm_digest = re.search(r"arm: digest: (sha256:[0-9a-f]{64})", proc.stdout).group(1)
    sizes = {d: manifest_of(registry, path, d)[2] for d in (amd64_digest, arm_digest)}
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": arm_digest,
                "size": sizes[arm_digest],
                "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
            },
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": amd64_digest,
                "size": sizes[amd64_digest],
                "platform": {"os": "linux", "architecture": "amd64"},
            },
        ],
    }
    put_manifest(registry, path, "multi", index, "application/vnd.oci.image.index.v1+json")
    daemon.dockyard("rmi", "-f", image_id, arm_id)
    proc = daemon.dockyard("pull", f"{name}:multi")
    assert proc.returncode == 0, proc.stderr
    assert daemon.dockyard("inspect", "-f", "{{.Id}}", f"{name}:multi").stdout.strip() == image_id
    proc = daemon.dockyard("pull", "--platform", "linux/arm64", f"{name}:multi")
    assert proc.returncode == 0, proc.stderr
    assert daemon.dockyard("inspect", "-f", "{{.Id}}", f"{name}:multi").stdout.strip() == arm_id
    proc = daemon.dockyard("pull", "--platform", "linux/s390x", f"{name}:multi")
    assert proc.returncode == 1
    assert "no matching manifest for linux/s390x in the manifest list entries" in proc.stderr
    daemon.dockyard("rmi", "-f", image_id, arm_id)


def archive_with_config(config: dict, tag: str) -> tuple[bytes, str]:
    layer = base_layer()
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    manifest = [{"Config": "c.json", "RepoTags": [tag], "Layers": ["l/layer.tar"]}]
    data = tar_bytes(
        [
            (entry("c.json"), config_bytes),
            entry("l/", tarfile.DIRTYPE, 0o755),
            (entry("l/layer.tar"), layer),
            (entry("manifest.json"), json.dumps(manifest).encode()),
        ]
    )
    return data, "sha256:" + sha(config_bytes)


def test_tampered_blob_fails_the_pull_and_leaves_nothing(daemon, registry, pushed):
    name, image_id, _, _ = pushed
    path = name.split("/", 1)[1]
    top = manifest_of(registry, path, "v1")[0]["layers"][1]["digest"]
    assert daemon.dockyard("rmi", "-f", image_id).returncode == 0
    before = store_state(daemon)
    blob = registry.blob_file(top)
    original = blob.read_bytes()
    middle = len(original) // 2
    blob.write_bytes(original[:middle] + bytes([original[middle] ^ 0xFF]) + original[middle + 1 :])
    try:
        proc = daemon.dockyard("pull", f"{name}:v1")
    finally:
        blob.write_bytes(original)
    assert proc.returncode == 1, proc.stdout
    # The layer was being unpacked as it arrived, and the flipped byte broke its
    # gzip stream first: still, the digest is what the user is told about.
    assert f"verification failed for digest {top}" in proc.stderr
    assert store_state(daemon) == before  # no image, no layer, no blob left behind
    assert not list((daemon.data_root / "tmp").glob("pull-*"))


def test_login_push_pull_logout_with_htpasswd(daemon, auth_registry, two_layer_image, tmp_path):
    _, image_id = two_layer_image
    config_dir = tmp_path / "client-config"
    env = {"DOCKER_CONFIG": str(config_dir)}
    name = f"{auth_registry.host}/private/app"
    assert daemon.dockyard("tag", image_id, f"{name}:v1").returncode == 0

    proc = daemon.dockyard("push", f"{name}:v1", env=env)
    assert proc.returncode == 1
    assert "no basic auth credentials" in proc.stderr

    proc = daemon.dockyard(
        "login", "-u", "alice", "--password-stdin", auth_registry.host, input="wrong\n", env=env
    )
    assert proc.returncode == 1
    assert (
        f"login attempt to http://{auth_registry.host}/v2/ failed with status: 401 Unauthorized"
        in proc.stderr
    )
    assert not (config_dir / "config.json").exists()

    proc = daemon.dockyard(
        "login", "-u", "alice", "--password-stdin", auth_registry.host, input="s3cret\n", env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Login Succeeded\n"
    stored = json.loads((config_dir / "config.json").read_text())
    assert stored["auths"][auth_registry.host] == {
        "auth": base64.b64encode(b"alice:s3cret").decode()
    }
    assert (config_dir / "config.json").stat().st_mode & 0o077 == 0

    proc = daemon.dockyard("push", f"{name}:v1", env=env)
    assert proc.returncode == 0, proc.stderr
    assert daemon.dockyard("rmi", f"{name}:v1").returncode == 0
    proc = daemon.dockyard("pull", f"{name}:v1", env=env)
    assert proc.returncode == 0, proc.stderr

    proc = daemon.dockyard("logout", auth_registry.host, env=env)
    assert proc.stdout == f"Removing login credentials for {auth_registry.host}\n"
    assert auth_registry.host not in json.loads((config_dir / "config.json").read_text())["auths"]
    proc = daemon.dockyard("pull", f"{name}:v1", env=env)
    assert proc.returncode == 1
    daemon.dockyard("rmi", "-f", f"{name}:v1")


@pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed")
def test_skopeo_reads_what_we_pushed_and_we_load_its_oci_archive(
    daemon, registry, pushed, tmp_path
):
    name, image_id, digest, _ = pushed
    proc = subprocess.run(
        [SKOPEO, "inspect", "--tls-verify=false", f"docker://{name}:v1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["Digest"] == digest
    manifest = manifest_of(registry, name.split("/", 1)[1], "v1")[0]
    assert info["Layers"] == [layer["digest"] for layer in manifest["layers"]]
    out = tmp_path / "oci.tar"
    proc = subprocess.run(
        [SKOPEO, "copy", "--src-tls-verify=false", f"docker://{name}:v1",
         f"oci-archive:{out}:{name}:copied"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert daemon.dockyard("rmi", "-f", image_id).returncode == 0
    proc = daemon.dockyard("load", "-i", str(out))
    assert proc.returncode == 0, proc.stderr
    assert daemon.dockyard("inspect", "-f", "{{.Id}}", image_id).stdout.strip() == image_id


def test_insecure_registries_from_flag_and_daemon_json(daemon_factory, tmp_path):
    d = daemon_factory(
        extra_args=["--insecure-registry", "10.9.0.0/16", "--insecure-registry", "myreg.lan:5000"]
    )
    config = d.request("GET", "/info").json()["RegistryConfig"]
    assert config["InsecureRegistryCIDRs"] == ["127.0.0.0/8", "10.9.0.0/16"]
    assert config["IndexConfigs"]["myreg.lan:5000"]["Secure"] is False
    assert config["IndexConfigs"]["docker.io"]["Official"] is True
    d.stop()

    daemon_json = tmp_path / "daemon.json"
    daemon_json.write_text(json.dumps({"insecure-registries": ["other.lan:5000"]}))
    d = daemon_factory(extra_args=["--config-file", str(daemon_json)])
    config = d.request("GET", "/info").json()["RegistryConfig"]
    assert config["IndexConfigs"]["other.lan:5000"]["Secure"] is False


def test_all_tags_push_and_pull(daemon, registry, two_layer_image, unique):
    _, image_id = two_layer_image
    name = f"{registry.host}/{unique('alltags')}"
    for tag in ("a", "b"):
        assert daemon.dockyard("tag", image_id, f"{name}:{tag}").returncode == 0
    proc = daemon.dockyard("push", "--all-tags", name)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^a: digest: sha256:", proc.stdout, re.M)
    assert re.search(r"^b: digest: sha256:", proc.stdout, re.M)
    proc = daemon.dockyard("push", name)  # no tag: docker's default, latest
    assert proc.returncode == 1
    assert "Using default tag: latest" in proc.stdout
    assert f"An image does not exist locally with the tag: {name}:latest" in proc.stderr
    assert daemon.dockyard("rmi", f"{name}:a", f"{name}:b").returncode == 0
    proc = daemon.dockyard("pull", "--all-tags", name)
    assert proc.returncode == 0, proc.stderr
    for tag in ("a", "b"):
        shown = daemon.dockyard("inspect", "-f", "{{.Id}}", f"{name}:{tag}").stdout.strip()
        assert shown == image_id
    proc = daemon.dockyard("pull", "-a", f"{name}:a")
    assert proc.returncode == 1 and "tag can't be used with --all-tags/-a" in proc.stderr
    daemon.dockyard("rmi", f"{name}:a", f"{name}:b")


def test_push_mounts_layers_from_another_repository_even_after_a_restart(
    daemon_factory, registry, unique
):
    d = daemon_factory()
    d.import_busybox()
    first, second = (f"{registry.host}/{unique(p)}" for p in ("src", "dst"))
    assert d.dockyard("tag", "busybox", f"{first}:v1").returncode == 0
    proc = d.dockyard("push", f"{first}:v1")
    assert proc.returncode == 0 and ": Pushed" in proc.stdout, proc.stderr + proc.stdout
    d.stop()
    d = daemon_factory(base=d.base, data_root=d.data_root)
    assert d.dockyard("tag", "busybox", f"{second}:v1").returncode == 0
    proc = d.dockyard("push", f"{second}:v1")
    assert proc.returncode == 0, proc.stderr
    # The gzip form of the layer is remembered: the registry links it, nothing
    # is compressed or uploaded.
    assert f": Mounted from {first.split('/', 1)[1]}" in proc.stdout, proc.stdout
    assert ": Pushed" not in proc.stdout


def test_a_push_to_a_second_registry_sends_the_same_digests_and_rmi_leaves_nothing(
    daemon, registry, unique, tmp_path
):
    second = RegistryServer()
    try:
        before = store_state(daemon)
        name = unique("twice")
        data, image_id = dockerd_2010_archive([base_layer(), top_layer()], [f"{name}:v1"], ["sh"])
        (tmp_path / "image.tar").write_bytes(data)
        assert daemon.dockyard("load", "-i", str(tmp_path / "image.tar")).returncode == 0
        pushed = []
        for server in (registry, second):
            remote = f"{server.host}/{name}:v1"
            assert daemon.dockyard("tag", image_id, remote).returncode == 0
            proc = daemon.dockyard("push", remote)
            assert proc.returncode == 0, proc.stderr
            # Nothing to find or mount on either: each compresses the layers itself.
            assert proc.stdout.count(": Pushed") == 2, proc.stdout
            digest = re.search(r"v1: digest: (sha256:[0-9a-f]{64})", proc.stdout)
            assert digest, proc.stdout
            manifest, registry_digest, _ = manifest_of(server, name, "v1")
            assert registry_digest == digest.group(1)
            blobs = [server.blob_file(d["digest"]).read_bytes() for d in manifest["layers"]]
            pushed.append((registry_digest, manifest, blobs))
        # The same gzip bytes, so the same manifest, as docker gives on both registries.
        assert pushed[0] == pushed[1]
        assert [sha(b) for b in pushed[0][2]] == [
            d["digest"].removeprefix("sha256:") for d in pushed[0][1]["layers"]
        ]
        proc = daemon.dockyard("rmi", "-f", image_id)
        assert proc.returncode == 0, proc.stderr
        assert store_state(daemon) == before
        # What the daemon remembered of those layers went with them.
        forms = json.loads((daemon.data_root / "compressed-layers.json").read_text())
        sources = json.loads((daemon.data_root / "blob-sources.json").read_text())
        diff_ids = {"sha256:" + sha(layer) for layer in (base_layer(), top_layer())}
        assert not diff_ids & set(forms)
        layer_digests = {d["digest"] for d in pushed[0][1]["layers"]}
        assert not layer_digests & {digest for _, digest, _ in sources}
    finally:
        second.stop()


@pytest.fixture(scope="module")
def token_registry():
    server = RegistryServer(token_users={"carol": "t0ken"})
    yield server
    server.stop()


def test_bearer_token_auth_with_a_real_registry(daemon, token_registry, unique, tmp_path):
    env = {"DOCKER_CONFIG": str(tmp_path / "client-config")}
    name = f"{token_registry.host}/{unique('tok')}"
    assert daemon.dockyard("tag", "busybox", f"{name}:v1").returncode == 0

    proc = daemon.dockyard("push", f"{name}:v1", env=env)
    assert proc.returncode == 1  # anonymous tokens grant nothing here
    proc = daemon.dockyard(
        "login", "-u", "carol", "--password-stdin", token_registry.host, input="bad\n", env=env
    )
    assert proc.returncode == 1 and "unauthorized" in proc.stderr
    proc = daemon.dockyard(
        "login", "-u", "carol", "--password-stdin", token_registry.host, input="t0ken\n", env=env
    )
    assert proc.returncode == 0, proc.stderr

    proc = daemon.dockyard("push", f"{name}:v1", env=env)
    assert proc.returncode == 0, proc.stderr
    path = name.split("/", 1)[1]
    scopes = [unquote(r) for r in token_registry.tokens.requests]
    assert any(f"scope=repository:{path}:pull,push" in s for s in scopes), scopes
    assert daemon.dockyard("rmi", f"{name}:v1").returncode == 0
    proc = daemon.dockyard("pull", f"{name}:v1", env=env)
    assert proc.returncode == 0, proc.stderr
    assert daemon.dockyard("rmi", f"{name}:v1").returncode == 0
    proc = daemon.dockyard("pull", f"{name}:v1")  # no credentials: no access
    assert proc.returncode == 1
    assert f"pull access denied for {name}" in proc.stderr
