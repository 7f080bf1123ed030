"""Layer unpacking: fidelity (owners, modes, xattrs, whiteouts) and hostile tars."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import stat
import tarfile
from pathlib import Path

import pytest
from child_processes import tar_children

from dockyard.errors import InvalidParameter
from dockyard.image.tarsafe import unpack_layer

# Runs without root too: chown, mknod and xattrs then go to the recording kernel
# (tests/unit/conftest.py); only tests that check those results on disk need root.
pytestmark = pytest.mark.usefixtures("unpack_kernel")
needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="checks owners, device nodes or trusted xattrs on disk"
)


@pytest.fixture(autouse=True, params=[False, True], ids=["python", "tar-assist"])
def tar_assist(request, monkeypatch):
    """Every test twice: the unpacker alone, and with GNU tar making the plain
    entries (image/tar_assist) where the kernel is the real one (as root);
    either way no tar process is left behind, whatever the test did."""
    monkeypatch.setitem(unpack_layer.__kwdefaults__, "tar_assist", request.param)
    yield request.param
    assert tar_children() == []


def make_tar(entries: list[dict]) -> bytes:
    """entries: {name, type?, data?, linkname?, mode?, uid?, gid?, mtime?, xattrs?, major?, minor?}"""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e["name"])
            info.type = e.get("type", tarfile.REGTYPE)
            info.mode = e.get("mode", 0o755 if info.type == tarfile.DIRTYPE else 0o644)
            info.uid = e.get("uid", 0)
            info.gid = e.get("gid", 0)
            info.mtime = e.get("mtime", 1_600_000_000)
            info.linkname = e.get("linkname", "")
            info.devmajor = e.get("major", 0)
            info.devminor = e.get("minor", 0)
            if "xattrs" in e:
                info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in e["xattrs"].items()}
            data = e.get("data", b"")
            info.size = len(data) if info.type == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if info.size else None)
    return buf.getvalue()


def D(name: str, **kw) -> dict:
    return {"name": name, "type": tarfile.DIRTYPE, **kw}


def F(name: str, data: bytes = b"", **kw) -> dict:
    return {"name": name, "data": data, **kw}


def L(name: str, target: str, **kw) -> dict:
    return {"name": name, "type": tarfile.SYMTYPE, "linkname": target, **kw}


def H(name: str, target: str) -> dict:
    return {"name": name, "type": tarfile.LNKTYPE, "linkname": target}


@pytest.fixture
def sandbox(tmp_path):
    """A dest dir plus an 'outside' dir next to it that must stay untouched."""
    dest = tmp_path / "layer"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("host secret\n")
    return dest, outside


def outside_untouched(outside) -> bool:
    return (
        sorted(os.listdir(outside)) == ["passwd"]
        and (outside / "passwd").read_text() == "host secret\n"
    )


def test_unpacks_tree_with_metadata(tmp_path, privileged):
    dest = tmp_path / "d"
    tar = make_tar(
        [
            D("./", mode=0o755),
            D("etc", mode=0o755, mtime=1_500_000_000),
            F("etc/hostname", b"box\n", uid=1000, gid=1001, mtime=1_400_000_000),
            D("usr/bin", mode=0o755),  # parent "usr" not in the tar: created
            F("usr/bin/su", b"\x7fELF", mode=0o4755),
            F(
                "usr/bin/ping",
                b"\x7fELF",
                xattrs={
                    "security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
                },
            ),
            F("usr/bin/tagged", b"", xattrs={"trusted.dockyard": "v"}),
            L("bin", "usr/bin"),
            L("etc/abs", "/etc/hostname", uid=7, gid=8),
            H("usr/bin/su2", "usr/bin/su"),
            {"name": "dev/null", "type": tarfile.CHRTYPE, "major": 1, "minor": 3, "mode": 0o666},
            {"name": "run/fifo", "type": tarfile.FIFOTYPE, "mode": 0o600},
        ]
    )
    size = unpack_layer(io.BytesIO(tar), str(dest))
    assert size == len(b"box\n") + 4 + 4
    assert privileged.owner(dest / "etc/hostname") == (1000, 1001)
    assert os.stat(dest / "etc/hostname").st_mtime == 1_400_000_000
    assert (dest / "etc/hostname").read_bytes() == b"box\n"
    assert os.stat(dest / "etc").st_mtime == 1_500_000_000  # dir mtime survives its children
    assert stat.S_IMODE(os.stat(dest / "usr/bin/su").st_mode) == 0o4755  # setuid kept
    assert privileged.xattr(dest / "usr/bin/tagged", "trusted.dockyard") == b"v"
    assert os.readlink(dest / "bin") == "usr/bin"
    assert os.readlink(dest / "etc/abs") == "/etc/hostname"
    assert privileged.owner(dest / "etc/abs") == (7, 8)  # the link's, not its target's
    assert os.stat(dest / "usr/bin/su2").st_ino == os.stat(dest / "usr/bin/su").st_ino
    assert privileged.device(dest / "dev/null") == (stat.S_IFCHR, 1, 3)
    assert stat.S_ISFIFO(os.lstat(dest / "run/fifo").st_mode)


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress, lambda b: b])
def test_compressed_layers_detected_by_magic(tmp_path, compress):
    dest = tmp_path / "d"
    unpack_layer(io.BytesIO(compress(make_tar([F("a/b", b"hello")]))), str(dest))
    assert (dest / "a/b").read_bytes() == b"hello"


def test_zstd_layers_unpack(tmp_path):
    import zstandard

    data = zstandard.ZstdCompressor().compress(make_tar([F("f", b"zstd data")]))
    unpack_layer(io.BytesIO(data), str(tmp_path / "d"))
    assert (tmp_path / "d" / "f").read_bytes() == b"zstd data"


def test_corrupt_zstd_refused_clearly(tmp_path):
    with pytest.raises(InvalidParameter, match="invalid layer archive"):
        unpack_layer(io.BytesIO(b"\x28\xb5\x2f\xfd" + b"\xff" * 100), str(tmp_path / "d"))


def test_device_nodes_refused_when_untrusted(tmp_path):
    info = tarfile.TarInfo("dev/sda")
    info.type, info.devmajor, info.devminor = tarfile.BLKTYPE, 8, 0
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.addfile(info)
    with pytest.raises(InvalidParameter, match="refusing device node 'dev/sda'"):
        unpack_layer(io.BytesIO(buf.getvalue()), str(tmp_path / "d"), allow_devices=False)
    assert not (tmp_path / "d" / "dev" / "sda").exists()


def test_garbage_refused(tmp_path):
    with pytest.raises(InvalidParameter, match="invalid layer archive"):
        unpack_layer(io.BytesIO(b"this is not a tar" * 100), str(tmp_path / "d"))


def test_whiteouts_become_overlay_whiteouts(tmp_path, privileged):
    dest = tmp_path / "d"
    tar = make_tar(
        [
            D("etc"),
            F("etc/.wh.motd"),
            D("var/cache"),
            F("var/cache/.wh..wh..opq"),
            F("var/cache/new", b"n"),
        ]
    )
    unpack_layer(io.BytesIO(tar), str(dest))
    assert privileged.device(dest / "etc/motd") == (stat.S_IFCHR, 0, 0)
    assert not os.path.lexists(dest / "etc/.wh.motd")
    assert privileged.xattr(dest / "var/cache", "trusted.overlay.opaque") == b"y"
    assert os.listdir(dest / "var/cache") == ["new"]


def test_later_entries_replace_earlier_ones(tmp_path):
    dest = tmp_path / "d"
    tar = make_tar(
        [
            F("x", b"1"),
            F("x", b"2"),
            D("d"),
            F("d/keep", b"k"),
            D("d", mode=0o700),
            L("y", "x"),
            F("y", b"file"),
        ]
    )
    unpack_layer(io.BytesIO(tar), str(dest))
    assert (dest / "x").read_bytes() == b"2"
    assert (dest / "d/keep").read_bytes() == b"k"  # dir over dir merges
    assert stat.S_IMODE(os.stat(dest / "d").st_mode) == 0o700
    assert not os.path.islink(dest / "y") and (dest / "y").read_bytes() == b"file"


def test_absolute_names_are_made_relative(sandbox):
    dest, outside = sandbox
    unpack_layer(
        io.BytesIO(make_tar([F(str(outside / "passwd"), b"pwned"), F("/etc/x", b"x")])), str(dest)
    )
    assert outside_untouched(outside)
    assert (dest / "etc/x").read_bytes() == b"x"
    assert (dest / str(outside / "passwd").lstrip("/")).read_bytes() == b"pwned"


@pytest.mark.parametrize("name", ["../../etc/x", "../passwd", "a/../../x", "/../x", ".."])
def test_dotdot_escape_refused(sandbox, name):
    dest, outside = sandbox
    with pytest.raises(InvalidParameter) as exc:
        unpack_layer(io.BytesIO(make_tar([F(name, b"pwned")])), str(dest))
    assert name in exc.value.message and "outside of the layer" in exc.value.message
    assert outside_untouched(outside)


def test_write_through_symlink_stays_inside(sandbox):
    """evil -> <outside>, then evil/passwd: resolved inside dest, as Docker's chroot does."""
    dest, outside = sandbox
    tar = make_tar(
        [
            L("evil", str(outside)),
            F("evil/passwd", b"pwned"),
            L("rel", "../../.."),
            F("rel/x", b"y"),
        ]
    )
    unpack_layer(io.BytesIO(tar), str(dest))
    assert outside_untouched(outside)
    assert os.readlink(dest / "evil") == str(outside)  # the link itself is kept
    assert (dest / str(outside).lstrip("/") / "passwd").read_bytes() == b"pwned"
    assert (dest / "x").read_bytes() == b"y"  # ../../.. clamps at the layer root


