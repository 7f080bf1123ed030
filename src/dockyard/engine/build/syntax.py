"""Reading a Dockerfile with moby's own parser (the `dockerfile` package wraps it).

The parser gives instructions with their lines, flags, JSON form and
heredocs; this module checks what the classic builder checks before any step
runs (known instructions, flags each takes, arguments) and reports every
problem as dockerd does: `dockerfile parse error line 7: unknown instruction: FOO`
(dockerd names no file; a problem of the whole file is `failed to parse
Dockerfile: ...`), a 400 before any step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import dockerfile

from dockyard.errors import InvalidParameter

# instruction -> the flags it takes
FLAGS: dict[str, set[str]] = {
    "FROM": {"platform"},
    "RUN": {"mount", "network", "security"},
    "CMD": set(),
    "ENTRYPOINT": set(),
    "ENV": set(),
    "ARG": set(),
    "LABEL": set(),
    "EXPOSE": set(),
    "VOLUME": set(),
    "USER": set(),
    "WORKDIR": set(),
    "COPY": {"from", "chown", "chmod", "link", "parents", "exclude"},
    "ADD": {"chown", "chmod", "link", "checksum", "keep-git-dir", "exclude"},
    "ONBUILD": set(),
    "STOPSIGNAL": set(),
    "HEALTHCHECK": {"interval", "timeout", "start-period", "start-interval", "retries"},
    "SHELL": set(),
    "MAINTAINER": set(),
}
# Flags of BuildKit the classic builder has no way to honour: refused by name.
_BUILDKIT_ONLY = {
    ("RUN", "mount"),
    ("RUN", "network"),
    ("RUN", "security"),
    ("COPY", "link"),
    ("ADD", "link"),
    ("COPY", "parents"),
    ("COPY", "exclude"),
    ("ADD", "exclude"),
    ("ADD", "checksum"),
    ("ADD", "keep-git-dir"),
}


@dataclass
class Heredoc:
    name: str
    content: str


@dataclass
class Instruction:
    cmd: str  # upper case
    original: str
    line: int
    flags: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    json: bool = False
    heredocs: list[Heredoc] = field(default_factory=list)
    sub: Instruction | None = None  # ONBUILD's trigger


class DockerfileError(InvalidParameter):
    pass


def at_line(line: int) -> str:
    """dockerd's prefix of an error in a Dockerfile's instruction."""
    return f"dockerfile parse error line {line}"


# instruction -> dockerd's rule on its argument count, checked at parse time
_AT_LEAST_ONE = {"ENV", "LABEL", "ARG", "EXPOSE", "VOLUME", "SHELL", "HEALTHCHECK"}
_EXACTLY_ONE = {"WORKDIR", "USER", "MAINTAINER", "STOPSIGNAL"}


def _escape_token(text: str) -> str:
    """The `# escape=` directive, if any, among the leading comment lines."""
    for line in text.splitlines():
        m = re.match(r"^\s*#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$", line)
        if m is None:
            break
        if m.group(1).lower() == "escape":
            return m.group(2)
    return "\\"


_EMPTY = "file with no instructions"


def parse(text: str) -> tuple[list[Instruction], str]:
    """Instructions and the escape character; DockerfileError naming the line."""
    try:
        commands = dockerfile.parse_string(text)
    except dockerfile.GoParseError as e:
        # dockerd's parser names no line for these; the line is found here
        line = _error_line(text, str(e)) if str(e) != _EMPTY else 0
        where = at_line(line) if line else "failed to parse Dockerfile"
        raise DockerfileError(f"{where}: {e}") from None
    if not commands:
        raise DockerfileError(f"failed to parse Dockerfile: {_EMPTY}")
    out = [_instruction(c, at_line(c.start_line)) for c in commands]
    return out, _escape_token(text)


def _error_line(text: str, message: str) -> int:
    lines = text.splitlines()
    if "heredoc" in message:
        for n in range(len(lines), 0, -1):
            if "<<" in lines[n - 1]:
                return n
    # The first prefix of the file that fails the same way holds the culprit.
    for n in range(1, len(lines) + 1):
        try:
            dockerfile.parse_string("\n".join(lines[:n]) + "\n")
        except dockerfile.GoParseError as e:
            if str(e) == message:
                return n
    return 0


def _instruction(c: dockerfile.Command, where: str) -> Instruction:
    cmd = c.cmd.upper()
    if cmd not in FLAGS:
        raise DockerfileError(f"{where}: unknown instruction: {c.cmd}")
    flags = _flags(cmd, c.flags, where)
    _check_args(cmd, c, flags, where)
    sub = None
    if cmd == "ONBUILD":
        trigger = (c.sub_cmd or "").upper()
        if not trigger:
            raise DockerfileError(f"{where}: ONBUILD requires at least one argument")
        if trigger == "ONBUILD":
            raise DockerfileError(f"{where}: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if trigger in ("FROM", "MAINTAINER"):
            raise DockerfileError(f"{where}: {trigger} isn't allowed as an ONBUILD trigger")
        if trigger not in FLAGS:
            raise DockerfileError(f"{where}: unknown instruction: {c.sub_cmd}")
        rest = re.sub(r"(?is)^\s*ONBUILD\s+", "", c.original)
        sub = parse_trigger(rest, c.start_line, where)
    return Instruction(
        cmd=cmd,
        original=c.original,
        line=c.start_line,
        flags=flags,
        args=list(c.value),
        json=c.json,
        heredocs=[Heredoc(h.name, h.content) for h in c.heredocs],
        sub=sub,
    )


def parse_trigger(text: str, line: int, where: str) -> Instruction:
    """One instruction given as text (an ONBUILD trigger, of `line`); errors
    prefixed with `where`."""
    try:
        commands = dockerfile.parse_string(text + "\n")
    except dockerfile.GoParseError as e:
        raise DockerfileError(f"{where}: {e}") from None
    if len(commands) != 1:
        raise DockerfileError(f"{where}: ONBUILD takes one instruction")
    inst = _instruction(commands[0], where)
    inst.line = line
    return inst


def _check_args(cmd: str, c: dockerfile.Command, flags: dict[str, str], where: str) -> None:
    """What dockerd's instruction parser refuses before any step runs."""
    args = c.value
    if cmd in _AT_LEAST_ONE and not args:
        raise DockerfileError(f"{where}: {cmd} requires at least one argument")
    if cmd in _EXACTLY_ONE and len(args) != 1:
        raise DockerfileError(f"{where}: {cmd} requires exactly one argument")
    if cmd == "FROM" and len(args) not in (1, 3):
        raise DockerfileError(f"{where}: FROM requires either one or three arguments")
    if cmd in ("COPY", "ADD") and len(args) < 2:
        raise DockerfileError(
            f"{where}: {cmd} requires at least two arguments, but only one was provided. "
            "Destination could not be determined"
        )
    if cmd == "SHELL" and not c.json:
        raise DockerfileError(f"{where}: SHELL requires the arguments to be in JSON form")
    if cmd in ("ENV", "LABEL") and any(not k for k in args[::2]):
        raise DockerfileError(f"{where}: {cmd} names can not be blank")
    if cmd == "ARG" and any(not a.partition("=")[0] for a in args):
        raise DockerfileError(f"{where}: ARG names can not be blank")
    if cmd == "HEALTHCHECK":
        _check_healthcheck(args, flags, where)


