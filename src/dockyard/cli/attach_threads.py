"""The background threads of an attached session: the stdin pump and the waiter."""

from __future__ import annotations

import os
import threading

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from dockyard.client.transport import Client, HijackedConnection


class StdinPump(threading.Thread):
    """Copies our stdin to the container; half-closes the socket at EOF.

    With a TTY it watches for the detach keys (ctrl-p ctrl-q by default): they
    end the session and leave the container running, as with docker.
    """

    def __init__(self, conn: HijackedConnection, fd: int = 0, detach_keys: bytes = b"") -> None:
        super().__init__(daemon=True, name="stdin")
        self.conn = conn
        self.fd = fd
        self.detach_keys = detach_keys
        self.detached = threading.Event()
        self._matched = 0

    def _filter(self, data: bytes) -> tuple[bytes, bool]:
        """(input to forward, whether the whole detach sequence was typed)."""
        keys = self.detach_keys
        out = bytearray()
        for byte in data:
            if byte == keys[self._matched]:
                self._matched += 1
                if self._matched == len(keys):
                    return bytes(out), True
                continue
            if self._matched:
                # a partial sequence was ordinary input after all
                out += keys[: self._matched]
                self._matched = 1 if byte == keys[0] else 0
                if self._matched:
                    continue
            out.append(byte)
        return bytes(out), False

    def run(self) -> None:
        try:
            while True:
                data = os.read(self.fd, 32768)
                if not data:
                    break
                detach = False
                if self.detach_keys:
                    data, detach = self._filter(data)
                if data:
                    self.conn.send(data)
                if detach:
                    self.detached.set()
                    self.conn.close_both()
                    return
        except OSError:
            pass
        self.conn.close_write()


class Waiter(threading.Thread):
    """POST /containers/{id}/wait in the background, registered before start.

    dockerd writes the response headers once the waiter is registered, so
    `registered` tells us when it is safe to start the container.
    """

    def __init__(self, client: Client, cid: str, condition: str) -> None:
        super().__init__(daemon=True, name="wait")
        self.client = client
        self.cid = cid
        self.condition = condition
        self.registered = threading.Event()
        self.done = threading.Event()
        self.status: int | None = None
        self.error: str | None = None
        self.exception: BaseException | None = None

    def run(self) -> None:
        try:
            resp = self.client.request(
                "POST", f"/containers/{self.cid}/wait", {"condition": self.condition}
            )
            self.registered.set()
            data = resp.json() or {}
            self.status = int(data.get("StatusCode", 0))
            err = data.get("Error")
            if err and err.get("Message"):
                self.error = str(err["Message"])
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self.exception = exc
        finally:
            self.registered.set()
            self.done.set()

    def result(self) -> int:
        self.done.wait()
        if self.exception is not None:
            raise self.exception
        return self.status if self.status is not None else 0
