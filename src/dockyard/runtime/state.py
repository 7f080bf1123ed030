"""The files a monitor leaves in the bundle: state.json and exit.json.

Both are written atomically, so a daemon starting after a crash reads either
nothing or a whole record.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass

from dockyard.runtime.atomic_write import write_atomic

STATE_FILE = "state.json"
EXIT_FILE = "exit.json"
TRACE_FILE = "start-trace.json"
# Blocks claimed at start for exit.json, so that a container that fills the disk
# still gets its true exit code recorded (not the 255 of a monitor that vanished).
EXIT_SLOT = "exit.slot"
EXIT_SLOT_SIZE = 4096


@dataclass
class ExitRecord:
    exit_code: int
    finished_at: str  # RFC3339Nano UTC
    oom_killed: bool = False
    error: str = ""

    def to_json(self) -> dict:
        return asdict(self)


def write_json(bundle_dir: str, name: str, value: object, *, durable: bool = True) -> None:
    """Atomically; `durable=False` for what means nothing after a reboot (see write_atomic)."""
    write_atomic(os.path.join(bundle_dir, name), json.dumps(value).encode(), durable=durable)


def reserve_exit_slot(bundle_dir: str) -> None:
    """Allocate the space exit.json will need while the disk still has it."""
    path = os.path.join(bundle_dir, EXIT_SLOT)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.posix_fallocate(fd, 0, EXIT_SLOT_SIZE)
    except OSError:
        os.unlink(path)  # a slot without its blocks would only fail later
        raise
    finally:
        os.close(fd)


def write_exit(bundle_dir: str, record: ExitRecord) -> None:
    """exit.json, atomically: written into the reserved slot, which is renamed.

    Neither step needs a free block, so a full disk cannot turn the true exit
    code into 255. Without a slot (none was reserved) a plain atomic write."""
    value = record.to_json()
    data = json.dumps(value).encode()
    if len(data) > EXIT_SLOT_SIZE:
        value["error"] = value["error"][: EXIT_SLOT_SIZE // 2] + "..."
        data = json.dumps(value).encode()
    slot = os.path.join(bundle_dir, EXIT_SLOT)
    try:
        fd = os.open(slot, os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        write_json(bundle_dir, EXIT_FILE, value)
        return
    try:
        # Spaces after the JSON keep the allocated size and still parse.
        os.pwrite(fd, data.ljust(EXIT_SLOT_SIZE), 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(slot, os.path.join(bundle_dir, EXIT_FILE))
    with contextlib.suppress(OSError):
        dfd = os.open(bundle_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _read_json(path: str) -> dict | None:
    try:
        with open(path, "rb") as f:
            value = json.load(f)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def read_exit(bundle_dir: str) -> ExitRecord | None:
    raw = _read_json(os.path.join(bundle_dir, EXIT_FILE))
    if raw is None:
        return None
    try:
        return ExitRecord(
            exit_code=int(raw.get("exit_code", 255)),
            finished_at=str(raw.get("finished_at", "")),
            oom_killed=bool(raw.get("oom_killed", False)),
            error=str(raw.get("error", "")),
        )
    except (TypeError, ValueError):
        return None  # not a record this runtime wrote


def read_state(bundle_dir: str) -> dict | None:
    return _read_json(os.path.join(bundle_dir, STATE_FILE))
