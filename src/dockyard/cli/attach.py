"""Attached I/O for run/start: hijacked stream, stdin pump, TTY raw mode, signal proxy."""

from __future__ import annotations

import _signal as signal  # the C module: `signal` would import enum
import os
import sys

from dockyard.client.stream import OutputSink, copy_stream
from dockyard.client.transport import Client, HijackedConnection

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any


def __getattr__(name: str) -> object:
    """StdinPump and Waiter live in attach_threads.py: `threading` costs ~2 ms of start-up
    that `exec c true` (no stdin, no wait) does without."""
    if name in ("StdinPump", "Waiter"):
        from dockyard.cli import attach_threads

        return getattr(attach_threads, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    try:
        client.request("POST", path.format(cid), {"h": size[0], "w": size[1]}).read()
    except Exception:  # noqa: BLE001 - a failed resize must never stop the session
        pass


class SignalProxy:
    """Forwards signals we receive to the container (docker's --sig-proxy)."""

    def __init__(self, client: Client, cid: str) -> None:
        self.client = client
        self.cid = cid
        self.saved: dict[int, Any] = {}

    def _forward(self, signum: int, _frame: object) -> None:
        name = _SIGNAL_NAMES.get(signum, str(signum))

        def send() -> None:
            try:
                self.client.request("POST", f"/containers/{self.cid}/kill", {"signal": name}).read()
            except Exception:  # noqa: BLE001 - the container may be gone already
                pass

        import threading

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
    pump = None
    if stdin:
        from dockyard.cli.attach_threads import StdinPump

        pump = StdinPump(conn, detach_keys=keys)
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
