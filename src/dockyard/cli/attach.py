"""Attached I/O for run/start: hijacked stream, stdin pump, TTY raw mode, signal proxy."""

from __future__ import annotations

import _signal as signal  # the C module: `signal` would import enum
import contextlib
import os
import sys
import threading

from dockyard.client.stream import OutputSink, copy_stream
from dockyard.client.transport import Client, HijackedConnection

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

# docker's ForwardAllSignals skips SIGCHLD, SIGPIPE, SIGURG and SIGWINCH
PROXIED_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
_SIGNAL_NAMES = {getattr(signal, name): name for name in PROXIED_SIGNALS}


def attach(client: Client, cid: str, stdin: bool, stdout: bool, stderr: bool) -> HijackedConnection:
    query = {"stream": True, "stdin": stdin, "stdout": stdout, "stderr": stderr}
    return client.hijack(f"/containers/{cid}/attach", query)


DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


def parse_detach_keys(spec: str) -> bytes:
    """docker's term.ToBytes: 'ctrl-p,ctrl-q' -> b'\\x10\\x11'; plain characters as is."""
    out = bytearray()
    for key in spec.split(","):
        key = key.strip()
        lower = key.lower()
        if lower.startswith("ctrl-") and len(key) == 6:
            ch = lower[5]
            if "a" <= ch <= "z":
                out.append(ord(ch) - ord("a") + 1)
                continue
            specials = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}
            if ch in specials:
                out.append(specials[ch])
                continue
        if len(key) != 1:
            raise ValueError(f"Unknown character: '{key}'")
        out += key.encode()
    return bytes(out)


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


class RawTerminal:
    """Puts the local terminal in raw mode while a -t container is attached."""

    def __init__(self, fd: int = 0) -> None:
        self.fd = fd
        self.saved: list[Any] | None = None

    def __enter__(self) -> RawTerminal:
        if os.isatty(self.fd):
            import termios
            import tty

            self.saved = termios.tcgetattr(self.fd)
            tty.setraw(self.fd)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)


def terminal_size() -> tuple[int, int] | None:
    for fd in (1, 0, 2):
        try:
            size = os.get_terminal_size(fd)
            return size.lines, size.columns
        except OSError:
            continue
    return None


def resize(client: Client, cid: str, path: str = "/containers/{}/resize") -> None:
    size = terminal_size()
    if size is None or size == (0, 0):  # docker skips 0x0 too
        return
    # a failed resize must never stop the session
    with contextlib.suppress(Exception):
        client.request("POST", path.format(cid), {"h": size[0], "w": size[1]}).read()


class SignalProxy:
    """Forwards signals we receive to the container (docker's --sig-proxy)."""

    def __init__(self, client: Client, cid: str) -> None:
        self.client = client
        self.cid = cid
        self.saved: dict[int, Any] = {}

    def _forward(self, signum: int, _frame: object) -> None:
        name = _SIGNAL_NAMES.get(signum, str(signum))

        def send() -> None:
            # the container may be gone already
            with contextlib.suppress(Exception):
                self.client.request("POST", f"/containers/{self.cid}/kill", {"signal": name}).read()

        threading.Thread(target=send, daemon=True).start()

    def __enter__(self) -> SignalProxy:
        for name in PROXIED_SIGNALS:
            sig = getattr(signal, name)
            self.saved[sig] = signal.signal(sig, self._forward)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)


def pump_output(conn: HijackedConnection, tty: bool, sink: OutputSink | None = None) -> None:
    copy_stream(conn.iter_chunks(), sink or OutputSink(), tty)


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


def run_session(
    client: Client,
    cid: str,
    conn: HijackedConnection,
    tty: bool,
    stdin: bool,
    sig_proxy: bool,
    detach_keys: str | None = None,
    resize_path: str = "/containers/{}/resize",
) -> bool:
    """Copy streams until the container closes its output; True if the user detached."""
    keys = b""
    if tty and stdin:
        try:
            keys = parse_detach_keys(detach_keys or DEFAULT_DETACH_KEYS)
        except ValueError:
            keys = parse_detach_keys(DEFAULT_DETACH_KEYS)
    pump = StdinPump(conn, detach_keys=keys) if stdin else None
    raw = RawTerminal() if (tty and stdin) else None
    proxy = SignalProxy(client, cid) if (sig_proxy and not tty) else None
    saved_winch = None
    try:
        if raw:
            raw.__enter__()
        if proxy:
            proxy.__enter__()
        if tty:
            resize(client, cid, resize_path)
            if hasattr(signal, "SIGWINCH"):
                saved_winch = signal.signal(
                    signal.SIGWINCH, lambda *_: resize(client, cid, resize_path)
                )
        if pump:
            pump.start()
        pump_output(conn, tty)
    finally:
        if saved_winch is not None:
            signal.signal(signal.SIGWINCH, saved_winch)
        if proxy:
            proxy.__exit__()
        if raw:
            raw.__exit__()
        conn.close()
        sys.stdout.flush()
    return bool(pump and pump.detached.is_set())


def check_tty(tty: bool, stdin: bool) -> str | None:
    """docker's CheckTty: -it needs a terminal on stdin."""
    if tty and stdin and not os.isatty(0):
        return "the input device is not a TTY"
    return None
