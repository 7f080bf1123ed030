"""`dockyard save`: write one or more images to a tar archive (docker save format)."""

from __future__ import annotations

import os
import sys

from dockyard.cli.context import CLIError, Context
from dockyard.cli.flags import Command, Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from collections.abc import Iterable
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
    check_output_dir(output, "failed to save image")
    resp = ctx.client.request("GET", "/images/get", {"names": list(args)})
    write_stream(resp.iter_chunks(), output)
    return 0


def check_output_dir(output: str, what: str) -> None:
    """docker's check before any request: the directory of `-o` must exist."""
    if not output:
        return
    directory = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(directory):
        raise CLIError(f'{what}: invalid output path: directory "{directory}" does not exist', 1)


def write_stream(chunks: Iterable[bytes], output: str) -> None:
    """Write to stdout, or to `output` through a temporary file next to it renamed
    once complete (as docker), so a failure never leaves a truncated archive."""
    if not output:
        out_fd = sys.stdout.fileno()
        for chunk in chunks:
            _write_all(out_fd, chunk)
        return
    directory = os.path.dirname(os.path.abspath(output))
    tmp = os.path.join(directory, f".{os.path.basename(output)}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        try:
            for chunk in chunks:
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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
