"""`dockyard load`/`pull` progress as a user sees it: layers unpacked side by side
send interleaved updates; on a terminal each layer keeps one line, redrawn in
place (as docker's jsonmessage does), and a pipe gets plain lines, no bars."""

from __future__ import annotations

import io
import re

from dockyard.cli.progress import display


def screen(text: str) -> list[str]:
    """What a VT100 shows after `text` (newline, CR, cursor up/down, erase line)."""
    lines, row, col = [""], 0, 0
    i = 0
    while i < len(text):
        m = re.match(r"\x1b\[(\d*)([ABK])", text[i:])
        if m:
            n = int(m.group(1) or 1)
            if m.group(2) == "A":
                row = max(0, row - n)
            elif m.group(2) == "B":
                row += n
            else:
                lines[row] = ""
            i += m.end()
        else:
            ch = text[i]
            if ch == "\n":
                row, col = row + 1, 0
            elif ch == "\r":
                col = 0
            else:
                line = lines[row].ljust(col)
                lines[row] = line[:col] + ch + line[col + 1 :]
                col += 1
            i += 1
        while row >= len(lines):
            lines.append("")
    return [line.rstrip() for line in lines if line.strip()]


def interleaved(ids: list[str], steps: int = 5) -> list[dict]:
    total = 20_000_000
    out = []
    for step in range(1, steps + 1):
        for ident in ids:  # every layer advances before any finishes
            current = total * step // steps
            out.append(
                {
                    "status": "Loading layer",
                    "id": ident,
                    "progressDetail": {"current": current, "total": total},
                    "progress": "",
                }
            )
    out.append({"stream": "Loaded image: app:v1\n"})
    return out


def test_terminal_shows_one_line_per_layer_updated_in_place(monkeypatch):
    monkeypatch.setattr(
        "shutil.get_terminal_size", lambda *_: __import__("os").terminal_size((120, 40))
    )
    out = io.StringIO()
    display(interleaved(["aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc"]), out, terminal=True)
    done = "[" + "=" * 50 + ">] " + "    20MB/20MB"  # docker's %8v/%v
    assert screen(out.getvalue()) == [
        f"aaaaaaaaaaaa: Loading layer {done}",
        f"bbbbbbbbbbbb: Loading layer {done}",
        f"cccccccccccc: Loading layer {done}",
        "Loaded image: app:v1",
    ]


def test_narrow_terminal_drops_the_bar_keeps_the_lines(monkeypatch):
    monkeypatch.setattr(
        "shutil.get_terminal_size", lambda *_: __import__("os").terminal_size((80, 24))
    )
    out = io.StringIO()
    display(interleaved(["aaaaaaaaaaaa", "bbbbbbbbbbbb"]), out, terminal=True)
    assert screen(out.getvalue()) == [
        "aaaaaaaaaaaa: Loading layer " + "    20MB/20MB",
        "bbbbbbbbbbbb: Loading layer " + "    20MB/20MB",
        "Loaded image: app:v1",
    ]


def test_pipe_gets_plain_lines_without_bars_or_escapes():
    out = io.StringIO()
    messages = interleaved(["aaaaaaaaaaaa", "bbbbbbbbbbbb"])
    messages.insert(0, {"status": "Pulling fs layer", "id": "aaaaaaaaaaaa", "progressDetail": {}})
    display(messages, out, terminal=False)
    assert "\x1b" not in out.getvalue() and "[=" not in out.getvalue()
    assert out.getvalue().splitlines() == ["aaaaaaaaaaaa: Pulling fs layer", "Loaded image: app:v1"]
