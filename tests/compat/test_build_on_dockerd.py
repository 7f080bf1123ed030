"""Built here, checked against a real dockerd: an image built by Dockyard is
`dockyard save`d and `docker load`ed there and runs the same; the same
Dockerfile gives the same file tree under dockerd's classic builder and ours;
the same raw context tar gives the same copied files.

The dockerd is one that already runs (never started here): its socket comes from
$DOCKYARD_TEST_DOCKERD_HOST (default unix:///var/run/docker.sock). Without one
answering as Docker there, these tests skip, saying so. What they create there
is named `dockyard-test-*` and removed after.
"""

from __future__ import annotations

import gzip
import http.client
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import UnixHTTPConnection
from tests.integration.test_build_heredocs_and_context import IGNORED_CONTEXT, context_tar

DOCKERD_HOST = os.environ.get("DOCKYARD_TEST_DOCKERD_HOST", "unix:///var/run/docker.sock")
DOCKER = shutil.which("docker") or "/usr/local/bin/docker"


class Dockerd:
    def __init__(self, host: str) -> None:
        self.host = host
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "DOCKYARD_"))
        }
        self.env.update(DOCKER_HOST=host, DOCKER_BUILDKIT="0")

    def _conn(self, timeout: float) -> http.client.HTTPConnection:
        if self.host.startswith("unix://"):
            return UnixHTTPConnection(self.host.removeprefix("unix://"), timeout=timeout)
        hostport = self.host.removeprefix("tcp://")
        return http.client.HTTPConnection(hostport, timeout=timeout)

    def request(
        self, method: str, path: str, body: bytes | None = None, timeout: float = 120
    ) -> tuple[int, str, bytes]:
        conn = self._conn(timeout)
        try:
            conn.request(method, path, body=body, headers={"Content-Type": "application/x-tar"})
            resp = conn.getresponse()
            return resp.status, resp.getheader("Server") or "", resp.read()
        finally:
            conn.close()

    def docker(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [DOCKER, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def ok(self, *args: str, timeout: float = 180) -> str:
        proc = self.docker(*args, timeout=timeout)
        assert proc.returncode == 0, f"docker {' '.join(args)}: {proc.stderr}{proc.stdout}"
        return proc.stdout


@pytest.fixture(scope="module")
def dockerd() -> Dockerd:
    d = Dockerd(DOCKERD_HOST)
    try:
        status, server, _ = d.request("GET", "/_ping", timeout=5)
    except OSError as e:
        pytest.skip(f"no dockerd answers at {DOCKERD_HOST} ({e}); set DOCKYARD_TEST_DOCKERD_HOST")
    if status != 200 or "Docker" not in server:
        pytest.skip(f"what answers at {DOCKERD_HOST} is not dockerd (Server: {server!r})")
    if not os.path.exists(DOCKER):
        pytest.skip("the docker CLI is not installed")
    if d.docker("image", "inspect", "busybox:latest").returncode != 0:
        pytest.skip(f"the dockerd at {DOCKERD_HOST} has no busybox:latest image")
    return d


@pytest.fixture
def dockyard(daemon):
    return daemon.dockyard


@pytest.fixture
def their_names(dockerd: Dockerd) -> Iterator[list[str]]:
    """Images made in dockerd by a test, removed after it."""
    names: list[str] = []
    yield names
    for name in names:
        dockerd.docker("rmi", "-f", name)


def _name() -> str:
    return f"dockyard-test-{uuid.uuid4().hex[:10]}"


APP_DOCKERFILE = """\
FROM busybox
ENV APP=/srv/app GREETING=hello
WORKDIR /srv/app
COPY app/ ./
RUN ln -s /srv/app/bin/run /usr/bin/app-run && echo "built" > /srv/app/built.txt
USER 1000:1000
ENTRYPOINT ["app-run"]
CMD ["world"]
"""
RUN_SCRIPT = """\
#!/bin/sh
echo "$GREETING $1 as $(id -u):$(id -g) in $(pwd) ($APP)"
cat data.txt built.txt
ls -ln /srv/app | awk 'NR > 1 { print $1, $3, $4, $5, $9, $10, $11 }'
"""


def test_image_built_here_loads_and_runs_the_same_on_dockerd(
    dockerd, dockyard, daemon, tmp_path, unique, their_names
):
    ctx = tmp_path / "ctx"
    (ctx / "app" / "bin").mkdir(parents=True)
    (ctx / "Dockerfile").write_text(APP_DOCKERFILE)
    (ctx / "app" / "bin" / "run").write_text(RUN_SCRIPT)
    (ctx / "app" / "bin" / "run").chmod(0o755)
    (ctx / "app" / "data.txt").write_text("data\n")
    os.symlink("data.txt", ctx / "app" / "data-link")
    tag = _name() + ":built-here"
    their_names.append(tag)
    proc = dockyard("build", "-t", tag, str(ctx), timeout=180)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    archive = tmp_path / "image.tar"
    assert dockyard("save", "-o", str(archive), tag).returncode == 0
    loaded = dockerd.ok("load", "-i", str(archive))
    assert f"Loaded image: {tag}" in loaded, loaded
    ours = json.loads(dockyard("image", "inspect", tag).stdout)[0]
    theirs = json.loads(dockerd.ok("image", "inspect", tag))[0]
    assert ours["Id"] == theirs["Id"]  # the same config, byte for byte
    assert ours["RootFS"]["Layers"] == theirs["RootFS"]["Layers"]
    for key in ("Entrypoint", "Cmd", "Env", "WorkingDir", "User"):
        assert ours["Config"][key] == theirs["Config"][key], key
    for args in ([], ["there"]):
        here = dockyard("run", "--rm", "--network", "none", tag, *args)
        there = dockerd.docker("run", "--rm", "--network", "none", tag, *args)
        assert here.returncode == there.returncode == 0, here.stderr + there.stderr
        assert here.stdout == there.stdout
        assert f"hello {(args or ['world'])[0]} as 1000:1000 in /srv/app" in here.stdout
        assert "lrwxrwxrwx 0 0 8 data-link -> data.txt" in here.stdout, here.stdout


def _archive(ctx: Path) -> None:
    """A tar.gz for ADD: owners and modes of its own that ADD keeps."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, mode, uid, data in (
            ("pkg", 0o750, 1234, None),
            ("pkg/tool", 0o755, 1234, b"#!/bin/sh\necho tool\n"),
            ("pkg/secret", 0o600, 0, b"s3cret\n"),
        ):
            info = tarfile.TarInfo(name)
            info.mode, info.uid, info.gid, info.mtime = mode, uid, 5678, 1_600_000_000
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    (ctx / "archive.tar.gz").write_bytes(gzip.compress(buf.getvalue()))


TREE_DOCKERFILE = """\
FROM busybox
COPY app/ /srv/app/
COPY --chown=1000:1000 app/conf /srv/owned/
ADD archive.tar.gz /srv/extracted/
WORKDIR /srv/work
RUN mkdir -p /srv/made/sub && echo made > /srv/made/sub/f && chmod 0700 /srv/made/sub \\
 && ln -s ../made /srv/made-link && ln /srv/made/sub/f /srv/made/hard \\
 && mkfifo /srv/made/fifo && chown -R 100:101 /srv/made && touch /etc/build-touched
RUN rm /srv/app/data/blob && echo changed > /srv/app/conf/app.conf && rm /srv/extracted/pkg/secret
"""


def _tree_context(ctx: Path) -> None:
    files = {
        "app/bin/run": (b"#!/bin/sh\necho run\n", 0o755),
        "app/conf/app.conf": (b"key=value\n", 0o640),
        "app/data/blob": (bytes(range(256)) * 40, 0o644),
        "app/data/keep": (b"keep\n", 0o444),
        "app/hard1": (b"linked\n", 0o644),
    }
    for name, (data, mode) in files.items():
        path = ctx / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)
    os.link(ctx / "app/hard1", ctx / "app/hard2")
    os.symlink("conf/app.conf", ctx / "app/link")
    (ctx / "app/empty").mkdir()
    (ctx / "app/empty").chmod(0o711)
    _archive(ctx)
    (ctx / "Dockerfile").write_text(TREE_DOCKERFILE)


def _built_tree(archive: Path, skip_layers: int) -> tuple[dict[str, tuple], set[frozenset[str]]]:
    """The files the build's layers (those after the base's) leave, merged in order:
    path -> (type, mode, uid, gid, size, link target); hard-link groups apart."""
    tree: dict[str, tuple] = {}
    links: dict[str, str] = {}  # path -> the first name of its inode
    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        for layer in manifest[0]["Layers"][skip_layers:]:
            with tarfile.open(fileobj=outer.extractfile(layer)) as tar:  # type: ignore[arg-type]
                for m in tar:
                    name = m.name.removeprefix("./").rstrip("/")
                    base = name.rsplit("/", 1)[-1]
                    parent = name.rsplit("/", 1)[0] if "/" in name else ""
                    if base == ".wh..wh..opq":
                        for p in [p for p in tree if p.startswith(parent + "/")]:
                            del tree[p]
                        continue
                    if base.startswith(".wh."):
                        gone = (parent + "/" if parent else "") + base.removeprefix(".wh.")
                        for p in [p for p in tree if p == gone or p.startswith(gone + "/")]:
                            del tree[p]
                        tree[gone] = ("deleted",)
                        continue
                    if m.islnk():
                        target = m.linkname.removeprefix("./")
                        links[name] = links.get(target, target)
                        t = tree[target]
                        tree[name] = t
                        continue
                    kind = {
                        tarfile.DIRTYPE: "dir",
                        tarfile.SYMTYPE: "symlink",
                        tarfile.FIFOTYPE: "fifo",
                    }.get(m.type, "file")
                    size = m.size if kind == "file" else 0
                    link = m.linkname if kind == "symlink" else ""
                    tree[name] = (kind, stat.S_IMODE(m.mode), m.uid, m.gid, size, link)
    groups: dict[str, set[str]] = {}
    for name, first in links.items():
        if name in tree and first in tree:
            groups.setdefault(first, {first}).add(name)
    return tree, {frozenset(g) for g in groups.values()}


def _base_layers(inspect_json: str) -> int:
    return len(json.loads(inspect_json)[0]["RootFS"]["Layers"])


def test_the_same_dockerfile_gives_the_same_file_tree(dockerd, dockyard, tmp_path, their_names):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    _tree_context(ctx)
    tag = _name() + ":tree"
    their_names.append(tag)
    proc = dockyard("build", "-t", tag, str(ctx), timeout=180)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    there = dockerd.docker("build", "-t", tag, str(ctx), timeout=300)
    assert there.returncode == 0, there.stderr + there.stdout
    ours_tar, theirs_tar = tmp_path / "ours.tar", tmp_path / "theirs.tar"
    assert dockyard("save", "-o", str(ours_tar), tag).returncode == 0
    dockerd.ok("save", "-o", str(theirs_tar), tag)
    ours, our_links = _built_tree(ours_tar, _base_layers(dockyard("inspect", "busybox").stdout))
    theirs, their_links = _built_tree(
        theirs_tar, _base_layers(dockerd.ok("image", "inspect", "busybox:latest"))
    )
    assert ours.keys() == theirs.keys(), (
        sorted(ours.keys() - theirs.keys()),
        sorted(theirs.keys() - ours.keys()),
    )
    differ = {p: (ours[p], theirs[p]) for p in ours if ours[p] != theirs[p]}
    assert not differ, differ
    assert our_links == their_links
    # what the comparison covers (a tree that lost a step would not get here)
    assert ours["srv/owned/app.conf"][2:4] == (1000, 1000)
    assert ours["srv/extracted/pkg"][1:4] == (0o750, 1234, 5678)
    assert ours["srv/app/data/blob"] == ("deleted",)
    assert ours["srv/made/fifo"][0] == "fifo"
    assert {"srv/made/sub/f", "srv/made/hard"} in our_links
    dockyard("rmi", tag)


def _dockerd_build(dockerd: Dockerd, tar: bytes, query: str = "") -> str:
    status, _, body = dockerd.request("POST", "/build" + query, tar, timeout=300)
    assert status == 200, body
    image = ""
    for line in body.decode().splitlines():
        msg = json.loads(line)
        assert "errorDetail" not in msg, body
        image = (msg.get("aux") or {}).get("ID", image)
        if not image and "Successfully built" in msg.get("stream", ""):
            image = msg["stream"].split()[-1]
    return image


def test_a_raw_context_tar_copies_the_same_files_as_on_dockerd(dockerd, daemon, dockyard):
    from tests.integration.test_build_heredocs_and_context import raw_build

    tar = context_tar(IGNORED_CONTEXT)
    ours, _ = raw_build(daemon, tar)
    theirs = _dockerd_build(dockerd, tar)
    try:
        cmd = ["sh", "-c", "find /ctx | sort; cat /direct.txt"]
        here = dockyard("run", "--rm", "--network", "none", ours, *cmd)
        there = dockerd.ok("run", "--rm", "--network", "none", theirs, *cmd)
        assert here.stdout == there
        assert "/ctx/secret.txt" in there and "/ctx/Dockerfile" not in there
    finally:
        dockerd.docker("rmi", "-f", theirs)
        dockyard("rmi", ours)
