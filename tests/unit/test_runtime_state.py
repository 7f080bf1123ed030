"""exit.json through the slot reserved at start: it lands without a free block."""

from __future__ import annotations

import errno
import os

from dockyard.runtime import state
from dockyard.runtime.state import (
    EXIT_FILE,
    EXIT_SLOT,
    EXIT_SLOT_SIZE,
    ExitRecord,
    read_exit,
    reserve_exit_slot,
    write_exit,
)


def test_exit_record_lands_in_the_reserved_slot_without_new_blocks(tmp_path, monkeypatch):
    reserve_exit_slot(str(tmp_path))
    blocks = os.stat(tmp_path / EXIT_SLOT).st_blocks
    assert blocks * 512 >= EXIT_SLOT_SIZE

    # The disk is full now: any file creation or plain write fails.
    def no_space(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(state, "write_atomic", no_space)
    write_exit(str(tmp_path), ExitRecord(exit_code=137, finished_at="2026-01-01T00:00:00Z"))
    assert not (tmp_path / EXIT_SLOT).exists()
    st = os.stat(tmp_path / EXIT_FILE)
    assert st.st_size == EXIT_SLOT_SIZE and st.st_blocks == blocks
    record = read_exit(str(tmp_path))
    assert record == ExitRecord(exit_code=137, finished_at="2026-01-01T00:00:00Z")


def test_a_long_error_is_cut_to_fit_the_slot(tmp_path):
    reserve_exit_slot(str(tmp_path))
    write_exit(str(tmp_path), ExitRecord(exit_code=1, finished_at="t", error="x" * 10_000))
    record = read_exit(str(tmp_path))
    assert record is not None and record.exit_code == 1
    assert record.error.startswith("xxx") and record.error.endswith("...")


def test_without_a_slot_a_plain_atomic_write(tmp_path):
    write_exit(str(tmp_path), ExitRecord(exit_code=3, finished_at="t"))
    assert read_exit(str(tmp_path)) == ExitRecord(exit_code=3, finished_at="t")


def test_a_slot_is_not_an_exit(tmp_path):
    reserve_exit_slot(str(tmp_path))
    assert read_exit(str(tmp_path)) is None
