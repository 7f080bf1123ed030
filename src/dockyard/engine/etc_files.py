"""The /etc/hosts, /etc/hostname and /etc/resolv.conf a container gets (bind-mounted)."""

from __future__ import annotations

import os

from dockyard.engine.models import HostConfig

_HOSTS = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::\tip6-localnet\n"
    "ff00::\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)


DEFAULT_NAMESERVERS = ("8.8.8.8", "8.8.4.4")


def write_atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def write_quick(path: str, data: bytes) -> None:
    """Atomic but without fsync: for files rewritten at every start."""
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


def hosts_file(
    host_config: HostConfig,
    host_network: bool,
    *,
    ip: str = "",
    hostname: str = "",
    domainname: str = "",
    host_gateway: str = "127.0.0.1",
) -> str:
    """dockerd's /etc/hosts: the defaults, --add-host entries, then the container's
    own address with its hostname (as `fqdn hostname` with a domain name)."""
    if host_network:
        try:
            with open("/etc/hosts") as f:
                text = f.read()
        except OSError:
            text = _HOSTS
    else:
        text = _HOSTS
    for entry in host_config.extra_hosts or []:
        name, _, addr = entry.partition(":")
        text += f"{host_gateway if addr == 'host-gateway' else addr}\t{name}\n"
    if ip and hostname:
        names = f"{hostname}.{domainname} {hostname}" if domainname else hostname
        text += f"{ip}\t{names}\n"
    return text


def resolv_conf(host_config: HostConfig, host_network: bool) -> str:
    try:
        with open("/etc/resolv.conf") as f:
            host_lines = f.read().splitlines()
    except OSError:
        host_lines = []
    nameservers = [
        ln.split()[1] for ln in host_lines if ln.startswith("nameserver") and len(ln.split()) > 1
    ]
    search = [ln for ln in host_lines if ln.startswith(("search", "domain"))]
    options = [ln for ln in host_lines if ln.startswith("options")]
    if not host_network:
        # A loopback resolver of the host is unreachable from another network namespace.
        nameservers = [ns for ns in nameservers if not ns.startswith("127.") and ns != "::1"]
    if host_config.dns:
        nameservers = list(host_config.dns)
    elif not nameservers and not host_network:
        # dockerd's fallback when the host has only loopback resolvers.
        nameservers = list(DEFAULT_NAMESERVERS)
    if host_config.dns_search:
        search = ["search " + " ".join(host_config.dns_search)]
    if host_config.dns_options:
        options = ["options " + " ".join(host_config.dns_options)]
    lines = search + [f"nameserver {ns}" for ns in nameservers] + options
    return "\n".join(lines) + "\n" if lines else ""
