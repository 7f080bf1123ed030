"""A container's log driver and options, settled at create as dockerd does.

The defaults are filled in (inspect shows `json-file`), and what this daemon
acts on is checked: the json-file driver with max-size/max-file rotation
(written by the monitor, runtime/jsonlog.py), and `none`. Anything else is
refused in dockerd's words rather than accepted and ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dockyard.engine.models import LogConfig
from dockyard.errors import InvalidParameter

DEFAULT_DRIVER = "json-file"
DRIVERS = ("json-file", "none")
# dockerd's json-file options (daemon/logger/jsonfilelog); the first two are acted on.
_JSON_FILE_OPTS = ("max-size", "max-file")
_JSON_FILE_KNOWN = (
    *_JSON_FILE_OPTS,
    "compress",
    "labels",
    "labels-regex",
    "env",
    "env-regex",
    "tag",
)

# go-units FromHumanSize: decimal multipliers, optional "i" and "b".
_HUMAN_SIZE = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_DECIMAL = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}


@dataclass(frozen=True)
class LogRotation:
    max_size: int = 0  # bytes; 0: the log grows without limit
    max_files: int = 1


def settle(log_config: LogConfig) -> None:
    """Fill in the default driver and check driver and options (raises InvalidParameter)."""
    if not log_config.type:
        log_config.type = DEFAULT_DRIVER
    driver = log_config.type
    if driver not in DRIVERS:
        raise InvalidParameter(f"logger: no log driver named '{driver}' is registered")
    opts = log_config.config or {}
    for key in sorted(opts):
        if driver != "json-file" or key not in _JSON_FILE_KNOWN:
            raise InvalidParameter(f"unknown log opt '{key}' for {driver} log driver")
        if key not in _JSON_FILE_OPTS:
            raise InvalidParameter(
                f"log opt '{key}' of the json-file log driver is not supported by this dockyard"
            )
    rotation(log_config)


def rotation(log_config: LogConfig) -> LogRotation:
    """max-size/max-file of a json-file log, checked with dockerd's words."""
    opts = log_config.config or {}
    max_size = 0
    if "max-size" in opts:
        max_size = _human_size(opts["max-size"])
        if max_size <= 0:
            raise InvalidParameter("max-size must be a positive number")
    max_files = 1
    if "max-file" in opts:
        try:
            max_files = int(opts["max-file"])
        except ValueError:
            raise InvalidParameter(f"invalid max-file: {opts['max-file']!r}") from None
        if max_files < 1:
            raise InvalidParameter("max-file cannot be less than 1")
    # As with dockerd, max-file without max-size changes nothing: the log never rotates.
    return LogRotation(max_size, max_files)


def _human_size(text: str) -> int:
    m = _HUMAN_SIZE.match(text.strip())
    if m is None:
        raise InvalidParameter(f"invalid size: '{text}'")
    return int(float(m.group(1)) * _DECIMAL[(m.group(2) or "").lower()])
