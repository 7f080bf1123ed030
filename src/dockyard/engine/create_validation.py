"""What a create request may ask for: dockerd's checks (daemon/container.go
verifyContainerSettings, volume/mounts/linux_parser.go, daemon_unix.go parseSecurityOpt)
with its words, plus the bounds Dockyard adds so that no value reaches the kernel,
/etc/hosts or the store unchecked.

Every refusal is an InvalidParameter (400): a bad value is the client's mistake.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from dataclasses import dataclass
from typing import Any

import msgspec

from dockyard.engine.isolation import check_isolation
from dockyard.engine.models import ContainerConfig, HostConfig
from dockyard.engine.signals import parse_signal
from dockyard.errors import InvalidParameter
from dockyard.kernel.flags import CAPABILITIES
from dockyard.runtime.cgroups import check_cgroup_parent
from dockyard.runtime.seccomp import parse_docker_profile

# Far above any real container, far below what would make a record or a start costly.
MAX_ENV = 4096
MAX_LABELS = 4096
MAX_BINDS = 1024
# HOST_NAME_MAX (include/uapi/linux/limits.h), as dockerd's maxHostnameLen.
MAX_HOSTNAME = 64

# Characters a hostname may hold: it is written to /etc/hosts and /etc/hostname,
# so a newline or a space would add lines or fields there.
_HOSTNAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*)")

# linux_parser.go's mode words
_RW_MODES = {"rw", "ro"}
_LABEL_MODES = {"z", "Z"}
_PROPAGATION_MODES = {"private", "rprivate", "slave", "rslave", "shared", "rshared"}
_COPY_MODES = {"nocopy"}
_CONSISTENCY_MODES = {"consistent", "cached", "delegated"}
_MODE_KINDS = [_RW_MODES, _LABEL_MODES, _PROPAGATION_MODES, _COPY_MODES, _CONSISTENCY_MODES]
# Binds are mounted rbind + rprivate; other propagation modes are not honoured.
_HONOURED_PROPAGATION = {"private", "rprivate"}

# Mounting over these replaces what the runtime set up for isolation: the /proc and
# /sys the container sees (masked paths, read-only sysfs) or its whole root.
_FORBIDDEN_TARGETS = {"/", "/proc", "/sys"}
# runc's allow-list inside /proc (lxcfs-style overrides); anything else there is refused.
_PROC_ALLOWED = {
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
}


@dataclass(frozen=True)
class Bind:
    """One `-v SRC:DST[:MODE]` entry, parsed."""

    source: str  # host path of a bind, name of a volume ("" for an anonymous one)
    target: str
    readonly: bool
    kind: str = "bind"  # "bind" | "volume"
    mode: str = ""
    nocopy: bool = False


def validate_create(config: ContainerConfig, host: HostConfig) -> None:
    """dockerd's verifyContainerSettings for a create; normalises WorkingDir as it does."""
    _no_nul(config, "Config")
    _no_nul(host, "HostConfig")
    _check_config(config)
    _check_host_config(host)
    if host.uts_mode == "host" and config.hostname:
        raise InvalidParameter("conflicting options: hostname and the UTS mode")


def _no_nul(struct: msgspec.Struct, where: str) -> None:
    """No NUL byte in any string: the kernel would cut the path, argv or name there."""

    def walk(value: Any, path: str) -> None:
        if isinstance(value, str):
            if "\0" in value:
                raise InvalidParameter(f"invalid {path}: a string may not hold a NUL byte")
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(k, path)
                walk(v, f"{path}.{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{path}[{i}]")

    walk(msgspec.to_builtins(struct), where)


def _check_config(config: ContainerConfig) -> None:
    if config.working_dir:
        if not config.working_dir.startswith("/"):
            raise InvalidParameter(
                f"the working directory '{config.working_dir}' is invalid, "
                "it needs to be an absolute path"
            )
        config.working_dir = posixpath.normpath(config.working_dir)
        if config.working_dir.startswith("//"):
            config.working_dir = "/" + config.working_dir.lstrip("/")
    if config.stop_signal:
        parse_signal(config.stop_signal)
    env = config.env or []
    if len(env) > MAX_ENV:
        raise InvalidParameter(f"too many environment variables: {len(env)} (maximum {MAX_ENV})")
    for entry in env:
        if entry.split("=", 1)[0] == "":
            raise InvalidParameter(f"invalid environment variable: {entry}")
    labels = config.labels or {}
    if len(labels) > MAX_LABELS:
        raise InvalidParameter(f"too many labels: {len(labels)} (maximum {MAX_LABELS})")
    for port in config.exposed_ports or {}:
        _check_port(port)
    check_hostname(config.hostname)
    if config.domainname and not _HOSTNAME.fullmatch(config.domainname):
        raise InvalidParameter(f"invalid domainname {config.domainname!r}")


