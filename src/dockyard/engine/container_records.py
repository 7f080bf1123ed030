"""Container records: what the daemon keeps of each container, how it finds and saves them."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from dockyard.engine import create_validation, logconfig
from dockyard.engine.events import EventBus
from dockyard.engine.images import ImageService
from dockyard.engine.models import Container, ContainerState, MountPoint
from dockyard.engine.network_endpoints import ContainerFacts
from dockyard.engine.networking import ContainerNetworking
from dockyard.engine.networks import NetworkService
from dockyard.engine.output_hub import OutputHub
from dockyard.engine.runtimes import BUILTIN as BUILTIN_RUNTIME
from dockyard.engine.runtimes import OciRuntimes
from dockyard.engine.store import Store
from dockyard.engine.volumes import VolumeService
from dockyard.errors import InvalidParameter, NotFound, storage_full
from dockyard.runtime.launcher import Launcher, MonitorLink

log = logging.getLogger("dockyard.containers")


@dataclass
class _Live:
    """What the daemon holds in memory for a container beside its record."""

    hub: OutputHub = field(default_factory=OutputHub)
    link: MonitorLink | None = None
    exit_waiters: list[asyncio.Future[ContainerState]] = field(default_factory=list)
    removal_waiters: list[asyncio.Future[ContainerState]] = field(default_factory=list)
    restart_task: asyncio.Task[None] | None = None  # a restart policy's pending start
    removal: asyncio.Future[None] | None = None  # set once removal began
    # Held while a start is under way: a second start waits and then finds it running.
    start_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    running: asyncio.Event = field(default_factory=asyncio.Event)  # set while a link is up
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    # Held while a commit copies the upper dir into the bundle (image/copied_layers
    # .staging_dir): a removal waits for it rather than delete under the copy.
    commit_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class ContainerRecords:
    """Container records (in the store and in memory), lookups, saves and events:
    what every part of the container service stands on."""

    def __init__(
        self,
        store: Store,
        images: ImageService,
        launcher: Launcher,
        data_root: str,
        networking: ContainerNetworking,
        events: EventBus | None = None,
        volumes: VolumeService | None = None,
        networks: NetworkService | None = None,
        runtimes: OciRuntimes | None = None,
    ) -> None:
        self.runtimes = runtimes or OciRuntimes()
        self._store = store
        self.networking = networking
        self.volumes = volumes or VolumeService(store, data_root)
        self.networks = networks if networks is not None else NetworkService(store)
        self.networks.container = self._network_facts
        self._images = images
        self._launcher = launcher
        self.launcher = launcher
        self.events = events or EventBus()
        # Volume and network events go on the same stream as the containers'.
        self.volumes.events = self.networks.events = self.events
        # Called with a container's id once it is removed (its execs go with it).
        self.removal_hooks: list[Callable[[str], None]] = []
        # Called once a container runs (started, or found running after a daemon
        # restart) and once it exited: health checks follow these.
        self.run_hooks: list[Callable[[Container], None]] = []
        self.exit_hooks: list[Callable[[Container], None]] = []
        self._root = os.path.join(data_root, "containers")
        os.makedirs(self._root, exist_ok=True)
        self._containers: dict[str, Container] = {c.id: c for c in store.containers()}
        for c in self._containers.values():
            if c.mount_points is None and c.host_config.binds:
                # records from before mount points: their binds, as they were mounted
                c.mount_points = [
                    MountPoint(
                        type="bind", destination=b.target, source=b.source, rw=not b.readonly
                    )
                    for b in create_validation.parse_binds(c.host_config.binds)
                    if b.kind == "bind"
                ]
        self._network_traces: dict[str, dict] = {}  # container id -> its last start's
        # container id -> the daemon's steps of its last start (engine/start_trace.py)
        self._start_timelines: dict[str, dict] = {}
        self._live: dict[str, _Live] = {}
        # Records whose last change could not be written (a full data root): kept
        # right in memory, written again at the next successful save.
        self._unsaved: set[str] = set()
        images.users_of = self._users_of_image
        self.volumes.users_of = self._users_of_volume
        self.log_defaults = logconfig.LogDefaults()  # daemon.json log-driver / log-opts
        self._copying: set[str] = set()  # stopped containers whose rootfs a cp has mounted
        # dockerd's IsShuttingDown: its stops are not the user's (unless-stopped comes back).
        self._shutting_down = False

    def _runtime_path(self, c: Container) -> str:
        """The executable of the container's runtime ("" = ours); refused if it went away."""
        name = c.host_config.runtime
        path = self.runtimes.path_of(name)
        if name not in ("", BUILTIN_RUNTIME) and not path:
            raise InvalidParameter(f"unknown or invalid runtime name: {name}")
        return path

    # lookups

    def _users_of_image(self, image_id: str) -> list[tuple[str, bool]]:
        return [(c.id, c.state.running) for c in self._containers.values() if c.image == image_id]

    def _users_of_volume(self, name: str) -> list[str]:
        return [
            c.id
            for c in self._containers.values()
            if any(mp.type == "volume" and mp.name == name for mp in c.mount_points or [])
        ]

    def _mounts_of(self, ref: str) -> list[MountPoint]:
        """--volumes-from: the mount points of another container."""
        return list(self.get(ref).mount_points or [])

    def get(self, ref: str) -> Container:
        """By full id, name (with or without '/'), or unique id prefix, as dockerd."""
        if ref in self._containers:
            return self._containers[ref]
        name = ref if ref.startswith("/") else "/" + ref
        for c in self._containers.values():
            if c.name == name:
                return c
        if ref:
            matches = [c for c in self._containers.values() if c.id.startswith(ref)]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise InvalidParameter(f"Multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def _network_facts(self, ref: str) -> ContainerFacts | None:
        try:
            c = self.get(ref)
        except (NotFound, InvalidParameter):
            return None
        return ContainerFacts(
            id=c.id,
            name=c.name.lstrip("/"),
            network_mode=c.host_config.network_mode,
            running=c.state.running,
            netns=self.netns_path(c),
        )

    def netns_path(self, c: Container) -> str:
        """The network namespace file (sandbox) of a running container, "" if none."""
        return c.sandbox_key if c.state.running else ""

    def commit_lock(self, container_id: str) -> asyncio.Lock:
        """Held by a commit while it copies into the container's bundle."""
        return self._live_of(container_id).commit_lock

    def removal_begun(self, container_id: str) -> bool:
        return self._live_of(container_id).removal is not None

    def _live_of(self, container_id: str) -> _Live:
        live = self._live.get(container_id)
        if live is None:
            live = self._live[container_id] = _Live()
        return live

    def _save(self, c: Container) -> None:
        self._store.put_container(c)
        self._unsaved.discard(c.id)
        self._save_pending()

    def _save_state(self, c: Container) -> None:
        """Persist a change that has already happened (an exit, a stop, a start).

        On a full data root the operation must not fail for it, nor leave its
        waiters hanging: the record stays right in memory and is written at the
        next save that succeeds. After a crash meanwhile, restore() reads the
        true exit from the monitor's exit.json."""
        try:
            self._save(c)
        except Exception as e:
            full = storage_full(e)
            if full is None:
                raise
            if c.id not in self._unsaved:
                log.error("container %s: state not saved (%s): kept in memory", c.short_id, full)
            self._unsaved.add(c.id)

    def _save_pending(self) -> None:
        for cid in list(self._unsaved):
            c = self._containers.get(cid)
            try:
                if c is not None:
                    self._store.put_container(c)
            except Exception as e:
                if storage_full(e) is None:
                    raise
                return  # still full: the next save tries again
            self._unsaved.discard(cid)

    save = _save  # for the services beside this one (pause, rename, health)

    def link_of(self, c: Container) -> MonitorLink | None:
        """The connection to a running container's monitor (None when not running)."""
        live = self._live.get(c.id)
        return live.link if live is not None else None

    def check_name_free(self, full_name: str) -> None:
        self._check_name_free(full_name)

    def emit(self, c: Container, action: str, **extra: str) -> None:
        """A container event as dockerd's: image, name and the labels as attributes."""
        attrs = {**(c.config.labels or {}), "image": c.config.image, "name": c.name.lstrip("/")}
        attrs.update(extra)
        self.events.emit("container", action, c.id, attrs)
