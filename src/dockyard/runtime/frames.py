"""The wire protocol between a container's monitor and its clients.

Docker's stream framing: an 8-byte header [stream, 0, 0, 0, uint32 BE length]
then the payload. Streams 1 and 2 carry stdout and stderr (so frames can be
relayed to an attach client unchanged), 0 carries stdin from a client, and 3
carries one JSON object: events from the monitor ({"event": "started" |
"state" | "error" | "exit", ...}) and commands from a client ({"cmd":
"close_stdin" | "resize" | "kill", ...}).
"""

from __future__ import annotations

import json
import struct

# The forkserver's first message on its control socket.
FORKSERVER_READY = b"ready"
# Monitors listen in the abstract namespace: nothing on disk, no path-length limit.
MONITOR_SOCKET_PREFIX = "\0dockyard-monitor-"

STDIN = 0
STDOUT = 1
STDERR = 2
CONTROL = 3

HEADER = struct.Struct(">BxxxI")
MAX_PAYLOAD = 16 * 1024 * 1024


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
