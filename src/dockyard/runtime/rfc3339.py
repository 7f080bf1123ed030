"""RFC 3339 timestamps the way Go's time.RFC3339Nano prints them (dockerd's format).

Go trims trailing zeros of the fraction ("...05.1234Z"), and drops it entirely
when it is zero; clients that parse Docker's output expect exactly that.
"""

from __future__ import annotations

import time


def format_rfc3339nano(epoch_ns: int) -> str:
    secs, nanos = divmod(epoch_ns, 1_000_000_000)
    t = time.gmtime(secs)  # formatted by hand: strftime reads /etc/localtime (tzset)
    base = (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
        f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    )
    if nanos:
        return f"{base}.{nanos:09d}".rstrip("0") + "Z"
    return base + "Z"


def now_rfc3339nano() -> str:
    return format_rfc3339nano(time.time_ns())


def fixed_nanos(text: str) -> str:
    """An RFC3339Nano UTC time with all nine digits of its fraction (Go's
    jsonmessage.RFC3339NanoFixed), as `docker logs -t` prints every line's time."""
    if len(text) == 30 or not text.endswith("Z"):
        return text  # already fixed ("2006-01-02T15:04:05.999999999Z"), or not UTC
    main, _, frac = text[:-1].partition(".")
    return f"{main}.{frac:0<9}Z"
