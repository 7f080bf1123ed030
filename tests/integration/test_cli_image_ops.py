"""export, history, image prune, system df/prune and diff through the dockyard CLI,
checked against what is left in the data root."""

from __future__ import annotations

import io
import json
import re
import tarfile
import tempfile
from pathlib import Path

from tests.integration.test_cli_images import columns, small_rootfs


def layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def import_image(dockyard, tar: bytes, ref: str, *changes: str) -> str:
    args = ["import"]
    for c in changes:
        args += ["-c", c]
    # Through a file: the CLI runner's stdin is text.
    with tempfile.NamedTemporaryFile(suffix=".tar") as f:
        f.write(tar)
        f.flush()
        proc = dockyard(*args, f.name, *([ref] if ref else []))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def tar_names(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name.rstrip("/"): m for m in tar.getmembers()}


def store_contents(data_root: Path) -> tuple[set[str], set[str]]:
    blobs = {
        p.name for p in (data_root / "blobs" / "sha256").iterdir() if not p.name.startswith(".")
    }
    layers = {p.name for p in (data_root / "layers").iterdir() if not p.name.startswith(".")}
    return blobs, layers


def test_export_is_the_merged_tree_with_deletions_applied(daemon, dockyard, unique, tmp_path):
    name = unique("exp")
    proc = dockyard(
        "run", "--name", name, "busybox", "sh", "-c",
        "echo new > /added; rm /bin/cat; mkdir -p /d/sub; echo x > /d/sub/f",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    try:
        out = tmp_path / "fs.tar"
        proc = dockyard("export", "-o", str(out), name)
        assert proc.returncode == 0, proc.stderr
        members = tar_names(out.read_bytes())
        assert "added" in members and "d/sub/f" in members
        assert "bin/busybox" in members and "bin/sh" in members  # from the image
        assert "bin/cat" not in members  # deleted in the container: absent, no whiteout
        assert not any(".wh." in n for n in members)
        with tarfile.open(out) as tar:
            assert tar.extractfile("added").read() == b"new\n"
        # To stdout too, byte for byte the same tree.
        raw = daemon.request("GET", f"/containers/{name}/export")
        assert raw.status == 200 and raw.headers["content-type"] == "application/x-tar"
        assert set(tar_names(raw.body)) == set(members)
    finally:
        dockyard("rm", "-f", name)
    proc = dockyard("export", "-o", str(tmp_path / "x.tar"), name)
    assert proc.returncode != 0 and "No such container" in proc.stderr
    assert not (tmp_path / "x.tar").exists()


def test_export_refuses_a_terminal_and_a_missing_directory(dockyard, tmp_path):
    proc = dockyard("export", "-o", str(tmp_path / "nope" / "x.tar"), "whatever")
    assert proc.returncode == 1
    assert "invalid output path" in proc.stderr


def test_history_lists_entries_newest_first(daemon, dockyard, unique):
    ref = f"{unique('hist')}:1"
    image_id = import_image(dockyard, small_rootfs(), ref, 'CMD ["sh"]')
    try:
        proc = dockyard("history", ref)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert columns(lines[0]) == ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
        assert len(lines) == 2
        row = columns(lines[1])
        assert row[0] == image_id.removeprefix("sha256:")[:12]
        assert row[-1] == "Imported from -"
        api = json.loads(daemon.request("GET", f"/images/{ref}/history").body)
        assert [sorted(h) for h in api] == [
            ["Comment", "Created", "CreatedBy", "Id", "Size", "Tags"]
        ]
        assert api[0]["Id"] == image_id and api[0]["Tags"] == [ref]
        assert api[0]["Size"] == len(Path("/bin/busybox").read_bytes())
        # -H=false: exact bytes and RFC 3339 dates; -q: the ids only.
        raw = dockyard("history", "-H=false", "--no-trunc", ref).stdout.splitlines()[1]
        assert str(api[0]["Size"]) in raw and re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", raw)
        assert dockyard("history", "-q", "--no-trunc", ref).stdout.split() == [image_id]
    finally:
        dockyard("rmi", ref)
    proc = dockyard("history", "no-such-image-here")
    assert proc.returncode != 0 and "No such image" in proc.stderr


def test_image_prune_keeps_tagged_and_used_images_and_shared_layers(daemon_factory, tmp_path):
    d = daemon_factory()
    base = layer_tar({"shared": b"s" * 10000})
    base_id = import_image(d.dockyard, base, "base:1")
    # Two images over the same layer: untagging one leaves it dangling.
    d.dockyard("tag", "base:1", "other:1")
    top_id = import_image(d.dockyard, layer_tar({"top": b"t" * 5000}), "top:1")
    assert d.dockyard("rmi", "top:1").returncode == 0
    _, layers_before = store_contents(d.data_root)
    # Nothing dangling: a tagged image never goes without -a.
    dangling = import_image(d.dockyard, layer_tar({"junk": b"j" * 3000}), "junk:1")
    d.dockyard("tag", "junk:1", "junk:2")
    assert d.dockyard("rmi", "junk:1").returncode == 0
    assert d.dockyard("rmi", "junk:2").returncode == 0  # deleted, not dangling
    assert dangling not in d.dockyard("images", "-q", "--no-trunc").stdout
    untagged = import_image(d.dockyard, layer_tar({"u": b"u" * 4000}), "")
    proc = d.dockyard("image", "prune", "-f")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[:2] == ["Deleted Images:", f"deleted: {untagged}"]
    assert re.search(r"Total reclaimed space: 4kB", proc.stdout), proc.stdout
    assert untagged not in d.dockyard("images", "-q", "--no-trunc").stdout
    assert base_id in d.dockyard("images", "-q", "--no-trunc").stdout
    assert store_contents(d.data_root)[1] == layers_before  # base's layer stays
    del top_id
    # -a: every image no container uses; one used by a stopped container stays.
    busy = import_image(d.dockyard, small_rootfs(), "busy:1", 'CMD ["sh"]')
    assert d.dockyard("create", "--name", "user", "busy:1").returncode == 0
    proc = d.dockyard("image", "prune", "-a", "-f")
    assert proc.returncode == 0, proc.stderr
    assert "untagged: base:1" in proc.stdout and "untagged: other:1" in proc.stdout
    assert f"deleted: {base_id}" in proc.stdout
    assert d.dockyard("images", "-q", "--no-trunc").stdout.split() == [busy]
    d.dockyard("rm", "user")
    assert d.dockyard("rmi", "busy:1").returncode == 0
    # Nothing left that nothing references: no blob, no layer.
    assert store_contents(d.data_root) == (set(), set())


def test_image_prune_filters(daemon_factory):
    d = daemon_factory()
    import_image(d.dockyard, layer_tar({"a": b"a"}), "", "LABEL keep=yes")
    gone = import_image(d.dockyard, layer_tar({"b": b"b"}), "")
    proc = d.dockyard("image", "prune", "-f", "--filter", "label!=keep")
    assert proc.returncode == 0, proc.stderr
    assert [line for line in proc.stdout.splitlines() if line.startswith("deleted")] == [
        f"deleted: {gone}"
    ]
    proc = d.dockyard("image", "prune", "-f", "--filter", "until=1h")  # made after: kept
    assert "Deleted Images" not in proc.stdout
    assert len(d.dockyard("images", "-q").stdout.split()) == 1
    bad = d.dockyard("image", "prune", "-f", "--filter", "colour=red")
    assert bad.returncode != 0 and "invalid filter 'colour'" in bad.stderr
    bad = d.request("POST", '/images/prune?filters={"dangling":["maybe"]}')
    assert bad.status == 400 and b"invalid filter 'dangling=maybe'" in bad.body


def test_rmi_of_images_sharing_layers_leaves_only_the_shared_ones(daemon_factory):
    d = daemon_factory()
    tar = layer_tar({"f": b"f" * 1000})
    first = import_image(d.dockyard, tar, "one:1", "LABEL n=1")
    second = import_image(d.dockyard, tar, "two:1", "LABEL n=2")
    assert first != second
    blobs, layers = store_contents(d.data_root)
    assert len(layers) == 1  # one layer, shared
    assert d.dockyard("rmi", "one:1").returncode == 0
    after_blobs, after_layers = store_contents(d.data_root)
    assert after_layers == layers and first.removeprefix("sha256:") not in after_blobs
    assert d.dockyard("rmi", "two:1").returncode == 0
    assert store_contents(d.data_root) == (set(), set())


def test_system_df(daemon_factory):
    d = daemon_factory()
    image_id = import_image(d.dockyard, small_rootfs(), "dfimg:1", 'CMD ["sh"]')
    proc = d.dockyard(
        "run",
        "--name",
        "dfc",
        "-v",
        "dfvol:/data",
        "dfimg:1",
        "/bin/sh",
        "-c",
        "echo hi > /data/f; echo abc > /x",
    )
    assert proc.returncode == 0, proc.stderr
    try:
        proc = d.dockyard("system", "df")
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert columns(lines[0]) == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
        rows = {columns(line)[0]: columns(line)[1:] for line in lines[1:]}
        assert rows["Images"][:2] == ["1", "1"]
        # "abc\n" (directories made for mounts count nothing); stopped: reclaimable.
        assert rows["Containers"] == ["1", "0", "4B", "4B (100%)"]
        assert rows["Local Volumes"][:3] == ["1", "1", "3B"]
        assert rows["Build Cache"] == ["0", "0", "0B", "0B"]
        api = json.loads(d.request("GET", "/system/df").body)
        assert api["Images"][0]["Id"] == image_id and api["Images"][0]["Containers"] == 1
        assert api["LayersSize"] == api["Images"][0]["Size"] > 0
        assert api["Containers"][0]["SizeRw"] == 4
        assert api["Volumes"][0]["UsageData"] == {"Size": 3, "RefCount": 1}
        only = json.loads(d.request("GET", "/v1.45/system/df?type=volume").body)
        assert only["Images"] is None and only["Containers"] is None and len(only["Volumes"]) == 1
        verbose = d.dockyard("system", "df", "-v").stdout
        assert "Images space usage:" in verbose and "dfimg" in verbose
        assert "Containers space usage:" in verbose and "dfc" in verbose
        assert "Local Volumes space usage:" in verbose and "dfvol" in verbose
        assert "Build cache usage: 0B" in verbose
    finally:
        d.dockyard("rm", "-v", "dfc")
        d.dockyard("volume", "rm", "dfvol")


def test_system_prune_removes_stopped_containers_and_dangling_images(daemon_factory):
    d = daemon_factory()
    import_image(d.dockyard, small_rootfs(), "keep:1", 'CMD ["sh"]')
    assert d.dockyard("create", "--name", "stopped", "keep:1").returncode == 0
    dangling = import_image(d.dockyard, layer_tar({"x": b"x"}), "")
    proc = d.dockyard("system", "prune", "-f")
    assert proc.returncode == 0, proc.stderr
    assert "Deleted Containers:" in proc.stdout and f"deleted: {dangling}" in proc.stdout
    assert d.dockyard("ps", "-aq").stdout.strip() == ""
    assert d.dockyard("images", "--format", "{{.Repository}}").stdout.split() == ["keep"]
    proc = d.dockyard("system", "prune", "-a", "-f")
    assert "untagged: keep:1" in proc.stdout
    assert store_contents(d.data_root) == (set(), set())


def test_diff_reports_adds_changes_deletes_and_opaque_dirs(daemon, dockyard, unique):
    name = unique("diff")
    script = (
        "echo x > /newfile; echo y >> /etc/passwd; rm /bin/cat; "
        "rm -rf /var/spool; mkdir /var/spool; echo m > /var/spool/new"
    )
    assert dockyard("run", "--name", name, "busybox", "sh", "-c", script).returncode == 0
    try:
        proc = dockyard("diff", name)
        assert proc.returncode == 0, proc.stderr
        lines = set(proc.stdout.splitlines())
        assert {"A /newfile", "C /etc", "C /etc/passwd", "C /bin", "D /bin/cat"} <= lines
        # A directory deleted and made again is opaque: docker reports it deleted,
        # and what it holds now as added.
        assert "D /var/spool" in lines and "A /var/spool/new" in lines, lines
        assert not any(".wh." in line for line in lines)
    finally:
        dockyard("rm", name)


def test_load_and_rmi_leave_nothing_and_keep_what_another_image_shares(
    daemon, daemon_factory, tmp_path
):
    archive = tmp_path / "bb.tar"
    assert daemon.dockyard("save", "-o", str(archive), "busybox").returncode == 0
    d = daemon_factory()
    assert d.dockyard("load", "-i", str(archive)).returncode == 0
    # A loaded image runs, and its container exports its change over the image.
    assert d.dockyard("run", "--name", "cc", "busybox", "sh", "-c", "echo 1 > /f").returncode == 0
    assert "f" in tar_names(d.request("GET", "/containers/cc/export").body)
    d.dockyard("rm", "cc")
    base_layers = store_contents(d.data_root)[1]
    assert len(base_layers) == 1
    import_image(d.dockyard, layer_tar({"extra": b"e"}), "extra:1")
    assert d.dockyard("tag", "busybox", "bb2:1").returncode == 0
    assert d.dockyard("rmi", "busybox").returncode == 0  # untags only: bb2:1 still names it
    assert d.dockyard("run", "--rm", "bb2:1", "true").returncode == 0
    assert d.dockyard("rmi", "bb2:1").returncode == 0
    _, layers = store_contents(d.data_root)
    assert not (base_layers & layers)  # busybox's layer went with its last image
    assert d.dockyard("rmi", "extra:1").returncode == 0
    assert store_contents(d.data_root) == (set(), set())
