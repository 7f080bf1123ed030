"""`dockyard pull`: download an image from a registry."""

from __future__ import annotations

import os
import sys

from dockyard.cli.context import CLIError, Context
from dockyard.cli.flags import Command, Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="pull",
    usage="[OPTIONS] NAME[:TAG|@DIGEST]",
    description="Download an image from a registry",
    options=[
        Opt("all-tags", "a", help="Download all tagged images in the repository"),
        Opt("disable-content-trust", kind="bool", default=True, help="Skip image verification"),
        Opt("platform", kind="string", help="Set platform if server is multi-platform capable"),
        Opt("quiet", "q", help="Suppress verbose output"),
    ],
    aliases=["image pull", "pull"],
    min_args=1,
    max_args=1,
)


def split_name(image: str) -> tuple[str, str]:
    """'host:5000/app:v1' -> ('host:5000/app', 'v1'); digests stay in the tag part."""
    if "@" in image:
        name, _, digest = image.partition("@")
        return name, digest
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        name, _, tag = image.rpartition(":")
        return name, tag
    return image, ""


def pull_image(
    ctx: Context,
    image: str,
    *,
    all_tags: bool = False,
    platform: str | None = None,
    quiet: bool = False,
    to_stderr: bool = False,
) -> None:
    """POST /images/create?fromImage= and render its progress (as `docker pull`)."""
    from dockyard.cli import progress
    from dockyard.cli.dockerconfig import registry_auth

    name, tag = split_name(image)
    if all_tags and tag:
        raise CLIError("tag can't be used with --all-tags/-a", 1)
    if not all_tags and not tag:
        tag = "latest"
        if not quiet:
            (ctx.err if to_stderr else ctx.out)("Using default tag: latest\n")
    query = {"fromImage": name, "tag": tag or None, "platform": platform or None}
    headers = {"X-Registry-Auth": registry_auth(ctx.config_dir, name)}
    resp = ctx.client.request("POST", "/images/create", query, headers=headers)
    stream = sys.stderr if to_stderr else sys.stdout
    if quiet:
        progress.display(resp.iter_json(), _Null(), False)
        return
    progress.display(resp.iter_json(), stream, os.isatty(stream.fileno()))


class _Null:
    def write(self, _text: str) -> int:
        return 0

    def flush(self) -> None:
        pass


def full_name(image: str) -> str:
    """What docker prints after a pull: the fully qualified reference."""
    name, tag = split_name(image)
    first = name.split("/", 1)[0]
    if "/" not in name or not (any(c in first for c in ".:") or first == "localhost"):
        name = "docker.io/" + (name if "/" in name else "library/" + name)
    sep = "@" if tag.startswith("sha256:") else ":"
    return f"{name}{sep}{tag or 'latest'}"


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    if not opts["disable_content_trust"]:
        raise CLIError("content trust (--disable-content-trust=false) is not supported", 1)
    image = args[0]
    pull_image(
        ctx, image, all_tags=opts["all_tags"], platform=opts["platform"], quiet=opts["quiet"]
    )
    if not opts["all_tags"]:
        ctx.out(full_name(image) + "\n")
    return 0
