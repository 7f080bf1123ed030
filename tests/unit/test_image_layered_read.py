"""Reading a file through overlay layer dirs, as the engine does for /etc/passwd."""

from __future__ import annotations

import os

import pytest

from dockyard.image.layered_read import read_file

# Only the opaque-directory case needs root (trusted.* xattrs); whiteouts are
# 0:0 character devices, which Linux >= 5.8 lets any user make.
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="trusted.overlay.opaque needs root")


def put(root, rel: str, data: bytes = b"") -> None:
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def whiteout(root, rel: str) -> None:
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        os.mknod(path, 0o020000, os.makedev(0, 0))
    except PermissionError:
        pytest.skip("making an overlay whiteout needs root on this kernel (< 5.8)")


@pytest.fixture
def stack(tmp_path):
    upper, mid, low = (str(tmp_path / n) for n in ("upper", "mid", "low"))
    for d in (upper, mid, low):
        os.makedirs(d)
    return upper, mid, low


def test_top_most_wins(stack):
    upper, mid, low = stack
    put(low, "etc/passwd", b"low")
    assert read_file([upper, mid, low], "/etc/passwd") == b"low"
    put(mid, "etc/passwd", b"mid")
    assert read_file([upper, mid, low], "/etc/passwd") == b"mid"
    assert read_file([upper, mid, low], "etc/../etc/./passwd") == b"mid"


def test_whiteout_hides_lower(stack):
    upper, mid, low = stack
    put(low, "etc/passwd", b"low")
    whiteout(mid, "etc/passwd")
    assert read_file([upper, mid, low], "/etc/passwd") is None
    put(upper, "etc/passwd", b"again")
    assert read_file([upper, mid, low], "/etc/passwd") == b"again"


def test_whiteout_of_directory(stack):
    upper, mid, low = stack
    put(low, "etc/passwd", b"low")
    put(low, "etc/group", b"g")
    whiteout(mid, "etc")
    assert read_file([upper, mid, low], "/etc/group") is None
    put(upper, "etc/passwd", b"up")
    assert read_file([upper, mid, low], "/etc/passwd") == b"up"
    assert read_file([upper, mid, low], "/etc/group") is None


@needs_root
def test_opaque_dir_hides_lower(stack):
    upper, mid, low = stack
    put(low, "etc/passwd", b"low")
    os.makedirs(os.path.join(upper, "etc"))
    os.setxattr(os.path.join(upper, "etc"), "trusted.overlay.opaque", b"y")
    assert read_file([upper, mid, low], "/etc/passwd") is None
    put(low, "var/x", b"low")
    os.makedirs(os.path.join(mid, "var"))
    os.setxattr(os.path.join(mid, "var"), "trusted.overlay.opaque", b"y")
    assert read_file([upper, mid, low], "/var/x") is None
    assert read_file([upper, low], "/var/x") == b"low"


def test_symlinks_resolve_inside_the_stack(stack, tmp_path):
    upper, mid, low = stack
    put(low, "real/passwd", b"inside")
    os.makedirs(os.path.join(mid, "etc"))
    os.symlink("/real/passwd", os.path.join(mid, "etc/passwd"))
    assert read_file([upper, mid, low], "/etc/passwd") == b"inside"
    os.symlink("../../../../../../real", os.path.join(upper, "up"))
    assert read_file([upper, mid, low], "/up/passwd") == b"inside"
    # A link to a host file resolves to the (absent) file inside the stack.
    os.symlink("/etc/shadow", os.path.join(upper, "shadow"))
    assert read_file([upper, mid, low], "/shadow") is None
    os.symlink("/etc", os.path.join(upper, "hostetc"))
    assert read_file([upper, mid, low], "/hostetc/hostname") is None


def test_non_files_and_loops_are_none(stack):
    upper, mid, low = stack
    os.makedirs(os.path.join(low, "etc/passwd"))
    assert read_file([upper, mid, low], "/etc/passwd") is None  # a directory
    os.symlink("b", os.path.join(upper, "a"))
    os.symlink("a", os.path.join(upper, "b"))
    assert read_file([upper, mid, low], "/a") is None
    put(low, "f", b"x")
    assert read_file([upper, mid, low], "/f/x") is None
    assert read_file([upper, "/nonexistent-layer", low], "/f") == b"x"


def test_directory_above_hides_file_below(stack):
    upper, mid, low = stack
    put(low, "thing", b"file")
    os.makedirs(os.path.join(mid, "thing"))
    put(mid, "thing/inner", b"i")
    assert read_file([upper, mid, low], "/thing") is None
    assert read_file([upper, mid, low], "/thing/inner") == b"i"


@pytest.mark.parametrize("seed", range(40))
def test_random_symlink_mazes_never_read_outside(tmp_path, seed):
    import random

    rng = random.Random(seed)
    secret = tmp_path / "secret"
    secret.write_bytes(b"HOST SECRET")
    layers = [tmp_path / f"l{i}" for i in range(3)]
    for d in layers:
        d.mkdir()
    targets = [
        str(secret),
        str(tmp_path),
        "..",
        "../..",
        "../../../secret",
        "/",
        "/etc",
        "a",
        "a/b",
        "s",
    ]
    for _ in range(15):
        layer = rng.choice(layers)
        rel = rng.choice(["a", "a/b", "s", "etc", "etc/passwd", "a/b/c"])
        path = layer / rel
        if path.parent != layer and not path.parent.is_dir():
            continue
        if os.path.lexists(path):
            continue
        kind = rng.choice(["file", "dir", "link", "whiteout"])
        if kind == "file":
            path.write_bytes(b"inside")
        elif kind == "dir":
            path.mkdir()
        elif kind == "link":
            os.symlink(rng.choice(targets), path)
        else:
            whiteout(str(path.parent), path.name)
    for probe in ["/etc/passwd", "/s", "/a/b/c", "/a/secret", "/s/secret", "/a/b", "/etc/passwd/x"]:
        assert read_file([str(d) for d in layers], probe) in (None, b"inside")
