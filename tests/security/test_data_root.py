"""No host user gains anything from the data root (the CVE-2021-41091 class).

A container is root inside its rootfs: it can leave a setuid-root binary or a
device node in its upper dir, and image layers carry setuid binaries too. If an
unprivileged host user could walk into the data root, running that binary would
make them root on the host. The data root sits here in a directory any user can
traverse (as /var/lib is), so only the data root's own modes stand in the way.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

# setpriv keeps its capabilities until its own execve (they go only at exec), so
# that first path lookup would still pass with CAP_DAC_OVERRIDE: a shell, started
# without any, does the lookups a host user's process would.
NOBODY = [
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "/bin/sh",
    "-c",
    'exec "$@"',
    "sh",
]
# A dynamically linked interpreter that, made setuid root, keeps euid 0 and says so
# (busybox drops privileges for most applets, so it would prove nothing).
# The distribution's, where there is one: it needs no library from a private prefix.
PYTHON = Path(
    os.path.realpath("/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable)
)


def as_nobody(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NOBODY, *argv], capture_output=True, text=True, timeout=30)


def traversable_base(daemon_factory, **kwargs):
    d = daemon_factory(wait=False, **kwargs)
    # /tmp/dky-* is 0700; a real data root lives in /var/lib, which anyone may traverse.
    os.chmod(d.base, 0o711)
    d.wait_ready()
    return d


def plant(d, name: str) -> Path:
    """A container leaves a setuid-root python and a world-writable /dev/zero in its upper dir."""
    script = (
        f"cp /hostbin/{PYTHON.name} /tmp/su && chmod 4755 /tmp/su && "
        "mknod -m 666 /tmp/zero c 1 5 && ls -ln /tmp"
    )
    proc = d.dockyard(
        "run", "--name", name, "-v", f"{PYTHON.parent}:/hostbin:ro", "busybox", "sh", "-c", script
    )
    assert proc.returncode == 0, proc.stderr + d.log_tail()
    cid = d.dockyard("inspect", "-f", "{{.Id}}", name).stdout.strip()
    upper = d.data_root / "containers" / cid / "upper" / "tmp"
    su = upper / "su"
    st = su.stat()
    assert st.st_uid == 0 and st.st_mode & stat.S_ISUID, "the container could not plant the file"
    assert stat.S_ISCHR((upper / "zero").stat().st_mode)
    return upper


def assert_nobody_gains_nothing(d, upper: Path) -> None:
    su = as_nobody(str(upper / "su"), "-c", "import os; print(os.geteuid())")
    assert su.stdout.strip() != "0", "a host user ran the container's setuid file as root"
    assert su.returncode != 0 and "Permission denied" in su.stderr, su.stderr
    dev = as_nobody("head", "-c", "4", str(upper / "zero"))
    assert dev.returncode != 0 and "Permission denied" in dev.stderr, (
        "a host user opened a device node a container made"
    )
    layers = sorted((d.data_root / "layers").iterdir())
    assert layers, "busybox was imported: it has a layer"
    for path in (
        d.data_root / "dockyard.db",
        layers[0] / "diff" / "bin" / "busybox",
        upper / "su",
    ):
        probe = as_nobody("stat", str(path))
        assert probe.returncode != 0 and "Permission denied" in probe.stderr, (path, probe.stdout)
    listing = as_nobody("ls", str(d.data_root))
    assert listing.returncode != 0, listing.stdout


@pytest.mark.root
def test_host_user_cannot_run_a_setuid_file_a_container_made(daemon_factory, unique) -> None:
    d = traversable_base(daemon_factory)
    d.import_busybox()
    upper = plant(d, unique("suid"))
    assert_nobody_gains_nothing(d, upper)
    # The socket stays usable by root and the dockyard group only.
    st = os.stat(d.socket)
    assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_uid == 0


@pytest.mark.root
def test_old_data_root_modes_are_fixed_at_start(daemon_factory, unique) -> None:
    first = traversable_base(daemon_factory)
    first.import_busybox()
    upper = plant(first, unique("suid"))
    assert first.stop() == 0, first.log_tail()
    # What earlier versions left: 0711 on top, 0755 below, a user owning the top.
    os.chmod(first.data_root, 0o711)
    os.chown(first.data_root, 65534, 65534)
    for sub in ("layers", "containers", "blobs"):
        os.chmod(first.data_root / sub, 0o755)
    exposed = as_nobody("stat", str(upper / "su"))
    assert exposed.returncode == 0, "the setup should have reopened the data root"

    second = daemon_factory(base=first.base, data_root=first.data_root)
    st = first.data_root.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o700, 0, 0)
    for sub in ("layers", "containers", "blobs"):
        assert stat.S_IMODE((first.data_root / sub).stat().st_mode) == 0o700, sub
    assert_nobody_gains_nothing(second, upper)
