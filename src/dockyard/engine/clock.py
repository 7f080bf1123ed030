"""Timestamps as dockerd writes them (Go's RFC3339Nano: UTC, trailing zeros trimmed)."""

from __future__ import annotations

import time

from dockyard.runtime.rfc3339 import fixed_nanos, format_rfc3339nano

__all__ = ["ZERO_TIME", "fixed_nanos", "parse_rfc3339", "rfc3339"]

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
    if frac and not (frac.isascii() and frac.isdigit()):
        return 0.0
    try:
        whole = datetime.fromisoformat(main + "+00:00").timestamp()
    except ValueError:
        return 0.0
    if not frac or whole < 0:
        return whole + (float("0." + frac) if frac else 0.0)
    # The one float nearest the exact decimal: a time and an API's "secs.nanos" for it
    # ("1700000000.975311325") compare equal (whole + fraction could be an ulp off, and
    # `logs --until <a line's time>` left that line out).
    return float(f"{int(whole)}.{frac}")
