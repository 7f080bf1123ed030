"""`dockyard attach`: connect our stdio to a running container."""

from __future__ import annotations

from dockyard.cli.context import CLIError, Context
from dockyard.cli.flags import Command, Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="attach",
    usage="[OPTIONS] CONTAINER",
    description="Attach local standard input, output, and error streams to a running container",
    options=[
        Opt("detach-keys", kind="string", help="Override the key sequence for detaching a container"),
        Opt("no-stdin", help="Do not attach STDIN"),
        Opt("sig-proxy", default=True, help="Proxy all received signals to the process"),
    ],
    aliases=["container attach", "attach"],
    min_args=1,
    max_args=1,
)  # fmt: skip


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.cli.attach import Waiter, attach, check_tty, run_session

    client = ctx.client
    info = client.get(f"/containers/{args[0]}/json")
    state = info.get("State") or {}
    if not state.get("Running"):
        raise CLIError("You cannot attach to a stopped container, start it first", 1)
    if state.get("Paused"):
        raise CLIError("You cannot attach to a paused container, unpause it first", 1)
    cid = info["Id"]
    config = info.get("Config") or {}
    tty = bool(config.get("Tty"))
    stdin = bool(config.get("OpenStdin")) and not opts["no_stdin"]
    problem = check_tty(tty, stdin)
    if problem:
        raise CLIError(problem, 1)
    # registered before streaming so a quick exit is not missed
    waiter = Waiter(client, cid, "not-running")
    waiter.start()
    waiter.registered.wait(timeout=2.0)
    conn = attach(client, cid, stdin, True, True)
    if run_session(client, cid, conn, tty, stdin, bool(opts["sig_proxy"]), opts["detach_keys"]):
        return 0
    return waiter.result()
