"""`dockyard import`: create a filesystem image from a tarball (file, URL or stdin)."""

from __future__ import annotations

import sys

from dockyard.cli.commands.images import split_ref
from dockyard.cli.context import CLIError, Context
from dockyard.cli.flags import Command, Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import IO, Any

COMMAND = Command(
    name="import",
    usage="[OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
    description="Import the contents from a tarball to create a filesystem image",
    options=[
        Opt("change", "c", kind="list", help="Apply Dockerfile instruction to the created image"),
        Opt("message", "m", kind="string", help="Set commit message for imported image"),
        Opt("platform", kind="string", help="Set platform if server is multi-platform capable"),
    ],
    aliases=["image import", "import"],
    min_args=1,
    max_args=2,
)


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    source = args[0]
    repo, tag = split_ref(args[1]) if len(args) > 1 else ("", "")
    query: dict[str, Any] = {
        "fromSrc": source if "://" in source else "-",
        "repo": repo or None,
        "tag": tag or None,
        "message": opts["message"] or None,
        "changes": opts["change"] or None,
        "platform": opts["platform"] or None,
    }
    data: IO[bytes] | None = None
    opened: IO[bytes] | None = None
    if source == "-":
        data = sys.stdin.buffer
    elif "://" not in source:
        try:
            opened = data = open(source, "rb")  # noqa: SIM115 - closed below, streamed as the body
        except OSError as exc:
            reason = exc.strerror.lower() if exc.strerror else str(exc)
            raise CLIError(f"open {source}: {reason}", 1) from None
    try:
        resp = ctx.client.request(
            "POST",
            "/images/create",
            query,
            data=data,
            headers={"Content-Type": "application/x-tar"} if data is not None else None,
        )
        for msg in resp.iter_json():
            if not isinstance(msg, dict):
                continue
            if msg.get("error") or msg.get("errorDetail"):
                detail = msg.get("errorDetail") or {}
                raise CLIError(str(msg.get("error") or detail.get("message")), 1)
            status = msg.get("status")
            if status:
                ctx.out(f"{status}\n")
    finally:
        if opened is not None:
            opened.close()
    return 0
