"""`dockyard logout`: forget the credentials kept for a registry."""

from __future__ import annotations

from dockyard.cli.context import Context
from dockyard.cli.flags import Command

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="logout",
    usage="[SERVER]",
    description=(
        "Log out from a registry.\nIf no server is specified, the default is defined by the daemon."
    ),
    options=[],
    max_args=1,
)


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.cli.dockerconfig import DockerConfig, config_dir, server_key

    server = server_key(args[0] if args else "docker.io")
    config = DockerConfig(config_dir(ctx.config_dir))
    if config.erase(server):
        ctx.out(f"Removing login credentials for {server}\n")
    else:
        ctx.out(f"Not logged in to {server}\n")
    return 0
