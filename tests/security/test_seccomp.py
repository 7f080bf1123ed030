"""Attack: system calls the default seccomp profile must refuse, tried from inside
a real container.

busybox cannot make arbitrary system calls, so the test compiles a tiny static
probe with gcc (`probe NR ARG0 ...` prints "NR ARG0 RESULT ERRNO" per call) and
imports it as a one-file image.
"""

from __future__ import annotations

import errno
import io
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

PROBE_C = r"""
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i += 2) {
        long nr = strtol(argv[i], 0, 0);
        unsigned long arg = strtoul(argv[i + 1], 0, 0);
        errno = 0;
        long r = syscall(nr, arg, 0, 0, 0, 0, 0);
        printf("%ld %#lx %ld %d\n", nr, arg, r, r < 0 ? errno : 0);
    }
    return 0;
}
"""

SYS_PERSONALITY = 135
SYS_FANOTIFY_INIT = 300
SYS_PIDFD_GETFD = 438
SYS_PROCESS_MADVISE = 440
SYS_CACHESTAT = 451  # Linux 6.5: in Docker's current profile
SYS_FILE_GETATTR = 468  # Linux 6.17: newer than anything Docker's profile names
ADDR_NO_RANDOMIZE = 0x0040000
READ_IMPLIES_EXEC = 0x0400000


@pytest.fixture(scope="module")
def probe_image(daemon, tmp_path_factory) -> str:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    work = tmp_path_factory.mktemp("probe")
    (work / "probe.c").write_text(PROBE_C)
    build = subprocess.run(
        ["gcc", "-static", "-O2", "-o", str(work / "probe"), str(work / "probe.c")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if build.returncode != 0:
        pytest.skip(f"cannot build a static probe here: {build.stderr.strip()[-300:]}")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(work / "probe", arcname="probe")
    tar_path = Path(work / "probe.tar")
    tar_path.write_bytes(buf.getvalue())
    proc = daemon.dockyard("import", str(tar_path), "dky-seccomp-probe:latest")
    assert proc.returncode == 0, proc.stderr
    yield "dky-seccomp-probe:latest"
    daemon.dockyard("rmi", "-f", "dky-seccomp-probe:latest")


def probe(daemon, image: str, *calls: tuple[int, int], extra: tuple[str, ...] = ()) -> dict:
    args = [str(v) for call in calls for v in (call[0], hex(call[1]))]
    proc = daemon.dockyard("run", "--rm", *extra, image, "/probe", *args)
    assert proc.returncode == 0, proc.stderr
    results = {}
    for line in proc.stdout.splitlines():
        nr, arg, ret, err = line.split()
        results[(int(nr), int(arg, 16))] = (int(ret), int(err))
    assert len(results) == len(calls), proc.stdout
    return results


def test_personality_that_weakens_aslr_is_refused(daemon, probe_image) -> None:
    got = probe(
        daemon,
        probe_image,
        (SYS_PERSONALITY, ADDR_NO_RANDOMIZE),
        (SYS_PERSONALITY, READ_IMPLIES_EXEC),
        (SYS_PERSONALITY, 0xFFFFFFFF),  # a query: allowed, answers the current persona
        (SYS_PERSONALITY, 0x0008),  # PER_LINUX32: allowed, as in Docker
    )
    assert got[(SYS_PERSONALITY, ADDR_NO_RANDOMIZE)] == (-1, errno.EPERM)
    assert got[(SYS_PERSONALITY, READ_IMPLIES_EXEC)] == (-1, errno.EPERM)
    assert got[(SYS_PERSONALITY, 0xFFFFFFFF)] == (0, 0)
    assert got[(SYS_PERSONALITY, 0x0008)] == (0, 0)  # returns the previous persona


def test_pidfd_getfd_process_madvise_fanotify_init_are_eperm(daemon, probe_image) -> None:
    got = probe(
        daemon,
        probe_image,
        (SYS_PIDFD_GETFD, 0),
        (SYS_PROCESS_MADVISE, 0),
        (SYS_FANOTIFY_INIT, 0),
    )
    for nr in (SYS_PIDFD_GETFD, SYS_PROCESS_MADVISE, SYS_FANOTIFY_INIT):
        assert got[(nr, 0)] == (-1, errno.EPERM), nr


def test_syscalls_newer_than_the_profile_are_enosys(daemon, probe_image) -> None:
    # file_getattr is newer than the profile: ENOSYS, as for a number no kernel has;
    # cachestat, which the profile names, reaches the kernel (fd -1: EBADF).
    got = probe(
        daemon, probe_image, (SYS_FILE_GETATTR, 0xFFFFFFFF), (1000, 0), (SYS_CACHESTAT, 0xFFFFFFFF)
    )
    assert got[(SYS_FILE_GETATTR, 0xFFFFFFFF)] == (-1, errno.ENOSYS)
    assert got[(1000, 0)] == (-1, errno.ENOSYS)
    assert got[(SYS_CACHESTAT, 0xFFFFFFFF)] == (-1, errno.EBADF)


def test_privileged_is_unconfined(daemon, probe_image) -> None:
    # The control: without the profile the same probe reaches the kernel.
    got = probe(daemon, probe_image, (SYS_FILE_GETATTR, 0xFFFFFFFF), extra=("--privileged",))
    if tuple(int(v) for v in re.findall(r"\d+", os.uname().release)[:2]) < (6, 17):
        pytest.skip("file_getattr is Linux 6.17")
    assert got[(SYS_FILE_GETATTR, 0xFFFFFFFF)][1] != errno.ENOSYS