def test_symlink_root_then_etc_passwd(sandbox):
    dest, outside = sandbox
    tar = make_tar([L("evil", "/"), F("evil/etc/passwd", b"pwned")])
    before = Path("/etc/passwd").read_bytes()
    unpack_layer(io.BytesIO(tar), str(dest))
    assert Path("/etc/passwd").read_bytes() == before
    assert (dest / "etc/passwd").read_bytes() == b"pwned"


def test_symlink_chain_traversal_stays_inside(sandbox):
    dest, outside = sandbox
    up = os.path.relpath(outside, dest / "a" / "b")
    tar = make_tar(
        [
            D("a/b"),
            L("a/b/c", up),
            L("a/link", "b/c"),
            L("hop", "a/link"),
            F("hop/passwd", b"pwned"),
            F("hop/new", b"n"),
        ]
    )
    unpack_layer(io.BytesIO(tar), str(dest))
    assert outside_untouched(outside)


def test_symlink_as_final_component_is_replaced_not_followed(sandbox):
    dest, outside = sandbox
    tar = make_tar([L("victim", str(outside / "passwd")), F("victim", b"pwned")])
    unpack_layer(io.BytesIO(tar), str(dest))
    assert outside_untouched(outside)
    assert (dest / "victim").read_bytes() == b"pwned" and not os.path.islink(dest / "victim")


