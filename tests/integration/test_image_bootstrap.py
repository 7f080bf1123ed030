"""`dockyard image bootstrap`: base images from Debian packages, no registry."""

from __future__ import annotations

import shutil
import time

import pytest


def test_busybox_bootstrap_is_idempotent_and_runs(daemon_factory):
    d = daemon_factory()
    first = d.dockyard("image", "bootstrap", "busybox:1")
    assert first.returncode == 0, first.stderr
    image_id = first.stdout.strip()
    assert image_id.startswith("sha256:") and "bootstrap: busybox:1: layer sha256:" in first.stderr
    again = d.dockyard("image", "bootstrap", "busybox:1")
    assert again.stdout.strip() == image_id and "up to date" in again.stderr
    run = d.dockyard("run", "--rm", "busybox:1", "sh", "-c", "id -un; ls /bin | wc -l")
    assert run.returncode == 0, run.stderr
    user, applets = run.stdout.split()
    assert user == "root" and int(applets) > 200  # busybox and its applet links
    history = d.dockyard("history", "--format", "{{.Comment}}", "busybox:1").stdout
    assert "busybox-static" in history


def test_bootstrap_refuses_what_it_cannot_act_on(daemon_factory):
    d = daemon_factory()
    proc = d.dockyard("image", "bootstrap", "alpine")
    assert proc.returncode == 1 and "unknown base image 'alpine'" in proc.stderr
    proc = d.dockyard("image", "bootstrap", "--include", "curl", "busybox")
    assert proc.returncode == 1 and "--include applies to debian images only" in proc.stderr
    assert d.dockyard("images", "-q").stdout.strip() == ""


@pytest.mark.slow
def test_debian_bootstrap_from_the_mirror(daemon_factory, tmp_path):
    """About a minute here (mmdebstrap minbase ~45 s, the 160 MB import a few s)."""
    if shutil.which("mmdebstrap") is None and shutil.which("debootstrap") is None:
        pytest.skip("neither mmdebstrap nor debootstrap is installed (scripts/install.sh)")
    d = daemon_factory()
    start = time.monotonic()
    proc = d.dockyard("image", "bootstrap", "debian:bookworm", timeout=900)
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(f"debian:bookworm bootstrapped in {elapsed:.1f} s")
    run = d.dockyard(
        "run", "--rm", "debian:bookworm", "sh", "-c",
        "cat /etc/debian_version; dpkg-query -W -f '${Status}\\n' apt; ls /var/lib/apt/lists | grep -c _Packages; true",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    version, status, lists = run.stdout.strip().split("\n")
    assert version.startswith("12.") and status == "install ok installed"
    assert lists.strip() == "0"  # no package lists shipped, as in the official image
    inspect = d.dockyard("image", "inspect", "-f", "{{json .Config.Cmd}}", "debian:bookworm")
    assert inspect.stdout.strip() == '["bash"]'
    # No device nodes in the image (the runtime makes /dev): it saves and loads back,
    # though `load` refuses device nodes in an archive.
    saved = tmp_path / "debian.tar"
    assert d.dockyard("save", "-o", str(saved), "debian:bookworm").returncode == 0
    assert d.dockyard("rmi", "debian:bookworm").returncode == 0
    loaded = d.dockyard("load", "-i", str(saved), timeout=300)
    assert loaded.returncode == 0, loaded.stderr
    assert d.dockyard("run", "--rm", "debian:bookworm", "test", "-c", "/dev/null").returncode == 0