def check_hostname(hostname: str) -> None:
    if len(hostname.encode()) > MAX_HOSTNAME:
        raise InvalidParameter(
            f"hostname {_go_quote(hostname)} is too long (maximum {MAX_HOSTNAME} bytes)"
        )
    if hostname and not _HOSTNAME.fullmatch(hostname):
        raise InvalidParameter(
            f"invalid hostname {_go_quote(hostname)}: only letters, digits, '-', '_' and '.' "
            "are allowed, and it must start with a letter, digit or '_'"
        )


def _check_host_config(hc: HostConfig) -> None:
    # A user-defined NetworkMode is checked by the network service (plan_endpoints).
    if hc.memory and hc.memory < 6 * 1024 * 1024:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    check_cgroup_parent(hc.cgroup_parent)
    policy = hc.restart_policy.name
    if policy not in ("", "no", "always", "unless-stopped", "on-failure"):
        raise InvalidParameter(f"invalid restart policy: unknown policy '{policy}'")
    if hc.restart_policy.maximum_retry_count < 0:
        raise InvalidParameter("invalid restart policy: maximum retry count cannot be negative")
    if hc.auto_remove and policy not in ("", "no"):
        raise InvalidParameter("can't create 'AutoRemove' container with restart policy")
    _check_port_bindings(hc.port_bindings or {})
    _check_capabilities(hc.cap_add, "CapAdd")
    _check_capabilities(hc.cap_drop, "CapDrop")
    check_security_opts(hc.security_opt or [])
    parse_binds(hc.binds)
    check_isolation(hc)


_PORT = re.compile(r"([0-9]{1,5})(?:-([0-9]{1,5}))?")


def _port_range(text: str) -> tuple[int, int] | None:
    m = _PORT.fullmatch(text)
    if m is None:
        return None
    first = int(m[1])
    last = int(m[2]) if m[2] else first
    return (first, last) if first <= last <= 65535 else None


def _check_port(port: str) -> None:
    """dockerd's validatePortBindings for a container port: "80", "80/udp", "80-90/tcp"."""
    num, _, proto = port.partition("/")
    span = _port_range(num)
    if span is None or span[0] == 0 or proto not in ("", "tcp", "udp", "sctp"):
        raise InvalidParameter(f"invalid port specification: {_go_quote(port)}")


def _check_port_bindings(bindings: dict[str, Any]) -> None:
    for port, targets in bindings.items():
        _check_port(port)
        for target in targets or []:
            if target.host_port and _port_range(target.host_port) is None:
                raise InvalidParameter(f"invalid port specification: {_go_quote(target.host_port)}")
            if target.host_ip:
                try:
                    ipaddress.ip_address(target.host_ip)
                except ValueError:
                    raise InvalidParameter(
                        f"invalid IP address in port binding: {_go_quote(target.host_ip)}"
                    ) from None


def _check_capabilities(caps: list[str] | None, field: str) -> None:
    """dockerd's caps.NormalizeLegacyCapabilities, wrapped as validateCapabilities does."""
    for cap in caps or []:
        name = cap.upper()
        if name == "ALL":
            continue
        if not name.startswith("CAP_"):
            name = "CAP_" + name
        if name not in CAPABILITIES:
            raise InvalidParameter(f"invalid {field}: unknown capability: {_go_quote(name)}")


def check_security_opts(opts: list[str]) -> None:
    """dockerd's parseSecurityOpt with its words for malformed options; what this
    engine cannot honour is refused by name rather than ignored."""
    for opt in opts:
        key, value = _split_security_opt(opt)
        if key in ("no-new-privileges", "writable-cgroups"):
            if _go_bool(value) is None:
                raise InvalidParameter(f"invalid --security-opt 2: {_go_quote(opt)}")
        elif key not in ("label", "apparmor", "seccomp", "disable"):
            raise InvalidParameter(f"invalid --security-opt 2: {_go_quote(opt)}")
        if key == "no-new-privileges" or (key, value) == ("seccomp", "unconfined"):
            continue
        if key == "seccomp":  # a profile's JSON (the CLI sends a file's content)
            parse_docker_profile(value)
            continue
        # Neither AppArmor nor SELinux runs under Dockyard: asking to turn them off is
        # what already holds (dockerd, on a host without them, does the same).
        if (key, value) in (("apparmor", "unconfined"), ("label", "disable")):
            continue
        raise InvalidParameter(
            f"security option {_go_quote(opt)} is not supported by dockyard "
            "(it honours no-new-privileges, seccomp=unconfined|<profile JSON>, "
            "apparmor=unconfined and label=disable)"
        )


