"""Reading a Dockerfile with moby's own parser (the `dockerfile` package wraps it).

The parser gives instructions with their lines, flags, JSON form and
heredocs; this module checks what the classic builder checks before any step
runs (known instructions, flags each takes, arguments) and reports every
problem with the file name and line.
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


def _escape_token(text: str) -> str:
    """The `# escape=` directive, if any, among the leading comment lines."""
    for line in text.splitlines():
        m = re.match(r"^\s*#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$", line)
        if m is None:
            break
        if m.group(1).lower() == "escape":
            return m.group(2)
    return "\\"


def parse(text: str, filename: str = "Dockerfile") -> tuple[list[Instruction], str]:
    """Instructions and the escape character; DockerfileError naming file and line."""
    try:
        commands = dockerfile.parse_string(text)
    except dockerfile.GoParseError as e:
        line = _error_line(text, str(e))
        where = f"{filename}:{line}" if line else filename
        raise DockerfileError(f"failed to parse {where}: {e}") from None
    if not commands:
        raise DockerfileError(f"failed to parse {filename}: file with no instructions")
    out = [_instruction(c, filename) for c in commands]
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


def _instruction(c: dockerfile.Command, filename: str) -> Instruction:
    where = f"{filename}:{c.start_line}"
    cmd = c.cmd.upper()
    if cmd not in FLAGS:
        raise DockerfileError(f"{where}: unknown instruction: {c.cmd}")
    flags = _flags(cmd, c.flags, where)
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
        sub = parse_trigger(rest, where)
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


def parse_trigger(text: str, where: str) -> Instruction:
    """One instruction given as text (an ONBUILD trigger)."""
    try:
        commands = dockerfile.parse_string(text + "\n")
    except dockerfile.GoParseError as e:
        raise DockerfileError(f"{where}: {e}") from None
    if len(commands) != 1:
        raise DockerfileError(f"{where}: ONBUILD takes one instruction")
    inst = _instruction(commands[0], where.rsplit(":", 1)[0])
    inst.line = int(where.rsplit(":", 1)[1]) if where.rsplit(":", 1)[1].isdigit() else 0
    return inst


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
