"""`dockyard daemon`: the composition root that wires store, services, runtime and API.

Flags and daemon.json keys follow dockerd's names (`hosts`, `data-root`,
`log-level`, `pidfile`, `live-restore`, `labels`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import grp
import ipaddress
import json
import logging
import os
import signal
import socket
import ssl
import sys
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dockyard.engine.runtimes import configure as configure_runtimes
from dockyard.engine.runtimes import parse_add_runtime
from dockyard.errors import DockyardError, KernelError

if TYPE_CHECKING:
    from dockyard.kernel.interface import Kernel

DEFAULT_SOCKET = "/run/dockyard.sock"
DEFAULT_DATA_ROOT = "/var/lib/dockyard"
DEFAULT_CONFIG = "/etc/dockyard/daemon.json"
# As Go's listeners (dockerd's): the kernel's maximum (net.core.somaxconn caps it), so
# a burst of connects waits in the queue instead of failing with EAGAIN.
LISTEN_BACKLOG = 4096

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
    # dockerd's TLS settings; None: not given, so "--tls=false" (a deliberate
    # unauthenticated listener) is told apart from no word at all.
    tls: bool | None = None
    tlsverify: bool | None = None
    tlscacert: str = ""
    tlscert: str = ""
    tlskey: str = ""
    log_driver: str = "json-file"
    log_opts: dict[str, str] = field(default_factory=dict)
    bip: str = ""  # the default bridge's gateway address and prefix, "172.18.0.1/16"
    default_address_pools: list[tuple[str, int]] = field(default_factory=list)
    ui: str = ""  # the web dashboard's listener, "127.0.0.1:8080"; off when empty
    ui_allow_remote: bool = False

    @property
    def use_tls(self) -> bool:
        return bool(self.tls or self.tlsverify)


def _cert_dir() -> str:
    """Where dockerd looks for ca.pem, cert.pem, key.pem when no path is given."""
    return os.environ.get("DOCKER_CERT_PATH") or os.path.join(os.path.expanduser("~"), ".docker")


def _bool_flag(value: str) -> bool:
    """`--tls`, `--tls=true`, `--tls=false` as Go's flag package reads them."""
    lowered = value.lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {value!r}")


