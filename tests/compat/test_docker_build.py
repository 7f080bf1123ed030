"""Builds and commits by the real clients: the docker CLI's classic builder (plain
`docker build` falls back to it without buildx, and DOCKER_BUILDKIT=0) and the
Docker SDK's images.build / container.commit. The built images run."""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

import docker
import docker.errors
import pytest

DOCKERFILE = """\
FROM busybox
ARG WHO=world
ENV GREETING=hello
RUN echo "$GREETING $WHO" > /greeting
COPY app.txt /app/
CMD ["sh", "-c", "cat /greeting /app/app.txt"]
"""


@pytest.fixture
def context(tmp_path: Path) -> Path:
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    (tmp_path / "app.txt").write_text("app\n")
    return tmp_path


@pytest.mark.docker_cli
@pytest.mark.parametrize("buildkit_env", [{"DOCKER_BUILDKIT": "0"}, {}])
def test_docker_build_and_run(daemon, context, unique, buildkit_env):
    tag = unique("dbuild")
    proc = daemon.docker(
        "build", "-t", tag, "--build-arg", "WHO=docker", str(context), env=buildkit_env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "Step 1/6 : FROM busybox" in proc.stdout
    assert f"Successfully tagged {tag}:latest" in proc.stdout
    run = daemon.docker("run", "--rm", tag)
    assert run.stdout == "hello docker\napp\n", run.stderr
    again = daemon.docker(
        "build", "-t", tag, "--build-arg", "WHO=docker", str(context), env=buildkit_env
    )
    assert again.stdout.count("Using cache") == 5, again.stdout
    assert daemon.docker("rmi", tag).returncode == 0


@pytest.mark.docker_cli
def test_docker_build_quiet_failure_and_stdin(daemon, tmp_path):
    quiet = daemon.docker(
        "build", "-q", "-", input="FROM busybox\nLABEL x=y\n", env={"DOCKER_BUILDKIT": "0"}
    )
    assert quiet.returncode == 0, quiet.stderr
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", quiet.stdout)
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN echo failing-step; exit 4\n")
    failed = daemon.docker("build", "--force-rm", str(tmp_path), env={"DOCKER_BUILDKIT": "0"})
    assert failed.returncode == 4  # the step's exit code, from errorDetail.code
    assert "failing-step" in failed.stdout
    assert "returned a non-zero code: 4" in failed.stderr
    (tmp_path / "Dockerfile").write_text("FROM busybox\nBOGUS x\n")
    bogus = daemon.docker("build", str(tmp_path), env={"DOCKER_BUILDKIT": "0"})
    assert bogus.returncode == 1
    assert "dockerfile parse error line 2: unknown instruction: BOGUS" in bogus.stderr


@pytest.mark.docker_cli
def test_docker_commit(daemon, unique):
    name = unique("dcommit")
    assert (
        daemon.docker(
            "run", "--name", name, "busybox", "sh", "-c", "echo saved > /saved"
        ).returncode
        == 0
    )
    tag = unique("committed")
    proc = daemon.docker("commit", "-c", 'CMD ["cat", "/saved"]', "-m", "by docker", name, tag)
    assert proc.returncode == 0, proc.stderr
    assert daemon.docker("run", "--rm", tag).stdout == "saved\n"
    daemon.docker("rm", name)
    daemon.docker("rmi", tag)


@pytest.fixture(scope="module")
def client(daemon):
    c = docker.from_env(environment=daemon.env, timeout=120)
    yield c
    c.close()


def test_sdk_images_build_from_path_and_run(client, context, unique):
    tag = unique("sdk")
    image, logs = client.images.build(
        path=str(context), tag=tag, buildargs={"WHO": "sdk"}, rm=True, labels={"via": "sdk"}
    )
    assert f"{tag}:latest" in image.tags
    assert image.labels == {"via": "sdk"}
    assert any("Successfully built" in entry.get("stream", "") for entry in logs)
    assert client.containers.run(tag, remove=True) == b"hello sdk\napp\n"
    client.images.remove(tag)


def test_sdk_low_level_build_yields_one_json_message_per_item(client, context, unique):
    # docker-py's APIClient.build(decode=False) yields one HTTP chunk per item, and
    # its callers json.loads each one: dockerd sends one message per chunk. A fully
    # cached rebuild, whose lines are all ready at once, is where they could merge.
    tag = unique("lowlevel")
    for _ in range(2):
        items = list(client.api.build(path=str(context), tag=tag, rm=True))
        messages = [json.loads(item) for item in items]
        assert len(messages) == len(items) > 5
        assert any("Successfully tagged" in m.get("stream", "") for m in messages)
    assert sum("Using cache" in m.get("stream", "") for m in messages) == 5  # ARG to CMD
    client.images.remove(tag)


def test_sdk_images_build_from_fileobj_and_errors(client, unique):
    image, _ = client.images.build(fileobj=io.BytesIO(b'FROM busybox\nCMD ["echo", "fileobj"]\n'))
    assert client.containers.run(image.id, remove=True) == b"fileobj\n"
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        data = b"FROM busybox\nRUN exit 9\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    archive.seek(0)
    with pytest.raises(docker.errors.BuildError) as err:
        client.images.build(fileobj=archive, custom_context=True, encoding="gzip", forcerm=True)
    assert "returned a non-zero code: 9" in str(err.value)


def test_sdk_commit(client, unique):
    c = client.containers.run("busybox", ["sh", "-c", "echo sdk > /f"], detach=True)
    c.wait(timeout=30)
    image = c.commit(repository=unique("sdkcommit"), tag="v1", message="m", author="a")
    assert client.containers.run(image.id, ["cat", "/f"], remove=True) == b"sdk\n"
    c.remove()
    client.images.remove(image.id)


def test_docker_compose_v1_build(daemon, tmp_path, unique):
    import shutil
    import subprocess

    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose (v1) is not installed")
    app = tmp_path / "app"
    app.mkdir()
    (app / "Dockerfile").write_text(
        'FROM busybox\nARG WHO\nRUN echo "compose $WHO" > /msg\nCMD ["cat", "/msg"]\n'
    )
    tag = unique("compose") + ":1"
    (tmp_path / "docker-compose.yml").write_text(
        f'version: "3"\nservices:\n  app:\n    build:\n      context: ./app\n'
        f"      args:\n        WHO: built\n    image: {tag}\n"
    )
    proc = subprocess.run(
        [compose, "build"],
        cwd=tmp_path,
        env=daemon.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert daemon.dockyard("run", "--rm", tag).stdout == "compose built\n"
    daemon.dockyard("rmi", tag)
