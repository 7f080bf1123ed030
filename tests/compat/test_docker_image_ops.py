"""export, history, image prune, system df and diff through the real docker CLI
and the Docker SDK for Python, against our daemon."""

from __future__ import annotations

import io
import re
import tarfile

import pytest

pytestmark = pytest.mark.docker_cli


def columns(header: str) -> list[str]:
    return re.split(r"\s{2,}", header.strip())


def test_docker_history_and_sdk_history(daemon):
    proc = daemon.docker("history", "busybox")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert columns(lines[0]) == ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
    image_id = daemon.docker("image", "inspect", "-f", "{{.Id}}", "busybox").stdout.strip()
    assert lines[1].split()[0] == image_id.removeprefix("sha256:")[:12]
    fmt = daemon.docker("history", "--format", "{{.ID}}|{{.Size}}", "--no-trunc", "busybox")
    assert fmt.stdout.splitlines()[0].split("|")[0] == image_id
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=daemon.host)
    try:
        hist = client.images.get("busybox").history()
        assert hist[0]["Id"] == image_id and "busybox:latest" in hist[0]["Tags"]
        assert hist[0]["Size"] > 1_000_000  # the busybox binary's layer
    finally:
        client.close()


def test_docker_export_and_diff(daemon, unique, tmp_path):
    name = unique("dexp")
    script = "echo hi > /hello; rm /bin/cat; rm -rf /var/www; mkdir /var/www"
    assert daemon.docker("run", "--name", name, "busybox", "sh", "-c", script).returncode == 0
    try:
        diff = daemon.docker("diff", name)
        assert diff.returncode == 0, diff.stderr
        lines = diff.stdout.splitlines()
        assert "A /hello" in lines and "D /bin/cat" in lines and "D /var/www" in lines
        # The parent of an addition or deletion just before it, as dockerd orders them.
        assert lines.index("C /bin") == lines.index("D /bin/cat") - 1
        proc = daemon.docker("export", "-o", str(tmp_path / "fs.tar"), name)
        assert proc.returncode == 0, proc.stderr
        with tarfile.open(tmp_path / "fs.tar") as tar:
            assert "hello" in tar.getnames()
        docker = pytest.importorskip("docker")
        client = docker.DockerClient(base_url=daemon.host)
        try:
            data = b"".join(client.containers.get(name).export())
        finally:
            client.close()
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            names = set(tar.getnames())
            assert "hello" in names and "bin/busybox" in names and "bin/cat" not in names
            assert tar.extractfile("hello").read() == b"hi\n"
    finally:
        daemon.docker("rm", name)


def test_docker_system_df_and_image_prune(daemon_factory):
    d = daemon_factory()
    d.import_busybox()
    proc = d.docker("system", "df")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert columns(lines[0]) == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert [columns(line)[0] for line in lines[1:]] == [
        "Images", "Containers", "Local Volumes", "Build Cache",
    ]  # fmt: skip
    assert columns(lines[1])[1:3] == ["1", "0"]
    verbose = d.docker("system", "df", "-v")
    assert verbose.returncode == 0, verbose.stderr
    assert "Images space usage:" in verbose.stdout and "busybox" in verbose.stdout
    # An untagged copy of busybox is dangling: prune removes it, not busybox.
    assert d.docker("tag", "busybox", "spare:1").returncode == 0
    assert d.docker("rmi", "busybox").returncode == 0
    proc = d.docker("image", "prune", "-f")
    assert proc.returncode == 0, proc.stderr
    assert "Total reclaimed space: 0B" in proc.stdout  # spare:1 is tagged
    proc = d.docker("image", "prune", "-a", "-f")
    assert proc.returncode == 0, proc.stderr
    assert "untagged: spare:1" in proc.stdout and "deleted: sha256:" in proc.stdout
    assert d.docker("images", "-q").stdout.strip() == ""
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=d.host)
    try:
        assert client.images.prune() == {"ImagesDeleted": None, "SpaceReclaimed": 0}
        df = client.df()
        assert df["Images"] == [] and df["LayersSize"] == 0
    finally:
        client.close()
