"""dockyard-runtime's command line, parsed as runc parses it, without argparse.

argparse and gettext cost ~10 ms to import and building runc's 15 subcommands
~10 ms more: a third of a `dockyard-runtime run` whose budget is runc's
(~40 ms whole). This table-driven parser takes what runc takes: global
flags, then a command, its flags (`--name value`, `--name=value`, short
aliases) mixed with its positionals, `--` ending the flags; for `exec` and
`ps` everything after the container id is the command (or ps's arguments).
Unknown flags and missing or extra arguments are refused by name.
"""

from __future__ import annotations

DEFAULT_ROOT = "/run/dockyard-runtime"

# A flag: (names, dest, kind, default); kind is "bool", "str", "int", "append"
# or a tuple of the allowed strings.
Flag = tuple[tuple[str, ...], str, object, object]

GLOBAL_FLAGS: list[Flag] = [
    (("--root",), "root", "str", DEFAULT_ROOT),
    (("--log",), "log", "str", ""),
    (("--log-format",), "log_format", ("text", "json"), "text"),
    (("--debug",), "debug", "bool", False),
    (("--systemd-cgroup",), "systemd_cgroup", "bool", False),
    (("--criu",), "criu", "str", None),
    (("--rootless",), "rootless", "str", None),
    (("-v", "--version"), "version", "bool", False),
    (("-h", "--help"), "help", "bool", False),
]

_CREATE: list[Flag] = [
    (("-b", "--bundle"), "bundle", "str", "."),
    (("--pid-file",), "pid_file", "str", ""),
    (("--console-socket",), "console_socket", "str", ""),
    (("--no-pivot",), "no_pivot", "bool", False),
    (("--no-new-keyring",), "no_new_keyring", "bool", False),
    (("--preserve-fds",), "preserve_fds", "int", 0),
]
_FORMAT: Flag = (("-f", "--format"), "format", ("table", "json"), "table")

# command: (flags, positionals, optional positionals with defaults, rest-of-line dest)
COMMANDS: dict[str, tuple[list[Flag], list[str], list[tuple[str, str]], str]] = {
    "create": (_CREATE, ["id"], [], ""),
    "run": (
        [
            *_CREATE,
            (("-d", "--detach"), "detach", "bool", False),
            (("--keep",), "keep", "bool", False),
        ],
        ["id"],
        [],
        "",
    ),
    "start": ([], ["id"], [], ""),
    "state": ([], ["id"], [], ""),
    "pause": ([], ["id"], [], ""),
    "resume": ([], ["id"], [], ""),
    "kill": ([(("-a", "--all"), "all", "bool", False)], ["id"], [("signal", "SIGTERM")], ""),
    "delete": ([(("-f", "--force"), "force", "bool", False)], ["id"], [], ""),
    "exec": (
        [
            (("-p", "--process"), "process", "str", ""),
            (("-t", "--tty"), "tty", "bool", False),
            (("-d", "--detach"), "detach", "bool", False),
            (("--pid-file",), "pid_file", "str", ""),
            (("--console-socket",), "console_socket", "str", ""),
            (("--cwd",), "cwd", "str", ""),
            (("-e", "--env"), "env", "append", None),
            (("-u", "--user"), "user", "str", ""),
            (("--no-new-privs",), "no_new_privs", "bool", False),
            (("--preserve-fds",), "preserve_fds", "int", 0),
        ],
        ["id"],
        [],
        "args",
    ),
    "ps": ([_FORMAT], ["id"], [], "ps_args"),
    "list": ([_FORMAT, (("-q", "--quiet"), "quiet", "bool", False)], [], [], ""),
    "update": (
        [
            (("-r", "--resources"), "resources", "str", ""),
            (("--memory",), "memory", "str", None),
            (("--memory-reservation",), "memory_reservation", "str", None),
            (("--memory-swap",), "memory_swap", "str", None),
            (("--cpu-share",), "cpu_share", "int", None),
            (("--cpu-quota",), "cpu_quota", "int", None),
            (("--cpu-period",), "cpu_period", "int", None),
            (("--pids-limit",), "pids_limit", "int", None),
        ],
        ["id"],
        [],
        "",
    ),
    "features": ([], [], [], ""),
    "spec": (
        [
            (("-b", "--bundle"), "bundle", "str", ""),
            (("--rootless",), "spec_rootless", "bool", False),
        ],
        [],
        [],
        "",
    ),
}


class UsageError(Exception):
    pass