def _split_security_opt(opt: str) -> tuple[str, str]:
    if opt in ("no-new-privileges", "writable-cgroups", "disable"):
        return opt, "true"
    if "=" in opt:
        key, _, value = opt.partition("=")
    elif ":" in opt:
        key, _, value = opt.partition(":")
    else:
        raise InvalidParameter(f"invalid --security-opt 1: {_go_quote(opt)}")
    return key, value


def _go_bool(text: str) -> bool | None:
    """Go's strconv.ParseBool."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


def parse_binds(binds: list[str] | None) -> list[Bind]:
    """Each `Binds` entry as linux_parser.go's ParseMountRaw reads it, with its errors."""
    binds = binds or []
    if len(binds) > MAX_BINDS:
        raise InvalidParameter(f"too many binds: {len(binds)} (maximum {MAX_BINDS})")
    return [parse_bind(b) for b in binds]


def parse_bind(raw: str) -> Bind:
    spec = f"invalid volume specification: '{raw}'"
    parts = raw.split(":", 3)
    if parts[0] == "" or len(parts) == 4:
        raise InvalidParameter(spec)
    mode = ""
    if len(parts) == 1:
        # "/data": an anonymous volume at that path
        target, source = parts[0], ""
    else:
        if len(parts) == 2 and _valid_mode(parts[1]):
            raise InvalidParameter(spec)  # "/foo:rw": a mode without a destination
        source, target = parts[0], parts[1]
    if len(parts) == 3:
        mode = parts[2]
    if not _valid_mode(mode):
        raise InvalidParameter(f"invalid mode: {mode}")
    is_volume = not source.startswith("/")
    if is_volume and source:
        from dockyard.engine.volumes import validate_name

        validate_name(source)
    kind = f'invalid mount config for type "{"volume" if is_volume else "bind"}"'
    if target == "":
        raise InvalidParameter(f"{spec}: {kind}: field Target must not be empty")
    clean = posixpath.normpath(target.replace("\\", "/"))
    if clean.startswith("//"):
        clean = "/" + clean.lstrip("/")
    if clean in _FORBIDDEN_TARGETS:
        raise InvalidParameter(
            f"{spec}: {kind}: invalid specification: destination can't be '{clean}'"
        )
    if not clean.startswith("/"):
        raise InvalidParameter(
            f"{spec}: {kind}: invalid mount path: '{target}' mount path must be absolute"
        )
    if clean.startswith("/proc/") and clean not in _PROC_ALLOWED:
        raise InvalidParameter(
            f"{spec}: {kind}: invalid specification: destination {clean!r} is inside /proc"
        )
    words = set(mode.split(",")) if mode else set()
    if words & _COPY_MODES and not is_volume:
        raise InvalidParameter(f"{spec}: {kind}: field VolumeOptions must not be specified")
    unhonoured = words & (_PROPAGATION_MODES - _HONOURED_PROPAGATION)
    if unhonoured:
        raise InvalidParameter(
            f"{spec}: propagation mode '{unhonoured.pop()}' is not supported by dockyard "
            "(binds are mounted rprivate)"
        )
    return Bind(
        source=source,
        target=clean,
        readonly="ro" in words,
        kind="volume" if is_volume else "bind",
        mode=mode,
        nocopy="nocopy" in words,
    )


def _valid_mode(mode: str) -> bool:
    """linux_parser.go's linuxValidMountMode: known words, at most one of each kind."""
    if mode == "":
        return True
    counts = [0] * len(_MODE_KINDS)
    for word in mode.split(","):
        for i, kind in enumerate(_MODE_KINDS):
            if word in kind:
                counts[i] += 1
                break
        else:
            return False
    return max(counts) <= 1


def _go_quote(text: str) -> str:
    """Go's %q: quotes, backslashes and control characters escaped."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif not ch.isprintable():
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}
