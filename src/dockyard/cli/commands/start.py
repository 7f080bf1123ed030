"""`dockyard start`: start containers; -a attaches like `run` does."""

from __future__ import annotations

from dockyard.cli.context import CLIError, Context, for_each
from dockyard.cli.flags import Command, Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="start",
    usage="[OPTIONS] CONTAINER [CONTAINER...]",
    description="Start one or more stopped containers",
    options=[
        Opt("attach", "a", help="Attach STDOUT/STDERR and forward signals"),
        Opt("detach-keys", kind="string", help="Override the key sequence for detaching a container"),
        Opt("interactive", "i", help="Attach container's STDIN"),
    ],
    aliases=["container start", "start"],
    min_args=1,
)  # fmt: skip


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    client = ctx.client
    if not (opts["attach"] or opts["interactive"]):
        failed: list[str] = []

        def start(name: str) -> None:
            try:
                client.request("POST", f"/containers/{name}/start").read()
            except Exception:
                failed.append(name)
                raise

        code = for_each(ctx, args, start)
        if failed:
            ctx.err(f"Error: failed to start containers: {', '.join(failed)}\n")
        return code
    if len(args) > 1:
        raise CLIError("Error: you cannot start and attach multiple containers at once", 1)
    return _start_attached(ctx, args[0], bool(opts["interactive"]), opts["detach_keys"])


def _start_attached(ctx: Context, name: str, interactive: bool, detach_keys: str | None) -> int:
    from dockyard.cli.attach import Waiter, attach, check_tty, run_session
    from dockyard.cli.commands.run import start_error
    from dockyard.client.errors import APIError

    client = ctx.client
    info = client.get(f"/containers/{name}/json")
    cid = info["Id"]
    config = info.get("Config") or {}
    tty = bool(config.get("Tty"))
    stdin = interactive and bool(config.get("OpenStdin"))
    problem = check_tty(tty, stdin)
    if problem:
        raise CLIError(problem, 1)
    conn = attach(client, cid, stdin, True, True)
    auto_remove = bool((info.get("HostConfig") or {}).get("AutoRemove"))
    waiter = Waiter(client, cid, "removed" if auto_remove else "next-exit")
    waiter.start()
    waiter.registered.wait(timeout=2.0)
    try:
        client.request("POST", f"/containers/{cid}/start").read()
    except APIError as exc:
        conn.close()
        err = start_error(exc.message)
        err.message = err.message.removeprefix("dockyard: ")
        raise err from None
    if run_session(client, cid, conn, tty, stdin, True, detach_keys):
        return 0
    return waiter.result()
