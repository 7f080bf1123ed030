"""`dockyard daemon`: the composition root that wires store, services, runtime and API.

Flags and daemon.json keys follow dockerd's names (`hosts`, `data-root`,
`log-level`, `pidfile`, `live-restore`, `labels`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import fcntl
import grp
import json
import logging
import os
import signal
import socket
import sys
import uuid
from dataclasses import dataclass, field

from dockyard.engine.runtimes import configure as configure_runtimes
from dockyard.engine.runtimes import parse_add_runtime
from dockyard.errors import DockyardError

DEFAULT_SOCKET = "/run/dockyard.sock"
DEFAULT_DATA_ROOT = "/var/lib/dockyard"
DEFAULT_CONFIG = "/etc/dockyard/daemon.json"

log = logging.getLogger("dockyard.daemon")


@dataclass
class DaemonConfig:
    hosts: list[str] = field(default_factory=list)
    data_root: str = DEFAULT_DATA_ROOT
    log_level: str = "info"
    pidfile: str = ""
    live_restore: bool = False
    labels: list[str] = field(default_factory=list)
    group: str = "dockyard"
    insecure_registries: list[str] = field(default_factory=list)
    runtimes: dict[str, dict] = field(default_factory=dict)
    default_runtime: str = ""


class _GoStyleFormatter(logging.Formatter):
    """Log lines like dockerd's: time="..." level=info msg="..." ."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage().replace('"', '\\"')
        ts = self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
        line = f'time="{ts}.{int(record.msecs):03d}Z" level={record.levelname.lower()} msg="{msg}"'
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def parse_args(argv: list[str]) -> DaemonConfig:
    p = argparse.ArgumentParser(prog="dockyard daemon", description="Run the Dockyard daemon")
    p.add_argument(
        "-H", "--host", action="append", default=None, help="Daemon socket(s) to listen on"
    )
    p.add_argument("--data-root", default=None, help="Root directory of persistent state")
    p.add_argument(
        "-l", "--log-level", default=None, choices=["debug", "info", "warn", "error", "fatal"]
    )
    p.add_argument("-p", "--pidfile", default=None, help="Path to use for the daemon PID file")
    p.add_argument("--config-file", default=DEFAULT_CONFIG, help="Daemon configuration file")
    p.add_argument(
        "--live-restore",
        action="store_true",
        default=None,
        help="Keep containers running when the daemon stops",
    )
    p.add_argument("-G", "--group", default=None, help="Group for the unix socket")
    p.add_argument(
        "--label", action="append", default=None, help="Set key=value labels on the daemon"
    )
    p.add_argument(
        "--insecure-registry",
        action="append",
        default=None,
        help="Registries (host:port or CIDR) to reach over http or unverified TLS",
    )
    p.add_argument(
        "--add-runtime", action="append", default=None, help="Register an OCI runtime: name=path"
    )
    p.add_argument("--default-runtime", default=None, help="Default OCI runtime for containers")
    args = p.parse_args(argv)

    cfg = DaemonConfig()
    if os.path.exists(args.config_file):
        try:
            with open(args.config_file) as f:
                raw = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise DockyardError(
                f"unable to configure the daemon with file {args.config_file}: {e}"
            ) from None
        known = {"hosts", "data-root", "log-level", "pidfile", "live-restore", "labels", "group"}
        known.add("insecure-registries")
        known |= {"runtimes", "default-runtime"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise DockyardError(
                f"the following directives don't match any configuration option: {', '.join(unknown)}"
            )
        cfg.hosts = list(raw.get("hosts", []))
        cfg.data_root = raw.get("data-root", cfg.data_root)
        cfg.log_level = raw.get("log-level", cfg.log_level)
        cfg.pidfile = raw.get("pidfile", cfg.pidfile)
        cfg.live_restore = bool(raw.get("live-restore", False))
        cfg.labels = list(raw.get("labels", []))
        cfg.group = raw.get("group", cfg.group)
        cfg.insecure_registries = list(raw.get("insecure-registries", []))
        if not isinstance(raw.get("runtimes", {}), dict):
            raise DockyardError("runtimes: must be an object of {name: {path: ...}}")
        cfg.runtimes = dict(raw.get("runtimes", {}))
        cfg.default_runtime = str(raw.get("default-runtime", ""))
        if args.default_runtime and raw.get("default-runtime"):
            raise DockyardError(
                "the following directives are specified both as a flag and in the configuration "
                f"file: default-runtime: (from flag: {args.default_runtime}, "
                f"from file: {raw['default-runtime']})"
            )
        if args.insecure_registry and raw.get("insecure-registries"):
            raise DockyardError(
                "the following directives are specified both as a flag and in the configuration "
                f"file: insecure-registries: (from flag: {args.insecure_registry}, "
                f"from file: {raw['insecure-registries']})"
            )
        if args.host and raw.get("hosts"):
            raise DockyardError(
                "the following directives are specified both as a flag and in the configuration "
                f"file: hosts: (from flag: {args.host}, from file: {raw['hosts']})"
            )
    if args.host:
        cfg.hosts = args.host
    if args.data_root:
        cfg.data_root = args.data_root
    if args.log_level:
        cfg.log_level = args.log_level
    if args.pidfile:
        cfg.pidfile = args.pidfile
    if args.live_restore:
        cfg.live_restore = True
    if args.group:
        cfg.group = args.group
    if args.label:
        cfg.labels += args.label
    if args.insecure_registry:
        cfg.insecure_registries += args.insecure_registry
    if args.add_runtime:
        added = parse_add_runtime(args.add_runtime)
        both = sorted(set(added) & set(cfg.runtimes))
        if both:
            raise DockyardError(
                f"runtime {', '.join(both)} is given both by --add-runtime and in the configuration file"
            )
        cfg.runtimes.update(added)
    if args.default_runtime:
        cfg.default_runtime = args.default_runtime
    if not cfg.hosts:
        cfg.hosts = [f"unix://{DEFAULT_SOCKET}"]
    cfg.data_root = os.path.abspath(cfg.data_root)
    return cfg


@dataclass
class Listener:
    kind: str  # "unix" | "tcp"
    address: str
    port: int = 0


def parse_host(host: str) -> Listener:
    """unix:///path, tcp://127.0.0.1:4243, and the seed's bare 127.0.0.1:4243 or :4243."""
    if host.startswith("unix://"):
        return Listener("unix", host[len("unix://") :] or DEFAULT_SOCKET)
    if host.startswith("fd://"):
        raise DockyardError("fd:// hosts (systemd socket activation) are not supported")
    rest = host[len("tcp://") :] if host.startswith("tcp://") else host
    addr, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        raise DockyardError(f"invalid host: {host!r}: expected unix:///path or tcp://ADDR:PORT")
    return Listener("tcp", addr.strip("[]") or "127.0.0.1", int(port))


class DataRootLock:
    """One daemon per data root: an flock held for the daemon's life."""

    def __init__(self, data_root: str) -> None:
        self.path = os.path.join(data_root, "dockyard.lock")
        self._fd = -1

    def acquire(self) -> None:
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            holder = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(self._fd)
            raise DockyardError(
                f"another dockyard daemon (pid {holder}) is already using the data root "
                f"{os.path.dirname(self.path)}; stop it first or pass a different --data-root"
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)


def _write_pidfile(path: str) -> None:
    if not path:
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()}\n")
    os.rename(tmp, path)


