"""`dockyard info`: system-wide information, laid out like `docker info`."""

from __future__ import annotations

from dockyard import __version__
from dockyard.cli.context import CLIError, Context
from dockyard.cli.flags import JSON_FORMAT_HELP, Command, Opt
from dockyard.cli.formatting import bytes_size

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

COMMAND = Command(
    name="info",
    usage="[OPTIONS]",
    description="Display system-wide information",
    options=[Opt("format", "f", kind="string", help=JSON_FORMAT_HELP)],
    aliases=["system info", "info"],
    max_args=0,
)  # fmt: skip

FIELDS = [
    ("Server Version", "ServerVersion"),
    ("Storage Driver", "Driver"),
    ("Logging Driver", "LoggingDriver"),
    ("Cgroup Driver", "CgroupDriver"),
    ("Cgroup Version", "CgroupVersion"),
    ("Default Runtime", "DefaultRuntime"),
    ("Init Binary", "InitBinary"),
    ("Kernel Version", "KernelVersion"),
    ("Operating System", "OperatingSystem"),
    ("OSType", "OSType"),
    ("Architecture", "Architecture"),
    ("CPUs", "NCPU"),
]


def execute(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from dockyard.client.errors import APIError, DaemonUnreachable

    info: dict[str, Any] | None = None
    error: str | None = None
    try:
        info = ctx.client.get("/info")
    except DaemonUnreachable as exc:
        error = exc.message
    except APIError as exc:
        error = f"Error response from daemon: {exc.message}"
    if opts["format"]:
        from dockyard.cli import gotemplate

        fmt = opts["format"].replace("\\t", "\t").replace("\\n", "\n")
        if error:
            raise CLIError(error, 1)
        try:
            ctx.out(gotemplate.render(fmt, info) + "\n")
        except gotemplate.TemplateError as exc:
            raise CLIError(f"template parsing error: {exc}", 1) from None
        return 0
    out = "Client:\n"
    out += (
        f" Version:    {__version__}\n Context:    default\n Debug Mode: {str(ctx.debug).lower()}\n"
    )
    out += "\nServer:\n"
    if info is None:
        ctx.out(out)
        raise CLIError(f"ERROR: {error}\nerrors pretty printing info", 1)
    out += render_server(info)
    ctx.out(out)
    return 0


def render_server(info: dict[str, Any]) -> str:
    lines = [
        f" Containers: {info.get('Containers', 0)}",
        f"  Running: {info.get('ContainersRunning', 0)}",
        f"  Paused: {info.get('ContainersPaused', 0)}",
        f"  Stopped: {info.get('ContainersStopped', 0)}",
        f" Images: {info.get('Images', 0)}",
    ]
    for label, key in FIELDS:
        if info.get(key) not in (None, ""):
            lines.append(f" {label}: {info[key]}")
    runtimes = info.get("Runtimes") or {}
    if runtimes:
        lines.append(f" Runtimes: {' '.join(sorted(runtimes))}")
    if info.get("MemTotal"):
        lines.append(f" Total Memory: {bytes_size(float(info['MemTotal']))}")
    for label, key in (("Name", "Name"), ("ID", "ID"), ("Docker Root Dir", "DockerRootDir")):
        if info.get(key):
            lines.append(f" {label}: {info[key]}")
    lines.append(f" Debug Mode: {str(bool(info.get('Debug'))).lower()}")
    lines.append(f" Experimental: {str(bool(info.get('ExperimentalBuild'))).lower()}")
    labels = info.get("Labels") or []
    if labels:
        lines.append(" Labels:")
        lines += [f"  {label}" for label in labels]
    lines.append(f" Live Restore Enabled: {str(bool(info.get('LiveRestoreEnabled'))).lower()}")
    for warning in info.get("Warnings") or []:
        lines.append(warning)
    return "\n".join(lines) + "\n"
