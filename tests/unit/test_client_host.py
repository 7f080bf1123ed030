"""Daemon address selection: -H, DOCKYARD_HOST, DOCKER_HOST, default socket."""

from __future__ import annotations

import pytest

from dockyard.client.host import DEFAULT_HOST, HostError, parse_host, select_host


@pytest.mark.parametrize(
    ("value", "scheme", "address", "port"),
    [
        ("unix:///run/dockyard.sock", "unix", "/run/dockyard.sock", 0),
        ("unix:///tmp/x.sock", "unix", "/tmp/x.sock", 0),
        ("tcp://127.0.0.1:4243", "tcp", "127.0.0.1", 4243),
        ("127.0.0.1:4243", "tcp", "127.0.0.1", 4243),
        (":4243", "tcp", "127.0.0.1", 4243),
        ("tcp://[::1]:2375", "tcp", "::1", 2375),
        ("tcp://example.com", "tcp", "example.com", 2375),
    ],
)
def test_parse_host(value, scheme, address, port):
    h = parse_host(value)
    assert (h.scheme, h.address, h.port) == (scheme, address, port)


def test_url_round_trip():
    assert parse_host(":4243").url == "tcp://127.0.0.1:4243"
    assert parse_host("unix:///x.sock").url == "unix:///x.sock"


@pytest.mark.parametrize("value", ["ssh://host", "tcp://h:notaport", "tcp://h:99999", "unix://"])
def test_bad_hosts(value):
    with pytest.raises(HostError):
        parse_host(value)


def test_selection_order():
    env = {"DOCKER_HOST": "tcp://1.1.1.1:1", "DOCKYARD_HOST": "tcp://2.2.2.2:2"}
    assert select_host("tcp://3.3.3.3:3", env).address == "3.3.3.3"
    assert select_host(None, env).address == "2.2.2.2"
    assert select_host(None, {"DOCKER_HOST": "tcp://1.1.1.1:1"}).address == "1.1.1.1"
    default = select_host(None, {})
    assert default.url == DEFAULT_HOST and not default.explicit
    assert select_host(None, env).explicit