def _daemon_id(data_root: str) -> str:
    path = os.path.join(data_root, "engine-id")
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        value = str(uuid.uuid4())
        with open(path + ".tmp", "w") as f:
            f.write(value)
        os.rename(path + ".tmp", path)
        return value


def _unix_socket(path: str, group: str) -> socket.socket:
    os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a stale socket from a daemon that died
    else:
        probe.close()
        raise DockyardError(f"{path} is in use by another daemon")
    finally:
        probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    os.chmod(path, 0o660)
    try:
        os.chown(path, 0, grp.getgrnam(group).gr_gid)
    except KeyError:
        pass  # no such group: root only
    sock.listen(1024)
    return sock


async def serve(cfg: DaemonConfig) -> None:
    from aiohttp import web

    from dockyard.api.app import make_app
    from dockyard.engine.containers import ContainerService
    from dockyard.engine.images import ImageService
    from dockyard.engine.services import Services
    from dockyard.engine.store import Store
    from dockyard.image.registry_auth import InsecureRegistries
    from dockyard.image.store import ImageStore
    from dockyard.runtime.launcher import Launcher

    os.makedirs(cfg.data_root, mode=0o711, exist_ok=True)
    lock = DataRootLock(cfg.data_root)
    lock.acquire()
    _write_pidfile(cfg.pidfile)
    listeners = [parse_host(h) for h in cfg.hosts]

    store = Store(os.path.join(cfg.data_root, "dockyard.db"))
    images = ImageService(store, ImageStore(cfg.data_root), os.path.join(cfg.data_root, "tmp"))
    images.cleanup_tmp()  # imports a crash interrupted
    images.insecure = InsecureRegistries(cfg.insecure_registries)
    launcher = Launcher(os.path.join(cfg.data_root, "run"))
    await launcher.start()
    runtimes = configure_runtimes(cfg.runtimes, cfg.default_runtime)
    containers = ContainerService(store, images, launcher, cfg.data_root, runtimes)
    services = Services(
        containers=containers,
        images=images,
        data_root=cfg.data_root,
        live_restore=cfg.live_restore,
        daemon_id=_daemon_id(cfg.data_root),
        labels=cfg.labels,
    )
    await containers.restore()

    app = make_app(services)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=3.0)
    await runner.setup()
    unix_paths = []
    for lst in listeners:
        if lst.kind == "unix":
            site: web.BaseSite = web.SockSite(runner, _unix_socket(lst.address, cfg.group))
            unix_paths.append(lst.address)
        else:
            site = web.TCPSite(runner, lst.address, lst.port, reuse_address=True)
            if lst.address not in ("127.0.0.1", "localhost", "::1"):
                log.warning(
                    "API listening on %s:%d without TLS: anyone who can reach it is root here",
                    lst.address,
                    lst.port,
                )
        await site.start()
        log.info(
            "API listen on %s", lst.address if lst.kind == "unix" else f"{lst.address}:{lst.port}"
        )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("Daemon has completed initialization (data root %s)", cfg.data_root)
    await stop.wait()

    log.info("Processing signal: shutting down")
    for site in list(runner.sites):
        await site.stop()  # no new clients; those waiting on containers get their answers
    await containers.shutdown(cfg.live_restore)
    await runner.cleanup()
    await launcher.close()
    store.close()
    for path in unix_paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    if cfg.pidfile:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(cfg.pidfile)
    log.info("Daemon shutdown complete")


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = parse_args(sys.argv[1:] if argv is None else argv)
    except DockyardError as e:
        print(f"dockyard daemon: {e.message}", file=sys.stderr)
        return 1
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_GoStyleFormatter())
    level = {"warn": "WARNING", "fatal": "CRITICAL"}.get(cfg.log_level, cfg.log_level.upper())
    logging.basicConfig(level=level, handlers=[handler])
    if os.geteuid() != 0:
        print("dockyard daemon: the daemon needs to run as root", file=sys.stderr)
        return 1
    try:
        asyncio.run(serve(cfg))
    except DockyardError as e:
        log.error("%s", e.message)
        print(f"dockyard daemon: {e.message}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"dockyard daemon: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
