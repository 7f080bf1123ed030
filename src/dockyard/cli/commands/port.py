"""`dockyard port`: the public side of a container's published ports."""

from __future__ import annotations

from dockyard.cli.context import CLIError, Context
from dockyard.cli.flags import Command

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="port",
    usage="CONTAINER [PRIVATE_PORT[/PROTO]]",
    description="List port mappings or a specific mapping for the container",
    aliases=["container port", "port"],
    min_args=1,
    max_args=2,
)


def _host(binding: dict[str, str]) -> str:
    ip = binding.get("HostIp") or "0.0.0.0"
    ip = f"[{ip}]" if ":" in ip else ip
    return f"{ip}:{binding.get('HostPort', '')}"


def _sort_key(key: str) -> tuple[int, str]:
    num, _, proto = key.partition("/")
    return (int(num) if num.isdigit() else 0, proto)


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    name = args[0]
    data = ctx.client.request("GET", f"/containers/{name}/json").json() or {}
    ports: dict[str, list[dict[str, str]] | None] = (data.get("NetworkSettings") or {}).get(
        "Ports"
    ) or {}
    if len(args) == 2:
        num, _, proto = args[1].partition("/")
        key = f"{num}/{proto or 'tcp'}"
        if not num.isdigit():
            raise CLIError(f"Error: invalid port ({args[1]})", 1)
        bindings = ports.get(key)
        if not bindings:
            raise CLIError(f"Error: No public port '{key}' published for {name}", 1)
        ctx.out("".join(f"{_host(b)}\n" for b in bindings))
        return 0
    lines = []
    for key in sorted(ports, key=_sort_key):
        for b in ports[key] or []:
            lines.append(f"{key} -> {_host(b)}\n")
    ctx.out("".join(lines))
    return 0
