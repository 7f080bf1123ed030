"""The wire protocol between a container's monitor and its clients.

Docker's stream framing: an 8-byte header [stream, 0, 0, 0, uint32 BE length]
then the payload. Streams 1 and 2 carry stdout and stderr (so frames can be
relayed to an attach client unchanged), 0 carries stdin from a client, and 3
carries one JSON object: events from the monitor ({"event": "started" |
"state" | "error" | "exit", ...}) and commands from a client ({"cmd":
"close_stdin" | "resize" | "kill" | "pause" | "resume" | "stats" | "exec", ...}).
A container's monitor that runs in the monitor host says "exec": true in its
"state" event: on {"cmd": "exec", "exec": <ExecSpec>} the connection becomes the
exec's (its "started" or "error", its output, its "exit").
"""

from __future__ import annotations

import json
import struct

# The forkserver's first message on its control socket.
FORKSERVER_READY = b"ready"
# The monitor host's answer to each start the forkserver hands it.
MONITOR_HOST_TOOK = b"took"
# Its answer when the forkserver goes and it keeps running containers.
MONITOR_HOST_STAYS = b"stays"
# A container's monitor listens on this path socket in the container's bundle
# directory: reachable through the file system only, so not from a container
# (an abstract socket is reachable from any process in the host's network
# namespace, a --network host container included).
MONITOR_SOCKET = "monitor.sock"

STDIN = 0
STDOUT = 1
STDERR = 2
CONTROL = 3

HEADER = struct.Struct(">BxxxI")
MAX_PAYLOAD = 16 * 1024 * 1024
# What the daemon accepts from a monitor: the monitor reads output 64 KiB at a
# time and its control messages are small. A bigger header means a broken or
# forged stream, and is refused before anything is allocated for it.
MAX_OUTPUT_FRAME = 1024 * 1024
MAX_CONTROL_FRAME = 1024 * 1024


def socket_path(bundle_fd: int) -> str:
    """The monitor socket's address through an open fd of its bundle directory:
    short whatever the bundle's path (sun_path holds 108 bytes)."""
    return f"/proc/self/fd/{bundle_fd}/{MONITOR_SOCKET}"


def encode(stream: int, payload: bytes) -> bytes:
    return HEADER.pack(stream, len(payload)) + payload


def encode_control(message: dict) -> bytes:
    return encode(CONTROL, json.dumps(message, separators=(",", ":")).encode())


class FrameDecoder:
    """Incremental decoder: feed bytes as they arrive, get whole frames."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        frames: list[tuple[int, bytes]] = []
        while len(self._buf) >= HEADER.size:
            stream, length = HEADER.unpack_from(self._buf)
            if length > MAX_PAYLOAD:
                raise ValueError(f"frame of {length} bytes exceeds {MAX_PAYLOAD}")
            end = HEADER.size + length
            if len(self._buf) < end:
                break
            frames.append((stream, bytes(self._buf[HEADER.size : end])))
            del self._buf[:end]
        return frames

    @property
    def pending(self) -> int:
        return len(self._buf)


def _int(event: dict, key: str, low: int, high: int) -> None:
    value = event.get(key)
    # bool is an int to Python, never to the protocol.
    if type(value) is not int or not low <= value <= high:
        raise ValueError(f"{key} {value!r:.40} is not an integer in [{low}, {high}]")


def _typed(event: dict, key: str, kind: type, *, required: bool = True) -> None:
    if key not in event:
        if required:
            raise ValueError(f"{key} is missing")
        return
    if type(event[key]) is not kind:
        raise ValueError(f"{key} is not a {kind.__name__}")


_MAX_PID = 1 << 22  # the kernel's pid_max ceiling


def parse_event(payload: bytes) -> dict:
    """An event from a monitor, checked field by field; ValueError if it is not one.

    Nothing a monitor sends is used before it passes here: a broken (or forged)
    message must neither crash the daemon nor change what it believes.
    """
    try:
        event = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        raise ValueError("not JSON") from None
    if not isinstance(event, dict):
        raise ValueError("not a JSON object")
    kind = event.get("event")
    if kind in ("started", "state"):
        _int(event, "pid", 1, _MAX_PID)
        _int(event, "monitor_pid", 1, _MAX_PID)
        _typed(event, "started_at", str)
        _typed(event, "exec", bool, required=False)
    elif kind == "exit":
        _int(event, "exit_code", 0, 255)
        _typed(event, "finished_at", str)
        _typed(event, "oom_killed", bool, required=False)
        _typed(event, "error", str, required=False)
    elif kind == "error":
        _typed(event, "message", str)
        _typed(event, "kind", str, required=False)
    elif kind == "reply":
        _int(event, "req", 1, 1 << 62)
        _typed(event, "ok", bool)
        _typed(event, "error", str, required=False)
        _typed(event, "stats", dict, required=False)
    elif kind == "log-error":
        _typed(event, "error", str)
        _int(event, "dropped", 0, 1 << 62)
    else:
        raise ValueError(f"unknown event {kind!r:.40}")
    return event
