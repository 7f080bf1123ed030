"""docker cp through the real docker CLI: both ways, path rules, volumes, the symlink escape."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker_cli


@pytest.fixture
def running(daemon, unique):
    name = unique("cp")
    # /out -> / is the classic escape: a copy to c:/out/x must stay in the container
    proc = daemon.docker(
        "run", "-d", "--name", name, "busybox", "sh", "-c",
        "echo hi > /tmp/in.txt; ln -s / /out; ln -s /etc/passwd /pw; exec sleep 600",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    yield name
    daemon.docker("rm", "-f", name)


def test_cp_both_ways(daemon, running, tmp_path) -> None:
    src = tmp_path / "in.txt"
    src.write_text("into the container\n")
    proc = daemon.docker("cp", str(src), f"{running}:/tmp/")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    proc = daemon.docker("cp", f"{running}:/tmp/in.txt", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == "into the container\n"
    # a directory, and its content with "/."
    proc = daemon.docker("cp", f"{running}:/etc", str(tmp_path / "etc"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "etc" / "passwd").read_text().startswith("root:")
    (tmp_path / "into").mkdir()
    proc = daemon.docker("cp", f"{running}:/etc/.", str(tmp_path / "into"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "into" / "group").exists()


def test_cp_to_stdout_is_a_tar(daemon, running) -> None:
    proc = subprocess.run(
        [shutil.which("docker") or "docker", "cp", f"{running}:/etc/hostname", "-"],
        env=daemon.env, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        assert tar.getnames() == ["hostname"]


def test_cp_missing_path(daemon, running, tmp_path) -> None:
    proc = daemon.docker("cp", f"{running}:/no/such", str(tmp_path / "x"))
    assert proc.returncode == 1
    assert "Could not find the file /no/such in container" in proc.stderr


def test_cp_symlink_escape_stays_in_the_container(daemon, running, tmp_path, unique) -> None:
    # The container plants /out -> / ; copying to c:/out/<name> must land in the
    # container's root, never on the host's.
    name = unique("escape")
    src = tmp_path / name
    src.write_text("x\n")
    proc = daemon.docker("cp", str(src), f"{running}:/out/{name}")
    assert proc.returncode == 0, proc.stderr
    assert not os.path.exists(f"/{name}")
    # it is in the container's root, where /out leads inside the container
    back = tmp_path / "back"
    assert daemon.docker("cp", f"{running}:/{name}", str(back)).returncode == 0
    assert back.read_text() == "x\n"
    # reading through a link to /etc/passwd gives the container's file, not the host's
    pw = tmp_path / "pw"
    assert daemon.docker("cp", "-L", f"{running}:/pw", str(pw)).returncode == 0
    assert pw.read_text() != Path("/etc/passwd").read_text() and pw.read_text().startswith("root:")


def test_cp_race_between_directory_and_symlink(daemon, unique, tmp_path) -> None:
    # The container keeps swapping /race/d between a directory and a link to /; every
    # copy lands inside the container whatever it meets.
    name, marker = unique("race"), unique("raced")
    proc = daemon.docker(
        "run", "-d", "--name", name, "busybox", "sh", "-c",
        "mkdir /race; while true; do mkdir /race/d; rmdir /race/d; ln -s / /race/d; rm /race/d; done",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    try:
        src = tmp_path / marker
        src.write_text("x\n")
        for _ in range(15):
            daemon.docker("cp", str(src), f"{name}:/race/d/")
            assert not os.path.exists(f"/{marker}")
            assert not os.path.exists(f"/race/d/{marker}")
    finally:
        daemon.docker("rm", "-f", name)


def test_cp_onto_a_read_only_volume(daemon, unique, tmp_path) -> None:
    name, vol = unique("rov"), unique("rovol")
    proc = daemon.docker(
        "run", "-d", "--name", name, "-v", f"{vol}:/ro:ro", "busybox", "sleep", "600"
    )
    assert proc.returncode == 0, proc.stderr
    try:
        src = tmp_path / "f"
        src.write_text("x\n")
        proc = daemon.docker("cp", str(src), f"{name}:/ro/")
        assert proc.returncode == 1
        assert "mounted volume is marked read-only" in proc.stderr
    finally:
        daemon.docker("rm", "-f", name)
        daemon.docker("volume", "rm", vol)
