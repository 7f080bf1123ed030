"""Heredocs as BuildKit's Dockerfile frontend reads them (the classic builder has none).

`<<-NAME` strips the body's leading tabs (ChompHeredocContent); an unquoted
NAME lets COPY/ADD expand `$VAR` in the body (raw: quotes and escapes stay as
written), a quoted one (`<<'NAME'`, `<<"NAME"`) does not; RUN never expands
(the shell does). A `RUN <<NAME` whose body starts with `#!` runs the body as
a file, /dev/pipes/NAME (mode 0755, read-only), through the shell, so the
kernel hands it to the interpreter its first line names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dockyard.engine.build.syntax import Heredoc, Instruction
from dockyard.errors import InvalidParameter

PIPES_DIR = "/dev/pipes"
_MARKER = re.compile(r"^<<(-?)\s*(['\"]?)([^'\"<\s]+)\2$")
_LEADING_TABS = re.compile(r"^\t+", re.M)


@dataclass
class Marker:
    name: str
    chomp: bool  # <<-NAME
    expand: bool  # NAME unquoted


def marker(word: str) -> Marker | None:
    """The heredoc that one argument names (`<<EOF`, `<<-'EOF'` ...), or None."""
    m = _MARKER.match(word.strip())
    if m is None:
        return None
    return Marker(m.group(3), chomp=bool(m.group(1)), expand=not m.group(2))


def body(h: Heredoc, mark: Marker) -> str:
    return _LEADING_TABS.sub("", h.content) if mark.chomp else h.content


@dataclass
class RunScript:
    """What a shell-form RUN with heredocs runs."""

    script: str  # the shell's command string
    pipe_file: tuple[str, str] | None = None  # (name, content) to put in PIPES_DIR


def run_script(first_line: str, inst: Instruction) -> RunScript:
    mark = marker(first_line)
    if len(inst.heredocs) == 1 and mark is not None and mark.name == inst.heredocs[0].name:
        h = inst.heredocs[0]
        if h.content.startswith("#!"):
            # BuildKit tests the body before chomping, as here.
            if "/" in h.name or h.name in (".", ".."):
                raise InvalidParameter(
                    f"RUN <<{h.name}: a heredoc run as a file needs a plain file name"
                )
            return RunScript(f"{PIPES_DIR}/{h.name}", (h.name, body(h, mark)))
        return RunScript(body(h, mark))  # `RUN <<EOF ... EOF`: the body is the script
    # Anything else (`RUN python3 <<EOF`, several heredocs): the shell reads them.
    parts = [first_line]
    for h in inst.heredocs:
        parts.append(h.content.rstrip("\n"))
        parts.append(h.name)
    return RunScript("\n".join(parts) + "\n")