def _check_healthcheck(args: tuple[str, ...], flags: dict[str, str], where: str) -> None:
    from dockyard.image.changes import _parse_duration

    kind = args[0].upper()
    if kind == "NONE":
        if len(args) > 1 or flags:
            raise DockerfileError(f"{where}: HEALTHCHECK NONE takes no arguments")
        return
    if kind != "CMD":
        raise DockerfileError(f'{where}: Unknown type "{kind}" in HEALTHCHECK (try CMD)')
    if len(args) < 2:
        raise DockerfileError(f"{where}: Missing command after HEALTHCHECK CMD")
    for flag, value in flags.items():
        try:
            if flag == "retries":
                retries = int(value)
                if retries < 1:
                    raise InvalidParameter(f"--retries must be at least 1 (not {retries})")
            else:
                _parse_duration(value, flag)
        except ValueError:
            raise DockerfileError(
                f'{where}: strconv.ParseInt: parsing "{value}": invalid syntax'
            ) from None
        except InvalidParameter as e:
            raise DockerfileError(f"{where}: {e.message}") from None


def _flags(cmd: str, raw: tuple[str, ...], where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for flag in raw:
        name, eq, value = flag.removeprefix("--").partition("=")
        if name not in FLAGS[cmd]:
            raise DockerfileError(f"{where}: Unknown flag: {name}")
        if (cmd, name) in _BUILDKIT_ONLY:
            raise DockerfileError(
                f"{where}: the --{name} option requires BuildKit; the classic builder "
                "does not support it"
            )
        if not eq and cmd != "HEALTHCHECK":
            value = "true"
        out[name] = value
    return out
