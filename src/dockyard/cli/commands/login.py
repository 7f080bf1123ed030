"""`dockyard login`: check credentials with a registry and keep them in ~/.docker/config.json."""

from __future__ import annotations

import os
import sys

from dockyard.cli.context import CLIError, Context
from dockyard.cli.flags import Command, Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="login",
    usage="[OPTIONS] [SERVER]",
    description=(
        "Log in to a registry.\nIf no server is specified, the default is defined by the daemon."
    ),
    options=[
        Opt("password", "p", kind="string", help="Password"),
        Opt("password-stdin", help="Take the password from stdin"),
        Opt("username", "u", kind="string", help="Username"),
    ],
    max_args=1,
)


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.cli.dockerconfig import DockerConfig, config_dir, server_key

    server = server_key(args[0] if args else "docker.io")
    username, password = opts["username"] or "", opts["password"] or ""
    if opts["password_stdin"]:
        if password:
            raise CLIError("--password and --password-stdin are mutually exclusive", 1)
        if not username:
            raise CLIError("Must provide --username with --password-stdin", 1)
        password = sys.stdin.read().rstrip("\r\n")
    elif password:
        ctx.err("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n")
    config = DockerConfig(config_dir(ctx.config_dir))
    if not username or not password:
        if not os.isatty(sys.stdin.fileno()):
            raise CLIError("Error: Cannot perform an interactive login from a non TTY device", 1)
        stored = config.get(server).get("username", "")
        if not username:
            prompt = f"Username ({stored}): " if stored else "Username: "
            ctx.out(prompt)
            username = sys.stdin.readline().strip() or stored
        if not username:
            raise CLIError("Error: Non-null Username Required", 1)
        if not password:
            import getpass

            password = getpass.getpass("Password: ")
        if not password:
            raise CLIError("Error: Password Required", 1)
    body = {"username": username, "password": password, "serveraddress": server}
    resp = ctx.client.post("/auth", None, body) or {}
    if not config.doc.get("credsStore") and not (config.doc.get("credHelpers") or {}).get(server):
        ctx.err(
            f"WARNING! Your password will be stored unencrypted in {config.path}.\n"
            "Configure a credential helper to remove this warning. See\n"
            "https://docs.docker.com/engine/reference/commandline/login/#credentials-store\n\n"
        )
    config.store(server, username, password)
    ctx.out(f"{resp.get('Status') or 'Login Succeeded'}\n")
    return 0
