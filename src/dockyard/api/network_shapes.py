"""JSON shapes of networks and of a container's endpoints, as dockerd answers them."""

from __future__ import annotations

from typing import Any

import msgspec

from dockyard.engine.network_models import Endpoint, Network


def _ipam(n: Network) -> dict[str, Any]:
    return {
        "Driver": n.ipam.driver or "default",
        "Options": n.ipam.options if n.ipam.options is not None else None,
        "Config": msgspec.to_builtins(n.ipam.config or []),
    }


def network(
    n: Network,
    containers: dict[str, dict[str, Any]] | None,
    options: dict[str, str] | None = None,
) -> dict[str, Any]:
    """GET /networks/{id} (with `containers`) and an entry of GET /networks (without:
    since API 1.28 the list leaves the containers out)."""
    out: dict[str, Any] = {
        "Name": n.name,
        "Id": n.id,
        "Created": n.created,
        "Scope": n.scope,
        "Driver": n.driver,
        "EnableIPv4": n.driver == "bridge",
        "EnableIPv6": False,
        "IPAM": _ipam(n),
        "Internal": n.internal,
        "Attachable": n.attachable,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": containers if containers is not None else {},
        "Options": options if options is not None else n.options,
        "Labels": n.labels,
    }
    return out


def network_container(name: str, e: Endpoint) -> dict[str, Any]:
    """An entry of a network's `Containers`, keyed by container id."""
    return {
        "Name": name,
        "EndpointID": e.endpoint_id,
        "MacAddress": e.mac_address,
        "IPv4Address": f"{e.ip_address}/{e.ip_prefix_len}" if e.ip_address else "",
        "IPv6Address": "",
    }


def endpoint_settings(
    n: Network, e: Endpoint, dns_names: list[str], legacy_aliases: bool = False
) -> dict[str, Any]:
    """A container's entry in NetworkSettings.Networks for a user-defined network.

    `legacy_aliases` (API < 1.44, as dockerd answers it): the short id is among the
    Aliases and there is no DNSNames."""
    aliases = list(e.aliases)
    if legacy_aliases and e.container_id[:12] not in aliases:
        aliases.append(e.container_id[:12])
    ipam = None
    if e.ipam_config is not None:
        ipam = {"IPv4Address": e.ipam_config.ipv4_address}
    out: dict[str, Any] = {
        "IPAMConfig": ipam,
        "Links": None,
        "Aliases": aliases or None,
        "MacAddress": e.mac_address,
        "DriverOpts": None,
        "GwPriority": 0,
        "NetworkID": n.id,
        "EndpointID": e.endpoint_id,
        "Gateway": e.gateway,
        "IPAddress": e.ip_address,
        "IPPrefixLen": e.ip_prefix_len,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DNSNames": dns_names or None,
    }
    if legacy_aliases:
        del out["DNSNames"]
    return out
