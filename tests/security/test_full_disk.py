"""A full disk is survived: the data root on a small tmpfs that container logs fill.

What a user notices: the operation that needs space fails with "no space left
on device" (not an internal error); stop, kill, wait and rm -f still work;
exit codes are the true ones (137 for a kill, the container's own code for a
container that exits by itself while its log cannot be written); a container
whose log lines are lost keeps running; the daemon restarts on the full disk
and serves; removing the culprit gives the space back.

Also here: a tar whose 10 GB sparse file would fill any disk keeps its holes,
and the SQLite store shrinks again after mass removals.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

FS_SIZE = 40 * 1024 * 1024
# Long lines: the monitor's per-line work stays small next to the bytes that fill the disk.
FLOOD = "yes $(printf '%0400d' 0)"


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def wait_until(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _kill_processes_of(root: str) -> None:
    """Last resort when a daemon on `root` was not stopped (a failed teardown): it
    and everything below it, so that no test leaves processes behind."""
    parents: dict[int, int] = {}
    doomed: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
        if root.encode() in cmdline:
            doomed.add(int(entry.name))
    grew = True
    while grew:
        below = {pid for pid, ppid in parents.items() if ppid in doomed} - doomed
        doomed |= below
        grew = bool(below)
    for pid in doomed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(params=["tmpfs", "ext4"])
def small_root(request) -> Iterator[Path]:
    """A file system of FS_SIZE bytes for a data root: a tmpfs, or an ext4 image on a
    loop device (block allocation, reserved blocks and journal as on a real disk).
    Outside the daemon's base dir, whose leftover check counts every mount under it."""
    if os.geteuid() != 0:
        pytest.skip("needs root: mounts a file system and runs a daemon")
    outer = Path(tempfile.mkdtemp(prefix="dky-", dir="/tmp"))
    # As conftest's make_base_dir: tells scripts/cleanup-test-leftovers who owns it.
    (outer / "owner.pid").write_text(str(os.getpid()))
    root = outer / "root"
    root.mkdir()
    if request.param == "tmpfs":
        mount = ["-t", "tmpfs", "-o", f"size={FS_SIZE},mode=0711", "dky-full-disk"]
    else:
        image = outer / "disk.img"
        with open(image, "wb") as f:
            f.truncate(FS_SIZE)
        subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
        mount = ["-t", "ext4", "-o", "loop", str(image)]
    subprocess.run(["mount", *mount, str(root)], check=True)
    os.chmod(root, 0o711)
    try:
        yield root
    finally:
        _kill_processes_of(str(root))
        # Not lazy: a loop device is released only by a real unmount.
        if subprocess.run(["umount", str(root)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(root)], check=False)
        shutil.rmtree(outer, ignore_errors=True)


@pytest.fixture
def full_daemon(small_root: Path, daemon_factory):
    d = daemon_factory(data_root=small_root)
    d.import_busybox()
    return d


def inspect(d, name: str) -> dict:
    resp = d.request("GET", f"/containers/{name}/json")
    assert resp.status == 200, (resp.status, resp.body, d.log_tail())
    return resp.json()