class _GoStyleFormatter(logging.Formatter):
    """Log lines like dockerd's: time="..." level=info msg="..." ."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage().replace('"', '\\"')
        ts = self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
        line = f'time="{ts}.{int(record.msecs):03d}Z" level={record.levelname.lower()} msg="{msg}"'
        for key, value in getattr(record, "fields", {}).items():
            line += f' {key}="{value}"'
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
        "--tls",
        nargs="?",
        const=True,
        type=_bool_flag,
        default=None,
        help="Use TLS; implied by --tlsverify",
    )
    p.add_argument(
        "--tlsverify",
        nargs="?",
        const=True,
        type=_bool_flag,
        default=None,
        help="Use TLS and verify the remote",
    )
    p.add_argument("--tlscacert", default=None, help="Trust certs signed only by this CA")
    p.add_argument("--tlscert", default=None, help="Path to TLS certificate file")
    p.add_argument("--tlskey", default=None, help="Path to TLS key file")
    p.add_argument(
        "--add-runtime", action="append", default=None, help="Register an OCI runtime: name=path"
    )
    p.add_argument("--default-runtime", default=None, help="Default OCI runtime for containers")
    p.add_argument("--bip", default=None, help="Specify default-bridge IPv4 network")
    p.add_argument(
        "--default-address-pool",
        action="append",
        default=None,
        help="Default address pools for node specific local networks (base=CIDR,size=N)",
    )
    p.add_argument(
        "--ui",
        default=None,
        metavar="ADDRESS:PORT",
        help="Serve the web dashboard there (loopback only unless --ui-allow-remote)",
    )
    p.add_argument(
        "--ui-allow-remote",
        action="store_true",
        default=None,
        help="Let --ui listen on an address other machines can reach",
    )
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
        known = {
            "hosts",
            "data-root",
            "log-level",
            "pidfile",
            "live-restore",
            "labels",
            "group",
            "bip",
            "default-address-pools",
        }
        known.add("insecure-registries")
        known |= {"runtimes", "default-runtime"}
        known |= {"tls", "tlsverify", "tlscacert", "tlscert", "tlskey"}
        known |= {"log-driver", "log-opts"}
        known |= {"ui", "ui-allow-remote"}
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
        cfg.log_driver = str(raw.get("log-driver") or "json-file")
        opts = raw.get("log-opts") or {}
        if not isinstance(opts, dict) or not all(isinstance(v, str) for v in opts.values()):
            raise DockyardError(f"invalid log-opts in {args.config_file}: want strings")
        cfg.log_opts = dict(opts)
        if not isinstance(raw.get("runtimes", {}), dict):
            raise DockyardError("runtimes: must be an object of {name: {path: ...}}")
        cfg.runtimes = dict(raw.get("runtimes", {}))
        cfg.default_runtime = str(raw.get("default-runtime", ""))
        for key in ("tls", "tlsverify"):
            if key in raw:
                if not isinstance(raw[key], bool):
                    raise DockyardError(
                        f"invalid value for {key} in {args.config_file}: want true or false"
                    )
                setattr(cfg, key, raw[key])
        for key in ("tlscacert", "tlscert", "tlskey"):
            setattr(cfg, key, str(raw.get(key, "")))
        cfg.bip = str(raw.get("bip", ""))
        cfg.ui = str(raw.get("ui", "") or "")
        if not isinstance(raw.get("ui-allow-remote", False), bool):
            raise DockyardError(
                f"invalid value for ui-allow-remote in {args.config_file}: want true or false"
            )
        cfg.ui_allow_remote = raw.get("ui-allow-remote", False)
        if raw.get("default-address-pools"):
            from dockyard.network.ipam import parse_address_pools

            cfg.default_address_pools = parse_address_pools(list(raw["default-address-pools"]))
        # (false is a value for the TLS switches; an empty list of hosts is none)
        both = [
            (k, getattr(args, a), raw[k])
            for k, a in (
                ("hosts", "host"), ("insecure-registries", "insecure_registry"),
                ("tls", "tls"), ("tlsverify", "tlsverify"),
                ("tlscacert", "tlscacert"), ("tlscert", "tlscert"), ("tlskey", "tlskey"),
                ("default-runtime", "default_runtime"),
                ("bip", "bip"), ("default-address-pools", "default_address_pool"),
                ("ui", "ui"),
            )
            if getattr(args, a) is not None and k in raw and (raw[k] or raw[k] is False)
        ]  # fmt: skip
        if both:
            conflicts = ", ".join(f"{k}: (from flag: {f}, from file: {v})" for k, f, v in both)
            raise DockyardError(
                "the following directives are specified both as a flag and in the configuration "
                f"file: {conflicts}"
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
    for key in ("tls", "tlsverify", "tlscacert", "tlscert", "tlskey"):
        if getattr(args, key) is not None:
            setattr(cfg, key, getattr(args, key))
    if cfg.tlsverify is None and os.environ.get("DOCKER_TLS_VERIFY"):
        cfg.tlsverify = True  # dockerd's default for --tlsverify
    files = [f"--{k}" for k in ("tlscacert", "tlscert", "tlskey") if getattr(cfg, k)]
    if files and not cfg.use_tls:
        raise DockyardError(f"{', '.join(files)} need --tls or --tlsverify")
    certs = _cert_dir()
    cfg.tlscacert = cfg.tlscacert or os.path.join(certs, "ca.pem")
    cfg.tlscert = cfg.tlscert or os.path.join(certs, "cert.pem")
    cfg.tlskey = cfg.tlskey or os.path.join(certs, "key.pem")
    if args.bip:
        cfg.bip = args.bip
    if args.default_address_pool:
        from dockyard.network.ipam import parse_address_pools

        entries = []
        for text in args.default_address_pool:
            entry: dict[str, object] = {}
            for part in text.split(","):
                key, _, value = part.partition("=")
                entry[key.strip()] = value.strip()
            entries.append(entry)
        cfg.default_address_pools = parse_address_pools(entries)
    if args.ui:
        cfg.ui = args.ui
    if args.ui_allow_remote:
        cfg.ui_allow_remote = True
    if cfg.ui:
        _check_ui_address(cfg)
    elif cfg.ui_allow_remote:
        raise DockyardError("--ui-allow-remote needs --ui ADDRESS:PORT")
    if not cfg.hosts:
        cfg.hosts = [f"unix://{DEFAULT_SOCKET}"]
    cfg.data_root = os.path.abspath(cfg.data_root)
    return cfg


def _check_ui_address(cfg: DaemonConfig) -> None:
    """The dashboard drives a root-equivalent API: loopback unless told otherwise, and
    a named address in any case (its Host check needs the one browsers will use)."""
    from dockyard.dashboard.access import parse_address

    address, _port = parse_address(cfg.ui)
    try:
        unspecified = ipaddress.ip_address(address).is_unspecified
    except ValueError:
        unspecified = False
    if unspecified:
        raise DockyardError(
            f"--ui {cfg.ui}: name the one address to serve the dashboard on (127.0.0.1)"
        )
    if not is_loopback(address) and not cfg.ui_allow_remote:
        raise DockyardError(
            f"--ui {cfg.ui} is not a loopback address: the dashboard gives root on this "
            "machine to whoever has its token, and serves it without TLS; "
            "add --ui-allow-remote if that is meant"
        )


@dataclass
class Listener:
    kind: str  # "unix" | "tcp"
    address: str
    port: int = 0


def parse_host(host: str, tls: bool = False) -> Listener:
    """unix:///path, tcp://127.0.0.1:4243, and the seed's bare 127.0.0.1:4243 or :4243.

    A TCP host without a port gets dockerd's default: 2376 with TLS, 2375 without."""
    if host.startswith("unix://"):
        return Listener("unix", host[len("unix://") :] or DEFAULT_SOCKET)
    if host.startswith("fd://"):
        raise DockyardError("fd:// hosts (systemd socket activation) are not supported")
    rest = host[len("tcp://") :] if host.startswith("tcp://") else host
    rest = rest.rstrip("/")
    if rest.startswith("[") and rest.endswith("]") or ":" not in rest:
        rest += ":2376" if tls else ":2375"
    addr, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise DockyardError(f"invalid host: {host!r}: expected unix:///path or tcp://ADDR:PORT")
    return Listener("tcp", addr.strip("[]") or "127.0.0.1", int(port))