def test_symlink_loop_refused(sandbox):
    dest, outside = sandbox
    with pytest.raises(InvalidParameter, match="too many levels of symbolic links"):
        unpack_layer(io.BytesIO(make_tar([L("a", "b"), L("b", "a"), F("a/x")])), str(dest))


@pytest.mark.parametrize("target", ["/etc/shadow", "../../etc/shadow", "evil/passwd"])
def test_hardlink_outside_refused(sandbox, target):
    dest, outside = sandbox
    tar = make_tar([L("evil", str(outside)), H("stolen", target)])
    with pytest.raises(InvalidParameter) as exc:
        unpack_layer(io.BytesIO(tar), str(dest))
    assert "stolen" in exc.value.message
    assert outside_untouched(outside)
    assert not os.path.lexists(dest / "stolen")


def test_hardlink_to_symlink_links_the_symlink_itself(sandbox):
    dest, outside = sandbox
    tar = make_tar([L("lnk", str(outside / "passwd")), H("lnk2", "lnk")])
    unpack_layer(io.BytesIO(tar), str(dest))
    assert os.path.islink(dest / "lnk2")
    assert os.lstat(dest / "lnk2").st_ino != os.stat(outside / "passwd").st_ino


def test_overlay_control_xattrs_dropped(tmp_path, privileged):
    dest = tmp_path / "d"
    tar = make_tar(
        [D("d", xattrs={"trusted.overlay.redirect": "/etc", "trusted.overlay.opaque": "y"})]
    )
    unpack_layer(io.BytesIO(tar), str(dest))
    assert privileged.xattr(dest / "d", "trusted.overlay.opaque") == b"y"
    assert privileged.xattr(dest / "d", "trusted.overlay.redirect") is None


def test_file_as_directory_refused(tmp_path):
    with pytest.raises(InvalidParameter, match="is not a directory"):
        unpack_layer(io.BytesIO(make_tar([F("f"), F("f/x")])), str(tmp_path / "d"))


def test_dot_slash_names_from_tar_c_dot(tmp_path):
    """`tar -C rootfs -c .` (what `docker import` users feed) names entries "./etc/..."."""
    src = tmp_path / "src"
    (src / "etc").mkdir(parents=True)
    (src / "etc/os-release").write_bytes(b"ID=x\n")
    os.chmod(src, 0o750)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(src, arcname=".")
    dest = tmp_path / "d"
    unpack_layer(io.BytesIO(buf.getvalue()), str(dest))
    assert (dest / "etc/os-release").read_bytes() == b"ID=x\n"
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o750  # "./" entry applies to the root


