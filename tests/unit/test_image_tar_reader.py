"""The fast tar reader under the unpacker: formats read as Go reads them, and
hostile headers (escapes hidden in pax or GNU long names, corrupt or huge
headers, truncation) refused before anything lands outside the layer."""

from __future__ import annotations

import hashlib
import io
import os
import random
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from dockyard.errors import DockyardError, InvalidParameter
from dockyard.image.digesting import LayerDigest
from dockyard.image.tar_reader import TarReader
from dockyard.image.tarsafe import unpack_layer

pytestmark = pytest.mark.usefixtures("unpack_kernel")


def tar_of(*infos: tuple[tarfile.TarInfo, bytes], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in infos:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


def reg(name: str, **kw) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    for k, v in kw.items():
        setattr(info, k, v)
    return info


def entries(data: bytes) -> list[tuple[bytes, int, int]]:
    r = TarReader(io.BytesIO(data))
    out = []
    while (e := r.next()) is not None:
        out.append((e.name, e.size, e.mtime_ns))
    return out


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_long_names_in_every_format(tmp_path, fmt):
    """ustar prefix, GNU 'L' records and pax path: the same 200-byte name each time."""
    name = "d" * 90 + "/" + "e" * 90 + "/file"
    data = tar_of((reg(name, mtime=1_600_000_000), b"x"), fmt=fmt)
    assert entries(data) == [(name.encode(), 1, 1_600_000_000 * 10**9)]
    unpack_layer(io.BytesIO(data), str(tmp_path / "d"))
    assert (tmp_path / "d" / name).read_bytes() == b"x"


def test_pax_times_are_exact_to_the_nanosecond(tmp_path):
    info = reg("f", mtime=1_600_000_000)
    info.pax_headers = {"mtime": "1600000000.123456789", "atime": "1500000000.5"}
    unpack_layer(io.BytesIO(tar_of((info, b"x"))), str(tmp_path / "d"))
    st = os.lstat(tmp_path / "d" / "f")
    assert st.st_mtime_ns == 1_600_000_000_123_456_789
    assert st.st_atime_ns == 1_500_000_000_500_000_000


def test_base256_owner_reaches_the_kernel(tmp_path, privileged):
    """GNU/Go write ids past 0o7777777 in base-256: read as numbers, not garbage."""
    data = tar_of((reg("f", uid=3_000_000, gid=70_000_000), b"x"), fmt=tarfile.GNU_FORMAT)
    unpack_layer(io.BytesIO(data), str(tmp_path / "d"))
    assert privileged.owner(tmp_path / "d" / "f") == (3_000_000, 70_000_000)


@pytest.mark.parametrize("where", ["pax path", "gnu longname", "pax linkpath"])
def test_escape_hidden_in_extended_headers_refused(tmp_path, where):
    """A short harmless ustar name, the real (escaping) name in a pax record or GNU
    long name: the name that counts is the extended one, and it is refused."""
    evil = "../" * 3 + "x" * 120 + "/pwned"
    if where == "pax path":
        info = reg("harmless")
        info.pax_headers = {"path": evil}
        data = tar_of((info, b"x"))
    elif where == "gnu longname":
        data = tar_of((reg(evil), b"x"), fmt=tarfile.GNU_FORMAT)
    else:
        info = reg("link", type=tarfile.LNKTYPE)
        info.pax_headers = {"linkpath": "../../../etc/passwd" + "/" * 100}
        data = tar_of((info, b""))
    with pytest.raises(InvalidParameter, match="outside of the layer"):
        unpack_layer(io.BytesIO(data), str(tmp_path / "box" / "d"))
    assert os.listdir(tmp_path / "box") == ["d"]


def test_global_pax_header_renames_nothing(tmp_path):
    """'g' records are ignored (as dockerd does): a global path= cannot move entries."""
    buf = io.BytesIO()
    with tarfile.open(
        fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"path": "../../g"}
    ) as tar:
        info = reg("f")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    unpack_layer(io.BytesIO(buf.getvalue()), str(tmp_path / "box" / "d"))
    assert os.listdir(tmp_path / "box" / "d") == ["f"]
    assert sorted(os.listdir(tmp_path / "box")) == ["d"]


def _corrupt(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x55]) + data[offset + 1 :]


def test_corrupt_second_header_refused_not_taken_as_the_end(tmp_path):
    """tarfile stops quietly at a bad header after the first; a truncated layer must
    not pass for a complete one."""
    data = tar_of((reg("a"), b"1" * 10), (reg("b"), b"2"))
    second = 1024  # header, one data block
    with pytest.raises(InvalidParameter, match="checksum"):
        unpack_layer(io.BytesIO(_corrupt(data, second + 10)), str(tmp_path / "d"))


