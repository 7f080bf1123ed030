"""Timestamps as dockerd writes them (Go's RFC3339Nano: UTC, trailing zeros trimmed)."""

from __future__ import annotations

import time

from dockyard.runtime.rfc3339 import format_rfc3339nano

ZERO_TIME = "0001-01-01T00:00:00Z"


def rfc3339(ns: int | None = None) -> str:
    """`ns` (default: now) as the runtime writes its times too (one formatter)."""
    return format_rfc3339nano(time.time_ns() if ns is None else ns)


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch; 0.0 for Go's zero time or junk."""
    from datetime import datetime

    if not text or text.startswith("0001-"):
        return 0.0
    main, _, frac = text.rstrip("Z").partition(".")
    try:
        whole = datetime.fromisoformat(main + "+00:00").timestamp()
    except ValueError:
        return 0.0
    return whole + (float("0." + frac) if frac else 0.0)
