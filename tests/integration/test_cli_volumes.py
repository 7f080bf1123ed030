"""Volumes through the CLI: named and anonymous, --mount, --volumes-from, rm -v, the
`volume` command, copy-up of the image's content, and the refusals dockerd gives."""

from __future__ import annotations

import json


def _inspect(dockyard, *args: str):
    proc = dockyard(*args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_named_volume_outlives_its_container(dockyard, unique) -> None:
    vol = unique("vol")
    proc = dockyard(
        "run", "--rm", "-v", f"{vol}:/data", "busybox", "sh", "-c", "echo kept > /data/f"
    )
    assert proc.returncode == 0, proc.stderr
    try:
        proc = dockyard(
            "run", "--rm", "-v", f"{vol}:/d:ro", "busybox", "sh", "-c", "cat /d/f; echo x > /d/g"
        )
        assert proc.stdout == "kept\n"
        assert "Read-only file system" in proc.stderr
        info = _inspect(dockyard, "volume", "inspect", vol)[0]
        assert info["Name"] == vol and info["Driver"] == "local" and info["Scope"] == "local"
        assert info["Mountpoint"].endswith(f"/volumes/{vol}/_data")
        assert dockyard("volume", "ls", "-q").stdout.split().count(vol) == 1
    finally:
        assert dockyard("volume", "rm", vol).returncode == 0


def test_volume_in_use_is_not_removed(dockyard, unique) -> None:
    vol, name = unique("vol"), unique("c")
    assert (
        dockyard("create", "--name", name, "-v", f"{vol}:/data", "busybox", "true").returncode == 0
    )
    try:
        proc = dockyard("volume", "rm", vol)
        assert proc.returncode == 1
        cid = _inspect(dockyard, "inspect", name)[0]["Id"]
        assert f"remove {vol}: volume is in use - [{cid}]" in proc.stderr
        # -f does not override "in use" either (dockerd)
        assert dockyard("volume", "rm", "-f", vol).returncode == 1
        # rm -v keeps a named volume
        assert dockyard("rm", "-v", name).returncode == 0
        assert vol in dockyard("volume", "ls", "-q").stdout.split()
    finally:
        dockyard("rm", "-f", name)
        dockyard("volume", "rm", "-f", vol)


def test_anonymous_volumes_and_rm_v(dockyard, unique) -> None:
    name = unique("c")
    proc = dockyard("run", "--name", name, "-v", "/anon", "busybox", "sh", "-c", "echo a > /anon/f")
    assert proc.returncode == 0, proc.stderr
    mounts = _inspect(dockyard, "inspect", name)[0]["Mounts"]
    assert [(m["Type"], m["Destination"], m["RW"]) for m in mounts] == [("volume", "/anon", True)]
    vol = mounts[0]["Name"]
    assert len(vol) == 64
    labels = _inspect(dockyard, "volume", "inspect", vol)[0]["Labels"]
    assert "com.docker.volume.anonymous" in labels
    assert dockyard("rm", "-v", name).returncode == 0
    assert vol not in dockyard("volume", "ls", "-q").stdout.split()


def test_rm_without_v_keeps_the_anonymous_volume_and_prune_removes_it(dockyard, unique) -> None:
    name = unique("c")
    assert dockyard("run", "--name", name, "-v", "/anon", "busybox", "true").returncode == 0
    vol = _inspect(dockyard, "inspect", name)[0]["Mounts"][0]["Name"]
    assert dockyard("rm", name).returncode == 0
    assert vol in dockyard("volume", "ls", "-q", "-f", "dangling=true").stdout.split()
    proc = dockyard("volume", "prune", "-f")
    assert proc.returncode == 0, proc.stderr
    assert vol in proc.stdout
    assert vol not in dockyard("volume", "ls", "-q").stdout.split()


def test_volumes_from_shares_data_read_only(dockyard, unique) -> None:
    vol, src = unique("vol"), unique("src")
    assert (
        dockyard("create", "--name", src, "-v", f"{vol}:/shared", "busybox", "true").returncode == 0
    )
    try:
        assert (
            dockyard(
                "run", "--rm", "-v", f"{vol}:/x", "busybox", "sh", "-c", "echo hi > /x/f"
            ).returncode
            == 0
        )
        proc = dockyard(
            "run",
            "--rm",
            "--volumes-from",
            f"{src}:ro",
            "busybox",
            "sh",
            "-c",
            "cat /shared/f; touch /shared/g",
        )
        assert proc.stdout == "hi\n"
        assert "Read-only file system" in proc.stderr
        proc = dockyard("run", "--rm", "--volumes-from", "no-such-container-x", "busybox", "true")
        assert proc.returncode == 125
        assert "No such container: no-such-container-x" in proc.stderr
    finally:
        dockyard("rm", "-f", src)
        dockyard("volume", "rm", vol)


def test_mount_flag_volume_bind_tmpfs(dockyard, daemon, unique) -> None:
    vol = unique("vol")
    host = daemon.base / unique("dir")
    host.mkdir()
    (host / "h").write_text("host\n")
    proc = dockyard(
        "run", "--rm",
        "--mount", f"type=volume,src={vol},dst=/v,volume-label=team=a",
        "--mount", f"type=bind,source={host},target=/b,readonly",
        "--mount", "type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770",
        "busybox", "sh", "-c",
        "echo v > /v/f; cat /b/h; touch /b/x 2>/dev/null || echo ro; stat -c %a /t; df -k /t | tail -1",
    )  # fmt: skip
    try:
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert lines[:3] == ["host", "ro", "1770"]
        assert lines[3].split()[1] == "1024"
        labels = _inspect(dockyard, "volume", "inspect", vol)[0]["Labels"]
        assert labels == {"team": "a"}
        assert vol in dockyard("volume", "ls", "-q", "--filter", "label=team=a").stdout.split()
        assert vol not in dockyard("volume", "ls", "-q", "--filter", "label=team=b").stdout.split()
    finally:
        dockyard("volume", "rm", vol)


def test_mount_bind_source_must_exist(dockyard, daemon, unique) -> None:
    missing = daemon.base / unique("missing")
    proc = dockyard("run", "--rm", "--mount", f"type=bind,src={missing},dst=/m", "busybox", "true")
    assert proc.returncode == 125
    assert (
        f'invalid mount config for type "bind": bind source path does not exist: {missing}'
        in proc.stderr
    )
    assert not missing.exists()


def test_image_volume_is_filled_from_the_image(dockyard, daemon, unique) -> None:
    # busybox has no VOLUME; give one through the API's Config.Volumes on a path with content
    name = unique("c")
    proc = dockyard("run", "--name", name, "-v", "/etc", "busybox", "cat", "/etc/passwd")
    try:
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("root:")
        vol = _inspect(dockyard, "inspect", name)[0]["Mounts"][0]
        assert vol["Destination"] == "/etc"
        # nocopy: the image's /etc is not copied in; only the container's own files
        # are mounted on top, as dockerd shows them
        proc = dockyard("run", "--rm", "-v", f"{unique('nc')}:/etc:nocopy", "busybox", "ls", "/etc")
    finally:
        dockyard("rm", "-v", name)
    nc = [v for v in dockyard("volume", "ls", "-q").stdout.split() if v.startswith("nc")]
    for v in nc:
        dockyard("volume", "rm", v)
    assert proc.stdout.split() == ["hostname", "hosts", "resolv.conf"], proc.stdout


def test_bad_volume_names_and_options(dockyard) -> None:
    for bad in ("a/b", "..", "../x", "_x", "a"):
        proc = dockyard("volume", "create", bad)
        assert proc.returncode == 1
        assert f'"{bad}" includes invalid characters for a local volume name' in proc.stderr
    proc = dockyard("run", "--rm", "-v", "../etc:/x", "busybox", "true")
    assert proc.returncode == 125
    assert "includes invalid characters for a local volume name" in proc.stderr
    proc = dockyard("volume", "create", "-o", "bogus=1", "okname1")
    assert proc.returncode == 1 and 'invalid option key: "bogus"' in proc.stderr
    proc = dockyard("volume", "create", "-d", "nfsplugin", "okname2")
    assert proc.returncode == 1 and 'plugin "nfsplugin" not found' in proc.stderr
    proc = dockyard("volume", "rm", "no-such-volume-x")
    assert proc.returncode == 1 and "no such volume" in proc.stderr
    assert dockyard("volume", "rm", "-f", "no-such-volume-x").returncode == 0


def test_a_refused_create_leaves_no_volume_behind(dockyard, unique, tmp_path) -> None:
    """dockerd checks every mount before it makes a volume: a run refused for its second
    mount or its bogus --mount leaves neither the named nor the anonymous one."""
    vol = unique("left")
    before = set(dockyard("volume", "ls", "-q").stdout.split())
    refused = [
        ("-v", f"{vol}:/x", "-v", f"{tmp_path}:/x"),
        ("-v", f"{vol}:/x", "-v", "/anon", "--mount", "type=bogus,dst=/y"),
    ]
    for flags in refused:
        proc = dockyard("run", "--rm", *flags, "busybox", "true")
        assert proc.returncode == 125, proc.stderr
        assert set(dockyard("volume", "ls", "-q").stdout.split()) == before, flags
    # An unknown network is not a refused create: dockerd creates the container (and
    # its volumes) and fails the start; --rm then removes it with its anonymous volume
    # and keeps the named one, as `rm -v` does.
    cname = unique("nonetbox")
    flags = ("-v", f"{vol}:/x", "-v", "/anon", "--network", unique("nonet"))
    proc = dockyard("run", "--rm", "--name", cname, *flags, "busybox", "true")
    assert proc.returncode == 125 and "not found" in proc.stderr, proc.stderr
    assert set(dockyard("volume", "ls", "-q").stdout.split()) == before | {vol}
    assert dockyard("ps", "-aq", "--filter", f"name=^{cname}$").stdout.strip() == ""
    dockyard("volume", "rm", vol)
    # a create that succeeds still keeps the volume it made
    proc = dockyard("run", "--rm", "-v", f"{vol}:/x", "busybox", "true")
    assert proc.returncode == 0, proc.stderr
    assert vol in dockyard("volume", "ls", "-q").stdout.split()
    dockyard("volume", "rm", vol)


def test_a_volume_on_etc_keeps_hosts_hostname_and_resolv_conf(dockyard, unique) -> None:
    """dockerd mounts in path order: the container's /etc/hosts, /etc/hostname and
    /etc/resolv.conf go on top of a volume or tmpfs on /etc, not under it."""
    vol = unique("etc")
    script = "cat /etc/hostname; grep -c localhost /etc/hosts; test -s /etc/resolv.conf && echo dns; test -f /etc/passwd && echo copied"
    try:
        proc = dockyard(
            "run", "--rm", "-h", "etcbox", "-v", f"{vol}:/etc", "busybox", "sh", "-c", script
        )
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert lines[0] == "etcbox" and int(lines[1]) >= 1 and lines[2:] == ["dns", "copied"]
    finally:
        dockyard("volume", "rm", vol)
    proc = dockyard("run", "--rm", "-h", "etcbox", "--tmpfs", "/etc", "busybox", "sh", "-c", script)
    assert proc.stdout.splitlines()[:3] == ["etcbox", "2", "dns"], proc.stderr


def test_tmpfs_volume_driver_options(dockyard, unique) -> None:
    vol = unique("tv")
    proc = dockyard(
        "volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=2m", vol
    )
    assert proc.returncode == 0, proc.stderr
    try:
        proc = dockyard(
            "run", "--rm", "-v", f"{vol}:/t", "busybox", "sh", "-c", "df -k /t | tail -1"
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split()[1] == "2048"
    finally:
        assert dockyard("volume", "rm", vol).returncode == 0


def test_ps_filter_volume(dockyard, unique) -> None:
    vol, name = unique("fv"), unique("c")
    assert (
        dockyard("create", "--name", name, "-v", f"{vol}:/data", "busybox", "true").returncode == 0
    )
    try:
        for value in (vol, "/data"):
            proc = dockyard("ps", "-a", "--format", "{{.Names}}", "--filter", f"volume={value}")
            assert proc.stdout.split() == [name], proc.stderr
        proc = dockyard("ps", "-a", "-q", "--filter", "volume=other-volume")
        assert proc.stdout == ""
    finally:
        dockyard("rm", "-v", name)
        dockyard("volume", "rm", vol)


def test_local_volume_bound_to_a_host_directory(dockyard, daemon, unique) -> None:
    vol = unique("bv")
    host = daemon.base / unique("hostdir")
    host.mkdir()
    (host / "seed").write_text("seed\n")
    proc = dockyard(
        "volume", "create", "-o", "type=none", "-o", "o=bind", "-o", f"device={host}", vol
    )
    assert proc.returncode == 0, proc.stderr
    try:
        proc = dockyard(
            "run", "--rm", "-v", f"{vol}:/b", "busybox", "sh", "-c", "cat /b/seed; echo w > /b/w"
        )
        assert (proc.returncode, proc.stdout) == (0, "seed\n"), proc.stderr
        assert (host / "w").read_text() == "w\n"
    finally:
        assert dockyard("volume", "rm", vol).returncode == 0
    # removing the volume unmounts it and leaves the host directory's files alone
    assert (host / "seed").read_text() == "seed\n"
