"""`dockyard save`: write one or more images to a tar archive (docker save format)."""

from __future__ import annotations

import os
import sys

from dockyard.cli.context import CLIError, Context
from dockyard.cli.flags import Command, Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="save",
    usage="[OPTIONS] IMAGE [IMAGE...]",
    description="Save one or more images to a tar archive (streamed to STDOUT by default)",
    options=[
        Opt("output", "o", kind="string", help="Write to a file, instead of STDOUT"),
    ],
    aliases=["image save", "save"],
    min_args=1,
)


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    output = opts["output"]
    if not output and os.isatty(sys.stdout.fileno()):
        raise CLIError("Cowardly refusing to save to a terminal. Use the -o flag or redirect", 1)
    directory = ""
    if output:
        directory = os.path.dirname(os.path.abspath(output))
        if not os.path.isdir(directory):
            raise CLIError(
                f'failed to save image: invalid output path: directory "{directory}" does not exist',
                1,
            )
    resp = ctx.client.request("GET", "/images/get", {"names": list(args)})
    if not output:
        out_fd = sys.stdout.fileno()
        for chunk in resp.iter_chunks():
            _write_all(out_fd, chunk)
        return 0
    # As docker: a temporary file next to the target, renamed once complete,
    # so a failed save never leaves a truncated archive under the name.
    tmp = os.path.join(directory, f".{os.path.basename(output)}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        try:
            for chunk in resp.iter_chunks():
                _write_all(fd, chunk)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, 0o644 & ~_umask())
        os.rename(tmp, output)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return 0


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
