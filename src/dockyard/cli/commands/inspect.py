"""`dockyard inspect`: low-level JSON of containers and images (docker's 4-space array)."""

from __future__ import annotations

import json

from dockyard.cli.context import CLIError, Context
from dockyard.cli.flags import JSON_FORMAT_HELP, Command, Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="inspect",
    usage="[OPTIONS] NAME|ID [NAME|ID...]",
    description="Return low-level information on Dockyard objects",
    options=[
        Opt("format", "f", kind="string", help=JSON_FORMAT_HELP),
        Opt("size", "s", help="Display total file sizes if the type is container"),
        Opt("type", kind="string", help="Only inspect objects of the given type"),
    ],
    min_args=1,
)  # fmt: skip

KINDS = ("container", "image", "network")


def _fetch(ctx: Context, kind: str, name: str, size: bool) -> Any:
    if kind == "container":
        return ctx.client.get(f"/containers/{name}/json", {"size": True if size else None})
    if kind == "network":
        return ctx.client.get(f"/networks/{name}")
    return ctx.client.get(f"/images/{name}/json")


def lookup(ctx: Context, name: str, kind: str, size: bool) -> Any:
    """One object, or CLIError with docker's 'No such ...' wording."""
    from dockyard.client.errors import APIError

    for k in [kind] if kind else KINDS:
        try:
            return _fetch(ctx, k, name, size)
        except APIError as exc:
            if exc.status != 404:
                raise
            if kind:
                raise CLIError(f"Error: No such {kind}: {name}", 1) from None
    raise CLIError(f"Error: No such object: {name}", 1)


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    kind = (opts["type"] or "").lower()
    if kind and kind not in KINDS:
        raise CLIError(f'"{kind}" is not a valid value for --type', 1)
    found: list[Any] = []
    errors: list[str] = []
    for name in args:
        try:
            found.append(lookup(ctx, name, kind, bool(opts["size"])))
        except CLIError as exc:
            errors.append(exc.message)
    fmt = opts["format"] or ""
    if fmt and fmt != "json":
        from dockyard.cli import gotemplate

        try:
            ctx.out("".join(gotemplate.render(_unescape(fmt), obj) + "\n" for obj in found))
        except gotemplate.TemplateError as exc:
            raise CLIError(f"template parsing error: {exc}", 1) from None
    else:
        ctx.out(json.dumps(found, indent=4, ensure_ascii=False) + "\n")
    if errors:
        ctx.err("".join(e + "\n" for e in errors))
        return 1
    return 0


def _unescape(fmt: str) -> str:
    return fmt.replace("\\t", "\t").replace("\\n", "\n")
