"""Images, import, version/info and daemon selection through the dockyard CLI."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IMAGES_COLUMNS = ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]


def columns(header: str) -> list[str]:
    return re.split(r"\s{2,}", header.strip())


def small_rootfs() -> bytes:
    """A one-binary image: busybox as /bin/sh and /bin/echo."""
    buf = io.BytesIO()
    data = Path("/bin/busybox").read_bytes()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        d = tarfile.TarInfo("bin")
        d.type, d.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(d)
        f = tarfile.TarInfo("bin/busybox")
        f.size, f.mode = len(data), 0o755
        tar.addfile(f, io.BytesIO(data))
        for name in ("sh", "echo", "cat"):
            link = tarfile.TarInfo(f"bin/{name}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
    return buf.getvalue()


def test_images_lists_busybox(dockyard):
    proc = dockyard("images")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert columns(lines[0]) == IMAGES_COLUMNS
    rows = [line.split() for line in lines[1:]]
    bb = [r for r in rows if r[:2] == ["busybox", "latest"]]
    assert bb and re.match(r"^[0-9a-f]{12}$", bb[0][2]), proc.stdout
    assert bb[0][2] in dockyard("images", "-q").stdout.split()


def test_make_base_image_is_idempotent(daemon, dockyard):
    before = dockyard("images", "-q", "--no-trunc", "busybox").stdout.split()
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make-base-image"), "busybox"],
        capture_output=True, text=True, env=daemon.env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() in before  # same image id: nothing rebuilt
    assert dockyard("images", "-q", "--no-trunc", "busybox").stdout.split() == before


def test_tag_and_rmi(dockyard, unique):
    repo = unique("mytag")
    assert dockyard("tag", "busybox", f"{repo}:1").returncode == 0
    listed = dockyard("images", repo).stdout
    assert re.search(rf"^{repo}\s+1\s", listed, re.M), listed
    proc = dockyard("rmi", f"{repo}:1")
    assert proc.returncode == 0, proc.stderr
    assert f"Untagged: {repo}:1" in proc.stdout
    assert repo not in dockyard("images").stdout
    assert dockyard("inspect", "--type", "image", "busybox").returncode == 0  # busybox untouched


def test_import_file_with_changes_then_run(dockyard, unique, tmp_path):
    tar = tmp_path / "rootfs.tar"
    tar.write_bytes(small_rootfs())
    repo = unique("tiny")
    proc = dockyard("import", "-c", 'CMD ["echo", "from cmd"]', str(tar), f"{repo}:v1")
    assert proc.returncode == 0, proc.stderr
    assert re.match(r"^sha256:[0-9a-f]{64}$", proc.stdout.strip())
    run = dockyard("run", "--rm", f"{repo}:v1")
    assert run.returncode == 0, run.stderr
    assert run.stdout == "from cmd\n"


def test_import_from_stdin(daemon, dockyard, unique):
    repo = unique("stdin")
    proc = subprocess.run(
        [sys.executable, "-m", "dockyard", "import", "-", repo],
        input=small_rootfs(), capture_output=True, env=daemon.env, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    run = dockyard("run", "--rm", repo, "/bin/echo", "ok")
    assert run.stdout == "ok\n", run.stderr


def test_rmi_refused_while_used(dockyard, unique):
    repo = unique("used")
    assert dockyard("tag", "busybox", repo).returncode == 0
    img = dockyard("inspect", "-f", "{{.Id}}", repo).stdout.strip()
    # Another tag keeps busybox alive; the image id itself is in use by a container.
    assert dockyard("create", "--name", unique("user"), repo, "true").returncode == 0
    proc = dockyard("rmi", img)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert re.search(r"conflict|being used|in use|referenced", proc.stderr, re.I), proc.stderr


def test_rmi_unknown(dockyard):
    proc = dockyard("rmi", "no-such-image-dky")
    assert proc.returncode == 1
    assert "No such image" in proc.stderr


def test_version_and_info(dockyard):
    proc = dockyard("version")
    assert proc.returncode == 0, proc.stderr
    assert "Client:" in proc.stdout and "Server:" in proc.stdout
    info = dockyard("info")
    assert info.returncode == 0, info.stderr
    assert re.search(r"Containers: \d+", info.stdout)
    assert re.search(r"Images: \d+", info.stdout)


def test_unreachable_daemon_is_one_clear_line(daemon, tmp_path):
    sock = tmp_path / "nobody-home.sock"
    proc = subprocess.run(
        [sys.executable, "-m", "dockyard", "ps"],
        capture_output=True, text=True, timeout=30,
        env={**daemon.env, "DOCKYARD_HOST": f"unix://{sock}", "DOCKER_HOST": f"unix://{sock}"},
    )  # fmt: skip
    assert proc.returncode != 0
    assert str(sock) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not sock.exists()  # no daemon was started on a socket that is not the default


def test_host_flag_overrides_env(daemon):
    proc = subprocess.run(
        [sys.executable, "-m", "dockyard", "-H", daemon.tcp, "version"],
        capture_output=True, text=True, timeout=30,
        env={**daemon.env, "DOCKYARD_HOST": "unix:///nonexistent/dky.sock"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Server:" in proc.stdout
