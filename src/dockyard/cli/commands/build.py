"""`dockyard build`: build an image from a Dockerfile (the classic builder's API).

The context is a directory (sent as a tar, without what .dockerignore
excludes), a local tar archive, or `-` (a tar, or a lone Dockerfile, on
stdin). The tar is produced while it is sent, so a large context is never
held in memory. Each step's output is shown as docker shows it, followed by
the step's duration; on a terminal the running step's elapsed time ticks.
"""

from __future__ import annotations

import os
import sys

from dockyard.cli.context import CLIError, Context
from dockyard.cli.flags import Command, Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import IO, Any

COMMAND = Command(
    name="build",
    usage="[OPTIONS] PATH | URL | -",
    description="Build an image from a Dockerfile",
    options=[
        Opt("add-host", kind="list", help="Add a custom host-to-IP mapping (host:ip)"),
        Opt("build-arg", kind="list", help="Set build-time variables"),
        Opt("cache-from", kind="list", help="Images to consider as cache sources"),
        Opt(
            "file", "f", kind="string", help="Name of the Dockerfile (Default is 'PATH/Dockerfile')"
        ),
        Opt("force-rm", help="Always remove intermediate containers"),
        Opt("iidfile", kind="string", help="Write the image ID to the file"),
        Opt("label", kind="list", help="Set metadata for an image"),
        Opt("memory", "m", kind="string", help="Memory limit"),
        Opt("network", kind="string", help="Set the networking mode for the RUN instructions"),
        Opt("no-cache", help="Do not use cache when building the image"),
        Opt("platform", kind="string", help="Set platform if server is multi-platform capable"),
        Opt("pull", help="Always attempt to pull a newer version of the image"),
        Opt("quiet", "q", help="Suppress the build output and print image ID on success"),
        Opt("rm", default=True, help="Remove intermediate containers after a successful build"),
        Opt("shm-size", kind="string", help="Size of /dev/shm"),
        Opt("tag", "t", kind="list", help="Name and optionally a tag in the 'name:tag' format"),
        Opt("target", kind="string", help="Set the target build stage to build."),
    ],
    aliases=["image build", "build", "builder build"],
    min_args=1,
    max_args=1,
)


def _size(text: str) -> int:
    from dockyard.cli.commands.containeropts import ram_in_bytes

    return ram_in_bytes(text)


def _build_args(values: list[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for item in values:
        key, eq, value = item.partition("=")
        # `--build-arg KEY` takes KEY's value from the environment (unset: none).
        out[key] = value if eq else os.environ.get(key)
    return out


def _labels(values: list[str]) -> dict[str, str]:
    out = {}
    for item in values:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.cli import build_context
    from dockyard.client import jsonio  # not `json`: its import costs a cached build ~5 ms

    source = args[0]
    remote = source.startswith(("http://", "https://"))
    if not remote and ("://" in source or source.startswith("git@")):
        raise CLIError("only http(s) URLs are supported as remote contexts (not git)", 1)
    query: dict[str, Any] = {
        "t": opts["tag"] or None,
        "buildargs": jsonio.dumps(_build_args(opts["build_arg"])) if opts["build_arg"] else None,
        "target": opts["target"] or None,
        "nocache": "1" if opts["no_cache"] else None,
        "pull": "1" if opts["pull"] else None,
        "q": "1" if opts["quiet"] else None,
        "rm": "1" if opts["rm"] else "0",
        "forcerm": "1" if opts["force_rm"] else None,
        "labels": jsonio.dumps(_labels(opts["label"])) if opts["label"] else None,
        "networkmode": opts["network"] or None,
        "extrahosts": ",".join(opts["add_host"]) or None,
        "cachefrom": jsonio.dumps(opts["cache_from"]) if opts["cache_from"] else None,
        "platform": opts["platform"] or None,
        "memory": _size(opts["memory"]) if opts["memory"] else None,
        "shmsize": _size(opts["shm_size"]) if opts["shm_size"] else None,
    }
    dockerfile_name = opts["file"] or ""
    data: IO[bytes] | None
    closer = None
    if remote:
        data = None
        query["remote"] = source
        if dockerfile_name:
            query["dockerfile"] = dockerfile_name
    elif source == "-":
        if os.isatty(sys.stdin.fileno()):
            raise CLIError("requested build from stdin, but stdin is a terminal", 1)
        data = sys.stdin.buffer
        if dockerfile_name:
            query["dockerfile"] = dockerfile_name
    elif os.path.isdir(source):
        try:
            data, name, closer = build_context.directory_tar(source, dockerfile_name)
        except OSError as e:
            raise CLIError(f"unable to prepare context: {e}", 1) from None
        query["dockerfile"] = name
    elif os.path.isfile(source):
        data = open(source, "rb")  # noqa: SIM115 - closed below, streamed as the body
        closer = data.close
        if dockerfile_name:
            query["dockerfile"] = dockerfile_name
    else:
        raise CLIError(f'unable to prepare context: path "{source}" not found', 1)
    terminal = os.isatty(sys.stdout.fileno()) and not opts["quiet"]
    image_id = ""
    try:
        resp = ctx.client.request(
            "POST", "/build", query, data=data, headers={"Content-Type": "application/x-tar"}
        )
        display = build_context.StepDisplay(sys.stdout, terminal, quiet=opts["quiet"])
        try:
            for msg in resp.iter_json():
                if not isinstance(msg, dict):
                    continue
                if msg.get("error") or msg.get("errorDetail"):
                    display.close()
                    detail = msg.get("errorDetail") or {}
                    code = detail.get("code") if isinstance(detail.get("code"), int) else 0
                    raise CLIError(str(msg.get("error") or detail.get("message")), code or 1)
                aux = msg.get("aux")
                if isinstance(aux, dict) and aux.get("ID"):
                    image_id = str(aux["ID"])
                    continue
                text = msg.get("stream")
                if isinstance(text, str):
                    display.write(text)
                elif msg.get("status"):
                    display.write(f"{msg['status']}{': ' + msg['id'] if msg.get('id') else ''}\n")
        finally:
            display.close()
    finally:
        if closer is not None:
            closer()
    if opts["quiet"] and image_id:
        ctx.out(image_id + "\n")
    if opts["iidfile"] and image_id:
        with open(opts["iidfile"], "w") as f:
            f.write(image_id)
    return 0
