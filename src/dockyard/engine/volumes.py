"""The volume service: named and anonymous volumes of the `local` driver, as dockerd keeps them.

A volume is a record in the store and a directory <data-root>/volumes/<name>/_data
(the data root is root's alone). A volume created with the local driver's options
(`-o type=tmpfs -o device=tmpfs -o o=size=64m`) is mounted on its _data at first use
and unmounted when removed, as dockerd's local driver does. Which containers use a
volume is asked of the container service (`users_of`), so a volume in use is never
removed and its data outlives any container.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
from collections.abc import Callable

from dockyard.engine.clock import rfc3339
from dockyard.engine.events import EventBus
from dockyard.engine.models import Volume
from dockyard.engine.resource_events import prune_event, volume_event
from dockyard.engine.store import Store
from dockyard.errors import Conflict, InvalidParameter, NotFound
from dockyard.kernel.flags import MNT_DETACH, MS_BIND
from dockyard.kernel.interface import Kernel

log = logging.getLogger("dockyard.volumes")

# volume/local/local.go: validNamePattern and its words.
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_LOCAL_OPTS = {"type", "device", "o", "size"}
ANONYMOUS_LABEL = "com.docker.volume.anonymous"
_LIST_FILTERS = {"dangling", "name", "label", "label!", "driver"}
_PRUNE_FILTERS = {"label", "label!", "all"}


def validate_name(name: str) -> None:
    if not _NAME.match(name):
        raise InvalidParameter(
            f'create {name}: "{name}" includes invalid characters for a local volume name, '
            'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
            "directory, use absolute path"
        )


def _check_options(opts: dict[str, str]) -> None:
    """volume/local/local_unix.go validateOpts."""
    for key in opts:
        if key not in _LOCAL_OPTS:
            raise InvalidParameter(f'invalid option key: "{key}"')
    if opts.get("size"):
        raise InvalidParameter("quota size requested but no quota support")
    if opts.get("device") and not opts.get("type"):
        raise InvalidParameter('missing required option: "type"')
    if opts.get("type") and not opts.get("device"):
        raise InvalidParameter('missing required option: "device"')
    if opts.get("type") == "bind" or "bind" in (opts.get("o") or "").split(","):
        if opts.get("device") and not os.path.isdir(opts["device"]):
            raise InvalidParameter(
                f"failed to mount local volume: mount {opts['device']}: no such file or directory"
            )


def _labels_match(labels: dict[str, str], wanted: list[str], negate: bool = False) -> bool:
    for w in wanted:
        key, eq, value = w.partition("=")
        hit = key in labels and (not eq or labels[key] == value)
        if hit == negate:
            return False
    return True


class VolumeService:
    def __init__(self, store: Store, data_root: str, kernel: Kernel | None = None) -> None:
        self._store = store
        self._root = os.path.join(data_root, "volumes")
        os.makedirs(self._root, mode=0o701, exist_ok=True)
        self._kernel = kernel
        self._volumes: dict[str, Volume] = {v.name: v for v in store.volumes()}
        self._mounted: set[str] = set()  # names whose local-driver mount is up
        # set by the container service: ids of the containers that use a volume
        self.users_of: Callable[[str], list[str]] = lambda name: []
        self.events: EventBus | None = None  # set by the container service

    def _kern(self) -> Kernel:
        if self._kernel is None:
            from dockyard.kernel.linux import LinuxKernel

            self._kernel = LinuxKernel()
        return self._kernel

    # lookups

    def get(self, name: str) -> Volume:
        v = self._volumes.get(name)
        if v is None:
            raise NotFound(f"get {name}: no such volume")
        return v

    def exists(self, name: str) -> bool:
        return name in self._volumes

    def names(self) -> set[str]:
        return set(self._volumes)

    def list(self, filters: dict[str, list[str]] | None = None) -> list[Volume]:
        filters = filters or {}
        for key in filters:
            if key not in _LIST_FILTERS:
                raise InvalidParameter(f"invalid filter '{key}'")
        out = []
        for v in sorted(self._volumes.values(), key=lambda v: v.name):
            if "dangling" in filters:
                want = {w.lower() for w in filters["dangling"]}
                if not want <= {"true", "1", "false", "0"}:
                    raise InvalidParameter(f"invalid filter 'dangling={filters['dangling'][0]}'")
                dangling = not self.users_of(v.name)
                if (want & {"true", "1"}) and not dangling:
                    continue
                if (want & {"false", "0"}) and dangling:
                    continue
            if "name" in filters and not any(n in v.name for n in filters["name"]):
                continue
            if "driver" in filters and v.driver not in filters["driver"]:
                continue
            if "label" in filters and not _labels_match(v.labels or {}, filters["label"]):
                continue
            if "label!" in filters and not _labels_match(
                v.labels or {}, filters["label!"], negate=True
            ):
                continue
            out.append(v)
        return out

    # changes

    def create(
        self,
        name: str = "",
        driver: str = "",
        labels: dict[str, str] | None = None,
        options: dict[str, str] | None = None,
        *,
        anonymous: bool = False,
    ) -> Volume:
        driver = driver or "local"
        if driver != "local":
            raise NotFound(f'error looking up volume plugin {driver}: plugin "{driver}" not found')
        if not name:
            name = secrets.token_hex(32)
            anonymous = True
        validate_name(name)
        existing = self._volumes.get(name)
        if existing is not None:
            return existing  # dockerd: creating an existing volume answers it
        options = dict(options or {})
        _check_options(options)
        labels = dict(labels or {})
        if anonymous:
            labels.setdefault(ANONYMOUS_LABEL, "")
        path = os.path.join(self._root, name)
        os.makedirs(os.path.join(path, "_data"), mode=0o755, exist_ok=True)
        v = Volume(
            name=name,
            mountpoint=os.path.join(path, "_data"),
            created_at=rfc3339(os.stat(path).st_mtime_ns // 1_000_000_000 * 1_000_000_000),
            driver=driver,
            labels=labels or None,
            options=options or None,
            anonymous=anonymous,
        )
        self._store.put_volume(v)
        self._volumes[name] = v
        volume_event(self.events, name, "create", driver)
        log.info("volume %s created", name)
        return v

    def mount(self, name: str) -> str:
        """The host directory a container binds for this volume (mounted if the local
        driver's options say so)."""
        v = self.get(name)
        opts = v.options or {}
        if opts.get("type") and not is_mountpoint(v.mountpoint):
            flags = 0
            data = opts.get("o") or None
            if opts["type"] == "bind" or "bind" in (data or "").split(","):
                flags |= MS_BIND
            self._kern().mount(opts["device"], v.mountpoint, opts["type"], flags, data)
        self._mounted.add(name)
        return v.mountpoint

    def remove(self, name: str, *, force: bool = False) -> None:
        v = self._volumes.get(name)
        if v is None:
            if force:
                return
            raise NotFound(f"get {name}: no such volume")
        users = self.users_of(name)
        if users:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
        self._delete(v)

    def _delete(self, v: Volume) -> None:
        # A bind of a host directory (-o o=bind) is no mount point to os.path.ismount
        # (same device): mountinfo says. Nothing is deleted while anything is mounted
        # there, or rmtree would empty the host directory behind it.
        while is_mountpoint(v.mountpoint):
            self._kern().umount2(v.mountpoint, MNT_DETACH)
        self._mounted.discard(v.name)
        self._store.delete_volume(v.name)
        del self._volumes[v.name]
        shutil.rmtree(os.path.join(self._root, v.name), ignore_errors=True)
        volume_event(self.events, v.name, "destroy", v.driver)
        log.info("volume %s removed", v.name)

    def prune(self, filters: dict[str, list[str]] | None = None) -> tuple[list[str], int]:
        """Unused volumes; only anonymous ones unless filter all=true (API >= 1.42)."""
        filters = filters or {}
        for key in filters:
            if key not in _PRUNE_FILTERS:
                raise InvalidParameter(f"invalid filter '{key}'")
        all_ = any(w.lower() in ("true", "1") for w in filters.get("all", []))
        deleted, reclaimed = [], 0
        for v in list(self._volumes.values()):
            labels = v.labels or {}
            if not all_ and ANONYMOUS_LABEL not in labels:
                continue
            if "label" in filters and not _labels_match(labels, filters["label"]):
                continue
            if "label!" in filters and not _labels_match(labels, filters["label!"], True):
                continue
            if self.users_of(v.name):
                continue
            reclaimed += _tree_size(v.mountpoint)
            self._delete(v)
            deleted.append(v.name)
        prune_event(self.events, "volume", reclaimed)
        return deleted, reclaimed


def _tree_size(path: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def is_mountpoint(path: str) -> bool:
    """Whether something is mounted on `path` (by /proc/self/mountinfo, which sees binds
    from the same filesystem that os.path.ismount misses)."""
    real = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            for line in f:
                point = line.split(b" ", 5)[4]
                if _unescape(point) == real:
                    return True
    except OSError:
        return os.path.ismount(path)
    return False


def _unescape(field: bytes) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    return re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), field).decode(
        "utf-8", "surrogateescape"
    )
