"""Volumes, mount parsing, copy-up from layers and log rotation, without a daemon."""

from __future__ import annotations

import gzip
import os
import stat

import pytest

from dockyard.engine import logconfig
from dockyard.engine.models import LogConfig
from dockyard.engine.mounts import parse_mount
from dockyard.engine.store import Store
from dockyard.engine.volumes import VolumeService
from dockyard.errors import Conflict, InvalidParameter, NotFound
from dockyard.image.layered_copy import copy_tree
from dockyard.runtime.jsonlog import JsonFileLog


@pytest.fixture
def volumes(tmp_path):
    store = Store(str(tmp_path / "db"))
    svc = VolumeService(store, str(tmp_path))
    yield svc
    store.close()


@pytest.mark.parametrize("bad", ["a/b", "..", "../etc", ".hidden", "x", "a b", "a:b"])
def test_volume_names_dockerd_refuses(volumes, bad):
    with pytest.raises(InvalidParameter) as e:
        volumes.create(bad)
    assert f'"{bad}" includes invalid characters for a local volume name' in e.value.message
    assert volumes.list() == []


def test_create_is_idempotent_persisted_and_in_use_blocks_removal(volumes, tmp_path):
    v = volumes.create("data", labels={"a": "1"})
    assert volumes.create("data") is v
    assert os.path.isdir(v.mountpoint) and v.mountpoint == str(tmp_path / "volumes/data/_data")
    volumes.users_of = lambda name: ["c1"] if name == "data" else []
    with pytest.raises(Conflict) as e:
        volumes.remove("data", force=True)
    assert e.value.message == "remove data: volume is in use - [c1]"
    assert [x.name for x in volumes.list({"dangling": ["false"]})] == ["data"]
    assert volumes.list({"dangling": ["true"]}) == []
    with pytest.raises(InvalidParameter):
        volumes.list({"bogus": ["1"]})
    # the record survives a restart of the service
    again = VolumeService(volumes._store, str(tmp_path))
    assert again.get("data").labels == {"a": "1"}


def test_prune_takes_anonymous_unused_volumes_unless_all(volumes):
    anon = volumes.create(anonymous=True)
    named = volumes.create("keepme")
    assert volumes.prune()[0] == [anon.name]
    assert volumes.prune({"all": ["true"], "label": ["nope"]})[0] == []
    assert volumes.prune({"all": ["true"]})[0] == [named.name]
    with pytest.raises(NotFound):
        volumes.get("keepme")


def test_local_driver_options_checked(volumes):
    with pytest.raises(InvalidParameter, match='invalid option key: "foo"'):
        volumes.create("v1", options={"foo": "bar"})
    with pytest.raises(InvalidParameter, match='missing required option: "device"'):
        volumes.create("v2", options={"type": "tmpfs"})
    with pytest.raises(NotFound, match='plugin "rexray" not found'):
        volumes.create("v3", driver="rexray")


@pytest.mark.parametrize(
    ("mount", "words"),
    [
        ({"Type": "nfs", "Target": "/x"}, 'type "nfs": mount type unknown'),
        ({"Type": "bind", "Target": "/x"}, "field Source must not be empty"),
        ({"Type": "bind", "Source": "/nonexistent-xyz", "Target": "/x"}, "bind source path does not exist"),
        ({"Type": "tmpfs", "Source": "/tmp", "Target": "/x"}, "field Source must not be specified"),
        ({"Type": "volume", "Target": "/x", "TmpfsOptions": {"SizeBytes": 1}}, "TmpfsOptions must not be specified"),
        ({"Type": "volume", "Target": "rel"}, "mount path must be absolute"),
        ({"Type": "volume", "Target": "/proc"}, "destination can't be '/proc'"),
        ({"Type": "volume", "Source": "../x", "Target": "/x"}, "includes invalid characters"),
        ({"Type": "bind", "Source": "/tmp", "Target": "/x", "BindOptions": {"Propagation": "rshared"}}, "not supported"),
    ],
)  # fmt: skip
def test_bad_mounts(mount, words):
    with pytest.raises(InvalidParameter) as e:
        parse_mount(mount)
    assert words in e.value.message


