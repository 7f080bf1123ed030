"""The container service: the state machine of containers and the rules dockerd applies.

It owns container records (persisted in the store), turns a record into a runtime
`RunSpec` at start, keeps one `MonitorLink` per running container, and fans its
output out to attached clients. Nothing here speaks HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal as signal_mod
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from dockyard.engine import create_validation, etc_files, health, logconfig, mounts
from dockyard.engine.archive import ContainerFiles
from dockyard.engine.clock import ZERO_TIME, parse_rfc3339, rfc3339
from dockyard.engine.events import EventBus
from dockyard.engine.filters import check_container_filters, container_matches
from dockyard.engine.images import ImageService
from dockyard.engine.isolation import run_spec_options
from dockyard.engine.logs import LogEntry, read_log, read_log_batches
from dockyard.engine.models import (
    Container,
    ContainerConfig,
    ContainerState,
    HostConfig,
    MountPoint,
    NetworkingConfig,
    UpdateConfig,
    strslice,
)
from dockyard.engine.names import random_name, validate_name
from dockyard.engine.network_endpoints import ContainerFacts
from dockyard.engine.networking import ContainerNetworking
from dockyard.engine.networks import NetworkService
from dockyard.engine.runtimes import BUILTIN as BUILTIN_RUNTIME
from dockyard.engine.runtimes import OciRuntimes
from dockyard.engine.store import Store
from dockyard.engine.update import live_resources, merged_host_config
from dockyard.engine.volumes import VolumeService
from dockyard.errors import (
    Conflict,
    DockyardError,
    InvalidParameter,
    NotFound,
    NotModified,
    RuntimeFailure,
    storage_full,
)
from dockyard.image.layered_copy import copy_tree
from dockyard.image.users import parse_passwd, resolve_user
from dockyard.runtime.launcher import ExitRecord, Launcher, MonitorLink, read_exit
from dockyard.runtime.spec import (
    CAPABILITIES,
    DEFAULT_CAPABILITIES,
    DEFAULT_PATH,
    BindMount,
    RunSpec,
    write_bundle,
)

log = logging.getLogger("dockyard.containers")

# How long a SIGKILL waits for the container's death before `kill` returns (dockerd: 10s).
KILL_WAIT = 10.0

# A frame for attached clients: (stream, data); None ends the stream (the container exited).
Frame = tuple[int, bytes] | None


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


class OutputHub:
    """Fans a container's output out to every attached client.

    It counts the bytes of each stream published in the current run, so that an
    attach that replays the log and then follows (logs=1&stream=1) can drop what
    the log already gave it."""

    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[Frame]] = set()
        self.run = 0  # bumped at each start
        self.published = {1: 0, 2: 0}

    def new_run(self) -> None:
        self.run += 1
        self.published = {1: 0, 2: 0}

    def subscribe(self) -> asyncio.Queue[Frame]:
        q: asyncio.Queue[Frame] = asyncio.Queue()
        self._subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[Frame]) -> None:
        self._subscribers.discard(q)

    def publish(self, frame: tuple[int, bytes]) -> None:
        self.published[frame[0]] = self.published.get(frame[0], 0) + len(frame[1])
        for q in self._subscribers:
            q.put_nowait(frame)

    def end(self) -> None:
        """The container exited: every current stream ends."""
        subscribers, self._subscribers = self._subscribers, set()
        for q in subscribers:
            q.put_nowait(None)


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


@dataclass
class AttachStreams:
    """An attach in progress: logs replayed first, then live frames until exit."""

    frames: AsyncIterator[tuple[int, bytes]]
    tty: bool
    stdin: Callable[[bytes], Awaitable[None]] | None
    close_stdin: Callable[[], Awaitable[None]] | None


class ContainerService:
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
        self._live: dict[str, _Live] = {}
        # Records whose last change could not be written (a full data root): kept
        # right in memory, written again at the next successful save.
        self._unsaved: set[str] = set()
        images.users_of = self._users_of_image
        self.volumes.users_of = self._users_of_volume
        self.log_defaults = logconfig.LogDefaults()  # daemon.json log-driver / log-opts
        self._copying: set[str] = set()  # stopped containers whose rootfs a cp has mounted

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

    def files(self, ref: str) -> ContainerFiles:
        """The files of a container for the archive API (docker cp): a running one seen
        through its own root, a stopped one with its rootfs and volumes mounted for the
        time of the copy (it cannot start meanwhile)."""
        from dockyard.kernel.linux import LinuxKernel

        c = self.get(ref)
        kernel = LinuxKernel()
        if c.state.running and c.state.pid:
            files = ContainerFiles.of_running(kernel, c.state.pid, ref)
        else:
            if c.id in self._copying:
                raise Conflict(f"container {ref} is busy: another copy is in progress")
            lower = self._images.blobs.lower_dirs(c.image)
            upper = os.path.join(c.bundle, "upper")
            binds, _tmpfs = mounts.runtime_mounts(
                c, self.volumes, lambda path, dest: copy_tree([upper, *lower], path, dest)
            )
            self._copying.add(c.id)
            try:
                files = ContainerFiles.of_stopped(
                    kernel,
                    ref,
                    os.path.join(c.bundle, "cp-root"),
                    (lower, upper, os.path.join(c.bundle, "work")),
                    binds,
                )
            except BaseException:
                self._copying.discard(c.id)
                raise
            unmount = files._on_close

            def done() -> None:
                try:
                    if unmount is not None:
                        unmount()
                finally:
                    self._copying.discard(c.id)

            files._on_close = done
        files.readonly_rootfs = c.host_config.readonly_rootfs
        if c.config.user:
            lower = self._images.blobs.lower_dirs(c.image)
            upper = os.path.join(c.bundle, "upper")
            try:
                uid, gid, _groups = resolve_user(
                    c.config.user, lambda p: self._images.blobs.read_file([upper, *lower], p)
                )
                files.owner = (uid, gid)
            except (InvalidParameter, NotFound):
                pass  # an unknown user fails the container's start, not a copy
        return files

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

    def _live_of(self, container_id: str) -> _Live:
        live = self._live.get(container_id)
        if live is None:
            live = self._live[container_id] = _Live()
        return live

    def list(
        self,
        *,
        all_: bool = False,
        limit: int = -1,
        filters: dict[str, list[str]] | None = None,
    ) -> list[Container]:
        items = sorted(self._containers.values(), key=lambda c: c.created_unix, reverse=True)
        filters = filters or {}
        if not all_ and limit <= 0 and "status" not in filters and "exited" not in filters:
            items = [c for c in items if c.state.running]
        check_container_filters(filters)
        items = [c for c in items if container_matches(c, filters, self)]
        if limit > 0:
            items = items[:limit]
        return items

    def image_name(self, c: Container) -> str:
        """What `ps` shows as IMAGE: the name given at create while it still names the
        container's image, else the image id (dockerd's rule)."""
        try:
            if self._images.resolve(c.config.image) == c.image:
                return c.config.image
        except NotFound:
            pass
        return c.image

    def resolve_image(self, name: str) -> str:
        return self._images.resolve(name)

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

    # create

    async def create(
        self,
        config: ContainerConfig,
        host_config: HostConfig,
        name: str = "",
        networking: NetworkingConfig | None = None,
    ) -> Container:
        try:
            return await self._create(config, host_config, name, networking)
        except Exception as e:
            if isinstance(e, DockyardError) and storage_full(e) is None:
                raise  # refused before anything was written
            # E.g. a full disk after the bundle was begun: it goes now, not at the next
            # daemon start. (create never awaits, so no other create is half done.)
            self._sweep_unrecorded()
            raise

    def _sweep_unrecorded(self) -> None:
        for entry in os.listdir(self._root):
            if entry not in self._containers:
                shutil.rmtree(os.path.join(self._root, entry), ignore_errors=True)

    async def _create(
        self,
        config: ContainerConfig,
        host_config: HostConfig,
        name: str,
        networking: NetworkingConfig | None,
    ) -> Container:
        if not config.image:
            raise InvalidParameter("config cannot be empty in order to create a container")
        create_validation.validate_create(config, host_config)
        health.validate(config.healthcheck)
        logconfig.check(host_config.log_config, self.log_defaults)
        host_config.runtime = self.runtimes.resolve(host_config.runtime)
        image_id = self._images.resolve(config.image)
        image_cfg = self._images.config(image_id).get("config") or {}
        merged = self._merge_image_config(config, image_cfg)
        merged.healthcheck = health.merge(config.healthcheck, image_cfg.get("Healthcheck"))
        entrypoint = strslice(merged.entrypoint) or []
        cmd = strslice(merged.cmd) or []
        argv = entrypoint + cmd
        if not argv:
            raise InvalidParameter("no command specified")
        self.networking.validate(config, host_config, networking)

        container_id = secrets.token_hex(32)
        if name:
            full_name = validate_name(name)
            self._check_name_free(full_name)
        else:
            full_name = self._unused_random_name()
        mounts.check_volumes_from(host_config, self.get)
        mount_points = mounts.plan(merged, host_config, self.volumes, self._mounts_of)
        if not merged.hostname:
            merged.hostname = container_id[:12]
        if host_config.network_mode in ("", "default"):
            host_config.network_mode = "bridge"
        if host_config.network_mode == "host" and not config.hostname:
            merged.hostname = os.uname().nodename
        endpoints = self.networks.plan_endpoints(
            container_id,
            full_name.lstrip("/"),
            host_config.network_mode,
            networking.endpoints_config if networking is not None else None,
        )

        bundle = os.path.join(self._root, container_id)
        for sub in ("upper", "work", "rootfs"):
            os.makedirs(os.path.join(bundle, sub), exist_ok=True)
        host_net = host_config.network_mode == "host"
        paths = {
            "hostname": merged.hostname + "\n",
            "hosts": etc_files.hosts_file(
                host_config, host_net, host_gateway=self.networking.host_gateway()
            ),
            "resolv.conf": etc_files.resolv_conf(
                host_config, host_net, embedded_dns=bool(endpoints)
            ),
        }
        for fname, text in paths.items():
            etc_files.write_atomic(os.path.join(bundle, fname), text.encode())
        now_ns = time.time_ns()
        c = Container(
            id=container_id,
            name=full_name,
            created=rfc3339(now_ns),
            created_unix=now_ns / 1e9,
            path=argv[0],
            args=argv[1:],
            config=merged,
            host_config=host_config,
            image=image_id,
            log_path=os.path.join(bundle, f"{container_id}-json.log"),
            hostname_path=os.path.join(bundle, "hostname"),
            hosts_path=os.path.join(bundle, "hosts"),
            resolv_conf_path=os.path.join(bundle, "resolv.conf"),
            bundle=bundle,
            mount_points=mount_points,
        )
        self._save(c)
        self._containers[c.id] = c
        self.networks.save_endpoints(endpoints)
        self.emit(c, "create")
        log.info("container %s created (%s)", c.short_id, c.name)
        return c

    def _check_name_free(self, full_name: str) -> None:
        for other in self._containers.values():
            if other.name == full_name:
                raise Conflict(
                    f'Conflict. The container name "{full_name}" is already in use by '
                    f'container "{other.id}". You have to remove (or rename) that container '
                    "to be able to reuse that name."
                )

    def _unused_random_name(self) -> str:
        taken = {c.name for c in self._containers.values()}
        for retry in range(20):
            name = "/" + random_name(retry)
            if name not in taken:
                return name
        return "/" + random_name(20) + secrets.token_hex(2)

    def set_start_binds(self, ref: str, binds: list[str]) -> None:
        """The 2013 API gave binds at start (POST /v1.4/containers/{id}/start)."""
        c = self.get(ref)
        parsed = create_validation.parse_binds(binds)
        if any(b.kind != "bind" for b in parsed):
            raise InvalidParameter("volumes are given at create, not at start")
        c.host_config.binds = binds
        c.mount_points = [
            *(c.mount_points or []),
            *(
                MountPoint(type="bind", destination=b.target, source=b.source, rw=not b.readonly)
                for b in parsed
            ),
        ]
        self._save(c)

    @staticmethod
    def _merge_image_config(config: ContainerConfig, image: dict) -> ContainerConfig:
        """dockerd's merge of the image's config into the user's (daemon/commit.go)."""
        merged = ContainerConfig(**{f: getattr(config, f) for f in config.__struct_fields__})
        user_env = list(config.env or [])
        keys = {e.split("=", 1)[0] for e in user_env}
        merged.env = [e for e in (image.get("Env") or []) if e.split("=", 1)[0] not in keys]
        merged.env += user_env
        entrypoint = strslice(config.entrypoint)
        if entrypoint == [""]:
            entrypoint = []  # `--entrypoint ""` clears the image's entrypoint
        if not entrypoint:
            if not strslice(config.cmd):
                merged.cmd = image.get("Cmd")
            if entrypoint is None:
                entrypoint = image.get("Entrypoint")
        merged.entrypoint = entrypoint
        merged.cmd = strslice(merged.cmd)
        if not merged.user:
            merged.user = image.get("User") or ""
        if not merged.working_dir:
            merged.working_dir = image.get("WorkingDir") or ""
        if image.get("ExposedPorts"):
            merged.exposed_ports = {**image["ExposedPorts"], **(config.exposed_ports or {})}
        if image.get("Volumes"):
            merged.volumes = {**image["Volumes"], **(config.volumes or {})}
        if image.get("Labels"):
            merged.labels = {**image["Labels"], **(config.labels or {})}
        if merged.stop_signal is None and image.get("StopSignal"):
            merged.stop_signal = image["StopSignal"]
        if merged.on_build is None:
            merged.on_build = image.get("OnBuild")
        merged.image = config.image
        return merged

    # start

    def _run_spec(self, c: Container) -> RunSpec:
        lower = self._images.blobs.lower_dirs(c.image)
        upper = os.path.join(c.bundle, "upper")

        def read(path: str) -> bytes | None:
            return self._images.blobs.read_file([upper, *lower], path)

        uid, gid, groups = resolve_user(c.config.user, read)
        env = list(c.config.env or [])
        keys = {e.split("=", 1)[0] for e in env}
        extra = []
        if "PATH" not in keys:
            extra.append(f"PATH={DEFAULT_PATH}")
        extra.append(f"HOSTNAME={c.config.hostname}")
        if c.config.tty and "TERM" not in keys:
            extra.append("TERM=xterm")
        if "HOME" not in keys:
            extra.append(f"HOME={_home_of(read, uid)}")
        hc = c.host_config
        mode = hc.network_mode
        if mode == "host":
            network = "host"
        elif mode.startswith("container:"):
            other = self.get(mode.split(":", 1)[1])
            if not other.state.running:
                raise Conflict(f"cannot join network of a non running container: {other.id}")
            network = other.sandbox_key or f"/proc/{other.state.pid}/ns/net"
        elif mode == "none":
            network = "private"  # loopback only
        else:
            network = self.networking.network_path(c)
        etc_binds = [
            BindMount(c.resolv_conf_path, "/etc/resolv.conf"),
            BindMount(c.hostname_path, "/etc/hostname"),
            BindMount(c.hosts_path, "/etc/hosts"),
        ]
        binds, tmpfs = mounts.runtime_mounts(
            c, self.volumes, lambda path, dest: copy_tree([upper, *lower], path, dest)
        )
        caps = None
        if hc.cap_add or hc.cap_drop:
            caps = _apply_cap_changes(hc.cap_add or [], hc.cap_drop or [])
        isolation = run_spec_options(hc, self._running_pid, read)
        groups = groups + [g for g in isolation.pop("extra_gids") if g not in groups]
        # --tmpfs (checked by isolation) and --mount type=tmpfs, one set of tmpfs mounts
        tmpfs = {**isolation.pop("tmpfs", {}), **tmpfs}
        return RunSpec(
            args=[c.path, *c.args],
            env=extra + env,
            hostname=c.config.hostname,
            domainname=c.config.domainname,
            rootfs_lower=lower,
            rootfs_upper=upper,
            rootfs_work=os.path.join(c.bundle, "work"),
            cwd=c.config.working_dir or "/",
            uid=uid,
            gid=gid,
            additional_gids=groups,
            terminal=c.config.tty,
            open_stdin=c.config.open_stdin,
            readonly_rootfs=hc.readonly_rootfs,
            network=network,
            mounts=etc_binds + binds,
            tmpfs=tmpfs,
            cgroup_parent=hc.cgroup_parent or "dockyard",
            memory=hc.memory,
            memory_swap=hc.memory_swap,
            cpu_shares=hc.cpu_shares,
            pids_limit=hc.pids_limit or 0,
            capabilities=caps,
            privileged=hc.privileged,
            **isolation,
        )

    def _running_pid(self, ref: str) -> int:
        """The pid of a running container whose namespace another one joins."""
        other = self.get(ref)
        if not other.state.running:
            raise Conflict(f"cannot join namespaces of a non running container: {other.id}")
        return other.state.pid

    def update(self, ref: str, upd: UpdateConfig) -> list[str]:
        """docker update: checked as at create, applied now if running, kept; warnings."""
        c = self.get(ref)
        new, warnings = merged_host_config(c.host_config, upd)
        if c.state.running:
            warnings += self._launcher.update_resources(c.bundle, live_resources(new))
        c.host_config = new
        self._save(c)
        return warnings

    async def start(self, ref: str) -> Container:
        c = self.get(ref)
        live = self._live_of(c.id)
        # One start at a time: a concurrent second start finds the container running
        # (304, as dockerd answers it) instead of launching a second process.
        async with live.start_lock:
            if c.state.running:
                raise NotModified("container already started")
            try:
                return await self._start(c, live)
            except Exception as e:
                expected = isinstance(e, RuntimeFailure | InvalidParameter | Conflict)
                if not (c.host_config.auto_remove and (expected or storage_full(e))):
                    raise
                failure = e
        # As dockerd: a --rm container that cannot start is removed (the CLI waits
        # for that with condition=removed).
        await self.remove(c.id, force=True)
        raise failure

    async def _start(self, c: Container, live: _Live) -> Container:
        if live.removal is not None or c.state.status == "removing":
            raise Conflict(f"cannot start container {c.id}: container is marked for removal")
        if c.id in self._copying:
            raise Conflict(f"cannot start container {c.id}: a copy into its files is in progress")
        try:
            await self._prepare_network(c)
            try:
                await self._attach_networks(c)
                spec = self._run_spec(c)
                oci = spec.to_oci(c.id)
                rotation = logconfig.rotation(c.host_config.log_config)
                if rotation is not None:
                    oci.setdefault("annotations", {}).update(rotation.annotations())
                write_bundle(c.bundle, oci)
                log_path = c.log_path if rotation is not None else ""  # the none driver
                link = await self._launcher.run(
                    c.id,
                    c.bundle,
                    log_path=log_path,
                    runtime_path=self._runtime_path(c),
                )
            except BaseException:
                await self.networks.container_stopped(c.id)
                await self.networking.release(c)
                raise
        except (RuntimeFailure, InvalidParameter, Conflict) as e:
            c.state.error = e.message
            if isinstance(e, RuntimeFailure):
                c.state.exit_code = {"not-found": 127, "permission": 126}.get(e.kind, 128)
            self._save_state(c)
            raise
        c.manually_stopped = False
        c.state = ContainerState(
            status="running",
            running=True,
            pid=link.pid,
            started_at=link.started_at,
            finished_at=ZERO_TIME,
        )
        c.monitor_pid = link.monitor_pid
        self._follow(c, link)
        self._save_state(c)
        self.emit(c, "start")
        log.info("container %s started (pid %d)", c.short_id, link.pid)
        return c

    def _network_event(self, c: Container, action: str) -> None:
        """dockerd's network connect/disconnect events, one per endpoint."""
        ids = self.networking.network_ids()
        for name in c.endpoints or {}:
            attrs = {"container": c.id, "name": name, "type": "bridge"}
            self.events.emit("network", action, ids.get(name, name), attrs)

    async def _attach_networks(self, c: Container) -> None:
        """Interfaces on the container's user-defined networks (in the sandbox the
        default bridge's part made, or in one of its own), and its DNS listener,
        before its process starts; its /etc/hosts names its first address."""
        self.networks.check_network_mode(c.host_config.network_mode)
        if not self.networks.endpoints_of(c.id):
            return
        if not c.sandbox_key:
            c.sandbox_key = await self.networking.create_sandbox(c.id)
        await self.networks.container_started(c.id, c.sandbox_key)
        first = c.endpoints.get(next(iter(c.endpoints), ""))
        if first is not None and c.host_config.network_mode not in ("", "default", "bridge"):
            hosts = etc_files.hosts_file(
                c.host_config,
                False,
                ip=first.ip,
                hostname=c.config.hostname,
                domainname=c.config.domainname,
                host_gateway=self.networking.host_gateway(),
            )
            etc_files.write_quick(c.hosts_path, hosts.encode())

    async def _prepare_network(self, c: Container) -> None:
        """The container's network namespace and bridge endpoint, and the /etc/hosts
        that names its address."""
        start = time.perf_counter_ns()
        try:
            ep = await self.networking.prepare(c)
        finally:
            calls = self.networking.last_trace.pop(c.id, None)
        if ep is None:
            return
        self._network_event(c, "connect")
        hosts = etc_files.hosts_file(
            c.host_config,
            False,
            ip=ep.ip,
            hostname=c.config.hostname,
            domainname=c.config.domainname,
            host_gateway=self.networking.host_gateway(),
        )
        etc_files.write_quick(c.hosts_path, hosts.encode())
        # Kept in memory, not in a file: a write would cost the start more than
        # the work it records.
        self._network_traces[c.id] = {"ns": time.perf_counter_ns() - start, "calls": calls or []}

    def _follow(self, c: Container, link: MonitorLink) -> None:
        live = self._live_of(c.id)
        live.link = link
        live.hub.new_run()
        live.running.set()
        for hook in self.run_hooks:
            hook(c)

        async def pump() -> None:
            async for frame in link.frames():
                live.hub.publish(frame)

        async def watch() -> None:
            try:
                record = await link.wait()
            finally:
                await link.close()
            await self._on_exit(c.id, record)

        pump_task = asyncio.create_task(pump())

        async def watch_after_pump() -> None:
            await watch()
            # Output ends with the process; let attached clients drain what came last.
            await pump_task
            live.hub.end()

        task = asyncio.create_task(watch_after_pump())
        live.tasks.add(task)
        task.add_done_callback(live.tasks.discard)

    async def _on_exit(self, container_id: str, record: ExitRecord) -> None:
        c = self._containers.get(container_id)
        if c is None:
            return
        live = self._live_of(container_id)
        live.link = None
        live.running.clear()
        for hook in self.exit_hooks:
            hook(c)
        self._network_event(c, "disconnect")
        try:
            # User-defined networks first: their endpoints leave the record, then
            # the default bridge's part deletes the sandbox.
            await self.networks.container_stopped(c.id)
            await self.networking.release(c)
        except Exception as e:  # noqa: BLE001 - logged; the exit is recorded regardless
            log.warning("container %s: releasing its network failed: %s", c.short_id, e)
        c.state = ContainerState(
            status="exited",
            exit_code=record.exit_code,
            oom_killed=record.oom_killed,
            error=record.error,
            started_at=c.state.started_at,
            finished_at=record.finished_at,
            health=c.state.health,  # the last result stays for inspect, as dockerd's
        )
        if record.oom_killed:
            self.emit(c, "oom")
        self.emit(c, "die", exitCode=str(record.exit_code))
        restart = not c.host_config.auto_remove and self._should_restart(c, live)
        if restart:
            # dockerd's SetRestarting: still "running" for ps, wait and rm, no process.
            c.state.status, c.state.running, c.state.restarting = "restarting", True, True
            c.restart_count += 1
        log.info("container %s exited with %d", c.short_id, record.exit_code)
        # Waiters first: a full disk that fails the save below must not leave them hanging.
        waiters, live.exit_waiters = live.exit_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(c.state)
        self._save_state(c)
        if c.host_config.auto_remove:
            await self.remove(c.id, force=True)
            return
        if restart:
            delay = min(0.1 * 2 ** min(c.restart_count, 10), 60.0)
            task = asyncio.create_task(self._restart_later(c.id, delay))
            live.restart_task = task
            # _restart_later clears restart_task once it runs: the loop keeps only weak
            # references, so without this one the task was collected mid-start.
            live.tasks.add(task)
            task.add_done_callback(live.tasks.discard)

    @staticmethod
    def _should_restart(c: Container, live: _Live) -> bool:
        policy = c.host_config.restart_policy
        if c.manually_stopped or live.removal is not None or policy.name in ("", "no"):
            return False
        if policy.name == "on-failure":
            limit = policy.maximum_retry_count
            return c.state.exit_code != 0 and (limit == 0 or c.restart_count < limit)
        return True

    async def _restart_later(self, container_id: str, delay: float) -> None:
        await asyncio.sleep(delay)
        live = self._live_of(container_id)
        live.restart_task = None
        c = self._containers.get(container_id)
        if c is None or live.link is not None or c.manually_stopped:
            return
        try:
            async with live.start_lock:
                await self._start(c, live)
        except Exception as e:  # noqa: BLE001 - a failed restart is logged, not fatal
            log.warning("restart of %s failed: %s", container_id[:12], e)
            self._end_restarting(c, live)

    def _end_restarting(self, c: Container, live: _Live) -> None:
        """No next run after all (stopped, or its start failed): the container is exited."""
        if live.restart_task is not None:
            live.restart_task.cancel()
            live.restart_task = None
        if c.state.restarting:
            c.state.status, c.state.running, c.state.restarting = "exited", False, False
            waiters, live.exit_waiters = live.exit_waiters, []
            for fut in waiters:
                if not fut.done():
                    fut.set_result(c.state)
        self._save_state(c)

    # stop, kill, wait, remove

    def waiter(self, ref: str, condition: str = "not-running") -> asyncio.Future[ContainerState]:
        """A future for the wait condition, registered now (before any start that follows)."""
        c = self.get(ref)
        live = self._live_of(c.id)
        fut: asyncio.Future[ContainerState] = asyncio.get_running_loop().create_future()
        if condition in ("", "not-running"):
            if not c.state.running:
                fut.set_result(c.state)
            else:
                live.exit_waiters.append(fut)
        elif condition == "next-exit":
            live.exit_waiters.append(fut)
        elif condition == "removed":
            live.removal_waiters.append(fut)
        else:
            raise InvalidParameter(f"invalid condition: {condition!r}")
        return fut

    async def wait(self, ref: str, condition: str = "not-running") -> ContainerState:
        return await self.waiter(ref, condition)

    async def kill(self, ref: str, signal: str | int | None = None) -> None:
        c = self.get(ref)
        signum = parse_signal(signal, signal_mod.SIGKILL)
        live = self._live_of(c.id)
        async with live.start_lock:
            pass  # a start under way finishes first
        if c.state.restarting:
            raise Conflict(
                f"Cannot kill container: {ref}: Container {c.id} is restarting, "
                "wait until the container is running"
            )
        if not c.state.running or live.link is None:
            raise Conflict(f"Cannot kill container: {ref}: Container {c.id} is not running")
        if signum in (signal_mod.SIGKILL, signal_mod.SIGTERM, signal_mod.SIGINT):
            c.manually_stopped = True
        exited = self.waiter(c.id, "not-running") if signum == signal_mod.SIGKILL else None
        await live.link.kill(signum)
        self.emit(c, "kill", signal=str(signum))
        await self._thaw_if_paused(c, live)
        if exited is not None:
            # As dockerd: a SIGKILL returns once the container is dead, so that
            # `kill` then `rm` finds it stopped.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(exited), KILL_WAIT)

    async def stop(self, ref: str, timeout: int | None = None, signal: str | None = None) -> None:
        c = self.get(ref)
        live = self._live_of(c.id)
        async with live.start_lock:
            pass  # a start under way finishes first
        if c.state.restarting or (live.restart_task is not None and live.link is None):
            # Between two runs of a restart policy: stopping means "no next run".
            c.manually_stopped = True
            self._end_restarting(c, live)
            return
        if not c.state.running or live.link is None:
            raise NotModified("container already stopped")
        c.manually_stopped = True
        signum = parse_signal(signal or c.config.stop_signal, signal_mod.SIGTERM)
        if timeout is None:
            timeout = c.config.stop_timeout if c.config.stop_timeout is not None else 10
        exited = self.waiter(c.id, "not-running")
        await live.link.kill(signum)
        self.emit(c, "kill", signal=str(signum))
        await self._thaw_if_paused(c, live)
        try:
            await asyncio.wait_for(asyncio.shield(exited), None if timeout < 0 else timeout)
        except TimeoutError:
            log.info("container %s did not stop in %ss: killing it", c.short_id, timeout)
            if live.link is not None:
                await live.link.kill(signal_mod.SIGKILL)
                self.emit(c, "kill", signal=str(int(signal_mod.SIGKILL)))
            await exited
        self.emit(c, "stop")

    async def _thaw_if_paused(self, c: Container, live: _Live) -> None:
        """A paused container is signalled, then thawed, so that it can act on the signal."""
        if c.state.paused and live.link is not None:
            await live.link.resume()
            c.state.paused = False
            c.state.status = "running"
            self._save(c)
            self.emit(c, "unpause")

    async def restart(
        self, ref: str, timeout: int | None = None, signal: str | None = None
    ) -> None:
        c = self.get(ref)
        if c.state.running:
            await self.stop(c.id, timeout, signal)
        await self.start(c.id)
        self.emit(c, "restart")

    async def remove(self, ref: str, *, force: bool = False, volumes: bool = False) -> None:
        c = self.get(ref)
        if c.id in self._copying:
            raise Conflict(f"cannot remove container {c.id}: a copy into its files is in progress")
        live = self._live_of(c.id)
        async with live.start_lock:
            pass  # a start under way finishes first
        if c.state.running:
            if not force:
                # dockerd's words (daemon/delete.go), "restarting" between two runs.
                state = "restarting" if c.state.restarting else "running"
                raise Conflict(
                    f'cannot remove container "{c.name}": container is {state}: stop the '
                    "container before removing or force remove"
                )
            c.manually_stopped = True
            if live.link is None:
                self._end_restarting(c, live)  # restarting: no process to kill
            else:
                exited = self.waiter(c.id, "not-running")
                await live.link.kill(signal_mod.SIGKILL)
                await exited
        if live.removal is None:
            # The first remover does the work (an auto-remove may have begun meanwhile);
            # any other waits for it, so `rm -f` of a --rm container succeeds.
            live.removal = asyncio.ensure_future(self._delete(c, live, volumes))
        await asyncio.shield(live.removal)

    async def _delete(self, c: Container, live: _Live, volumes: bool = False) -> None:
        if live.restart_task is not None:
            live.restart_task.cancel()
        c.state.status = "removing"
        # A crash from here on: restore() finishes the removal (the record says
        # "removing" or, on a full disk where that could not be written, the bundle is gone).
        self._save_state(c)
        scratch = os.path.join(c.bundle, "cp-root")
        if os.path.ismount(scratch):
            # a cp of the stopped container was cut short by a crash: unmount its view
            # (volumes included) before anything under the bundle is deleted
            from dockyard.kernel.flags import MNT_DETACH
            from dockyard.kernel.linux import LinuxKernel

            LinuxKernel().umount2(scratch, MNT_DETACH)
        # The bundle first: on a full disk it holds the space the record's deletion needs.
        await asyncio.to_thread(shutil.rmtree, c.bundle, True)
        self.networks.container_removed(c.id)
        try:
            self._store.delete_container(c.id)
        except Exception as e:
            full = storage_full(e)
            if full is None:
                raise
            log.error("container %s: record not deleted (%s): restore() will", c.short_id, full)
        self._unsaved.discard(c.id)
        del self._containers[c.id]
        self._network_traces.pop(c.id, None)
        self._live.pop(c.id, None)
        if volumes or c.host_config.auto_remove:
            # rm -v and --rm: the anonymous volumes go with the container, named ones stay
            for mp in c.mount_points or []:
                if mp.type == "volume" and mp.anonymous and not self._users_of_volume(mp.name):
                    self.volumes.remove(mp.name, force=True)
        live.hub.end()
        for hook in self.removal_hooks:
            hook(c.id)
        self.emit(c, "destroy")
        for fut in live.removal_waiters + live.exit_waiters:
            if not fut.done():
                fut.set_result(c.state)
        log.info("container %s removed", c.short_id)

    async def _finish_removal(self, c: Container) -> None:
        live = self._live_of(c.id)
        if live.removal is None:
            live.removal = asyncio.ensure_future(self._delete(c, live))
        await asyncio.shield(live.removal)

    # output

    async def attach(
        self,
        ref: str,
        *,
        stdin: bool = False,
        stdout: bool = True,
        stderr: bool = True,
        logs: bool = False,
        stream: bool = True,
        wait_for_start: bool = True,
    ) -> AttachStreams:
        """Replay the log (logs) and/or follow live output (stream).

        A stream on a container that is not running waits for its next run, as
        `docker start -a` needs; `wait_for_start=False` (the 2013 API) ends at once.
        """
        c = self.get(ref)
        live = self._live_of(c.id)
        queue = None
        seen_run, seen = live.hub.run, dict(live.hub.published)
        if stream:
            self.emit(c, "attach")
        if stream and (c.state.running or wait_for_start):
            queue = live.hub.subscribe()

        async def frames() -> AsyncIterator[tuple[int, bytes]]:
            # Bytes of the live run the log replay already gave, per stream.
            overlap = {1: 0, 2: 0}
            try:
                if logs:
                    run_start = parse_rfc3339(c.state.started_at) if c.state.running else 0.0
                    async for e in read_log(c.log_path, stdout=stdout, stderr=stderr):
                        if run_start and parse_rfc3339(e.time) >= run_start:
                            overlap[e.stream] += len(e.data)
                        yield e.stream, e.data
                    # What was published before we subscribed is not in our queue.
                    if live.hub.run == seen_run:
                        for k in overlap:
                            overlap[k] = max(0, overlap[k] - seen.get(k, 0))
                if queue is None:
                    return
                while (frame := await queue.get()) is not None:
                    kind, data = frame
                    if overlap.get(kind):
                        cut = min(overlap[kind], len(data))
                        overlap[kind] -= cut
                        data = data[cut:]
                    if data and ((kind == 1 and stdout) or (kind == 2 and stderr)):
                        yield kind, data
            finally:
                if queue is not None:
                    live.hub.unsubscribe(queue)

        write = close = None
        if stdin and c.config.open_stdin:
            # `docker run -i` sends stdin before it starts the container: hold it until then.
            async def write(data: bytes) -> None:
                await live.running.wait()
                if live.link is not None:
                    await live.link.write_stdin(data)

            async def close() -> None:
                await live.running.wait()
                if c.config.stdin_once and live.link is not None:
                    await live.link.close_stdin()

        return AttachStreams(frames(), c.config.tty, write, close)

    async def resize(self, ref: str, height: int, width: int) -> None:
        c = self.get(ref)
        live = self._live_of(c.id)
        if not c.state.running or live.link is None:
            raise Conflict(f"Container {c.id} is not running")
        await live.link.resize(height, width)
        self.emit(c, "resize", height=str(height), width=str(width))

    def logs(
        self,
        ref: str,
        *,
        stdout: bool,
        stderr: bool,
        tail: int | None,
        since: float,
        until: float,
        follow: bool,
    ) -> tuple[Container, AsyncIterator[list[LogEntry]]]:
        c = self.get(ref)
        if c.host_config.log_config.type not in ("json-file", "local", ""):
            raise InvalidParameter("configured logging driver does not support reading")

        def running() -> bool:
            current = self._containers.get(c.id)
            return current is not None and current.state.running

        return c, read_log_batches(
            c.log_path,
            stdout=stdout,
            stderr=stderr,
            tail=tail,
            since=since,
            until=until,
            follow=follow and c.state.running,
            running=running,
        )

    def start_trace(self, ref: str) -> dict:
        """The runtime's record of the last start: every kernel call with its duration,
        and the phases (what the 2013 article had to dig out with strace)."""
        import json

        c = self.get(ref)
        try:
            with open(os.path.join(c.bundle, "start-trace.json")) as f:
                trace = json.load(f)
        except FileNotFoundError:
            raise NotFound(f"No start trace for container {ref}: it has not been started") from None
        except (OSError, ValueError) as e:
            raise NotFound(f"No readable start trace for container {ref}: {e}") from None
        network = self._network_traces.get(c.id)
        if network is not None:  # a start on a bridge, since the daemon started
            # The daemon's share before the runtime's: the namespace, veth, address and
            # ports (no call at all when a spare sandbox was ready), the hosts file.
            trace["calls"] = list(network.get("calls") or []) + list(trace.get("calls") or [])
            trace.setdefault("phases", {})["network_ns"] = int(network.get("ns") or 0)
        trace["Id"] = c.id
        trace["Command"] = [c.path, *c.args]
        trace["StartedAt"] = c.state.started_at
        return trace

    async def size(self, c: Container) -> tuple[int, int]:
        """(SizeRw, SizeRootFs): bytes in the container layer, and with the image."""
        rw = await asyncio.to_thread(_du, os.path.join(c.bundle, "upper"))
        return rw, rw + self._images.blobs.image_size(c.image)

    # daemon lifetime

    async def restore(self) -> None:
        """After a daemon (re)start: reattach to living monitors, record the dead,
        and sweep the directories of creates that a crash cut short (no record)."""
        for entry in os.listdir(self._root):
            if entry not in self._containers:
                log.info("removing %s: a create the daemon did not finish", entry[:12])
                await asyncio.to_thread(shutil.rmtree, os.path.join(self._root, entry), True)
        for c in list(self._containers.values()):
            if c.state.status == "removing" or not os.path.isdir(c.bundle):
                # A removal cut short (by a crash, or a full disk that kept its record).
                await self._finish_removal(c)
                continue
            if not c.state.running:
                continue
            c.state.restarting = False  # the daemon that was restarting it is gone
            link = await self._launcher.reattach(c.id, c.bundle)
            if link is not None:
                log.info("reattached to container %s (pid %d)", c.short_id, link.pid)
                self._follow(c, link)
                continue
            record = read_exit(c.bundle) or ExitRecord(
                exit_code=255, finished_at=rfc3339(), error="container monitor vanished"
            )
            await self._on_exit(c.id, record)
        await self.networking.restore(list(self._containers.values()), self._save)
        await self.networks.restore(
            [(c.id, c.sandbox_key) for c in self._containers.values() if c.state.running]
        )
        for c in list(self._containers.values()):
            live = self._live_of(c.id)
            if (
                c.host_config.restart_policy.name in ("always", "unless-stopped")
                and (not c.state.running or (c.state.restarting and live.link is None))
                and c.state.started_at != ZERO_TIME
                and parse_rfc3339(c.state.finished_at)
                and not c.manually_stopped
            ):
                # At daemon start, at once rather than after the policy's back-off.
                if live.restart_task is not None:
                    live.restart_task.cancel()
                    live.restart_task = None
                try:
                    async with live.start_lock:
                        await self._start(c, live)
                except Exception as e:  # noqa: BLE001
                    log.warning("could not restart %s: %s", c.short_id, e)
                    self._end_restarting(c, live)

    async def shutdown(self, live_restore: bool) -> None:
        """dockerd stops running containers at shutdown unless live-restore is on."""
        if not live_restore:
            running = [c for c in self._containers.values() if c.state.running]
            await asyncio.gather(
                *(self.stop(c.id, c.config.stop_timeout) for c in running),
                return_exceptions=True,
            )
        # Last chance for records a full disk kept in memory (restore() reads the
        # true exits from exit.json if this fails too).
        self._save_pending()
        for live in self._live.values():
            for task in list(live.tasks):
                task.cancel()
            if live.restart_task is not None:
                live.restart_task.cancel()
            if live.link is not None:
                await live.link.close()
        await self.networks.shutdown(live_restore)
        await self.networking.shutdown(live_restore)


def _du(path: str) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in filenames + dirnames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def _home_of(read: Callable[[str], bytes | None], uid: int) -> str:
    for entry in parse_passwd(read("/etc/passwd") or b""):
        if entry.uid == uid:
            return entry.home or "/"
    return "/"


def _apply_cap_changes(add: list[str], drop: list[str]) -> list[str]:
    def norm(name: str) -> str:
        name = name.upper()
        return name if name.startswith("CAP_") or name == "ALL" else "CAP_" + name

    caps = list(DEFAULT_CAPABILITIES)
    drops = {norm(d) for d in drop}
    if "ALL" in drops:
        caps = []
    caps = [c for c in caps if c not in drops]
    for a in map(norm, add):
        if a == "ALL":
            caps = sorted(CAPABILITIES, key=CAPABILITIES.__getitem__)
        elif a not in caps:
            caps.append(a)
    return caps
