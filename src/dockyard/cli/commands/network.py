"""`dockyard network create|ls|inspect|rm|prune|connect|disconnect`, as docker's."""

from __future__ import annotations

import json
import re
import sys

from dockyard.cli.context import CLIError, Context, for_each, parse_filters
from dockyard.cli.flags import JSON_FORMAT_HELP, TABLE_FORMAT_HELP, Command, Opt
from dockyard.cli.formatting import Formatter, go_time_string, parse_time, short_id

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class Verb:
    """One `network` subcommand: its flags and what it does."""

    def __init__(self, command: Command, execute: Callable[[Context, dict, list[str]], int]):
        self.COMMAND = command
        self.execute = execute


def _map(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise CLIError(f'invalid argument "{item}" for "{flag}" flag: expected KEY=VALUE', 125)
        out[key] = value
    return out


def _contains(subnet: str, addr: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(addr.split("/")[0]) in ipaddress.ip_network(
            subnet, strict=False
        ) and (
            "/" not in addr
            or ipaddress.ip_network(addr, strict=False).subnet_of(
                ipaddress.ip_network(subnet, strict=False)  # type: ignore[arg-type]
            )
        )
    except (ValueError, TypeError):
        return False


def ipam_config(
    subnets: list[str], ranges: list[str], gateways: list[str], aux: dict[str, str]
) -> list[dict[str, Any]]:
    """The docker CLI's consolidation of --subnet/--ip-range/--gateway/--aux-address
    into one IPAM pool per subnet."""
    pools: list[dict[str, Any]] = [{"Subnet": s} for s in subnets]
    if (ranges or gateways or aux) and not subnets:
        raise CLIError("every ip-range or gateway must have a corresponding subnet", 1)
    for r in ranges:
        match = [p for p in pools if _contains(p["Subnet"], r)]
        if not match:
            raise CLIError(f"no matching subnet for range {r}", 1)
        if "IPRange" in match[0]:
            raise CLIError(f"cannot configure multiple ranges ({r}) on the same subnet", 1)
        match[0]["IPRange"] = r
    for g in gateways:
        match = [p for p in pools if _contains(p["Subnet"], g)]
        if not match:
            raise CLIError(f"no matching subnet for gateway {g}", 1)
        if "Gateway" in match[0]:
            raise CLIError(
                f"cannot configure multiple gateways ({g}, {match[0]['Gateway']}) for the "
                f"same subnet ({match[0]['Subnet']})",
                1,
            )
        match[0]["Gateway"] = g
    for key, addr in aux.items():
        match = [p for p in pools if _contains(p["Subnet"], addr)]
        if not match:
            raise CLIError(f"no matching subnet for aux-address {addr}", 1)
        match[0].setdefault("AuxiliaryAddresses", {})[key] = addr
    return pools


# -- create -------------------------------------------------------------------

CREATE = Command(
    name="network create",
    usage="[OPTIONS] NETWORK",
    description="Create a network",
    options=[
        Opt("attachable", help="Enable manual container attachment"),
        Opt("aux-address", kind="list", metavar="map", help="Auxiliary IPv4 or IPv6 addresses used by Network driver (default map[])"),
        Opt("config-from", kind="string", help="The network from which to copy the configuration"),
        Opt("config-only", help="Create a configuration only network"),
        Opt("driver", "d", kind="string", default="bridge", help="Driver to manage the Network"),
        Opt("gateway", kind="list", metavar="strings", help="IPv4 or IPv6 Gateway for the master subnet"),
        Opt("ingress", help="Create swarm routing-mesh network"),
        Opt("internal", help="Restrict external access to the network"),
        Opt("ip-range", kind="list", metavar="strings", help="Allocate container ip from a sub-range"),
        Opt("ipam-driver", kind="string", default="default", help="IP Address Management Driver"),
        Opt("ipam-opt", kind="list", metavar="map", help="Set IPAM driver specific options (default map[])"),
        Opt("ipv4", default=True, help="Enable or disable IPv4 address assignment"),
        Opt("ipv6", help="Enable or disable IPv6 address assignment"),
        Opt("label", kind="list", help="Set metadata on a network"),
        Opt("opt", "o", kind="list", metavar="map", help="Set driver specific options (default map[])"),
        Opt("scope", kind="string", help="Control the network's scope"),
        Opt("subnet", kind="list", metavar="strings", help="Subnet in CIDR format that represents a network segment"),
    ],
    min_args=1,
    max_args=1,
)  # fmt: skip


def _create(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    body: dict[str, Any] = {
        "Name": args[0],
        "Driver": opts["driver"] or "bridge",
        "Scope": opts["scope"] or "",
        "EnableIPv4": bool(opts["ipv4"]),
        "EnableIPv6": bool(opts["ipv6"]),
        "IPAM": {
            "Driver": opts["ipam_driver"] or "default",
            "Config": ipam_config(
                opts["subnet"],
                opts["ip_range"],
                opts["gateway"],
                _map(opts["aux_address"], "--aux-address"),
            ),
            "Options": _map(opts["ipam_opt"], "--ipam-opt"),
        },
        "Internal": bool(opts["internal"]),
        "Attachable": bool(opts["attachable"]),
        "Ingress": bool(opts["ingress"]),
        "ConfigOnly": bool(opts["config_only"]),
        "Options": _map(opts["opt"], "--opt"),
        "Labels": _map(
            opts["label"] and [x if "=" in x else x + "=" for x in opts["label"]], "--label"
        ),
    }
    if opts["config_from"]:
        body["ConfigFrom"] = {"Network": opts["config_from"]}
    resp = ctx.client.post("/networks/create", body=body)
    if resp.get("Warning"):
        ctx.err(f"WARNING: {resp['Warning']}\n")
    ctx.out(resp["Id"] + "\n")
    return 0


# -- ls -----------------------------------------------------------------------

LS = Command(
    name="network ls",
    usage="[OPTIONS]",
    description="List networks",
    options=[
        Opt("filter", "f", kind="list", metavar="filter", help="Provide filter values (e.g. \"driver=bridge\")"),
        Opt("format", kind="string", help=TABLE_FORMAT_HELP),
        Opt("no-trunc", help="Do not truncate the output"),
        Opt("quiet", "q", help="Only display network IDs"),
    ],
    aliases=["network ls", "network list"],
    max_args=0,
)  # fmt: skip

LS_TABLE = "{{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
LS_HEADERS = {
    "ID": "NETWORK ID",
    "Name": "NAME",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "IPv4": "IPV4",
    "IPv6": "IPV6",
    "Internal": "INTERNAL",
    "Labels": "LABELS",
    "CreatedAt": "CREATED AT",
}


def _natural(text: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def network_row(n: dict[str, Any], trunc: bool) -> dict[str, Any]:
    labels = n.get("Labels") or {}
    created = parse_time(n.get("Created"))
    nid = str(n.get("Id", ""))
    return {
        "ID": short_id(nid) if trunc else nid,
        "Name": n.get("Name", ""),
        "Driver": n.get("Driver", ""),
        "Scope": n.get("Scope", ""),
        "IPv4": str(bool(n.get("EnableIPv4"))).lower(),
        "IPv6": str(bool(n.get("EnableIPv6"))).lower(),
        "Internal": str(bool(n.get("Internal"))).lower(),
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "CreatedAt": go_time_string(created) if created is not None else "",
    }


def _ls(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.client.transport import encode_filters

    query: dict[str, Any] = {}
    filters = parse_filters(opts["filter"])
    if filters:
        query["filters"] = encode_filters(filters)
    networks = ctx.client.get("/networks", query) or []
    networks.sort(key=lambda n: _natural(str(n.get("Name", ""))))
    fmt = "{{.ID}}" if opts["quiet"] else opts["format"] or ""
    rows = [network_row(n, not opts["no_trunc"]) for n in networks]
    ctx.out(Formatter(fmt, LS_TABLE, LS_HEADERS).render(rows))
    return 0


# -- inspect ------------------------------------------------------------------

INSPECT = Command(
    name="network inspect",
    usage="[OPTIONS] NETWORK [NETWORK...]",
    description="Display detailed information on one or more networks",
    options=[
        Opt("format", "f", kind="string", help=JSON_FORMAT_HELP),
        Opt("verbose", "v", help="Verbose output for diagnostics"),
    ],
    min_args=1,
)  # fmt: skip


def _inspect(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.client.errors import APIError

    found: list[Any] = []
    errors: list[str] = []
    query = {"verbose": True if opts["verbose"] else None}
    for name in args:
        try:
            found.append(ctx.client.get(f"/networks/{name}", query))
        except APIError as exc:
            if exc.status != 404:
                raise
            errors.append(f"Error: No such network: {name}")
    fmt = opts["format"] or ""
    if fmt and fmt != "json":
        from dockyard.cli import gotemplate

        fmt = fmt.replace("\\t", "\t").replace("\\n", "\n")
        try:
            ctx.out("".join(gotemplate.render(fmt, obj) + "\n" for obj in found))
        except gotemplate.TemplateError as exc:
            raise CLIError(f"template parsing error: {exc}", 1) from None
    else:
        ctx.out(json.dumps(found, indent=4, ensure_ascii=False) + "\n")
    if errors:
        ctx.err("".join(e + "\n" for e in errors))
        return 1
    return 0


# -- rm -------------------------------------------------------------------------

RM = Command(
    name="network rm",
    usage="NETWORK [NETWORK...]",
    description="Remove one or more networks",
    options=[Opt("force", "f", help="Do not error if the network does not exist")],
    aliases=["network rm", "network remove"],
    min_args=1,
)  # fmt: skip


def _rm(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.client.errors import APIError

    def remove(name: str) -> None:
        try:
            ctx.client.request("DELETE", f"/networks/{name}").read()
        except APIError as exc:
            if not (opts["force"] and exc.status == 404):
                raise

    return for_each(ctx, args, remove)


# -- prune ----------------------------------------------------------------------

PRUNE = Command(
    name="network prune",
    usage="[OPTIONS]",
    description="Remove all unused networks",
    options=[
        Opt("filter", kind="list", metavar="filter", help='Provide filter values (e.g. "until=<timestamp>")'),
        Opt("force", "f", help="Do not prompt for confirmation"),
    ],
    max_args=0,
)  # fmt: skip

PRUNE_WARNING = (
    "WARNING! This will remove all custom networks not used by at least one container.\n"
    "Are you sure you want to continue? [y/N] "
)


def _prune(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.client.transport import encode_filters

    if not opts["force"]:
        ctx.out(PRUNE_WARNING)
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            return 0
    query: dict[str, Any] = {}
    filters = parse_filters(opts["filter"])
    if filters:
        query["filters"] = encode_filters(filters)
    report = ctx.client.post("/networks/prune", query) or {}
    deleted = report.get("NetworksDeleted") or []
    if deleted:
        ctx.out("Deleted Networks:\n" + "".join(f"{n}\n" for n in deleted) + "\n")
    return 0


# -- connect / disconnect ----------------------------------------------------

CONNECT = Command(
    name="network connect",
    usage="[OPTIONS] NETWORK CONTAINER",
    description="Connect a container to a network",
    options=[
        Opt("alias", kind="list", metavar="strings", help="Add network-scoped alias for the container"),
        Opt("driver-opt", kind="list", metavar="strings", help="driver options for the network"),
        Opt("gw-priority", kind="int", default=0, help="Highest gw-priority provides the default gateway. Accepts positive and negative values."),
        Opt("ip", kind="string", help="IPv4 address (e.g., \"172.30.100.104\")"),
        Opt("ip6", kind="string", help="IPv6 address (e.g., \"2001:db8::33\")"),
        Opt("link", kind="list", metavar="list", help="Add link to another container"),
        Opt("link-local-ip", kind="list", metavar="strings", help="Add a link-local address for the container"),
    ],
    min_args=2,
    max_args=2,
)  # fmt: skip


def _connect(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    endpoint: dict[str, Any] = {}
    if opts["ip"] or opts["ip6"] or opts["link_local_ip"]:
        endpoint["IPAMConfig"] = {
            "IPv4Address": opts["ip"] or "",
            "IPv6Address": opts["ip6"] or "",
            "LinkLocalIPs": opts["link_local_ip"] or None,
        }
    if opts["alias"]:
        endpoint["Aliases"] = opts["alias"]
    if opts["link"]:
        endpoint["Links"] = opts["link"]
    if opts["driver_opt"]:
        endpoint["DriverOpts"] = _map(opts["driver_opt"], "--driver-opt")
    if opts["gw_priority"]:
        endpoint["GwPriority"] = opts["gw_priority"]
    body = {"Container": args[1], "EndpointConfig": endpoint or None}
    ctx.client.request("POST", f"/networks/{args[0]}/connect", body=body).read()
    return 0


DISCONNECT = Command(
    name="network disconnect",
    usage="[OPTIONS] NETWORK CONTAINER",
    description="Disconnect a container from a network",
    options=[Opt("force", "f", help="Force the container to disconnect from a network")],
    min_args=2,
    max_args=2,
)  # fmt: skip


def _disconnect(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    body = {"Container": args[1], "Force": bool(opts["force"])}
    ctx.client.request("POST", f"/networks/{args[0]}/disconnect", body=body).read()
    return 0


create = Verb(CREATE, _create)
ls = Verb(LS, _ls)
inspect = Verb(INSPECT, _inspect)
rm = Verb(RM, _rm)
prune = Verb(PRUNE, _prune)
connect = Verb(CONNECT, _connect)
disconnect = Verb(DISCONNECT, _disconnect)
