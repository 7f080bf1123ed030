"""Published ports: what a container asked for, and the host ports it got.

A `PortRequest` is one container port with its host side as asked
(HostConfig.PortBindings, or `-P` with the image's EXPOSE: a random port).
`reserve()` turns requests into `PortMapping`s by binding a socket on each host
port without listening: that claims the port (another program's bind fails)
while the kernel's DNAT carries the traffic, on 127.0.0.1 too, so no userland
proxy copies bytes. Port 0 lets the kernel pick from the ephemeral range.
A port one of our containers holds fails as dockerd's port allocator does ("port
is already allocated"); one another program holds, as dockerd's bind does
("address already in use").
"""

from __future__ import annotations

import errno as errno_mod
import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import msgspec

from dockyard.errors import DockyardError, InvalidParameter, KernelError
from dockyard.kernel.interface import Kernel

PROTOCOLS = ("tcp", "udp")


@dataclass(frozen=True)
class PortRequest:
    proto: str
    container_port: int
    host_ip: str  # "0.0.0.0": every host address
    host_port_lo: int  # 0: any (random)
    host_port_hi: int


class PortMapping(msgspec.Struct, frozen=True):
    """A published port as it is: kept in the container's record."""

    proto: str
    container_port: int
    host_ip: str
    host_port: int

    @property
    def key(self) -> str:
        return f"{self.container_port}/{self.proto}"


def parse_port_key(key: str) -> tuple[int, str]:
    """ "80/tcp" (or "80") -> (80, "tcp")."""
    num, _, proto = key.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in PROTOCOLS and proto != "sctp":
        raise InvalidParameter(f"invalid proto: {proto}")
    try:
        port = int(num)
    except ValueError:
        raise InvalidParameter(f"invalid containerPort: {num}") from None
    if not 0 < port <= 65535:
        raise InvalidParameter(f"invalid containerPort: {num}")
    return port, proto


def _host_ports(text: str) -> tuple[int, int]:
    if not text:
        return 0, 0
    lo_s, dash, hi_s = text.partition("-")
    try:
        lo = int(lo_s)
        hi = int(hi_s) if dash else lo
    except ValueError:
        raise InvalidParameter(f"invalid hostPort: {text}") from None
    if not (0 <= lo <= 65535 and lo <= hi <= 65535):
        raise InvalidParameter(f"invalid hostPort: {text}")
    return lo, hi


def _host_ip(text: str) -> str:
    if not text:
        return "0.0.0.0"
    try:
        addr = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        raise InvalidParameter(f"invalid host IP address: {text}") from None
    if addr.version != 4:
        # Refused rather than half-done: the bridge driver is IPv4 only.
        raise InvalidParameter(
            f"invalid host IP address {text}: publishing on IPv6 addresses is not supported"
        )
    return str(addr)


def requests_from(
    port_bindings: Mapping[str, Sequence[object] | None] | None,
    exposed_ports: Iterable[str] | None,
    publish_all: bool,
) -> list[PortRequest]:
    """The ports to publish, from HostConfig.PortBindings (items with `host_ip` and
    `host_port` attributes) and, with PublishAllPorts, every exposed port not bound."""
    out: list[PortRequest] = []
    bound: set[str] = set()
    for key, bindings in (port_bindings or {}).items():
        port, proto = parse_port_key(key)
        bound.add(f"{port}/{proto}")
        if proto == "sctp":
            raise InvalidParameter("publishing sctp ports is not supported")
        for b in bindings or [None]:
            host_ip = _host_ip(getattr(b, "host_ip", "") or "")
            lo, hi = _host_ports(getattr(b, "host_port", "") or "")
            out.append(PortRequest(proto, port, host_ip, lo, hi))
    if publish_all:
        for key in sorted(exposed_ports or ()):
            port, proto = parse_port_key(key)
            if f"{port}/{proto}" not in bound and proto in PROTOCOLS:
                out.append(PortRequest(proto, port, "0.0.0.0", 0, 0))
    return out


def validate(
    port_bindings: Mapping[str, Sequence[object] | None] | None,
    exposed_ports: Iterable[str] | None,
) -> None:
    """Raise InvalidParameter for what `requests_from` would refuse (at create)."""
    requests_from(port_bindings, exposed_ports, False)


class AllocationFailed(DockyardError):
    """A host port could not be had: a system error (500), as dockerd answers it."""


def connectivity_failed(endpoint_name: str, endpoint_id: str, e: DockyardError) -> AllocationFailed:
    """dockerd's words when a start cannot publish a port (libnetwork's endpoint join)."""
    return AllocationFailed(
        "failed to set up container networking: driver failed programming external "
        f"connectivity on endpoint {endpoint_name} ({endpoint_id}): {e.message}"
    )


# (proto, host ip, port) -> True when one of this daemon's endpoints holds that port.
HeldByUs = Callable[[str, str, int], bool]


def reserve(
    kernel: Kernel,
    requests: Sequence[PortRequest],
    container_ip: str = "",
    held_by_us: HeldByUs | None = None,
) -> list[tuple[PortMapping, int]]:
    """Claim a host port for each request: [(mapping, socket fd)]. All or nothing."""
    held: list[tuple[PortMapping, int]] = []
    try:
        for req in requests:
            held.append(_reserve_one(kernel, req, container_ip, held_by_us))
    except BaseException:
        release(kernel, [fd for _, fd in held])
        raise
    return held


def _reserve_one(
    kernel: Kernel, req: PortRequest, container_ip: str, held_by_us: HeldByUs | None
) -> tuple[PortMapping, int]:
    if req.host_port_lo == req.host_port_hi:
        try:
            fd = kernel.port_reserve(req.proto, req.host_ip, req.host_port_lo)
        except KernelError as e:
            if e.errno != errno_mod.EADDRINUSE:
                raise
            port = req.host_port_lo
            if held_by_us is not None and not held_by_us(req.proto, req.host_ip, port):
                raise AllocationFailed(
                    f"failed to bind host port for {req.host_ip}:{port}:{container_ip}:"
                    f"{req.container_port}/{req.proto}: address already in use"
                ) from None
            raise AllocationFailed(
                f"Bind for {req.host_ip}:{port} failed: port is already allocated"
            ) from None
        port = kernel.port_of(fd)
        return PortMapping(req.proto, req.container_port, req.host_ip, port), fd
    for port in range(req.host_port_lo, req.host_port_hi + 1):
        try:
            fd = kernel.port_reserve(req.proto, req.host_ip, port)
        except KernelError as e:
            if e.errno == errno_mod.EADDRINUSE:
                continue
            raise
        return PortMapping(req.proto, req.container_port, req.host_ip, port), fd
    raise AllocationFailed(
        f"Bind for {req.host_ip}:{req.host_port_lo}-{req.host_port_hi} failed: "
        "port is already allocated"
    )


def release(kernel: Kernel, fds: Iterable[int]) -> None:
    for fd in fds:
        try:
            kernel.close_fd(fd)
        except (KernelError, OSError):
            pass
