"""`dockyard push`: upload an image to a registry."""

from __future__ import annotations

import os
import sys

from dockyard.cli.commands.pull import split_name
from dockyard.cli.context import CLIError, Context
from dockyard.cli.flags import Command, Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="push",
    usage="[OPTIONS] NAME[:TAG]",
    description="Upload an image to a registry",
    options=[
        Opt("all-tags", "a", help="Push all tags of an image to the repository"),
        Opt("disable-content-trust", kind="bool", default=True, help="Skip image signing"),
        Opt("quiet", "q", help="Suppress verbose output"),
    ],
    aliases=["image push", "push"],
    min_args=1,
    max_args=1,
)


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.cli import progress
    from dockyard.cli.dockerconfig import registry_auth
    from dockyard.client.transport import _quote

    if not opts["disable_content_trust"]:
        raise CLIError("content trust (--disable-content-trust=false) is not supported", 1)
    image = args[0]
    name, tag = split_name(image)
    if tag.startswith("sha256:"):
        raise CLIError(f"invalid reference format: cannot push a digest reference ({image})", 1)
    if opts["all_tags"] and tag:
        raise CLIError("tag can't be used with --all-tags/-a", 1)
    if not opts["all_tags"] and not tag:
        tag = "latest"
        if not opts["quiet"]:
            ctx.out("Using default tag: latest\n")
    headers = {"X-Registry-Auth": registry_auth(ctx.config_dir, name)}
    resp = ctx.client.request(
        "POST", f"/images/{_quote(name, _PATH_SAFE)}/push", {"tag": tag or None}, headers=headers
    )
    if opts["quiet"]:
        for msg in resp.iter_json():
            if isinstance(msg, dict) and (msg.get("error") or msg.get("errorDetail")):
                detail = msg.get("errorDetail") or {}
                raise CLIError(str(msg.get("error") or detail.get("message")), 1)
        ctx.out(image + "\n")
        return 0
    progress.display(resp.iter_json(), sys.stdout, os.isatty(sys.stdout.fileno()))
    return 0


_PATH_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~/:")
