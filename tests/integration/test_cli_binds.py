"""Bind mounts through the CLI: files and directories, nested and missing targets, -w."""

from __future__ import annotations

from pathlib import Path


def test_file_bind_mount(dockyard, daemon, unique) -> None:
    src = daemon.base / unique("file")
    src.write_text("from the host\n")
    proc = dockyard("run", "--rm", "-v", f"{src}:/h", "busybox", "cat", "/h")
    assert (proc.returncode, proc.stdout) == (0, "from the host\n"), proc.stderr
    # A read-write file bind writes through to the host file.
    proc = dockyard("run", "--rm", "-v", f"{src}:/h", "busybox", "sh", "-c", "echo new > /h")
    assert proc.returncode == 0, proc.stderr
    assert src.read_text() == "new\n"


def test_file_bind_mount_onto_a_missing_nested_path_read_only(dockyard, daemon, unique) -> None:
    src = daemon.base / unique("file")
    src.write_text("x\n")
    proc = dockyard(
        "run", "--rm", "-v", f"{src}:/deep/er/h:ro", "busybox",
        "sh", "-c", "cat /deep/er/h; [ -f /deep/er/h ] && echo file; echo y > /deep/er/h",
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stdout == "x\nfile\n"
    assert "Read-only file system" in proc.stderr
    assert src.read_text() == "x\n"


def test_host_etc_hostname_as_in_the_issue(dockyard) -> None:
    proc = dockyard("run", "--rm", "-v", "/etc/hostname:/h", "busybox", "cat", "/h")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == Path("/etc/hostname").read_text()


def test_directory_bind_under_another_and_workdir(dockyard, daemon, unique) -> None:
    outer, inner = daemon.base / unique("outer"), daemon.base / unique("inner")
    outer.mkdir()
    inner.mkdir()
    (inner / "f").write_text("inner\n")
    proc = dockyard(
        "run", "--rm", "-v", f"{outer}:/o", "-v", f"{inner}:/o/a/b", "-w", "/new/wd",
        "busybox", "sh", "-c", "pwd; cat /o/a/b/f",
    )  # fmt: skip
    assert (proc.returncode, proc.stdout) == (0, "/new/wd\ninner\n"), proc.stderr
    # The nested target was created in the outer bind source, as with dockerd.
    assert (outer / "a" / "b").is_dir()


def test_file_onto_a_directory_is_one_clear_error(dockyard, daemon, unique) -> None:
    src = daemon.base / unique("file")
    src.write_text("x\n")
    proc = dockyard("run", "--rm", "-v", f"{src}:/etc", "busybox", "true")
    assert proc.returncode == 125
    assert proc.stderr.strip().endswith(
        f'error mounting "{src}" to rootfs at "/etc": '
        "a file and a directory cannot be mounted on each other"
    ), proc.stderr
