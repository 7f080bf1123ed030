"""The files a monitor leaves in the bundle: state.json and exit.json.

Both are written atomically, so a daemon starting after a crash reads either
nothing or a whole record.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

from dockyard.runtime.spec import write_atomic

STATE_FILE = "state.json"
EXIT_FILE = "exit.json"
TRACE_FILE = "start-trace.json"


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