class DataRootLock:
    """One daemon per data root: an flock held for the daemon's life."""

    def __init__(self, data_root: str, kernel: Kernel) -> None:
        self.path = os.path.join(data_root, "dockyard.lock")
        self.kernel = kernel
        self._fd = -1

    def acquire(self) -> None:
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            locked = self.kernel.try_lock(self._fd)
        except KernelError:
            os.close(self._fd)
            raise
        if not locked:
            holder = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(self._fd)
            raise DockyardError(
                f"another dockyard daemon (pid {holder}) is already using the data root "
                f"{os.path.dirname(self.path)}; stop it first or pass a different --data-root"
            ) from None
        # The pid (only a hint for the message above) in place, then the rest cut off:
        # truncating first gave the file's block away, and on a full disk a container's
        # log flood took it before the write, which then failed the daemon's start.
        pid = f"{os.getpid()}\n".encode()
        with contextlib.suppress(OSError):
            os.pwrite(self._fd, pid, 0)
            os.ftruncate(self._fd, len(pid))


# Directories the daemon creates directly under the data root; each is made
# root-only too, so a bind mount of one elsewhere does not reopen the tree.
_DATA_ROOT_DIRS = ("blobs", "layers", "containers", "run")


def private_data_root(path: str) -> None:
    """Make the data root reachable by root alone (dockerd's /var/lib/docker is 0710).

    Image layers and container upper dirs hold whatever containers and images put
    there: setuid-root binaries and device nodes. Were any host user able to walk
    into them, running such a binary would make them root (the CVE-2021-41091
    class). Nobody but root needs to: the daemon and the monitors run as root and
    containers see their rootfs from their own mount namespace after pivot_root.
    So the top directory is closed (0700, owned by root), and the first level below
    it as a second wall; data roots of older versions (0711 with 0755
    directories below) are fixed here at every start.
    """
    for target in (path, *(os.path.join(path, d) for d in _DATA_ROOT_DIRS)):
        os.makedirs(target, mode=0o700, exist_ok=True)
        st = os.stat(target)
        if st.st_uid != 0 or st.st_gid != 0:
            # Whoever owns it could chmod it open again.
            os.chown(target, 0, 0)
        if st.st_mode & 0o7777 != 0o700:
            os.chmod(target, 0o700)
            if target == path:
                log.info(
                    "data root %s was mode %o; now 0700 (root only)", path, st.st_mode & 0o7777
                )


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
    sock.listen(LISTEN_BACKLOG)
    return sock