def test_symlink_xattrs_and_times_apply_to_the_link(sandbox, privileged):
    dest, outside = sandbox
    before = os.stat(outside / "passwd")
    tar = make_tar(
        [L("lnk", str(outside / "passwd"), mtime=1_000_000_000, xattrs={"trusted.t": "v"})]
    )
    unpack_layer(io.BytesIO(tar), str(dest))
    assert os.lstat(dest / "lnk").st_mtime == 1_000_000_000
    assert privileged.xattr(dest / "lnk", "trusted.t") == b"v"
    after = os.stat(outside / "passwd")
    assert (after.st_mtime_ns, after.st_mode) == (before.st_mtime_ns, before.st_mode)
    assert outside_untouched(outside)


def test_truncated_archive_refused(tmp_path):
    tar = make_tar([F("big", b"x" * 100_000)])
    with pytest.raises(InvalidParameter, match="invalid layer archive"):
        unpack_layer(io.BytesIO(tar[:50_000]), str(tmp_path / "d"))


@pytest.mark.parametrize("name", [".wh..", ".wh...", "d/.wh.."])
def test_whiteout_of_dot_or_dotdot_refused(tmp_path, name):
    with pytest.raises(InvalidParameter, match="invalid whiteout"):
        unpack_layer(io.BytesIO(make_tar([F(name)])), str(tmp_path / "d"))


def test_whiteout_through_symlinked_parent_stays_inside(sandbox, privileged):
    dest, outside = sandbox
    unpack_layer(io.BytesIO(make_tar([L("evil", str(outside)), F("evil/.wh.passwd")])), str(dest))
    assert outside_untouched(outside)
    inner = dest / str(outside).lstrip("/") / "passwd"
    assert privileged.device(inner) == (stat.S_IFCHR, 0, 0)


def test_opaque_marker_through_symlink_stays_inside(sandbox):
    dest, outside = sandbox
    unpack_layer(io.BytesIO(make_tar([L("evil", str(outside)), F("evil/.wh..wh..opq")])), str(dest))
    with pytest.raises(OSError):
        os.getxattr(outside, "trusted.overlay.opaque")


def _snapshot(root, skip) -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if os.path.commonpath([dirpath, skip]) == str(skip):
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            if p == str(skip):
                continue
            st = os.lstat(p)
            content = Path(p).read_bytes() if stat.S_ISREG(st.st_mode) else None
            out[p] = (st.st_mode, st.st_mtime_ns, content)
    return out


# DOCKYARD_FUZZ_SEEDS=3000 for a longer run (about 8 s).
@pytest.mark.parametrize("seed", range(int(os.environ.get("DOCKYARD_FUZZ_SEEDS", "60"))))
def test_random_hostile_tars_never_touch_the_outside(tmp_path, seed):
    """Random mixes of names, '..', symlinks (absolute, relative, to the
    outside) and hardlinks: whatever is refused or accepted, only dest changes."""
    import random

    from dockyard.errors import DockyardError

    rng = random.Random(seed)
    dest = tmp_path / "box" / "layer"
    dest.mkdir(parents=True)
    outside = tmp_path / "box" / "outside"
    outside.mkdir()
    (outside / "f").write_bytes(b"keep")
    names = [
        "a",
        "b",
        "a/b",
        "a/b/c",
        "l",
        "l/x",
        "l/l2",
        "l/l2/y",
        "/abs",
        "../esc",
        "a/../../esc2",
        ".wh.a",
        "a/.wh..wh..opq",
    ]
    targets = [
        "/",
        "..",
        "../..",
        "../outside",
        str(outside),
        "a",
        "a/b",
        "l",
        "/l/l2",
        "../../../../box/outside/f",
        "f",
    ]
    entries = []
    for _ in range(rng.randint(3, 12)):
        kind = rng.choice(["file", "dir", "sym", "hard"])
        name = rng.choice(names)
        if kind == "file":
            entries.append(F(name, b"data"))
        elif kind == "dir":
            entries.append(D(name))
        elif kind == "sym":
            entries.append(L(name, rng.choice(targets)))
        else:
            entries.append(H(name, rng.choice(names + targets)))
    before = _snapshot(tmp_path, dest)
    try:
        unpack_layer(io.BytesIO(make_tar(entries)), str(dest))
    except DockyardError:
        pass  # refusing is fine; writing outside is not
    assert _snapshot(tmp_path, dest) == before


