"""Render the daemon's JSON progress stream as the docker CLI does (jsonmessage).

On a terminal each layer keeps one line, redrawn in place with its bar; on
anything else, bars are left out and each state change is one line
("a3ed95caeb02: Pull complete"). An error message in the stream ends it
with that error.
"""

from __future__ import annotations

import shutil

from dockyard.cli.context import CLIError

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import IO, Any


def _human_size(size: float) -> str:
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{size:.4g}{units[i]}"


def progress_string(detail: dict[str, Any], width: int) -> str:
    """jsonmessage.JSONProgress.String for a terminal `width` columns wide."""
    current = int(detail.get("current") or 0)
    total = int(detail.get("total") or 0)
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        return f"{_human_size(current):>8}"
    percentage = min(50, int(current / total * 100) // 2)
    bar = ""
    if width > 110:
        bar = "[" + "=" * percentage + ">" + " " * (50 - percentage) + "] "
    numbers = f"{_human_size(current):>8}/{_human_size(total)}" if current <= total else ""
    return bar + numbers


def display(
    messages: Iterable[Any],
    out: IO[str],
    terminal: bool,
    on_aux: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    width = shutil.get_terminal_size((80, 24)).columns if terminal else 200
    lines: dict[str, int] = {}
    for msg in messages:
        if not isinstance(msg, dict):
            continue
        if msg.get("error") or msg.get("errorDetail"):
            detail = msg.get("errorDetail") or {}
            raise CLIError(str(msg.get("error") or detail.get("message")), 1)
        if "aux" in msg:
            if on_aux is not None:
                on_aux(msg["aux"])
            continue
        ident = str(msg.get("id") or "")
        detail = msg.get("progressDetail")
        has_progress = isinstance(detail, dict)
        diff = 0
        if ident and has_progress:
            if ident not in lines:
                lines[ident] = len(lines)
                if terminal:
                    out.write("\n")
            diff = len(lines) - lines[ident]
            if terminal:
                out.write(f"\x1b[{diff}A")
        else:
            lines = {}  # something else was printed: earlier lines stay as they are
        text = progress_string(detail, width) if has_progress else ""
        endl = "\n"
        if terminal and has_progress:
            out.write("\x1b[2K\r")
            endl = "\r"
        elif text:
            continue  # bars only on a terminal
        if ident:
            out.write(f"{ident}: ")
        status = str(msg.get("status") or "")
        if msg.get("stream"):
            out.write(str(msg["stream"]) + ("" if endl == "\n" else endl))
        elif text and terminal:
            out.write(f"{status} {text}{endl}")
        else:
            out.write(f"{status}{endl}")
        if terminal and ident and has_progress:
            out.write(f"\x1b[{diff}B")
        out.flush()