def fill_with_logs(d) -> None:
    """Start a container whose output fills the data root, wait until it is full."""
    proc = d.dockyard(
        # Rotation is on by default (10m x 3): an unbounded log is what fills the disk.
        "run", "-d", "--stop-timeout", "1", "--name", "flood", "--log-opt", "max-size=-1",
        "busybox", "sh", "-c", FLOOD,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    wait_until(lambda: free_bytes(d.data_root) < 64 * 1024, 60, "the log to fill the disk")
    # The log cannot grow any more, but the container goes on: its output is dropped.
    time.sleep(0.5)
    assert inspect(d, "flood")["State"]["Running"] is True


def test_operations_on_a_full_disk(full_daemon) -> None:
    d = full_daemon
    # Containers to stop and kill once the disk is full.
    for name in ("victim-kill", "victim-stop"):
        proc = d.dockyard("run", "-d", "--name", name, "busybox", "sleep", "1000")
        assert proc.returncode == 0, proc.stderr
    fill_with_logs(d)

    # A create needs space: it fails with a clear error.
    proc = d.dockyard("run", "--name", "nospace", "busybox", "true")
    assert proc.returncode == 125, (proc.returncode, proc.stdout, proc.stderr)
    assert "no space left on device" in proc.stderr, proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    # What the failed create had begun is gone: one directory per container listed.
    listed = d.request("GET", "/containers/json?all=1").json()
    assert sorted(p.name for p in (d.data_root / "containers").iterdir()) == sorted(
        c["Id"] for c in listed
    )

    # An import needs space: it fails with a clear error, and leaves no temporary behind.
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("big")
        data = os.urandom(4 * 1024 * 1024)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    resp = d.request(
        "POST", "/images/create?fromSrc=-&repo=nospace", buf.getvalue(),
        {"Content-Type": "application/x-tar"},
    )  # fmt: skip
    assert resp.status in (500, 507), (resp.status, resp.body)
    assert "no space left on device" in resp.message, resp.message
    assert "internal error" not in resp.message
    leftovers = [p.name for p in (d.data_root / "tmp").iterdir()]
    leftovers += [p.name for p in (d.data_root / "layers").iterdir() if p.name.startswith(".tmp")]
    assert leftovers == [], leftovers

    # kill: true exit code, and `wait` wakes up.
    assert d.dockyard("kill", "victim-kill").returncode == 0
    proc = d.dockyard("wait", "victim-kill", timeout=30)
    assert proc.stdout.strip() == "137", (proc.stdout, proc.stderr, d.log_tail())
    assert inspect(d, "victim-kill")["State"]["ExitCode"] == 137

    # stop (sleep as PID 1 ignores SIGTERM: killed after the timeout).
    proc = d.dockyard("stop", "-t", "1", "victim-stop", timeout=30)
    assert proc.returncode == 0, (proc.stderr, d.log_tail())
    state = inspect(d, "victim-stop")["State"]
    assert (state["Running"], state["ExitCode"]) == (False, 137), state

    # The flood goes on (its lines are dropped, which the daemon logs, as dockerd
    # does), rm -f stops it and frees the space.
    assert inspect(d, "flood")["State"]["Running"] is True
    assert "log entries dropped: No space left on device" in d.log_path.read_text()
    proc = d.dockyard("rm", "-f", "flood", timeout=30)
    assert proc.returncode == 0, (proc.stderr, d.log_tail())
    assert free_bytes(d.data_root) > FS_SIZE // 2
    assert d.dockyard("run", "--rm", "busybox", "true").returncode == 0


def test_exit_code_lands_while_the_log_cannot_be_written(full_daemon) -> None:
    d = full_daemon
    # Started before the disk fills; writes far more than the disk holds, then exits 7.
    proc = d.dockyard(
        "run", "-d", "--name", "writer", "--log-opt", "max-size=-1", "busybox", "sh", "-c",
        "sleep 2; yes $(printf '%0400d' 0) | head -c 150000000; exit 7",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    wait_until(lambda: free_bytes(d.data_root) < 64 * 1024, 60, "the log to fill the disk")
    # Not blocked by its log: it gets through its 150 MB and exits on its own.
    proc = d.dockyard("wait", "writer", timeout=120)
    assert proc.stdout.strip() == "7", (proc.stdout, proc.stderr, d.log_tail())
    state = inspect(d, "writer")["State"]
    assert (state["ExitCode"], state["Error"]) == (7, ""), state
    # The lines that made it to the log are whole JSON lines.
    resp = d.request("GET", "/containers/writer/logs?stdout=1&tail=3")
    assert resp.status == 200 and resp.body, resp.status
    assert d.dockyard("rm", "writer").returncode == 0
    assert free_bytes(d.data_root) > FS_SIZE // 2


def test_a_rotated_log_cannot_fill_the_disk(full_daemon) -> None:
    """With max-size/max-file (as with dockerd) a flood keeps its log to its bound."""
    d = full_daemon
    before = free_bytes(d.data_root)
    proc = d.dockyard(
        "run", "-d", "--name", "bounded", "--log-opt", "max-size=2m", "--log-opt", "max-file=2",
        "busybox", "sh", "-c", "yes $(printf '%0400d' 0) | head -c 100000000; sleep 1000",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    # It writes 100 MB (2.5 times the disk) and then sleeps: its log is 2 x 2 MB.
    log = Path(inspect(d, "bounded")["LogPath"])
    wait_until(
        lambda: (d.data_root / "containers").exists() and not _growing(log), 120, "the flood"
    )
    used = before - free_bytes(d.data_root)
    assert used < 6 * 1024 * 1024, used
    assert d.dockyard("rm", "-f", "bounded").returncode == 0


def _growing(log: Path) -> bool:
    """True while the log still changes (the flood is running)."""
    first = log.stat().st_mtime_ns if log.exists() else 0
    time.sleep(1.0)
    return (log.stat().st_mtime_ns if log.exists() else 0) != first


@pytest.mark.parametrize("how", ["crash", "clean"])
def test_daemon_restarts_on_a_full_disk(full_daemon, daemon_factory, how: str) -> None:
    d = full_daemon
    proc = d.dockyard("run", "-d", "--name", "victim", "busybox", "sleep", "1000")
    assert proc.returncode == 0, proc.stderr
    fill_with_logs(d)
    assert d.dockyard("kill", "victim").returncode == 0
    assert d.dockyard("wait", "victim", timeout=30).stdout.strip() == "137"
    if how == "crash":
        d.kill()  # no clean shutdown: the flood runs on
    else:
        # A clean stop (which stops the flood) leaves no SQLite WAL behind: the next
        # start must open the database on a disk that has no room for a new one.
        assert d.stop() == 0, d.log_tail()
    d2 = daemon_factory(base=d.base, data_root=d.data_root)
    proc = d2.dockyard("ps", "-a", "--format", "{{.Names}} {{.Status}}")
    assert proc.returncode == 0, (proc.stderr, d2.log_tail())
    assert inspect(d2, "victim")["State"]["ExitCode"] == 137
    if how == "crash":
        assert "flood Up" in proc.stdout, proc.stdout
        assert inspect(d2, "flood")["State"]["Running"] is True
    else:
        assert "flood Exited (137)" in proc.stdout, proc.stdout
    proc = d2.dockyard("rm", "-f", "flood", "victim", timeout=30)
    assert proc.returncode == 0, (proc.stderr, d2.log_tail())
    assert free_bytes(d2.data_root) > FS_SIZE // 2
    assert d2.dockyard("run", "--rm", "busybox", "true").returncode == 0


# -- sparse files in layer tars ---------------------------------------------------------

SPARSE_SIZE = 10 * 1024**3


@pytest.mark.parametrize("tar_format", ["gnu", "posix"])
def test_sparse_file_in_import_keeps_its_holes(daemon, tmp_path: Path, tar_format: str) -> None:
    """A 10 GB file that is all holes but 1 MB: the upload is small, so must the layer be."""
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "sparse", "wb") as f:
        f.truncate(SPARSE_SIZE)
        f.seek(SPARSE_SIZE // 2)
        f.write(b"x" * (1024 * 1024))
    tar_path = tmp_path / "sparse.tar"
    subprocess.run(
        ["tar", "--sparse", f"--format={tar_format}", "-C", str(src), "-cf", str(tar_path), "."],
        check=True,
    )
    assert tar_path.stat().st_size < 4 * 1024 * 1024
    resp = daemon.request(
        "POST", f"/images/create?fromSrc=-&repo=sparse-{tar_format}", tar_path.read_bytes(),
        {"Content-Type": "application/x-tar"}, timeout=120,
    )  # fmt: skip
    assert resp.status == 200, (resp.status, resp.body)
    image_id = json.loads(resp.body.splitlines()[-1])["status"]
    try:
        found = list((daemon.data_root / "layers").glob("*/diff/sparse"))
        assert found, "the layer was not unpacked"
        st = max((p.stat() for p in found), key=lambda s: s.st_mtime_ns)
        assert st.st_size == SPARSE_SIZE
        on_disk = st.st_blocks * 512
        print(f"sparse layer ({tar_format}): apparent {st.st_size} B, on disk {on_disk} B")
        assert on_disk < 8 * 1024 * 1024, on_disk
        # The data is where it was, and the holes read as zeros.
        path = max(found, key=lambda p: p.stat().st_mtime_ns)
        with open(path, "rb") as f:
            assert os.pread(f.fileno(), 4, SPARSE_SIZE // 2) == b"xxxx"
            assert os.pread(f.fileno(), 4096, 0) == bytes(4096)
    finally:
        daemon.request("DELETE", f"/images/{image_id}?force=1")


# -- the SQLite store after mass removals ---------------------------------------------------


def _db_bytes(path: Path) -> int:
    return sum(os.path.getsize(f"{path}{s}") for s in ("", "-wal") if os.path.exists(f"{path}{s}"))


def _record(i: int):
    from dockyard.engine.models import Container, ContainerConfig, HostConfig

    env = [f"VAR{n}={'x' * 40}" for n in range(20)]
    return Container(
        id=f"{i:064x}",
        name=f"/c{i}",
        created="2026-01-01T00:00:00Z",
        path="sh",
        args=["-c", "x" * 200],
        config=ContainerConfig(image="busybox", env=env),
        host_config=HostConfig(),
        image="sha256:" + "0" * 64,
    )


@pytest.mark.parametrize("existing_file", [False, True])
def test_store_gives_space_back_after_mass_removal(tmp_path: Path, existing_file: bool) -> None:
    from dockyard.engine.store import Store

    path = tmp_path / "dockyard.db"
    if existing_file:
        # A data root from before: a database without auto_vacuum.
        import sqlite3

        sqlite3.connect(path).execute("CREATE TABLE old (x)").connection.close()
    store = Store(str(path))
    for i in range(2000):
        store.put_container(_record(i))
    full = path.stat().st_size
    for i in range(2000):
        store.delete_container(f"{i:064x}")
    after = path.stat().st_size
    wal = _db_bytes(path) - after
    store.close()
    print(f"store: {full} B with 2000 containers, {after} B after removing them (WAL {wal} B)")
    assert after < 1024 * 1024 and after < full // 8, (full, after)
    # The WAL is SQLite's to reuse: bounded by its checkpoint (1000 pages), not by removals.
    assert wal <= 1001 * 4096 + 32 * 1024, wal
    store = Store(str(path))  # and it opens again, empty
    assert store.containers() == []
    store.close()
