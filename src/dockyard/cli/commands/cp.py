"""`dockyard cp`: copy files between a container and the local filesystem (docker's rules).

The daemon only stats, tars and untars paths inside the container; the rules of
where things land (into an existing directory, onto a new name, the content of
a directory with "/.") are the client's, as in the docker CLI.
"""

from __future__ import annotations

import io
import os
import sys

from dockyard.cli.context import CLIError, Context
from dockyard.cli.flags import Command, Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="cp",
    usage="[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tdockyard cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
    description="Copy files/folders between a container and the local filesystem",
    options=[
        Opt("archive", "a", help="Archive mode (copy all uid/gid information)"),
        Opt("follow-link", "L", help="Always follow symbol link in SRC_PATH"),
        Opt("quiet", "q", help="Suppress progress output during copy. Progress output is automatically suppressed if no terminal is attached"),
    ],
    aliases=["container cp", "cp"],
    min_args=2,
    max_args=2,
)  # fmt: skip

_GO_DIR = 1 << 31
_GO_SYMLINK = 1 << 27


def _split(arg: str) -> tuple[str, str]:
    """'c:/path' -> ('c', '/path'); a local path (absolute, ./, or without ':') -> ('', path)."""
    if arg.startswith(("/", ".")) or ":" not in arg:
        return "", arg
    container, _, path = arg.partition(":")
    return container, path


class _Stream(io.RawIOBase):
    """A response body as a file for tarfile's stream mode."""

    def __init__(self, resp: Any) -> None:
        self._resp = resp
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if not self._buf:
            self._buf = self._resp.read1(len(b))
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def _stat(ctx: Context, container: str, path: str) -> dict[str, Any] | None:
    import base64
    import json

    from dockyard.client.errors import APIError

    try:
        resp = ctx.client.request("HEAD", f"/containers/{container}/archive", {"path": path})
    except APIError as exc:
        if exc.status == 404:
            return None
        # a HEAD answer has no body: ask again with GET for the daemon's words
        ctx.client.request("GET", f"/containers/{container}/archive", {"path": path}).read()
        raise
    resp.read()
    raw = resp.headers.get("x-docker-container-path-stat", "")
    return json.loads(base64.b64decode(raw)) if raw else None


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    (src_c, src), (dst_c, dst) = _split(args[0]), _split(args[1])
    if src_c and dst_c:
        raise CLIError("copying between containers is not supported", 1)
    if not src_c and not dst_c:
        raise CLIError("must specify at least one container source", 1)
    if src_c:
        return _from_container(ctx, src_c, src, dst, bool(opts["follow_link"]))
    return _to_container(ctx, src, dst_c, dst, bool(opts["archive"]), bool(opts["follow_link"]))


def _from_container(ctx: Context, container: str, src: str, dst: str, follow: bool) -> int:
    import tarfile

    if not src:
        raise CLIError("filepath can not be empty", 1)
    st = _stat(ctx, container, src)
    if st is None:
        raise CLIError(
            f"Error response from daemon: Could not find the file {src} in container {container}", 1
        )
    if follow and st["mode"] & _GO_SYMLINK and st.get("linkTarget"):
        src = st["linkTarget"]
        st = _stat(ctx, container, src) or st
    resp = ctx.client.request("GET", f"/containers/{container}/archive", {"path": src})
    if dst == "-":
        out = sys.stdout.buffer
        while chunk := resp.read1():
            out.write(chunk)
        out.flush()
        return 0
    src_is_dir = bool(st["mode"] & _GO_DIR)
    contents = src.endswith("/.")
    base = os.path.basename(os.path.normpath(src)) if not contents else "."
    dst_exists = os.path.lexists(dst)
    if dst_exists and not os.path.isdir(dst) and src_is_dir:
        raise CLIError("cannot copy a directory to a file", 1)
    if not dst_exists and dst.endswith("/") and not src_is_dir:
        raise CLIError(f"no such directory: {dst}", 1)
    if not dst_exists and not os.path.isdir(os.path.dirname(os.path.abspath(dst))):
        raise CLIError(f"no such directory: {os.path.dirname(dst)}", 1)
    if dst_exists and os.path.isdir(dst):
        target_dir, rename = dst, (base if base != "." else None)
    else:
        target_dir, rename = (
            os.path.dirname(os.path.abspath(dst)),
            os.path.basename(dst.rstrip("/")),
        )
        if src_is_dir:
            os.makedirs(dst, exist_ok=True)
            target_dir, rename = dst, None
            base = base if not contents else "."
    with tarfile.open(fileobj=io.BufferedReader(_Stream(resp)), mode="r|") as tar:
        for member in tar:
            name = member.name
            parts = name.split("/", 1)
            if parts[0] == base or (base == "." and parts[0] == "."):
                rest = parts[1] if len(parts) > 1 else ""
            else:
                rest = name
            name = (rename + ("/" + rest if rest else "")) if rename is not None else rest or "."
            member.name = name
            if name == ".":
                continue
            tar.extract(member, target_dir, filter="tar")
    return 0


def _to_container(
    ctx: Context, src: str, container: str, dst: str, archive: bool, follow: bool
) -> int:
    import tarfile
    import tempfile

    query: dict[str, Any] = {"path": dst, "copyUIDGID": True if archive else None}
    if src == "-":
        ctx.client.request(
            "PUT", f"/containers/{container}/archive", query, data=sys.stdin.buffer
        ).read()
        return 0
    if not os.path.lexists(src):
        raise CLIError(f"lstat {src}: no such file or directory", 1)
    if follow:
        src = os.path.realpath(src)
    contents = src.endswith("/.")
    src_is_dir = os.path.isdir(src) and not os.path.islink(src)
    st = _stat(ctx, container, dst)
    if st is not None and st["mode"] & _GO_SYMLINK and st.get("linkTarget"):
        dst = st["linkTarget"]  # docker resolves a link at the destination first
        st = _stat(ctx, container, dst)
    if st is not None and st["mode"] & _GO_DIR:
        target_dir = dst
        name = "." if contents else os.path.basename(os.path.normpath(src))
    else:
        if st is not None and src_is_dir:
            raise CLIError("cannot copy a directory to a file", 1)
        if st is None and dst.endswith("/"):
            raise CLIError(
                f"Error response from daemon: Could not find the file {dst} in container {container}",
                1,
            )
        target_dir = os.path.dirname(dst.rstrip("/")) or "/"
        name = os.path.basename(dst.rstrip("/"))
    with tempfile.TemporaryFile() as spool:
        with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as tar:
            root = os.path.normpath(src)

            def add(info: tarfile.TarInfo) -> tarfile.TarInfo:
                info.uname = info.gname = ""  # numeric ids, as docker's tar
                return info

            if contents:
                for entry in sorted(os.listdir(root)):
                    tar.add(os.path.join(root, entry), arcname=entry, filter=add)
            else:
                tar.add(root, arcname=name, filter=add)
        spool.seek(0)
        ctx.client.request(
            "PUT", f"/containers/{container}/archive", {**query, "path": target_dir}, data=spool
        ).read()
    return 0
