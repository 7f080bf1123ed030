"""`dockyard volume inspect`: the JSON of volumes."""

from __future__ import annotations

import json

from dockyard.cli.context import CLIError, Context
from dockyard.cli.flags import JSON_FORMAT_HELP, Command, Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="volume inspect",
    usage="[OPTIONS] VOLUME [VOLUME...]",
    description="Display detailed information on one or more volumes",
    options=[Opt("format", "f", kind="string", help=JSON_FORMAT_HELP)],
    min_args=1,
)


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.client.errors import APIError

    found: list[Any] = []
    errors: list[str] = []
    for name in args:
        try:
            found.append(ctx.client.get(f"/volumes/{name}"))
        except APIError as exc:
            if exc.status != 404:
                raise
            errors.append(f"Error response from daemon: {exc.message}")
    fmt = opts["format"] or ""
    if fmt and fmt != "json":
        from dockyard.cli import gotemplate

        try:
            text = fmt.replace("\\t", "\t").replace("\\n", "\n")
            ctx.out("".join(gotemplate.render(text, obj) + "\n" for obj in found))
        except gotemplate.TemplateError as exc:
            raise CLIError(f"template parsing error: {exc}", 1) from None
    else:
        ctx.out(json.dumps(found, indent=4, ensure_ascii=False) + "\n")
    if errors:
        ctx.err("".join(e + "\n" for e in errors))
        return 1
    return 0
