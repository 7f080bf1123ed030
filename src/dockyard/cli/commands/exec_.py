"""`dockyard exec`: run a command in a running container, as `docker exec`."""

from __future__ import annotations

from dockyard.cli.context import CLIError, Context
from dockyard.cli.flags import Command, Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="exec",
    usage="[OPTIONS] CONTAINER COMMAND [ARG...]",
    description="Execute a command in a running container",
    options=[
        Opt("detach", "d", help="Detached mode: run command in the background"),
        Opt("detach-keys", kind="string", help="Override the key sequence for detaching a container"),
        Opt("env", "e", kind="list", help="Set environment variables"),
        Opt("env-file", kind="list", help="Read in a file of environment variables"),
        Opt("interactive", "i", help="Keep STDIN open even if not attached"),
        Opt("privileged", help="Give extended privileges to the command"),
        Opt("tty", "t", help="Allocate a pseudo-TTY"),
        Opt("user", "u", kind="string", help="Username or UID (format: \"<name|uid>[:<group|gid>]\")"),
        Opt("workdir", "w", kind="string", help="Working directory inside the container"),
    ],
    aliases=["container exec", "exec"],
    min_args=2,
    interspersed=False,
)  # fmt: skip


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    container, cmd = args[0], args[1:]
    detach = bool(opts["detach"])
    tty = bool(opts["tty"])
    stdin = bool(opts["interactive"]) and not detach
    if not detach:
        from dockyard.cli.attach import check_tty

        problem = check_tty(tty, stdin)
        if problem:
            raise CLIError(f"dockyard: {problem}", 1)
    env: list[str] = []
    if opts["env_file"] or opts["env"]:  # its import costs ~4 ms: only when needed
        from dockyard.cli.commands.containeropts import _env_value, parse_env_file

        for path in opts["env_file"]:
            env += parse_env_file(path, "env")
        env += [_env_value(e) for e in opts["env"]]
    body: dict[str, Any] = {
        "User": opts["user"] or "",
        "Privileged": bool(opts["privileged"]),
        "Tty": tty,
        "AttachStdin": stdin,
        "AttachStdout": not detach,
        "AttachStderr": not detach,
        "DetachKeys": opts["detach_keys"] or "",
        "Env": env,
        "WorkingDir": opts["workdir"] or "",
        "Cmd": cmd,
    }
    size = None
    if tty and not detach:
        from dockyard.cli.attach import terminal_size

        size = terminal_size()
        if size:
            body["ConsoleSize"] = list(size)
    client = ctx.client
    exec_id = client.request("POST", f"/containers/{container}/exec", body=body).json()["Id"]
    start: dict[str, Any] = {"Detach": detach, "Tty": tty}
    if size:
        start["ConsoleSize"] = list(size)
    if detach:
        client.request("POST", f"/exec/{exec_id}/start", body=start).read()
        return 0

    from dockyard.cli.attach import run_session

    conn = client.hijack(f"/exec/{exec_id}/start", body=start)
    detached = run_session(
        client, exec_id, conn, tty, stdin, False, opts["detach_keys"], "/exec/{}/resize"
    )
    if detached:
        return 0
    code = client.request("GET", f"/exec/{exec_id}/json").json().get("ExitCode")
    return int(code) if code is not None else 0
