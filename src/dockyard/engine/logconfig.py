"""Log drivers and their options, checked at create as dockerd checks them.

Drivers: `json-file` (dockerd's format), `local` and `none`. Rotation is ON by
default here (max-size 10m, max-file 3), as issue 9 asks; dockerd's json-file
default is no rotation unless daemon.json sets log-opts. `local` gets dockerd's
local defaults (20m, 5 files, compressed); its files are written in the json-file
format (dockerd's local format is internal to it: `logs` reads the same either way).
The daemon's defaults come from daemon.json `log-driver` / `log-opts`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dockyard.engine.models import LogConfig
from dockyard.errors import InvalidParameter

DRIVERS = ("json-file", "local", "none")
_DEFAULTS = {
    "json-file": {"max-size": "10m", "max-file": "3", "compress": "false"},
    "local": {"max-size": "20m", "max-file": "5", "compress": "true"},
}
# what each driver's ValidateLogOpt accepts (daemon/logger/jsonfilelog, local)
_OPTS = {
    "json-file": {"max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex", "tag"},
    "local": {"max-size", "max-file", "compress"},
    "none": set(),
}  # fmt: skip
# the monitor reads it (runtime/monitor.py): a JSON object of the entries' "attrs"
ATTRS_ANNOTATION = "org.dockyard.log.attrs"
_UNITS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}


@dataclass
class LogDefaults:
    """daemon.json's log-driver and log-opts."""

    driver: str = "json-file"
    opts: dict[str, str] = field(default_factory=dict)


@dataclass
class Rotation:
    max_size: int  # bytes, 0 = never rotate
    max_file: int
    compress: bool

    def annotations(self) -> dict[str, str]:
        """How the monitor learns it: annotations of the bundle's config.json."""
        return {
            "org.dockyard.log.max-size": str(self.max_size),
            "org.dockyard.log.max-file": str(self.max_file),
            "org.dockyard.log.compress": "true" if self.compress else "false",
        }


def _size(value: str) -> int:
    """go-units FromHumanSize (decimal: 10m = 10,000,000), as json-file reads max-size."""
    text = value.strip().lower().removesuffix("b")
    num, unit = text, ""
    if text and text[-1] in _UNITS:
        num, unit = text[:-1], text[-1]
    try:
        n = float(num)
    except ValueError:
        raise InvalidParameter(f"invalid size: '{value}'") from None
    if n < 0:
        raise InvalidParameter(f"invalid size: '{value}'")
    return int(n * _UNITS[unit])


def check(lc: LogConfig, defaults: LogDefaults) -> None:
    """Refuse an unknown driver or option in dockerd's words; fill the driver in."""
    if lc.config is None:
        lc.config = {}
    if not lc.type:
        lc.type = defaults.driver
        if not lc.config:
            lc.config = dict(defaults.opts)
    if lc.type not in DRIVERS:
        raise InvalidParameter(f"logger: no log driver named '{lc.type}' is registered")
    for key in lc.config or {}:
        if key not in _OPTS[lc.type]:
            raise InvalidParameter(f"unknown log opt '{key}' for {lc.type} log driver")
    rotation(lc)  # values checked now, not at start
    for key in ("labels-regex", "env-regex"):
        if lc.config.get(key):
            try:
                re.compile(lc.config[key])
            except re.error as e:
                raise InvalidParameter(f"invalid {key} log opt {lc.config[key]!r}: {e}") from None


def extra_attributes(lc: LogConfig, labels: dict[str, str], env: list[str]) -> dict[str, str]:
    """dockerd's logger.Info.ExtraAttributes: the container labels and env variables that
    `--log-opt labels=,labels-regex=,env=,env-regex=` name, stored with each json-file
    entry as "attrs" (and shown by `logs --details`)."""
    opts = lc.config or {}
    extra: dict[str, str] = {}
    for key in filter(None, opts.get("labels", "").split(",")):
        if key in labels:
            extra[key] = labels[key]
    if opts.get("labels-regex"):
        pattern = re.compile(opts["labels-regex"])
        extra.update({k: v for k, v in labels.items() if pattern.search(k)})
    variables = dict(e.split("=", 1) for e in env if "=" in e)
    for key in filter(None, opts.get("env", "").split(",")):
        if key in variables:
            extra[key] = variables[key]
    if opts.get("env-regex"):
        pattern = re.compile(opts["env-regex"])
        extra.update({k: v for k, v in variables.items() if pattern.search(k)})
    return extra


def rotation(lc: LogConfig) -> Rotation | None:
    """None for the `none` driver (no log file)."""
    if lc.type == "none":
        return None
    opts = {**_DEFAULTS.get(lc.type or "json-file", _DEFAULTS["json-file"]), **(lc.config or {})}
    max_size = _size(opts["max-size"]) if opts["max-size"] not in ("", "-1") else 0
    try:
        max_file = int(opts["max-file"])
    except ValueError:
        raise InvalidParameter(f"invalid value for max-file: {opts['max-file']}") from None
    if max_file < 1:
        raise InvalidParameter("max-file cannot be less than 1")
    compress_raw = opts["compress"].lower()
    if compress_raw not in ("true", "false", "1", "0", "t", "f"):
        raise InvalidParameter(f"error reading compress log option: {opts['compress']}")
    compress = compress_raw in ("true", "1", "t")
    if max_file > 1 and not max_size and lc.config and "max-file" in lc.config:
        raise InvalidParameter("max-file cannot be set without max-size")
    if compress and max_file == 1 and lc.config and "compress" in lc.config:
        raise InvalidParameter("compress cannot be true when max-file is less than 2")
    return Rotation(max_size, max_file, compress)
