"""Docker-style (spf13/pflag) option parsing.

What docker users rely on: combined short flags (`-it`), values attached
(`-p80:80`, `--name=x`, `-e=A=B`) or separate (`--name x`), repeatable list
flags, `--` to end options, and for run/create/exec parsing stops at the first
positional so that the container's own arguments are left alone.
"""

from __future__ import annotations

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

BOOL_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
BOOL_FALSE = {"0", "f", "F", "false", "FALSE", "False"}


class FlagError(Exception):
    """Bad command line; printed as one line plus `See '... --help'.`, exit 125."""


class UsageError(Exception):
    """Wrong number of arguments; docker exits 1 for these."""


class HelpRequested(Exception):
    pass


# docker's --format help, line breaks included
TABLE_FORMAT_HELP = (
    "Format output using a custom template:\n"
    "'table':            Print output in table format with column headers (default)\n"
    "'table TEMPLATE':   Print output in table format using the given Go template\n"
    "'json':             Print in JSON format\n"
    "'TEMPLATE':         Print output using the given Go template.\n"
    "Refer to https://docs.docker.com/go/formatting/ for more information about "
    "formatting output with templates"
)
JSON_FORMAT_HELP = (
    "Format output using a custom template:\n"
    "'json':             Print in JSON format\n"
    "'TEMPLATE':         Print output using the given Go template.\n"
    "Refer to https://docs.docker.com/go/formatting/ for more information about "
    "formatting output with templates"
)


class Opt:
    """One option: `--long`, optional `-s` shorthand, its kind and help text."""

    __slots__ = ("long", "short", "kind", "help", "default", "metavar", "hidden")

    def __init__(
        self,
        long: str,
        short: str = "",
        kind: str = "bool",  # bool | string | int | list
        help: str = "",
        default: Any = None,
        metavar: str = "",  # type word shown in help: string, list, int, bytes...
        hidden: bool = False,
    ) -> None:
        self.long = long
        self.short = short
        self.kind = kind
        self.help = help
        self.default = default
        self.metavar = metavar
        self.hidden = hidden

    @property
    def dest(self) -> str:
        return self.long.replace("-", "_")

    def initial(self) -> Any:
        if self.kind == "list":
            return list(self.default or [])
        if self.kind == "bool":
            return bool(self.default)
        return self.default


class Command:
    """A verb's usage line, description, options and argument rules."""

    def __init__(
        self,
        name: str,  # "run", "container ls" ...
        usage: str,  # "[OPTIONS] IMAGE [COMMAND] [ARG...]"
        description: str,
        options: list[Opt] | None = None,
        aliases: list[str] | None = None,
        min_args: int = 0,
        max_args: int | None = None,
        interspersed: bool = True,  # False: stop at the first positional (run, exec)
    ) -> None:
        self.name = name
        self.usage = usage
        self.description = description
        self.options = options or []
        self.aliases = aliases or []
        self.min_args = min_args
        self.max_args = max_args
        self.interspersed = interspersed

    def renamed(self, name: str) -> Command:
        """The same verb reached through an alias (`container ls` for `ps`)."""
        return Command(
            name,
            self.usage,
            self.description,
            self.options,
            self.aliases,
            self.min_args,
            self.max_args,
            self.interspersed,
        )

    def help_text(self, prog: str = "dockyard") -> str:
        lines = [f"Usage:  {prog} {self.name} {self.usage}".rstrip(), "", self.description]
        if self.aliases:
            lines += ["", "Aliases:", "  " + ", ".join(f"{prog} {a}" for a in self.aliases)]
        opts = [o for o in self.options if not o.hidden]
        if opts:
            lines += ["", "Options:"]
            heads = []
            for o in opts:
                head = f"-{o.short}, --{o.long}" if o.short else f"    --{o.long}"
                word = o.metavar or ("" if o.kind == "bool" else o.kind)
                heads.append(f"  {head} {word}".rstrip())
            width = max(len(h) for h in heads) + 3
            for head, o in zip(heads, opts, strict=True):
                text = o.help
                if o.kind in ("string", "int") and o.default not in (None, "", 0):
                    shown = f'"{o.default}"' if o.kind == "string" else str(o.default)
                    text += f" (default {shown})"
                elif o.kind == "bool" and o.default:
                    text += " (default true)"
                wrapped = wrap_usage(text, width)
                lines.append(head.ljust(width) + wrapped[0])
                lines += [" " * width + w for w in wrapped[1:]]
        return "\n".join(lines) + "\n"


def _wrap_n(limit: int, slop: int, text: str) -> tuple[str, str]:
    if limit + slop > len(text):
        return text, ""
    cut = max(text.rfind(c, 0, limit) for c in " \t\n")
    if cut <= 0:
        return text, ""
    newline = text.rfind("\n", 0, limit)
    if 0 < newline < cut:
        return text[:newline], text[newline + 1 :]
    return text[:cut], text[cut + 1 :]