@pytest.mark.parametrize("cut", [100, 512 + 3, 1024 + 200])
def test_truncated_anywhere_refused(tmp_path, cut):
    data = tar_of((reg("a"), b"1" * 10), (reg("b"), b"2" * 700))
    with pytest.raises(InvalidParameter, match="invalid layer archive"):
        unpack_layer(io.BytesIO(data[: 1024 + cut]), str(tmp_path / "d"))


@pytest.mark.parametrize("kind", [b"x", b"L"])
def test_huge_extended_header_refused_without_reading_it(tmp_path, kind):
    """A pax header or GNU long name claiming 1 GiB: refused at its header, not
    buffered (memory stays bounded whatever the stream claims)."""
    header = tarfile.TarInfo("././@LongLink" if kind == b"L" else "pax")
    header.type = kind
    header.size = 1 << 30
    block = header.tobuf(tarfile.GNU_FORMAT if kind == b"L" else tarfile.USTAR_FORMAT)

    class Endless:
        served = 0

        def read(self, n: int = -1) -> bytes:
            if self.served == 0:
                self.served = len(block)
                return block
            self.served += n
            return b"\0" * n

    source = Endless()
    with pytest.raises(InvalidParameter, match="at most"):
        unpack_layer(source, str(tmp_path / "d"))
    assert source.served < 8 << 20


def test_empty_stream_refused_but_an_empty_tar_is_an_empty_layer(tmp_path):
    with pytest.raises(InvalidParameter, match="empty"):
        unpack_layer(io.BytesIO(b""), str(tmp_path / "a"))
    assert unpack_layer(io.BytesIO(b"\0" * 10240), str(tmp_path / "b")) == 0
    assert os.listdir(tmp_path / "b") == []


def test_diff_id_covers_every_byte_including_trailing_padding(tmp_path):
    data = tar_of((reg("f"), b"x" * 5000)) + b"\0" * 20480  # extra zero records
    digest = LayerDigest(None)
    unpack_layer(io.BytesIO(data), str(tmp_path / "d"), on_read=digest)
    assert digest.sha.hexdigest() == hashlib.sha256(data).hexdigest()
    assert digest.count == len(data)


def test_v7_directory_with_slash_and_contiguous_files(tmp_path):
    d = reg("dir/", type=tarfile.AREGTYPE, mode=0o750)
    c = reg("dir/c", type=tarfile.CONTTYPE)
    unpack_layer(
        io.BytesIO(tar_of((d, b""), (c, b"data"), fmt=tarfile.USTAR_FORMAT)), str(tmp_path / "d")
    )
    assert stat.S_ISDIR(os.lstat(tmp_path / "d" / "dir").st_mode)
    assert (tmp_path / "d" / "dir" / "c").read_bytes() == b"data"


# -- the file pool: same results as one thread --------------------------------------


def _tree(root: Path) -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            body = Path(p).read_bytes() if stat.S_ISREG(st.st_mode) else None
            link = os.readlink(p) if stat.S_ISLNK(st.st_mode) else None
            # Times the tar gave (small numbers here); not those of implicit dirs.
            mtime = st.st_mtime_ns if st.st_mtime_ns < 10**13 else None
            out[os.path.relpath(p, root)] = (stat.S_IFMT(st.st_mode), mtime, body, link)
    return out


@pytest.mark.parametrize("seed", range(int(os.environ.get("DOCKYARD_FUZZ_SEEDS", "60"))))
def test_file_pool_gives_the_tree_one_thread_gives(tmp_path, seed):
    """Random layers with duplicate names, files replaced by dirs and back, links to
    files still being written, whiteouts of them: with worker threads the result (or
    the refusal) is exactly the sequential one."""
    rng = random.Random(seed)
    names = ["a", "b", "d/a", "d/b", "d/e/f", "d", "l", "l/x"]
    infos = []
    if seed % 2:
        # Directories first, as in a real layer: the pool then skips the stat of
        # names it knows are new (directories this unpack made), through symlinks too.
        for name in ("d", "d/e"):
            infos.append((reg(name, type=tarfile.DIRTYPE, mtime=3000, mode=0o755), b""))
    for i in range(rng.randint(5, 60)):
        kind = rng.choice(["file", "file", "file", "dir", "sym", "hard", "wh"])
        name = rng.choice(names)
        if kind == "file":
            infos.append((reg(name, mtime=1000 + i), os.urandom(rng.choice([0, 10, 5000]))))
        elif kind == "dir":
            infos.append((reg(name, type=tarfile.DIRTYPE, mtime=2000 + i, mode=0o755), b""))
        elif kind == "sym":
            infos.append(
                (reg(name, type=tarfile.SYMTYPE, linkname=rng.choice(["d", "a", "/d"])), b"")
            )
        elif kind == "hard":
            infos.append((reg(name, type=tarfile.LNKTYPE, linkname=rng.choice(names)), b""))
        else:
            head, _, tail = name.rpartition("/")
            infos.append((reg((head + "/" if head else "") + ".wh." + tail), b""))
    data = tar_of(*infos)
    results = []
    for workers in (0, 2):
        dest = tmp_path / f"w{workers}"
        try:
            unpack_layer(io.BytesIO(data), str(dest), workers=workers)
            results.append(_tree(dest))
        except DockyardError as e:
            results.append(type(e).__name__)
    assert results[0] == results[1]


