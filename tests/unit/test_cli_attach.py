"""Attached sessions: detach keys, the TTY check, stdin half-close."""

from __future__ import annotations

import os
import socket

import pytest

from dockyard.cli.attach import StdinPump, check_tty, parse_detach_keys
from dockyard.client.transport import HijackedConnection


def test_parse_detach_keys():
    assert parse_detach_keys("ctrl-p,ctrl-q") == b"\x10\x11"
    assert parse_detach_keys("ctrl-a,x") == b"\x01x"
    assert parse_detach_keys("ctrl-[") == b"\x1b"
    with pytest.raises(ValueError):
        parse_detach_keys("ctrl-pp")


def pump_through(data: list[bytes], keys: bytes = b"\x10\x11") -> tuple[bytes, bool]:
    """Run StdinPump over a pipe into a socketpair; return what reached the daemon side."""
    ours, theirs = socket.socketpair()
    r, w = os.pipe()
    pump = StdinPump(HijackedConnection(ours, b"", ""), fd=r, detach_keys=keys)
    pump.start()
    for chunk in data:
        os.write(w, chunk)
    os.close(w)
    pump.join(5)
    got = b""
    theirs.settimeout(5)
    while chunk := theirs.recv(4096):
        got += chunk
    os.close(r)
    return got, pump.detached.is_set()


def test_stdin_copied_then_half_closed():
    assert pump_through([b"hello ", b"world\n"], keys=b"") == (b"hello world\n", False)


def test_detach_sequence_is_swallowed_and_detaches():
    got, detached = pump_through([b"ls\n\x10", b"\x11more"])
    assert detached
    assert got == b"ls\n"


def test_partial_sequence_is_ordinary_input():
    got, detached = pump_through([b"a\x10b\x10\x10c"])
    assert not detached
    assert got == b"a\x10b\x10\x10c"


def test_tty_check(monkeypatch):
    monkeypatch.setattr(os, "isatty", lambda fd: False)
    assert check_tty(tty=True, stdin=True) == "the input device is not a TTY"
    assert check_tty(tty=True, stdin=False) is None
    assert check_tty(tty=False, stdin=True) is None
