"""dockyard-runtime's record of a container, under --root as runc keeps its own.

    <root>/<id>/state.json   in place once `create` has the init waiting (its bytes
                             staged beside it while the init builds the container)
    <root>/<id>/exec.fifo    present while the container is "created": the init
                             blocks opening it for writing until `start` reads it

The status is derived, never stored: the init alive (same pid *and* start time,
so a reused pid is not mistaken for it) with the fifo present is "created",
alive and frozen "paused", alive "running"; otherwise "stopped".
"""

from __future__ import annotations

import os

from dockyard.errors import NotFound, RuntimeFailure
from dockyard.runtime import lightjson as json
from dockyard.runtime.atomic_write import stage_atomic
from dockyard.runtime.record import field, record
from dockyard.suppress import suppress

DEFAULT_ROOT = "/run/dockyard-runtime"
STATE_FILE = "state.json"
FIFO_NAME = "exec.fifo"
# runc's rule for container ids (^[\w+-\.]+$, ASCII): no path separators, nothing a
# shell would trip on. A set, not a regex: `re` costs `run` ~3 ms to import.
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


def check_id(container_id: str) -> None:
    if not container_id or not _ID_CHARS.issuperset(container_id) or container_id in (".", ".."):
        raise RuntimeFailure(f"invalid container id format: {container_id!r}")


@record
class OciContainer:
    id: str
    pid: int
    pid_start: int  # field 22 of /proc/<pid>/stat: the init's start time, against pid reuse
    bundle: str
    created: str  # RFC 3339
    config: dict  # the bundle's config.json as it was at create
    controllers: list[str] = field(default_factory=list)
    cgroup_path: str = ""

    @property
    def annotations(self) -> dict:
        return dict(self.config.get("annotations") or {})


def container_dir(root: str, container_id: str) -> str:
    check_id(container_id)
    return os.path.join(root, container_id)


def fifo_path(root: str, container_id: str) -> str:
    return os.path.join(container_dir(root, container_id), FIFO_NAME)


def stage(root: str, c: OciContainer, config_json: str = "") -> str:
    """state.json's bytes in a temporary file beside it (its name returned): `create`
    writes them while the init builds the container, and renames once it is ready.

    `config_json`: c.config as JSON, which `create` encodes before its fork: walking
    the config after it would copy every page the walk touches (~100 page faults)."""
    path = os.path.join(container_dir(root, c.id), STATE_FILE)
    # Its fields are JSON values already (config is the bundle's parsed JSON): no deep
    # copy through record.asdict on the way to the file.
    data = {name: getattr(c, name) for name in OciContainer.__record_fields__ if name != "config"}
    text = json.dumps(data)[:-1] + ', "config": ' + (config_json or json.dumps(c.config)) + "}"
    return stage_atomic(path, text.encode(), durable=False)


def load(root: str, container_id: str) -> OciContainer:
    path = os.path.join(container_dir(root, container_id), STATE_FILE)
    try:
        with open(path, "rb") as f:
            raw = json.load(f)
        return OciContainer(**raw)
    except FileNotFoundError:
        raise NotFound(f"container {container_id} does not exist") from None
    except (OSError, ValueError, TypeError) as exc:
        raise RuntimeFailure(f"container {container_id}: unreadable state {path}: {exc}") from None


def list_ids(root: str) -> list[str]:
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    return [n for n in names if os.path.exists(os.path.join(root, n, STATE_FILE))]


def process_start_time(pid: int) -> int | None:
    """Start time of a live, non-zombie process; None if it is gone."""
    # os.read, not open(): `run` asks this three times on its way to the exec.
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
        try:
            stat = os.read(fd, 4096)  # ~300 bytes: a 16-byte comm and 52 numbers
        finally:
            os.close(fd)
    except OSError:
        return None
    if b")" not in stat:
        return None
    # The command name may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def init_alive(c: OciContainer) -> bool:
    return c.pid > 0 and process_start_time(c.pid) == c.pid_start


def status(root: str, c: OciContainer, frozen: bool = False) -> str:
    if not init_alive(c):
        return "stopped"
    if os.path.exists(fifo_path(root, c.id)):
        return "created"
    return "paused" if frozen else "running"


def oci_state(c: OciContainer, status_: str) -> dict:
    """The OCI runtime-spec state, as `state` prints it and hooks read it on stdin."""
    state = {
        "ociVersion": c.config.get("ociVersion", "1.0.2"),
        "id": c.id,
        "status": status_,
        "pid": c.pid if status_ != "stopped" else 0,
        "bundle": c.bundle,
        "rootfs": os.path.join(c.bundle, (c.config.get("root") or {}).get("path", "rootfs")),
        "created": c.created,
        "owner": "",
    }
    if c.annotations:
        state["annotations"] = c.annotations
    return state


def remove_dir(root: str, container_id: str) -> None:
    d = container_dir(root, container_id)
    for name in (FIFO_NAME, STATE_FILE):
        with suppress(FileNotFoundError):
            os.unlink(os.path.join(d, name))
    with suppress(FileNotFoundError):
        os.rmdir(d)
