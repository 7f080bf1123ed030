"""The OCI runtimes a container may run with (HostConfig.Runtime, `--runtime`).

`dockyard` (our own, the default) always; `runc` and `crun` when installed
(dockerd registers runc the same way); and whatever daemon.json's
`runtimes` ({"name": {"path": ...}}) or `--add-runtime name=path` add.
`default-runtime` / `--default-runtime` picks the default. /info lists them.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field

from dockyard.errors import DockyardError, InvalidParameter

BUILTIN = "dockyard"
BUILTIN_PATH = "dockyard-runtime"
AUTODETECTED = ("runc", "crun")


@dataclass
class OciRuntimes:
    paths: dict[str, str] = field(default_factory=dict)  # name -> executable; "" = ours
    default: str = BUILTIN

    def resolve(self, name: str) -> str:
        """The runtime name a container records ("" = the default); refused if unknown."""
        name = name or self.default
        if name == BUILTIN or name in self.paths:
            return name
        raise InvalidParameter(f"unknown or invalid runtime name: {name}")

    def path_of(self, name: str) -> str:
        """The executable that runs it; "" for our own runtime."""
        return "" if name in ("", BUILTIN) else self.paths.get(name, "")

    def info(self) -> dict:
        runtimes = {BUILTIN: {"path": BUILTIN_PATH}}
        runtimes.update({n: {"path": p} for n, p in sorted(self.paths.items())})
        return {"Runtimes": runtimes, "DefaultRuntime": self.default}


def configure(configured: dict[str, dict], default: str) -> OciRuntimes:
    """From daemon.json's `runtimes` (plus --add-runtime) and the default's name."""
    paths: dict[str, str] = {}
    for name in AUTODETECTED:
        found = shutil.which(name)
        if found:
            paths[name] = found
    for name, spec in configured.items():
        if name == BUILTIN:
            raise DockyardError(f'runtime name "{BUILTIN}" is reserved for the built-in runtime')
        if not isinstance(spec, dict) or not isinstance(spec.get("path"), str) or not spec["path"]:
            raise DockyardError(f'runtimes.{name}: a "path" to the runtime executable is required')
        extra = sorted(set(spec) - {"path"})
        if extra:
            raise DockyardError(f"runtimes.{name}: {', '.join(extra)} not supported (only path)")
        path = spec["path"] if os.path.isabs(spec["path"]) else shutil.which(spec["path"])
        if not path or not os.access(path, os.X_OK):
            raise DockyardError(f"runtimes.{name}: {spec['path']} is not an executable")
        paths[name] = path
    runtimes = OciRuntimes(paths=paths, default=default or BUILTIN)
    if runtimes.default != BUILTIN and runtimes.default not in paths:
        raise DockyardError(f"default-runtime {runtimes.default}: no such runtime is configured")
    return runtimes


def parse_add_runtime(values: list[str]) -> dict[str, dict]:
    """dockerd's --add-runtime name=path."""
    out: dict[str, dict] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise DockyardError(f"--add-runtime {value!r}: expected name=path")
        out[name] = {"path": path}
    return out
