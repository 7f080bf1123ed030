"""`dockyard update`: new resource limits (and restart policy) for containers."""

from __future__ import annotations

from dockyard.cli.commands.containeropts import ram_in_bytes
from dockyard.cli.context import CLIError, Context
from dockyard.cli.flags import Command, Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="update",
    usage="[OPTIONS] CONTAINER [CONTAINER...]",
    description="Update configuration of one or more containers",
    options=[
        Opt("blkio-weight", kind="int", help="Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)"),
        Opt("cpu-period", kind="int", help="Limit CPU CFS (Completely Fair Scheduler) period"),
        Opt("cpu-quota", kind="int", help="Limit CPU CFS (Completely Fair Scheduler) quota"),
        Opt("cpu-shares", "c", kind="int", help="CPU shares (relative weight)"),
        Opt("cpus", kind="string", metavar="decimal", help="Number of CPUs"),
        Opt("cpuset-cpus", kind="string", help="CPUs in which to allow execution (0-3, 0,1)"),
        Opt("cpuset-mems", kind="string", help="MEMs in which to allow execution (0-3, 0,1)"),
        Opt("memory", "m", kind="string", metavar="bytes", help="Memory limit"),
        Opt("memory-reservation", kind="string", metavar="bytes", help="Memory soft limit"),
        Opt("memory-swap", kind="string", metavar="bytes", help="Swap limit equal to memory plus swap: -1 to enable unlimited swap"),
        Opt("pids-limit", kind="int", help="Tune container pids limit (set -1 for unlimited)"),
        Opt("restart", kind="string", help="Restart policy to apply when a container exits"),
    ],
    aliases=["container update", "update"],
    min_args=1,
)  # fmt: skip


def build_update_body(opts: dict[str, Any]) -> dict[str, Any]:
    """The UpdateConfig the docker CLI sends: unset flags are 0 (unchanged)."""
    if not (opts["_set"] - {"help"}):
        raise CLIError("you must provide one or more flags when using this command", 1)

    def size(name: str) -> int:
        return ram_in_bytes(opts[name]) if opts[name] else 0

    nano_cpus = 0
    if opts["cpus"]:
        try:
            nano_cpus = int(round(float(opts["cpus"]) * 1e9))
        except ValueError:
            raise CLIError(f'invalid argument "{opts["cpus"]}" for "--cpus" flag', 125) from None
    memory_swap = 0
    if opts["memory_swap"]:
        memory_swap = -1 if opts["memory_swap"] == "-1" else ram_in_bytes(opts["memory_swap"])
    body: dict[str, Any] = {
        "BlkioWeight": opts["blkio_weight"] or 0,
        "CpuShares": opts["cpu_shares"] or 0,
        "CpuPeriod": opts["cpu_period"] or 0,
        "CpuQuota": opts["cpu_quota"] or 0,
        "NanoCpus": nano_cpus,
        "CpusetCpus": opts["cpuset_cpus"] or "",
        "CpusetMems": opts["cpuset_mems"] or "",
        "Memory": size("memory"),
        "MemoryReservation": size("memory_reservation"),
        "MemorySwap": memory_swap,
        "PidsLimit": opts["pids_limit"] if "pids_limit" in opts["_set"] else None,
    }
    if opts["restart"]:
        name, _, retries = opts["restart"].partition(":")
        try:
            count = int(retries) if retries else 0
        except ValueError:
            raise CLIError(f"maximum retry count must be an integer: {retries}", 125) from None
        body["RestartPolicy"] = {"Name": name, "MaximumRetryCount": count}
    return body


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.client.errors import APIError

    body = build_update_body(opts)
    errors: list[str] = []
    for name in args:
        try:
            resp = ctx.client.post(f"/containers/{name}/update", None, body)
        except APIError as exc:
            errors.append(f"Error response from daemon: {exc.message}")
            continue
        for warning in (resp or {}).get("Warnings") or []:
            ctx.err(f"WARNING: {warning}\n")
        ctx.out(name + "\n")
    if errors:
        ctx.err("".join(e + "\n" for e in errors))
        return 1
    return 0