def wrap_usage(text: str, indent: int, width: int = 79) -> list[str]:
    """pflag's FlagUsagesWrapped layout (docker renders help 79 columns wide)."""
    wrap = width - indent
    if wrap < 24:
        return text.split("\n")
    slop = 5
    lines: list[str] = []
    rest = text
    while True:
        line, rest = _wrap_n(wrap - slop, slop, rest)
        lines += line.split("\n")
        if not rest:
            return lines


def _convert(opt: Opt, value: str, shown: str) -> Any:
    if opt.kind == "int":
        try:
            return int(value, 10)
        except ValueError:
            raise FlagError(
                f'invalid argument "{value}" for "{shown}" flag: '
                f'strconv.ParseInt: parsing "{value}": invalid syntax'
            ) from None
    return value


def _flag_name(opt: Opt) -> str:
    return f"-{opt.short}, --{opt.long}" if opt.short else f"--{opt.long}"


def parse(cmd: Command, argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Return (options by dest, positional args). Raises FlagError / HelpRequested."""
    longs = {o.long: o for o in cmd.options}
    shorts = {o.short: o for o in cmd.options if o.short}
    values: dict[str, Any] = {o.dest: o.initial() for o in cmd.options}
    seen: set[str] = set()
    args: list[str] = []

    def store(opt: Opt, value: Any) -> None:
        if opt.kind == "list":
            values[opt.dest].append(value)
        else:
            values[opt.dest] = value
        seen.add(opt.dest)

    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            args.extend(argv[i:])
            break
        if arg.startswith("--") and len(arg) > 2:
            name, has_eq, inline = arg[2:].partition("=")
            opt = longs.get(name)
            if opt is None:
                if name == "help":
                    raise HelpRequested()
                raise FlagError(f"unknown flag: --{name}")
            if opt.kind == "bool":
                if has_eq:
                    if inline in BOOL_TRUE:
                        store(opt, True)
                    elif inline in BOOL_FALSE:
                        store(opt, False)
                    else:
                        raise FlagError(
                            f'invalid argument "{inline}" for "{_flag_name(opt)}" flag: '
                            f'strconv.ParseBool: parsing "{inline}": invalid syntax'
                        )
                else:
                    store(opt, True)
                continue
            if has_eq:
                value = inline
            elif i < len(argv):
                value = argv[i]
                i += 1
            else:
                raise FlagError(f"flag needs an argument: --{name}")
            store(opt, _convert(opt, value, _flag_name(opt)))
            continue
        if arg.startswith("-") and len(arg) > 1:
            j = 1
            while j < len(arg):
                ch = arg[j]
                j += 1
                opt = shorts.get(ch)
                if opt is None:
                    if ch == "h":
                        raise HelpRequested()
                    raise FlagError(f"unknown shorthand flag: '{ch}' in {arg}")
                if opt.kind == "bool":
                    if j < len(arg) and arg[j] == "=":
                        inline = arg[j + 1 :]
                        store(opt, inline in BOOL_TRUE)
                        if inline not in BOOL_TRUE | BOOL_FALSE:
                            raise FlagError(
                                f'invalid argument "{inline}" for "{_flag_name(opt)}" flag: '
                                f'strconv.ParseBool: parsing "{inline}": invalid syntax'
                            )
                        break
                    store(opt, True)
                    continue
                if j < len(arg):
                    value = arg[j:]
                    if value.startswith("="):  # pflag strips one '=' after a shorthand
                        value = value[1:]
                elif i < len(argv):
                    value = argv[i]
                    i += 1
                else:
                    raise FlagError(f"flag needs an argument: '{ch}' in -{ch}")
                store(opt, _convert(opt, value, _flag_name(opt)))
                break
            continue
        # a positional (including a lone "-")
        args.append(arg)
        if not cmd.interspersed:
            args.extend(argv[i:])
            break
    values["_set"] = seen
    return values, args


def check_args(cmd: Command, args: list[str]) -> None:
    """Docker's argument-count messages (exit 1, unlike flag errors)."""
    n = len(args)
    if cmd.min_args and n < cmd.min_args:
        need = "at least 1 argument" if cmd.min_args == 1 else f"at least {cmd.min_args} arguments"
        if cmd.max_args == cmd.min_args:
            need = f"exactly {cmd.min_args} argument" + ("s" if cmd.min_args > 1 else "")
        raise UsageError(f"'dockyard {cmd.name}' requires {need}")
    if cmd.max_args is not None and n > cmd.max_args:
        if cmd.max_args == 0:
            raise UsageError(f"'dockyard {cmd.name}' accepts no arguments")
        if cmd.max_args == cmd.min_args:
            s = "s" if cmd.max_args > 1 else ""
            raise UsageError(f"'dockyard {cmd.name}' requires exactly {cmd.max_args} argument{s}")
        s = "s" if cmd.max_args > 1 else ""
        raise UsageError(f"'dockyard {cmd.name}' requires at most {cmd.max_args} argument{s}")
