"""Signal names and numbers as dockerd parses them."""

from __future__ import annotations

import signal as signal_mod

from dockyard.errors import InvalidParameter


def parse_signal(value: str | int | None, default: int = signal_mod.SIGTERM) -> int:
    """'SIGKILL', 'KILL', 'kill' or '9' -> 9, as dockerd's signal.ParseSignal."""
    if value is None or value == "":
        return int(default)
    text = str(value).strip()
    if text.isascii() and text.isdigit():  # "²" is a digit to isdigit(), not to int()
        num = int(text)
        if 0 < num < 65:
            return num
    else:
        name = text.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        sig = getattr(signal_mod.Signals, name, None) if name.isidentifier() else None
        if sig is not None:
            return int(sig)
    raise InvalidParameter(f"Invalid signal: {value}")
