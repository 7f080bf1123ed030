"""Address rules of user-defined networks: validating IPAM config as dockerd does,
choosing a free subnet from dockerd's default pools, and picking endpoint addresses."""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterable, Iterator

from dockyard.engine.network_models import IPAMPool
from dockyard.errors import Forbidden, InvalidParameter, Unavailable

Net4 = ipaddress.IPv4Network

OVERLAP = "invalid pool request: Pool overlaps with other one on this address space"


def default_pools() -> Iterator[Net4]:
    """dockerd's default address pools: 172.17-31.0.0/16, then 192.168.0.0/16 in /20s."""
    for second in range(17, 32):
        yield Net4(f"172.{second}.0.0/16")
    yield from Net4("192.168.0.0/16").subnets(new_prefix=20)


def host_routes(path: str = "/proc/net/route") -> list[Net4]:
    """IPv4 destinations of the host's main routing table (not the default route)."""
    out: list[Net4] = []
    try:
        with open(path) as f:
            next(f, None)
            for line in f:
                parts = line.split()
                if len(parts) < 8:
                    continue
                dest = socket.inet_ntoa(struct.pack("<I", int(parts[1], 16)))
                mask = socket.inet_ntoa(struct.pack("<I", int(parts[7], 16)))
                if dest == "0.0.0.0":
                    continue
                out.append(Net4(f"{dest}/{mask}", strict=False))
    except (OSError, ValueError):
        pass
    return out


def _net(text: str, what: str) -> Net4:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise InvalidParameter(f"invalid {what} {text}: invalid CIDR address: {text}") from None
    if not isinstance(net, Net4):
        raise InvalidParameter(
            f"invalid {what} {text}: IPv6 is not supported by dockyard's bridge driver"
        )
    if str(net) != text and ipaddress.ip_interface(text).ip != net.network_address:
        raise InvalidParameter(f"invalid {what} {text}: it should be {net}")
    return net


def _addr(text: str, what: str) -> ipaddress.IPv4Address:
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidParameter(f"invalid {what} address {text}") from None
    if not isinstance(addr, ipaddress.IPv4Address):
        raise InvalidParameter(
            f"invalid {what} address {text}: IPv6 is not supported by dockyard's bridge driver"
        )
    return addr


def check_pool(pool: IPAMPool) -> IPAMPool:
    """Validate a user's pool; the answer has the gateway filled in (first address)."""
    pool = IPAMPool(
        subnet=pool.subnet or "",
        ip_range=pool.ip_range or "",
        gateway=pool.gateway or "",
        auxiliary_addresses=pool.auxiliary_addresses,
    )
    if not pool.subnet:
        if pool.ip_range or pool.gateway or pool.auxiliary_addresses:
            raise InvalidParameter(
                "invalid network config: every ip-range or gateway must have a corresponding subnet"
            )
        return pool
    subnet = _net(pool.subnet, "subnet")
    if subnet.prefixlen > 30:
        raise InvalidParameter(f"invalid subnet {pool.subnet}: too small for a network")
    if pool.ip_range:
        rng = _net(pool.ip_range, "ip-range")
        if not rng.subnet_of(subnet):
            raise InvalidParameter(
                f"invalid ip-range {pool.ip_range}: it must be a subset of subnet {pool.subnet}"
            )
    gateway = pool.gateway
    if gateway:
        if _addr(gateway, "gateway") not in subnet:
            raise InvalidParameter(f"no matching subnet for gateway {gateway}")
    else:
        gateway = str(subnet.network_address + 1)
    for name, aux in (pool.auxiliary_addresses or {}).items():
        if _addr(aux, "auxiliary") not in subnet:
            raise InvalidParameter(f"no matching subnet for aux-address {name}={aux}")
    return IPAMPool(
        subnet=str(subnet),
        ip_range=pool.ip_range,
        gateway=gateway,
        auxiliary_addresses=pool.auxiliary_addresses,
    )


def check_no_overlap(subnet: str, taken: Iterable[str]) -> None:
    net = Net4(subnet)
    for other in taken:
        if other and net.overlaps(Net4(other)):
            raise Forbidden(OVERLAP)


def choose_subnet(taken: Iterable[str], routes: Iterable[Net4]) -> IPAMPool:
    """The first default pool that overlaps no network of ours and no host route."""
    busy = [Net4(t) for t in taken if t] + list(routes)
    for candidate in default_pools():
        if not any(candidate.overlaps(b) for b in busy):
            return IPAMPool(subnet=str(candidate), gateway=str(candidate.network_address + 1))
    raise Unavailable("could not find an available, non-overlapping IPv4 address pool")


def pick_address(pool: IPAMPool, in_use: set[str], wanted: str = "") -> str:
    """An address of the pool for an endpoint: `wanted` if free, else the first free one
    of the ip-range (or subnet), never the network, broadcast, gateway or aux addresses."""
    subnet = Net4(pool.subnet)
    reserved = {str(subnet.network_address), str(subnet.broadcast_address), pool.gateway}
    reserved |= set((pool.auxiliary_addresses or {}).values())
    if wanted:
        addr = _addr(wanted, "IPv4")
        if addr not in subnet:
            raise InvalidParameter(
                f"invalid endpoint settings:\nno configured subnet or ip-range contain the IP "
                f"address {wanted}"
            )
        if wanted in in_use or wanted in reserved:
            raise Forbidden("Address already in use")
        return wanted
    rng = Net4(pool.ip_range) if pool.ip_range else subnet
    for host in rng.hosts() if rng.prefixlen < 31 else rng:
        text = str(host)
        if text not in in_use and text not in reserved and host in subnet:
            return text
    raise Unavailable(f"no available IPv4 addresses on this network's address pools: {pool.subnet}")


def mac_for(ip: str) -> str:
    """dockerd's MAC for an IPv4 endpoint: 02:42 followed by the address."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(ip).packed)
