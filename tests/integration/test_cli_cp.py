"""`dockyard cp` both ways with docker's path rules, tar streams, volumes, and refusals."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest


@pytest.fixture
def box(dockyard, unique):
    name = unique("cpc")
    proc = dockyard(
        "run", "-d", "--name", name, "busybox", "sh", "-c",
        "mkdir -p /d/sub; echo a > /d/a; echo b > /d/sub/b; ln -s / /out; exec sleep 600",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    yield name
    dockyard("rm", "-f", name)


def test_cp_out_file_dir_and_contents(dockyard, box, tmp_path) -> None:
    assert dockyard("cp", f"{box}:/d/a", str(tmp_path / "a1")).returncode == 0
    assert (tmp_path / "a1").read_text() == "a\n"
    # a directory onto a new name
    assert dockyard("cp", f"{box}:/d", str(tmp_path / "new")).returncode == 0
    assert (tmp_path / "new" / "sub" / "b").read_text() == "b\n"
    # a directory into an existing directory keeps its name
    (tmp_path / "exists").mkdir()
    assert dockyard("cp", f"{box}:/d", str(tmp_path / "exists")).returncode == 0
    assert (tmp_path / "exists" / "d" / "a").read_text() == "a\n"
    # "/." copies the content
    (tmp_path / "content").mkdir()
    assert dockyard("cp", f"{box}:/d/.", str(tmp_path / "content")).returncode == 0
    assert sorted(os.listdir(tmp_path / "content")) == ["a", "sub"]


def test_cp_in_and_back_through_a_tar_stream(dockyard, daemon, box, tmp_path) -> None:
    src = tmp_path / "tree"
    (src / "x").mkdir(parents=True)
    (src / "x" / "f").write_text("f\n")
    assert dockyard("cp", str(src), f"{box}:/d/").returncode == 0
    assert dockyard("cp", str(src / "x" / "f"), f"{box}:/d/renamed").returncode == 0
    proc = subprocess.run(
        [sys.executable, "-m", "dockyard", "cp", f"{box}:/d", "-"],
        env=daemon.env, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        names = set(tar.getnames())
    assert {"d/a", "d/tree/x/f", "d/renamed"} <= names
    # a tar on stdin goes into a directory
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("fromstdin")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"in\n"))
    proc = subprocess.run(
        [sys.executable, "-m", "dockyard", "cp", "-", f"{box}:/d"],
        input=buf.getvalue(), env=daemon.env, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert dockyard("cp", f"{box}:/d/fromstdin", str(tmp_path / "s")).returncode == 0
    assert (tmp_path / "s").read_text() == "in\n"


def test_cp_never_escapes_through_a_planted_link(dockyard, box, tmp_path, unique) -> None:
    marker = unique("esc")
    src = tmp_path / marker
    src.write_text("x\n")
    assert dockyard("cp", str(src), f"{box}:/out/{marker}").returncode == 0
    assert not os.path.exists(f"/{marker}")
    assert dockyard("cp", f"{box}:/{marker}", str(tmp_path / "back")).returncode == 0


def test_cp_refusals(dockyard, box, tmp_path, unique) -> None:
    proc = dockyard("cp", f"{box}:/nope", str(tmp_path / "n"))
    assert proc.returncode == 1
    assert f"Could not find the file /nope in container {box}" in proc.stderr
    proc = dockyard("cp", f"{box}:/d", f"{box}:/e")
    assert (proc.returncode, proc.stderr.strip()) == (
        1,
        "copying between containers is not supported",
    )


def test_cp_on_a_stopped_container_with_a_volume(dockyard, daemon, unique, tmp_path) -> None:
    name, vol = unique("stopped"), unique("svol")
    proc = dockyard(
        "run", "--name", name, "-v", f"{vol}:/v", "busybox", "sh", "-c",
        "echo in-volume > /v/f; echo in-rootfs > /r; [ -L /out ] || ln -s / /out",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    try:
        assert dockyard("cp", f"{name}:/v/f", str(tmp_path / "f")).returncode == 0
        assert (tmp_path / "f").read_text() == "in-volume\n"
        assert dockyard("cp", f"{name}:/r", str(tmp_path / "r")).returncode == 0
        assert (tmp_path / "r").read_text() == "in-rootfs\n"
        src = tmp_path / "new"
        src.write_text("new\n")
        marker = unique("stopesc")
        (tmp_path / marker).write_text("x\n")
        assert dockyard("cp", str(src), f"{name}:/v/new").returncode == 0
        assert dockyard("cp", str(tmp_path / marker), f"{name}:/out/").returncode == 0
        assert not os.path.exists(f"/{marker}")
        # the copy went into the volume and the container's rootfs, seen at the next start
        proc = dockyard("start", "-a", name)
        assert proc.returncode == 0, proc.stderr
        proc = dockyard("run", "--rm", "-v", f"{vol}:/v", "busybox", "cat", "/v/new")
        assert proc.stdout == "new\n"
        # nothing stays mounted once the copy is over
        assert not [m for m in Path("/proc/self/mounts").read_text().splitlines() if "cp-root" in m]
    finally:
        dockyard("rm", "-f", name)
        dockyard("volume", "rm", vol)


def test_cp_a_gives_files_to_the_containers_user(dockyard, unique, tmp_path) -> None:
    name = unique("owner")
    proc = dockyard("run", "-d", "--name", name, "-u", "1234:4321", "busybox", "sleep", "600")
    assert proc.returncode == 0, proc.stderr
    try:
        src = tmp_path / "owned"
        src.write_text("x\n")
        os.chown(src, 777, 777)
        assert dockyard("cp", str(src), f"{name}:/tmp/plain").returncode == 0
        assert dockyard("cp", "-a", str(src), f"{name}:/tmp/archived").returncode == 0
        out = tmp_path / "o"
        out.mkdir()
        proc = subprocess.run(
            [sys.executable, "-m", "dockyard", "cp", f"{name}:/tmp/.", "-"],
            env=dockyard.__self__.env, capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
            owners = {m.name: (m.uid, m.gid) for m in tar.getmembers()}
        assert owners["./plain"] == (777, 777)  # the tar's ids, as docker without -a
        assert owners["./archived"] == (1234, 4321)
    finally:
        dockyard("rm", "-f", name)


def test_cp_emits_dockerds_container_events(dockyard, box, tmp_path) -> None:
    """A copy out is `archive-path`, a copy in `extract-to-dir`; a copy that fails and a
    stat (HEAD) emit nothing, as with dockerd."""
    import time

    since = f"{time.time() - 1:.3f}"
    (tmp_path / "in").write_text("x")
    assert dockyard("cp", str(tmp_path / "in"), f"{box}:/d/").returncode == 0
    assert dockyard("cp", f"{box}:/d/a", str(tmp_path / "out")).returncode == 0
    assert dockyard("cp", f"{box}:/no/such", str(tmp_path / "nope")).returncode == 1
    until = f"{time.time() + 1:.3f}"
    proc = dockyard(
        "events", "--since", since, "--until", until, "--filter", f"container={box}",
        "--filter", "event=archive-path", "--filter", "event=extract-to-dir", "--format", "{{.Action}}",
    )  # fmt: skip
    assert proc.stdout.splitlines() == ["extract-to-dir", "archive-path"], proc.stderr
