"""The create checks, without a daemon: dockerd's words for each bad value."""

from __future__ import annotations

import pytest

from dockyard.engine.containers import parse_signal
from dockyard.engine.create_validation import (
    Bind,
    check_security_opts,
    parse_bind,
    validate_create,
)
from dockyard.engine.isolation import security_settings
from dockyard.engine.models import ContainerConfig, HostConfig, PortBinding
from dockyard.engine.names import validate_name
from dockyard.errors import InvalidParameter


@pytest.mark.parametrize(
    ("raw", "bind"),
    [
        ("/src:/dst", Bind("/src", "/dst", False)),
        ("/src:/dst:ro", Bind("/src", "/dst", True)),
        ("/src:/dst/../x/:rw,z,rprivate", Bind("/src", "/x", False)),
        ("/src:/proc/cpuinfo:ro", Bind("/src", "/proc/cpuinfo", True)),
        ("/src:/sys/fs/cgroup", Bind("/src", "/sys/fs/cgroup", False)),
    ],
)
def test_good_binds(raw, bind):
    assert parse_bind(raw) == bind


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("/a:/", "invalid volume specification: '/a:/': invalid mount config for type \"bind\": "
         "invalid specification: destination can't be '/'"),
        ("/a:/x/..", "destination can't be '/'"),
        ("/a://proc", "destination can't be '/proc'"),
        ("/a:/sys", "destination can't be '/sys'"),
        ("/a:/proc/self/attr", "is inside /proc"),
        ("/a", "invalid volume specification: '/a'"),
        ("a", "invalid mount path: 'a' mount path must be absolute"),
        (":/x", "invalid volume specification: ':/x'"),
        ("/a:/b:ro:x", "invalid volume specification: '/a:/b:ro:x'"),
        ("/a:ro", "invalid volume specification: '/a:ro'"),
        ("/a:/b:bogus", "invalid mode: bogus"),
        ("/a:/b:ro,rw", "invalid mode: ro,rw"),
        ("/a:relative", "invalid mount path: 'relative' mount path must be absolute"),
        ("/a:/b:nocopy", "field VolumeOptions must not be specified"),
        ("/a:/b:rshared", "propagation mode 'rshared' is not supported"),
        ("vol:/b", "named volumes are not available"),
    ],
)  # fmt: skip
def test_bad_binds(raw, words):
    with pytest.raises(InvalidParameter) as e:
        parse_bind(raw)
    assert words in e.value.message


def test_security_opts():
    check_security_opts(["no-new-privileges", "seccomp=unconfined", "label:disable"])
    settings = security_settings(["no-new-privileges:true", "seccomp=unconfined"])
    assert settings.no_new_privileges and settings.seccomp_unconfined
    settings = security_settings([])
    assert not settings.no_new_privileges and not settings.seccomp_unconfined
    check_security_opts(['seccomp={"defaultAction": "SCMP_ACT_ERRNO"}'])
    for opt, words in [
        ("nnp", 'invalid --security-opt 1: "nnp"'),
        ("x=y", 'invalid --security-opt 2: "x=y"'),
        ("no-new-privileges=yes", 'invalid --security-opt 2: "no-new-privileges=yes"'),
        ("apparmor=docker-default", "is not supported by dockyard"),
        ("seccomp=/etc/profile.json", "Decoding seccomp profile failed"),
    ]:
        with pytest.raises(InvalidParameter) as e:
            check_security_opts([opt])
        assert words in e.value.message


def test_working_dir_is_cleaned_or_refused():
    config = ContainerConfig(image="x", working_dir="/a//b/../c/")
    validate_create(config, HostConfig())
    assert config.working_dir == "/a/c"
    with pytest.raises(InvalidParameter, match="needs to be an absolute path"):
        validate_create(ContainerConfig(image="x", working_dir="a"), HostConfig())


@pytest.mark.parametrize(
    ("config", "host", "words"),
    [
        (ContainerConfig(hostname="a" * 65), HostConfig(), "is too long (maximum 64 bytes)"),
        (ContainerConfig(hostname="a b"), HostConfig(), 'invalid hostname "a b"'),
        (ContainerConfig(env=["=x"]), HostConfig(), "invalid environment variable: =x"),
        (ContainerConfig(cmd=["a\0"]), HostConfig(), "invalid Config.Cmd[0]"),
        (ContainerConfig(), HostConfig(cap_add=["BOGUS"]), 'unknown capability: "CAP_BOGUS"'),
        (ContainerConfig(exposed_ports={"0/tcp": {}}), HostConfig(), '"0/tcp"'),
        (ContainerConfig(exposed_ports={"80/xyz": {}}), HostConfig(), '"80/xyz"'),
        (
            ContainerConfig(),
            HostConfig(port_bindings={"80": [PortBinding(host_ip="nope")]}),
            'invalid IP address in port binding: "nope"',
        ),
    ],
)
def test_bad_values(config, host, words):
    with pytest.raises(InvalidParameter) as e:
        validate_create(config, host)
    assert words in e.value.message


@pytest.mark.parametrize("name", ["ok\n", "a", "-x", "x y", "x" * 256, "/"])
def test_names_match_in_full(name):
    with pytest.raises(InvalidParameter, match="Invalid container name"):
        validate_name(name)


def test_good_names():
    assert validate_name("web_1.a-b") == "/web_1.a-b"
    assert validate_name("/ab") == "/ab"
    assert validate_name("x" * 255) == "/" + "x" * 255


@pytest.mark.parametrize("text", ["²", "٣", "0", "65", "SIGNOPE"])
def test_signals_that_are_not_signals(text):
    """isdigit() holds for "²", int() refuses it: was a 500 for StopSignal and kill."""
    with pytest.raises(InvalidParameter, match="Invalid signal"):
        parse_signal(text)
