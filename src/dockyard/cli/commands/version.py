"""`dockyard version`: client and server versions, laid out like docker's."""

from __future__ import annotations

import os
import sys

from dockyard import API_VERSION, __version__
from dockyard.cli.context import CLIError, Context
from dockyard.cli.flags import JSON_FORMAT_HELP, Command, Opt

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="version",
    usage="[OPTIONS]",
    description="Show the Dockyard version information",
    options=[Opt("format", "f", kind="string", help=JSON_FORMAT_HELP)],
    max_args=0,
)  # fmt: skip

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}


def _line(label: str, value: Any, indent: int) -> str:
    head = " " * indent + label + ":"
    return head.ljust(20) + f"{value}\n"


def client_info(ctx: Context) -> dict[str, Any]:
    return {
        "Platform": {"Name": ""},
        "Version": __version__,
        "ApiVersion": ctx._client.version if ctx._client else API_VERSION,
        "DefaultAPIVersion": API_VERSION,
        "GoVersion": "python" + ".".join(str(n) for n in sys.version_info[:3]),
        "GitCommit": "",
        "BuildTime": "",
        "Os": "linux",
        "Arch": _ARCH.get(os.uname().machine, os.uname().machine),
        "Context": "default",
    }


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.client.errors import APIError, DaemonUnreachable

    server: dict[str, Any] | None = None
    error: str | None = None
    try:
        server = ctx.client.get("/version")
    except DaemonUnreachable as exc:
        error = exc.message
    except APIError as exc:
        error = f"Error response from daemon: {exc.message}"
    client = client_info(ctx)
    if opts["format"]:
        from dockyard.cli import gotemplate

        fmt = opts["format"].replace("\\t", "\t").replace("\\n", "\n")
        try:
            ctx.out(gotemplate.render(fmt, {"Client": client, "Server": server}) + "\n")
        except gotemplate.TemplateError as exc:
            raise CLIError(f"template parsing error: {exc}", 1) from None
    else:
        ctx.out(render_text(client, server))
    if error:
        raise CLIError(error, 1)
    return 0


def render_text(client: dict[str, Any], server: dict[str, Any] | None) -> str:
    api = client["ApiVersion"]
    if api != client["DefaultAPIVersion"]:
        api = f"{api} (downgraded from {client['DefaultAPIVersion']})"
    out = "Client:\n"
    out += _line("Version", client["Version"], 1)
    out += _line("API version", api, 1)
    out += _line("Python version", client["GoVersion"].removeprefix("python"), 1)
    out += _line("OS/Arch", f"{client['Os']}/{client['Arch']}", 1)
    out += _line("Context", client["Context"], 1)
    if server is None:
        return out
    name = (server.get("Platform") or {}).get("Name") or ""
    out += f"\nServer:{' ' + name if name else ''}\n"
    components = server.get("Components") or [
        {"Name": "Engine", "Version": server.get("Version", ""), "Details": server}
    ]
    for comp in components:
        details = comp.get("Details") or {}
        out += f" {comp.get('Name', '')}:\n"
        out += _line("Version", comp.get("Version", ""), 2)
        if comp.get("Name") == "Engine":
            api_line = server.get("ApiVersion") or details.get("ApiVersion", "")
            minimum = server.get("MinAPIVersion") or details.get("MinAPIVersion")
            if minimum:
                api_line = f"{api_line} (minimum version {minimum})"
            out += _line("API version", api_line, 2)
            lang = server.get("GoVersion") or details.get("GoVersion")
            if lang:
                out += _line(
                    "Go version" if lang.startswith("go") else "Python version",
                    lang.removeprefix("python"),
                    2,
                )
            if server.get("GitCommit"):
                out += _line("Git commit", server["GitCommit"], 2)
            if server.get("BuildTime"):
                out += _line("Built", server["BuildTime"], 2)
            out += _line("OS/Arch", f"{server.get('Os', '')}/{server.get('Arch', '')}", 2)
            out += _line("Experimental", str(bool(server.get("Experimental"))).lower(), 2)
        else:
            for key, value in details.items():
                out += _line(key, value, 2)
    return out