def test_pool_paths_through_symlinks_and_names_in_new_directories(tmp_path):
    """With the workers: a path through a symlink made just before lands where it
    points; a name made in a directory this unpack made is replaced, not
    refused, though no stat looked for it."""
    D = tarfile.DIRTYPE
    infos = [
        (reg("d", type=D, mode=0o755), b""),
        (reg("t", type=D, mode=0o755), b""),
        (reg("d/l", type=tarfile.SYMTYPE, linkname="../t"), b""),
        (reg("d/l/x", mtime=7), b"through the link"),  # lands in t/
        (reg("d/a"), b"first"),
        (reg("d/a"), b"second"),  # the same name again: replaces
        (reg("d/a", type=D, mode=0o755), b""),  # a directory over the file
        (reg("d/a/b"), b"inside"),
        (reg("d/l", type=tarfile.SYMTYPE, linkname="a"), b""),  # a symlink replaced
        (reg("d/l/y"), b"new target"),  # lands in d/a/
    ]
    data = tar_of(*infos)
    trees = []
    for workers in (0, 2):
        dest = tmp_path / f"w{workers}"
        unpack_layer(io.BytesIO(data), str(dest), workers=workers)
        trees.append(_tree(dest))
    assert trees[0] == trees[1]
    dest = tmp_path / "w2"
    assert (dest / "t" / "x").read_bytes() == b"through the link"
    assert (dest / "d" / "a" / "b").read_bytes() == b"inside"
    assert (dest / "d" / "a" / "y").read_bytes() == b"new target"
    assert os.readlink(dest / "d" / "l") == "a"


def test_bounded_memory_for_a_large_stream(tmp_path):
    """A 600 MB layer (big and small files) is streamed: the process grows by far
    less than the layer (bench/unpack_bench.py --memory does 5 GB)."""
    script = r"""
import os, resource, sys, tarfile
from dockyard.image.digesting import LayerDigest
from dockyard.image.tarsafe import unpack_layer

class Layer:
    '''A tar generated on the fly: nothing of it is ever held whole.'''
    def __init__(self, total):
        self.parts = self._parts(total)
        self.buf = b""
    def _parts(self, total):
        chunk = bytes(range(256)) * 4096  # 1 MiB
        sent, i = 0, 0
        while sent < total:
            size = (64 << 20) if i % 8 == 0 else 300_000
            info = tarfile.TarInfo(f"d{i % 50}/f{i}")
            info.size = size
            if i < 50:
                d = tarfile.TarInfo(f"d{i}")
                d.type, d.mode = tarfile.DIRTYPE, 0o755
                yield d.tobuf(tarfile.PAX_FORMAT)
            yield info.tobuf(tarfile.PAX_FORMAT)
            left = size
            while left:
                yield chunk[: min(left, len(chunk))]
                left -= min(left, len(chunk))
            yield b"\0" * (-size % 512)
            sent += size
            i += 1
        yield b"\0" * 1024
    def read(self, n=-1):
        while len(self.buf) < n:
            try:
                self.buf += next(self.parts)
            except StopIteration:
                break
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
kernel = None
if os.geteuid() != 0:  # owners recorded, not made (as the unit tests' fixture does)
    from dockyard.kernel.fake import RecordingKernel
    kernel = RecordingKernel(real_files=True)
unpack_layer(Layer(int(sys.argv[2])), sys.argv[1], on_read=LayerDigest(None), workers=2, kernel=kernel)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "d"), str(600 << 20)],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    grown_mb = int(out.stdout)
    assert grown_mb < 60, f"the unpacker grew by {grown_mb} MB for a 600 MB stream"
    sizes = sum(
        os.path.getsize(os.path.join(p, f)) for p, _, fs in os.walk(tmp_path / "d") for f in fs
    )
    assert sizes >= 600 << 20