class Options:
    """The parsed command line, one attribute per flag: types.SimpleNamespace's job
    (without importing `types`: one module more for every container's `run`)."""

    def __init__(self, **values: object) -> None:
        self.__dict__.update(values)

    def __repr__(self) -> str:
        return f"Options({', '.join(f'{k}={v!r}' for k, v in self.__dict__.items())})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Options) and self.__dict__ == other.__dict__


def _defaults(ns: Options, flags: list[Flag]) -> dict[str, Flag]:
    by_name: dict[str, Flag] = {}
    for flag in flags:
        names, dest, kind, default = flag
        setattr(ns, dest, [] if kind == "append" else default)
        for name in names:
            by_name[name] = flag
    return by_name


def _take_flag(ns: Options, by_name: dict[str, Flag], argv: list[str], i: int, where: str) -> int:
    """Apply the flag at argv[i]; the index after it (and its value)."""
    arg = argv[i]
    name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
    flag = by_name.get(name)
    if flag is None:
        raise UsageError(f"{where}: flag provided but not defined: {name}")
    _names, dest, kind, _default = flag
    if kind == "bool":
        if eq:
            if value not in ("true", "false"):
                raise UsageError(f"{where}: {name}: invalid boolean value {value!r}")
            setattr(ns, dest, value == "true")
        else:
            setattr(ns, dest, True)
        return i + 1
    if not eq:
        if i + 1 >= len(argv):
            raise UsageError(f"{where}: flag needs an argument: {name}")
        value = argv[i + 1]
        i += 1
    if kind == "int":
        try:
            setattr(ns, dest, int(value))
        except ValueError:
            raise UsageError(f"{where}: {name}: invalid value {value!r} (an integer)") from None
    elif kind == "append":
        getattr(ns, dest).append(value)
    elif isinstance(kind, tuple) and value not in kind:
        raise UsageError(f"{where}: {name}: invalid choice {value!r} (one of {', '.join(kind)})")
    else:
        setattr(ns, dest, value)
    return i + 1


def parse_args(argv: list[str]) -> Options:
    ns = Options(command=None)
    by_name = _defaults(ns, GLOBAL_FLAGS)
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-":
        i = _take_flag(ns, by_name, argv, i, "dockyard-runtime")
    if i == len(argv):
        return ns
    command = argv[i]
    spec = COMMANDS.get(command)
    if spec is None:
        raise UsageError(f"no such command {command!r} (one of {', '.join(COMMANDS)})")
    ns.command = command
    flags, required, optional, rest = spec
    by_name = _defaults(ns, flags)
    for dest, default in optional:
        setattr(ns, dest, default)
    if rest:
        setattr(ns, rest, [])
    positionals: list[str] = []
    i += 1
    flags_done = False
    while i < len(argv):
        arg = argv[i]
        if rest and len(positionals) == len(required):
            getattr(ns, rest).extend(argv[i:])  # the process's own command line
            break
        if not flags_done and arg == "--":
            flags_done = True
            i += 1
        elif not flags_done and arg.startswith("-") and arg != "-":
            if arg in ("-h", "--help"):
                ns.help = True
                i += 1
            else:
                i = _take_flag(ns, by_name, argv, i, command)
        else:
            positionals.append(arg)
            i += 1
    if ns.help:
        return ns
    if len(positionals) < len(required):
        raise UsageError(f"{command}: requires {' '.join(required[len(positionals) :])}")
    if len(positionals) > len(required) + len(optional):
        raise UsageError(
            f"{command}: unexpected argument(s): {' '.join(positionals[len(required) + len(optional) :])}"
        )
    for dest, value in zip([*required, *(d for d, _ in optional)], positionals, strict=False):
        setattr(ns, dest, value)
    return ns


def usage(command: str | None = None) -> str:
    """--help: the command's (or every command's) flags."""
    if command in COMMANDS:
        flags, required, optional, rest = COMMANDS[command]
        args = " ".join(
            [*required, *(f"[{d}]" for d, _ in optional), *(["[ARG...]"] if rest else [])]
        )
        lines = [f"usage: dockyard-runtime {command} [flags] {args}".rstrip()]
    else:
        flags = GLOBAL_FLAGS
        lines = [
            "usage: dockyard-runtime [global flags] COMMAND ...",
            "an OCI runtime with runc's command line",
            "commands: " + ", ".join(COMMANDS),
        ]
    for names, _dest, kind, default in flags:
        value = (
            ""
            if kind == "bool"
            else f" {'|'.join(kind) if isinstance(kind, tuple) else kind.upper()}"
        )  # type: ignore[union-attr]
        note = f" (default {default})" if default not in (None, "", False, 0) else ""
        lines.append(f"  {', '.join(names)}{value}{note}")
    return "\n".join(lines)
