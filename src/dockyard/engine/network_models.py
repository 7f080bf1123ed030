"""Typed models of networks and their endpoints, named as the Engine API names them."""

from __future__ import annotations

import msgspec
from msgspec import field


class IPAMPool(msgspec.Struct, rename="pascal", omit_defaults=True):
    """One entry of IPAM.Config: a subnet, the range handed out, the gateway."""

    # None: what clients such as the Docker SDK send for "not given" (like "").
    subnet: str | None = ""
    ip_range: str | None = field(default="", name="IPRange")
    gateway: str | None = ""
    auxiliary_addresses: dict[str, str] | None = field(default=None, name="AuxiliaryAddresses")


class IPAM(msgspec.Struct, rename="pascal"):
    driver: str | None = "default"
    options: dict[str, str] | None = None
    config: list[IPAMPool] | None = None


class EndpointIPAMConfig(msgspec.Struct, rename="pascal", omit_defaults=True):
    ipv4_address: str = field(default="", name="IPv4Address")
    ipv6_address: str = field(default="", name="IPv6Address")
    link_local_ips: list[str] | None = field(default=None, name="LinkLocalIPs")


class NetworkCreateRequest(msgspec.Struct, rename="pascal"):
    """Body of POST /networks/create."""

    name: str | None = ""
    check_duplicate: bool | None = None  # always on since API 1.44; accepted for old clients
    driver: str | None = ""
    scope: str | None = ""
    internal: bool | None = False
    attachable: bool | None = False
    ingress: bool | None = False
    config_only: bool | None = False
    config_from: dict[str, str] | None = None
    ipam: IPAM | None = field(default=None, name="IPAM")
    enable_ipv4: bool | None = field(default=None, name="EnableIPv4")
    enable_ipv6: bool | None = field(default=None, name="EnableIPv6")
    options: dict[str, str] | None = None
    labels: dict[str, str] | None = None


class Network(msgspec.Struct, rename="pascal"):
    """A network record: what the store keeps."""

    id: str
    name: str
    created: str
    driver: str = "bridge"
    scope: str = "local"
    internal: bool = False
    attachable: bool = False
    ipam: IPAM = field(default_factory=IPAM, name="IPAM")
    options: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    # Whether the user gave the subnet (only then may endpoints ask for an address).
    user_subnet: bool = False
    predefined: bool = False

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def subnet(self) -> str:
        pools = self.ipam.config or []
        return pools[0].subnet if pools else ""

    @property
    def gateway(self) -> str:
        pools = self.ipam.config or []
        return pools[0].gateway if pools else ""


class Endpoint(msgspec.Struct, rename="pascal"):
    """A container's membership of a network. The address fields are set while the
    container runs (allocated at start, released at stop), as dockerd does."""

    network_id: str = field(name="NetworkID")
    container_id: str = field(name="ContainerID")
    aliases: list[str] = field(default_factory=list)
    ipam_config: EndpointIPAMConfig | None = field(default=None, name="IPAMConfig")
    endpoint_id: str = field(default="", name="EndpointID")
    ip_address: str = field(default="", name="IPAddress")
    ip_prefix_len: int = field(default=0, name="IPPrefixLen")
    gateway: str = ""
    mac_address: str = ""
    requested_mac: str = ""  # MacAddress of the create/connect request
    interface: str = ""  # eth0, eth1... inside the container
    # Order of connection: the first network of a container gets eth0.
    seq: int = 0