def test_tmpfs_mount_options():
    mp = parse_mount(
        {
            "Type": "tmpfs",
            "Target": "/t/",
            "ReadOnly": True,
            "TmpfsOptions": {"SizeBytes": 4096, "Mode": 0o1777},
        }
    )
    assert (mp.destination, mp.tmpfs_options, mp.rw) == ("/t", "size=4096,mode=1777,ro", False)


def test_copy_up_merges_layers_and_never_follows_links(tmp_path):
    lower, upper, dest = tmp_path / "lower", tmp_path / "upper", tmp_path / "dest"
    (lower / "data" / "sub").mkdir(parents=True)
    (lower / "data" / "old").write_text("old")
    (lower / "data" / "gone").write_text("hidden by a whiteout")
    (lower / "data" / "sub" / "f").write_text("f")
    (upper / "data").mkdir(parents=True)
    (upper / "data" / "old").write_text("new")
    os.mknod(upper / "data" / "gone", stat.S_IFCHR | 0o600, 0)  # overlay whiteout
    (upper / "data" / "esc").symlink_to("/etc/passwd")
    dest.mkdir()
    assert copy_tree([str(upper), str(lower)], "/data", str(dest))
    assert sorted(os.listdir(dest)) == ["esc", "old", "sub"]
    assert (dest / "old").read_text() == "new"
    assert os.readlink(dest / "esc") == "/etc/passwd" and (dest / "esc").is_symlink()
    assert (dest / "sub" / "f").read_text() == "f"
    # a path through a symlink is not followed out of the stack
    (upper / "link").symlink_to("/etc")
    other = tmp_path / "other"
    other.mkdir()
    assert not copy_tree([str(upper), str(lower)], "/link", str(other))
    assert os.listdir(other) == []


def test_log_rotation_plain_and_gzip(tmp_path):
    path = str(tmp_path / "c-json.log")
    log = JsonFileLog(path, max_size=500, max_file=3)
    for i in range(100):
        log.write("stdout", b"line%d\n" % i)
    log.close()
    assert sorted(os.listdir(tmp_path)) == ["c-json.log", "c-json.log.1", "c-json.log.2"]
    assert all(os.path.getsize(tmp_path / n) <= 500 for n in os.listdir(tmp_path))
    gz = str(tmp_path / "g-json.log")
    log = JsonFileLog(gz, max_size=300, max_file=2, compress=True)
    log.write("stderr", b"".join(b"e%d\n" % i for i in range(50)))
    log.close()
    with gzip.open(gz + ".1.gz") as f:
        assert b'"stream":"stderr"' in f.readline()


def test_log_rotation_survives_a_deleted_file(tmp_path):
    path = str(tmp_path / "d-json.log")
    log = JsonFileLog(path, max_size=200, max_file=3)
    os.unlink(path)
    for i in range(30):
        log.write("stdout", b"x%d\n" % i)
    log.close()
    assert os.path.exists(path)


def test_log_config_checks():
    defaults = logconfig.LogDefaults()
    lc = LogConfig(type="", config={})
    logconfig.check(lc, defaults)
    assert lc.type == "json-file"
    r = logconfig.rotation(lc)
    assert r is not None and (r.max_size, r.max_file, r.compress) == (10_000_000, 3, False)
    with pytest.raises(
        InvalidParameter, match="unknown log opt 'max-sise' for json-file log driver"
    ):
        logconfig.check(LogConfig(type="json-file", config={"max-sise": "1"}), defaults)
    with pytest.raises(InvalidParameter, match="invalid size"):
        logconfig.check(LogConfig(type="json-file", config={"max-size": "lots"}), defaults)
    with pytest.raises(InvalidParameter, match="unknown log opt 'max-size' for none log driver"):
        logconfig.check(LogConfig(type="none", config={"max-size": "1m"}), defaults)
    assert logconfig.rotation(LogConfig(type="none")) is None