def _tls_context(cfg: DaemonConfig) -> ssl.SSLContext:
    from dockyard.api.server import server_tls_context

    for what, path in (("certificate", cfg.tlscert), ("key", cfg.tlskey)):
        if not os.path.isfile(path):
            raise DockyardError(f"could not load X509 key pair: open {path}: no TLS {what} there")
    if cfg.tlsverify and not os.path.isfile(cfg.tlscacert):
        raise DockyardError(f"could not read CA certificate {cfg.tlscacert!r}: no such file")
    cafile = cfg.tlscacert if os.path.isfile(cfg.tlscacert) else None
    try:
        return server_tls_context(cafile, cfg.tlscert, cfg.tlskey, bool(cfg.tlsverify))
    except (ssl.SSLError, OSError) as e:
        raise DockyardError(f"invalid TLS configuration: {e}") from None


def is_loopback(address: str) -> bool:
    """True when every address the listener's host names is a loopback one."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(address, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


# dockerd's words (cmd/dockerd/daemon.go, loadListeners).
_INSECURE = (
    "Binding to IP address without --tlsverify is insecure and gives root access on this "
    "machine to everyone who has access to your network.",
    "Binding to an IP address, even on localhost, can also give access to scripts run in a "
    "browser. Be safe out there!",
)
_INSECURE_REMOTE = (
    "Binding to an IP address without --tlsverify is deprecated. Startup is intentionally "
    "being slowed down to show this message",
    "Please consider generating tls certificates with client validation to prevent exposing "
    "unauthenticated root access to your network",
    "You can override this by explicitly specifying '--tls=false' or '--tlsverify=false'",
    "Support for listening on TCP without authentication or explicit intent to run without "
    "authentication will be removed in the next release",
)
INSECURE_REMOTE_DELAY = 15.0


async def _warn_unauthenticated(cfg: DaemonConfig, lst: Listener) -> None:
    """A TCP listener without client certificates: dockerd's warnings.

    dockerd also sleeps 1 s for every such listener, loopback included; here the
    loopback case only warns (the seed's `-H 127.0.0.1:4243` and every test daemon
    would pay that second). A listener reachable from other machines without an
    explicit `--tls=false`/`--tlsverify=false` is delayed 15 s, as by dockerd, so
    that nobody exposes root over the network without seeing it.
    """
    fields = {"fields": {"host": f"tcp://{lst.address}:{lst.port}"}}
    for line in _INSECURE:
        log.warning("%s", line, extra=fields)
    explicit = cfg.tls is False or cfg.tlsverify is False
    if explicit or is_loopback(lst.address):
        return
    for line in _INSECURE_REMOTE:
        log.warning("%s", line, extra=fields)
    await asyncio.sleep(INSECURE_REMOTE_DELAY)


async def serve(cfg: DaemonConfig) -> None:
    from aiohttp import web

    from dockyard.api.app import make_app
    from dockyard.api.server import (
        GuardedAppRunner,
        TLSSite,
        allow_tls_half_close,
        connection_cap,
        quiet_accept_errors,
    )
    from dockyard.engine import logconfig, network_attach
    from dockyard.engine.containers import ContainerService
    from dockyard.engine.images import ImageService
    from dockyard.engine.logconfig import LogDefaults
    from dockyard.engine.models import LogConfig
    from dockyard.engine.networking import ContainerNetworking
    from dockyard.engine.networks import NetworkService
    from dockyard.engine.services import Services
    from dockyard.engine.store import Store
    from dockyard.image.registry_auth import InsecureRegistries
    from dockyard.image.store import ImageStore
    from dockyard.kernel.limits import raise_nofile_limit
    from dockyard.kernel.linux import LinuxKernel
    from dockyard.runtime.launcher import Launcher

    private_data_root(cfg.data_root)
    lock = DataRootLock(cfg.data_root, LinuxKernel())
    lock.acquire()
    _write_pidfile(cfg.pidfile)
    listeners = [parse_host(h, cfg.use_tls) for h in cfg.hosts]
    tls_context = _tls_context(cfg) if cfg.use_tls else None
    if tls_context is not None:
        allow_tls_half_close()

    store = Store(os.path.join(cfg.data_root, "dockyard.db"))
    images = ImageService(store, ImageStore(cfg.data_root), os.path.join(cfg.data_root, "tmp"))
    images.cleanup_tmp()  # imports a crash interrupted
    images.insecure = InsecureRegistries(cfg.insecure_registries)
    launcher = Launcher(os.path.join(cfg.data_root, "run"))
    await launcher.start()
    # After the forkserver started: containers keep the limits the daemon was given
    # (a soft limit of 2**20 slows programs that close every fd up to it).
    soft, _hard = raise_nofile_limit()
    log.debug("open file limit: %d", soft)
    networking = ContainerNetworking(
        LinuxKernel(),
        cfg.data_root,
        bip=cfg.bip,
        address_pools=cfg.default_address_pools,
    )
    await networking.start()
    runtimes = configure_runtimes(cfg.runtimes, cfg.default_runtime)
    networks = NetworkService(store)
    containers = ContainerService(
        store, images, launcher, cfg.data_root, networking, networks=networks, runtimes=runtimes
    )
    containers.log_defaults = LogDefaults(cfg.log_driver, dict(cfg.log_opts))
    # an unknown driver or option in daemon.json stops the daemon, as dockerd
    logconfig.check(LogConfig(type=cfg.log_driver, config=dict(cfg.log_opts)), LogDefaults())
    plumbing = network_attach.wire(
        networking.kernel, networking, networks, containers.get, store.put_container
    )
    await plumbing.start(networking.bridge_name)
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
    quiet_accept_errors(asyncio.get_running_loop())
    runner = GuardedAppRunner(
        app,
        max_connections=connection_cap(soft),
        access_log=None,
        handle_signals=False,
        shutdown_timeout=3.0,
    )
    await runner.setup()
    unix_paths = []
    for lst in listeners:
        if lst.kind == "unix":
            site: web.BaseSite = web.SockSite(runner, _unix_socket(lst.address, cfg.group))
            unix_paths.append(lst.address)
        else:
            if not cfg.tlsverify:
                await _warn_unauthenticated(cfg, lst)
            site = (TLSSite if tls_context else web.TCPSite)(
                runner,
                lst.address,
                lst.port,
                reuse_address=True,
                ssl_context=tls_context,
                backlog=LISTEN_BACKLOG,
            )
        await site.start()
        log.info(
            "API listen on %s", lst.address if lst.kind == "unix" else f"{lst.address}:{lst.port}"
        )

    dashboard = None
    if cfg.ui:
        from dockyard.dashboard import listener as ui_listener
        from dockyard.dashboard.access import new_token, parse_address

        address, port = parse_address(cfg.ui)
        if not is_loopback(address):
            log.warning("the dashboard on %s is reachable from other machines, without TLS", cfg.ui)
        dashboard = await ui_listener.start(services, address, port, new_token())

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("Daemon has completed initialization (data root %s)", cfg.data_root)
    await stop.wait()

    log.info("Processing signal: shutting down")
    for site in list(runner.sites):
        await site.stop()  # no new clients; those waiting on containers get their answers
    if dashboard is not None:
        await dashboard.stop()
    await services.health.shutdown()
    await services.execs.shutdown()
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