# -- sparse members ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "tar_args",
    [
        ["--format=gnu"],
        ["--format=posix", "--sparse-version=0.0"],
        ["--format=posix", "--sparse-version=0.1"],
        ["--format=posix", "--sparse-version=1.0"],
    ],
)
def test_sparse_member_keeps_its_holes(tmp_path, tar_args):
    """256 MiB apparent, 50 small data regions: unpacked, only the regions take blocks."""
    import shutil
    import subprocess

    if shutil.which("tar") is None:
        pytest.skip("GNU tar makes the sparse archives")
    src = tmp_path / "s"
    with open(src, "wb") as f:
        f.truncate(1 << 28)
        for i in range(50):
            f.seek(i * 5 * (1 << 20) + 123)
            f.write(bytes([i + 1]) * (5000 + i))
    archive = tmp_path / "s.tar"
    subprocess.run(
        ["tar", "--sparse", *tar_args, "-C", str(tmp_path), "-cf", str(archive), "s"], check=True
    )
    out = tmp_path / "out"
    with open(archive, "rb") as f:
        assert unpack_layer(f, str(out)) == 1 << 28
    st = (out / "s").stat()
    assert st.st_size == 1 << 28
    assert st.st_blocks * 512 < 4 * 1024 * 1024, st.st_blocks
    with open(src, "rb") as a, open(out / "s", "rb") as b:
        while chunk := a.read(1 << 24):
            assert b.read(1 << 24) == chunk


def test_privileged_calls_go_through_the_kernel(sandbox):
    """Owners, device nodes, whiteouts and trusted xattrs are the kernel's to make:
    the recording kernel sees each with the path it acts on (root or not), and a
    whiteout behind a symlink that points out of the layer lands inside it."""
    from dockyard.kernel.fake import RecordingKernel

    dest, outside = sandbox
    kernel = RecordingKernel(real_files=True)
    tar = make_tar(
        [
            D("etc", uid=0, gid=0),
            F("etc/shadow", b"x", uid=0, gid=42, mode=0o640),
            L("etc/link", "/etc/shadow", uid=5, gid=6),
            D("var/cache", xattrs={"trusted.overlay.redirect": "/x"}),
            F("var/cache/.wh..wh..opq"),
            F("bin/.wh.sh"),
            L("evil", str(outside)),
            F("evil/.wh.passwd"),
            F("tagged", xattrs={"trusted.dockyard": "v"}),
        ]
    )
    unpack_layer(io.BytesIO(tar), str(dest), kernel=kernel)
    root = os.path.realpath(dest)
    assert ("fchown", (f"{root}/etc/shadow", 0, 42)) in kernel.calls
    assert ("lchownat", (f"{root}/etc/link", 5, 6)) in kernel.calls
    nodes = {(where, name) for where, name, *_ in kernel.find("mknodat")}
    # "evil" points at the outside's absolute path: resolved as in a chroot, that
    # path is made inside the layer, and the whiteout goes there.
    assert nodes == {(f"{root}/bin", "sh"), (f"{root}{outside}", "passwd")}
    assert outside_untouched(outside)
    xattrs = {(p, name, value) for p, name, value, _ in kernel.find("setxattr")}
    assert (f"{root}/var/cache", "trusted.overlay.opaque", b"y") in xattrs
    assert (f"{root}/tagged", "trusted.dockyard", b"v") in xattrs
    assert not any(name == "trusted.overlay.redirect" for _, name, _ in xattrs)  # dropped
    assert all(not p.startswith(str(outside)) for p, *_ in xattrs)
    # Parent directories are resolved by the kernel (openat2 RESOLVE_IN_ROOT), as
    # the runtime resolves mount targets: "evil/" was looked up inside the layer.
    assert {"/bin", "/evil"} <= {path for _, path, _ in kernel.find("open_in_root")}


def test_sparse_map_going_backwards_refused(tmp_path):
    """A sparse member whose map goes back over data already read cannot make the
    forward-only reader seek back: a clear refusal, nothing half-written outside."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("s")
        info.size = 4096
        info.pax_headers = {
            "GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "s",
            "GNU.sparse.realsize": "8192",
        }  # fmt: skip
        # Map: 2 regions, the second before the first.
        sparse_map = b"2\n4096\n2048\n0\n2048\n"
        tar.addfile(info, io.BytesIO(sparse_map.ljust(512, b"\0") + b"x" * (4096 - 512)))
    with pytest.raises(InvalidParameter, match="backward seek"):
        unpack_layer(io.BytesIO(buf.getvalue()), str(tmp_path / "d"))
