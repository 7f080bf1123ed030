"""The pipes between `dockyard-runtime create` and its container init: whole messages
both ways (what the SEQPACKET socketpair gave), and the end of either side seen."""

from __future__ import annotations

import os

import pytest

from dockyard.runtime.msgpipe import message_pipe_pair


def test_messages_arrive_whole_and_in_order_both_ways() -> None:
    ours, theirs = message_pipe_pair()
    try:
        big = b"x" * 200_000  # more than a pipe holds: written while read in a child
        pid = os.fork()
        if pid == 0:
            ours.close()
            code = 0
            try:
                theirs.send(b'{"hooks": true}')
                theirs.send(big)
                reply = theirs.recv(1 << 20)
                theirs.send(b"echo:" + reply)
                theirs.send(b"")
            except BaseException:  # noqa: BLE001 - the parent's asserts say what broke
                code = 1
            os._exit(code)
        theirs.close()
        assert ours.recv(1 << 20) == b'{"hooks": true}'
        assert ours.recv(1 << 20) == big
        ours.send(b'{"state": {}}')
        assert ours.recv(1 << 20) == b'echo:{"state": {}}'
        assert ours.recv(1 << 20) == b""  # an empty message reads as one
        assert ours.recv(1 << 20) == b""  # and the child's exit closed its end: EOF
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        ours.close()
        theirs.close()


def test_a_message_cut_short_by_the_writers_death_reads_as_the_end() -> None:
    ours, theirs = message_pipe_pair()
    try:
        # A length header promising 100 bytes, 3 of them, then the writer is gone.
        os.write(theirs._write_fd, (100).to_bytes(4, "little") + b"abc")
        theirs.close()
        assert ours.recv(1 << 20) == b""
    finally:
        ours.close()


def test_a_long_message_is_cut_to_the_buffer_as_a_datagram_is() -> None:
    ours, theirs = message_pipe_pair()
    try:
        theirs.send(b"0123456789")
        theirs.send(b"next")
        assert ours.recv(4) == b"0123"
        assert ours.recv(100) == b"next"  # the rest of the first one is gone, not merged
    finally:
        ours.close()
        theirs.close()


def test_writing_to_a_closed_end_fails_and_the_ends_do_not_reach_an_exec() -> None:
    ours, theirs = message_pipe_pair()
    for fd in (ours._read_fd, ours._write_fd, theirs._read_fd, theirs._write_fd):
        assert not os.get_inheritable(fd)
    ours.close()
    try:
        with pytest.raises(BrokenPipeError):
            theirs.send(b"anyone?")
    finally:
        theirs.close()
