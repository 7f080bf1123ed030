"""`commit` copies the container's upper dir next to it (in its bundle) and then
moves the copy into the layer store (image/copied_layers.staging_dir): nothing
of that copy may stay behind, even when the daemon is killed in the middle."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Enough files that the copy takes a while (it is killed in the middle).
FILL = "mkdir /many && cd /many && for i in $(seq 6000); do echo $i > f$i; done"


def _bundle(d, name: str) -> Path:  # type: ignore[no-untyped-def]
    cid = json.loads(d.dockyard("inspect", name).stdout)[0]["Id"]
    return d.data_root / "containers" / cid


def _copies_in(bundle: Path) -> list[str]:
    return [n for n in bundle.iterdir() if n.name.startswith(".tmp-")]  # type: ignore[misc]


def _commit_in_its_copy(d, name: str, bundle: Path, cut_by: str) -> subprocess.Popen[str]:  # type: ignore[no-untyped-def]
    """A `dockyard commit` of `name`, returned once its copy is in `bundle` (skips
    if the commit ends first: nothing to `cut_by` then)."""
    commit = subprocess.Popen(
        [sys.executable, "-m", "dockyard", "commit", name, f"{name}:c"],
        env=d.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not _copies_in(bundle):
        if commit.poll() is not None:
            pytest.skip(f"the commit finished before {cut_by} could come in its middle")
        if time.monotonic() > deadline:
            commit.kill()
            commit.wait()
            raise AssertionError("the commit never began its copy")
        time.sleep(0.005)
    return commit


def test_a_commit_leaves_nothing_in_the_container_directory(daemon_factory, unique):
    d = daemon_factory()
    d.import_busybox()
    name = unique("staged")
    assert d.dockyard("run", "--name", name, "busybox", "sh", "-c", FILL).returncode == 0
    bundle = _bundle(d, name)
    before = sorted(p.name for p in bundle.iterdir())
    try:
        proc = d.dockyard("commit", name, f"{name}:c")
        assert proc.returncode == 0, proc.stderr
        assert sorted(p.name for p in bundle.iterdir()) == before
        out = d.dockyard("run", "--rm", f"{name}:c", "cat", "/many/f6000")
        assert out.stdout == "6000\n", out.stderr
    finally:
        d.dockyard("rm", "-f", name)
        d.dockyard("rmi", f"{name}:c")


def test_a_commit_cut_short_by_a_killed_daemon_is_swept_at_its_restart(daemon_factory, unique):
    d = daemon_factory()
    d.import_busybox()
    name = unique("cut")
    assert d.dockyard("run", "--name", name, "busybox", "sh", "-c", FILL).returncode == 0
    bundle = _bundle(d, name)
    commit = _commit_in_its_copy(d, name, bundle, "the daemon's kill")
    try:
        d.kill()
    finally:
        commit.communicate(timeout=60)
    assert _copies_in(bundle), "the killed commit left no copy: nothing to sweep"
    d.start()
    try:
        assert _copies_in(bundle) == []
        # The container is intact and a commit of it works.
        proc = d.dockyard("commit", name, f"{name}:c")
        assert proc.returncode == 0, proc.stderr
        assert _copies_in(bundle) == []
    finally:
        d.dockyard("rm", "-f", name)
        d.dockyard("rmi", f"{name}:c")


def test_rm_during_a_commit_waits_for_it_and_leaves_nothing(daemon_factory, unique):
    """The copy is made in the container's directory: an `rm -f` that comes in the
    middle waits for the commit (which succeeds) and then removes all of it."""
    d = daemon_factory()
    d.import_busybox()
    name = unique("rmmid")
    assert d.dockyard("run", "--name", name, "busybox", "sh", "-c", FILL).returncode == 0
    bundle = _bundle(d, name)
    commit = _commit_in_its_copy(d, name, bundle, "the rm")
    try:
        rm = d.dockyard("rm", "-f", name)
        out, err = commit.communicate(timeout=120)
        assert commit.returncode == 0, err
        assert rm.returncode == 0, rm.stderr
        assert not bundle.exists()
        proc = d.dockyard("run", "--rm", f"{name}:c", "cat", "/many/f6000")
        assert proc.stdout == "6000\n", proc.stderr
    finally:
        if commit.poll() is None:
            commit.kill()
            commit.wait()
        d.dockyard("rm", "-f", name)
        d.dockyard("rmi", f"{name}:c")
