"""`dockyard image bootstrap`: make a base image from this machine's Debian packages.

    dockyard image bootstrap busybox[:TAG]
    dockyard image bootstrap debian[:SUITE] [--variant V] [--include PKG,...] [--mirror URL]

No registry is needed: busybox comes from Debian's busybox-static, debian from
mmdebstrap (or debootstrap) against the Debian mirror apt uses. The rootfs tar
is built here and imported through the API (POST /images/create?fromSrc=-).
When the image already holds exactly that layer and config, nothing is
imported again. Prints the image id; progress goes to stderr.
"""

from __future__ import annotations

from dockyard.cli.context import CLIError, Context
from dockyard.cli.flags import Command, Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import IO, Any

COMMAND = Command(
    name="bootstrap",
    usage="[OPTIONS] busybox[:TAG]|debian[:SUITE]",
    description="Make a base image from this machine's Debian packages, without a registry",
    options=[
        Opt("include", kind="list", metavar="list", help="(debian) Extra packages to install"),
        Opt("mirror", kind="string", help="(debian) Debian mirror URL (default: the one apt uses)"),
        Opt("variant", kind="string", help='(debian) mmdebstrap variant (default "minbase")'),
    ],
    aliases=["image bootstrap"],
    min_args=1,
    max_args=1,
)  # fmt: skip

KINDS = ("busybox", "debian")


def _split(arg: str) -> tuple[str, str]:
    name, _, tag = arg.partition(":")
    if name not in KINDS:
        raise CLIError(f"unknown base image {name!r} (known: {', '.join(KINDS)})", 1)
    return name, tag


def _up_to_date(ctx: Context, ref: str, diff_id: str, changes: list[str]) -> str | None:
    """The id of `ref` when it is exactly this layer with this config already."""
    from dockyard.client.errors import APIError

    try:
        image = ctx.client.get(f"/images/{ref}/json")
    except APIError:
        return None
    if not isinstance(image, dict):
        return None
    layers = (image.get("RootFS") or {}).get("Layers") or []
    cmd = (image.get("Config") or {}).get("Cmd")
    want_cmd = [c for c in changes if c.startswith("CMD ")][0][4:]
    import json

    if layers == [diff_id] and cmd == json.loads(want_cmd):
        return str(image.get("Id") or "")
    return None


def _import(ctx: Context, data: IO[bytes], ref: str, changes: list[str], message: str) -> str:
    from dockyard.cli.commands.images import split_ref

    repo, tag = split_ref(ref)
    query = {"fromSrc": "-", "repo": repo, "tag": tag, "changes": changes, "message": message}
    resp = ctx.client.request(
        "POST", "/images/create", query, data=data, headers={"Content-Type": "application/x-tar"}
    )
    image_id = ""
    for msg in resp.iter_json():
        if not isinstance(msg, dict):
            continue
        if msg.get("error") or msg.get("errorDetail"):
            detail = msg.get("errorDetail") or {}
            raise CLIError(str(msg.get("error") or detail.get("message")), 1)
        image_id = str(msg.get("status") or image_id)
    return image_id


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    import hashlib
    import io
    import tempfile
    from pathlib import Path

    from dockyard.cli import base_images as bi

    kind, tag = _split(args[0])
    try:
        if kind == "busybox":
            for flag in ("include", "mirror", "variant"):
                if opts[flag]:
                    raise CLIError(f"--{flag} applies to debian images only", 1)
            ref = f"busybox:{tag or 'latest'}"
            layer = bi.busybox_rootfs(bi.ensure_busybox())
            diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
            bi.log(f"{ref}: layer {diff_id} ({len(layer)} bytes)")
            existing = _up_to_date(ctx, ref, diff_id, bi.BUSYBOX_CHANGES)
            if existing:
                bi.log(f"{ref} is up to date")
                ctx.out(existing + "\n")
                return 0
            message = "busybox-static from this machine's Debian packages"
            image_id = _import(ctx, io.BytesIO(layer), ref, bi.BUSYBOX_CHANGES, message)
        else:
            suite = tag or bi.DEFAULT_SUITE
            ref = f"debian:{suite}"
            mirror = opts["mirror"] or bi.configured_mirror()
            include = [p for item in opts["include"] for p in item.split(",") if p]
            with tempfile.TemporaryDirectory(prefix="dockyard-bootstrap-") as tmp:
                out = Path(tmp) / "rootfs.tar"
                bi.debian_rootfs(
                    suite, out, mirror=mirror, variant=opts["variant"] or "minbase", include=include
                )
                bi.log(f"{ref}: importing {out.stat().st_size} bytes")
                message = f"debian {suite} from {mirror}"
                with out.open("rb") as data:
                    image_id = _import(ctx, data, ref, bi.DEBIAN_CHANGES, message)
    except bi.BootstrapError as e:
        raise CLIError(f"bootstrap: {e}", 1) from None
    bi.log(f"made {ref}")
    ctx.out(image_id + "\n")
    return 0
